"""The Python API: runs from a script, returns per-task results, prints nothing, leaves the
process's signal handlers alone, and works from a thread (as in a notebook with its own loop)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lasair_parallel as lp

REPO = Path(__file__).resolve().parent.parent
LOCAL = [lp.Worker(host="localhost", transport="local", procs=2)]


def test_run_commands_gives_per_task_results(tmp_path, capfd):
    seen = []
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    result = lp.run(["echo one", "sh -c 'echo bad >&2; exit 3'", "echo three"], LOCAL,
                    run_dir=tmp_path / "run", on_result=seen.append)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)  # the library never prints
    assert result.total == 3 and not result.ok and result.exit_status == 1
    assert [t.command for t in result.succeeded] == ["echo one", "echo three"]
    [bad] = result.failed
    assert bad.last.exit_code == 3 and "bad" in bad.last.err_tail
    assert bad.last.host == "localhost" and bad.last.outcome == "failed"
    assert sorted(t.id for t in seen) == sorted(result.tasks)
    with pytest.raises(lp.RunFailed) as e:
        result.check()
    assert e.value.result is result and isinstance(e.value, lp.ParallelError)


def test_retries_are_attempts_and_resume_skips(tmp_path):
    flag = tmp_path / "flag"
    cmd = f"test -e {flag} || {{ touch {flag}; exit 1; }}"  # fails once, then succeeds
    r = lp.run([cmd], LOCAL, run_dir=tmp_path / "run", retries=1, retry_delay=0)
    [t] = r.tasks.values()
    assert r.ok and [a.outcome for a in t.attempts] == ["failed", "ok"]
    again = lp.run([cmd], LOCAL, run_dir=tmp_path / "run")
    assert again.ok and again.skipped == 1 and len(again.tasks[t.id].attempts) == 2


def test_app_through_the_api(tmp_path):
    r = lp.run("busy", LOCAL, args=["--count", "3", "--seconds", "0", "--outputs"],
               run_dir=tmp_path / "busy")
    assert r.ok and len(r.succeeded) == 3
    assert all(Path(o).exists() for t in r.succeeded for o in t.outputs)


def test_usage_errors_are_typed(tmp_path):
    with pytest.raises(lp.UsageError, match="no app named"):
        lp.run("nope", LOCAL, run_dir=tmp_path / "x")
    with pytest.raises(lp.UsageError, match="--count"):
        lp.run("busy", LOCAL, args=["--count", "x"], run_dir=tmp_path / "y")
    with pytest.raises(lp.UsageError):
        lp.read_hosts([{"host": "h", "nonsense": 1}])
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_runs_beside_a_running_asyncio_loop(tmp_path):
    """A notebook runs cells inside an asyncio loop: a run from there must just work."""
    async def cell():
        return lp.run(["echo hi"], LOCAL, run_dir=tmp_path / "nb")

    r = asyncio.run(cell())
    assert r.ok and r.succeeded[0].last.out_tail.strip() == "hi"


def test_example_script_drives_a_run(tmp_path):
    p = subprocess.run([sys.executable, str(REPO / "examples" / "run_fading.py"), "--run-dir",
                        str(tmp_path / "run"), "--rate", "0.05"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "0 failed" in p.stdout and "fading band(s)" in p.stdout, p.stdout


def test_fading_science_against_a_direct_fit(tmp_path):
    """The example's slopes equal numpy's weighted polyfit on the same points."""
    import numpy as np

    sys.path.insert(0, str(REPO / "examples" / "fading"))
    try:
        from slopes import fading_rows
    finally:
        sys.path.pop(0)
    jd = np.array([0.0, 1.0, 2.5, 4.0, 7.0]) + 2460000.5
    mag = 18.0 + 0.1 * (jd - jd[0]) + np.array([0.01, -0.02, 0.0, 0.015, -0.01])
    sig = np.array([0.05, 0.1, 0.05, 0.2, 0.1])
    rows = [{"objectId": "ZTFx", "jd": str(j), "fid": "1", "magpsf": str(m), "sigmapsf": str(s),
             "isdiffpos": "t"} for j, m, s in zip(jd, mag, sig)]
    [(oid, fid, n, days, slope, err, last)] = fading_rows(rows, 0.05, 30.0, 3)
    ref = np.polyfit(jd - jd.mean(), mag, 1, w=1 / sig)[0]
    assert (oid, fid, n) == ("ZTFx", 1, 5) and slope == pytest.approx(ref, abs=1e-6)
    assert fading_rows(rows, 0.2, 30.0, 3) == []  # slower than the threshold
    neg = [dict(r, isdiffpos="f") for r in rows]
    assert fading_rows(neg, 0.05, 30.0, 3) == []  # negative differences are not detections


def test_lazy_namespace_keeps_tasks_light():
    """A worker task importing lasair_parallel.tasks must not load the head's SSH stack."""
    code = textwrap.dedent("""
        import sys
        import lasair_parallel
        from lasair_parallel.tasks import Task
        from lasair_parallel.tasks.emit import emitter
        heavy = [m for m in ("gevent", "pssh", "click", "yaml") if m in sys.modules]
        print(heavy)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr


def test_readme_api_snippet_runs(tmp_path):
    """The README's Python API example is run as written (from a directory where its relative
    paths resolve), so the documentation cannot drift from the code."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):]
    snippet = section[section.index("```python") + len("```python"):]
    snippet = snippet[:snippet.index("```")]
    (tmp_path / "examples").symlink_to(REPO / "examples")
    p = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    # the snippet's second run succeeds, so check() passes; its first has one failing task
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 ok" in p.stdout and "sh -c 'exit 3'" in p.stdout, p.stdout
