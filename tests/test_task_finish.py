"""tasks.finish.exit_task: a task's process ends as a normal exit would, minus the teardown.

Each case runs a real Python process and checks what a normal exit guarantees: the status,
buffered stdout, atexit handlers, a still-running non-daemon thread, and a streamed record
left in the emitter's buffer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from lasair_parallel.tasks.protocol import ENV_EMIT_FD


def run_script(code: str, tmp_path, **kw) -> subprocess.CompletedProcess:
    script = tmp_path / "t.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=60, **kw)


def test_status_buffered_output_and_atexit_handlers(tmp_path):
    p = run_script("""
        import atexit, sys
        from pathlib import Path
        from lasair_parallel.tasks.finish import exit_task
        atexit.register(lambda: Path(sys.argv[1], "atexit").write_text("ran"))
        sys.stdout.write("no newline, still buffered")  # a pipe: block-buffered
        exit_task(3)
        print("never")
    """, tmp_path)
    assert p.returncode == 3, p.stderr
    assert p.stdout == "no newline, still buffered"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_none_is_status_zero_and_a_failing_handler_is_reported(tmp_path):
    p = run_script("""
        import atexit
        from lasair_parallel.tasks.finish import exit_task
        def bad():
            raise RuntimeError("handler failed")
        atexit.register(bad)
        exit_task(None)
    """, tmp_path)
    assert p.returncode == 0
    assert "handler failed" in p.stderr  # printed, as Python prints it, and the exit goes on


def test_a_running_non_daemon_thread_is_waited_for(tmp_path):
    p = run_script("""
        import sys, threading, time
        from pathlib import Path
        from lasair_parallel.tasks.finish import exit_task
        def late():
            time.sleep(0.3)
            Path(sys.argv[1], "thread").write_text("done")
        threading.Thread(target=late).start()
        exit_task(0)
    """, tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "thread").read_text() == "done"


def test_records_left_in_the_emitter_buffer_reach_the_stream(tmp_path):
    r, w = os.pipe()
    try:
        p = run_script("""
            from lasair_parallel.tasks.emit import emitter
            from lasair_parallel.tasks.finish import exit_task
            e = emitter()
            e.lines("a,1\\n")
            e.rows([["b", 2]])  # never closed: 64 KiB buffer holds both
            exit_task(0)
        """, tmp_path, env=dict(os.environ, **{ENV_EMIT_FD: str(w)}), pass_fds=(w,))
        os.close(w)
        w = -1
        with os.fdopen(r, "rb") as f:
            r = -1
            got = f.read()
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
    assert p.returncode == 0, p.stderr
    assert got == b"a,1\nb,2\n"
