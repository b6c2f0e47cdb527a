"""The worker agent: a stdlib-only Python program the head starts on each worker.

It is sent over the SSH channel as the command itself (compressed source in argv), so nothing
is installed on a worker.  It speaks JSON lines: commands from the head on stdin, events to the
head on stdout.  Everything is event-driven: one thread blocks on stdin, one thread per running
task blocks in ``wait4``, a heartbeat thread sleeps between beats; the main thread only writes.

    head -> agent   {"op": "run", "key", "cmd", "cwd", "env", "timeout", "out", "err", "outputs"}
                    {"op": "kill", "key"}
                    {"op": "slot", "slot"}  (an agent started before the head held the run's
                                             lock: kill the run's previous agent here now)
                    {"op": "stop"}
                    EOF on stdin: kill every task and exit (the head went away)
    agent -> head   {"ev": "hello", "pid", "hostname", "cores", "python", "executable", "cwd",
                     "memfree", "load", "disk_free", "version"}
                    {"ev": "start", "key", "pid", "t"}
                    {"ev": "rows" | "spawn", "key", "data"}  (streamed rows; new tasks)
                    {"ev": "exit", "key", "rc", "sig", "t", "maxrss_kb", "timed_out",
                     "out_size", "err_size", "out_tail", "err_tail", "missing_outputs"}
                    {"ev": "hb", "t", "memfree", "load", "running"}

Tasks run as process groups of their own; a timeout or a kill signals the whole group
(TERM, then KILL after a grace period).  A guardian process forked at start holds a pipe from
the agent: if the agent itself dies (even by SIGKILL), the guardian sees EOF and kills every
task group the agent had, so a lost worker never leaves orphans running.
"""

import base64
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time

# The wire format; when the agent is sent to a worker this import line is replaced by the
# module's source (see transport.agent_source), so the agent stays one stdlib-only program.
from lasair_parallel.tasks.protocol import (  # <protocol>
    ENV_AGENT_TOKEN,
    ENV_ATTEMPT,
    ENV_EMIT_FD,
    ENV_PYTHON,
    ENV_SPAWN_FD,
    ENV_TASK_ID,
    PROTOCOL_VERSION,
    TAIL_BYTES,
    split_key,
)

ROWS_CHUNK = 1 << 16  # streamed rows per message: big enough to amortise JSON, small for memory
KILL_GRACE = 1.0  # seconds between TERM and KILL: lets a task flush, bounded so kills are quick


# A command made only of these characters means the same with or without a shell: no quoting,
# expansion, redirection, globbing or assignment.  Such a command is executed directly, which
# saves starting /bin/sh for every task (~1 ms of a 2-core machine's time per task).
_PLAIN_COMMAND = re.compile(r"[A-Za-z0-9_./:,+-]+( +[A-Za-z0-9_./:,+=-]+)*")


def _argv(cmd, env):
    """The argv to run ``cmd``: direct when the shell would change nothing, else ``sh -c``."""
    if _PLAIN_COMMAND.fullmatch(cmd):
        import shutil  # here, not at the top: with lzma and bz2 ~2.5 ms ahead of the hello

        words = cmd.split()
        exe = shutil.which(words[0], path=env.get("PATH"))
        if exe is not None:  # not a shell builtin or keyword such as exit, cd or if
            return [exe] + words[1:]
    return ["/bin/sh", "-c", cmd]


def _memfree():
    """Available memory in bytes (Linux /proc/meminfo), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _disk_free(path="."):
    """Free bytes on the filesystem of ``path`` (the agent's working directory), or None."""
    try:
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize
    except OSError:
        return None


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _tail(path):
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(max(0, size - TAIL_BYTES))
            return size, f.read().decode("utf-8", "replace")
    except OSError:
        return 0, ""


def _guardian(read_fd, agent_pid, fence, token):
    """Child process: track task process groups; kill them all when the agent's pipe closes,
    or when the agent has been silent for ``fence`` seconds (frozen: SIGSTOP, a hung VM).

    The agent writes ``h0`` on every heartbeat.  ``fence`` is shorter than the head's
    heartbeat timeout, so a frozen agent's tasks are dead before the head gives the host up
    and runs them elsewhere: no task runs twice at once.  The frozen agent is killed too, so
    it can never wake up and report a stale result.
    """
    os.setsid()  # do not die with the agent's session when sshd hangs up
    # Let go of the channel: sshd closes it only when every holder of stdout has exited.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    groups = set()
    clean = False  # the agent said it ended its tasks itself ("q"): nothing to look for
    buf = b""
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    last = time.monotonic()
    while True:
        wait = None if fence is None else max(0.0, last + fence - time.monotonic())
        if not poller.poll(None if wait is None else int(wait * 1000) + 1):
            if fence is not None and time.monotonic() - last >= fence:
                try:
                    os.kill(agent_pid, signal.SIGKILL)  # fenced: it must never report again
                except OSError:
                    pass
                break
            continue
        try:
            chunk = os.read(read_fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        last = time.monotonic()
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            sign, pgid = line[:1], int(line[1:])
            if sign == b"+":
                groups.add(pgid)
            elif sign == b"-":
                groups.discard(pgid)
            elif sign == b"q":
                clean = True
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    if not clean:
        _kill_marked(token)
    os._exit(0)


def _kill_marked(token):
    """Kill every process that carries the agent's token in its environment, with its group.

    The guardian learns a task's group from the agent just after the task has started, so
    an agent frozen or killed in between leaves a task it never heard of.  The test suite
    caught one under load (test_reconnecting_head_kills_leftovers_of_a_frozen_agent): of two
    tasks started at once, the second outlived its paused agent, and it would have run a
    second time.  A task's ``setsid`` daemon also leaves its group, and only a live agent
    (the subreaper) kills it.  Every process a task starts inherits the token, so the
    guardian scans /proc for it after an agent's unclean end.  A clean exit skips the scan:
    the agent has killed its tasks itself.
    """
    mark = f"{ENV_AGENT_TOKEN}={token}".encode()
    me = os.getpid()
    for _ in range(3):  # again, for what a dying process had just forked
        found = False
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == me:
                continue
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if mark not in f.read().split(b"\0"):
                        continue
            except OSError:
                continue
            found = True
            _kill_tree_of(int(d))
        if not found:
            return


PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def _become_subreaper():
    """Make orphans of our tasks (a task's ``setsid`` daemon) our children, not init's, so
    they can be found and killed with their task.  Linux 3.4+; elsewhere a no-op."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children(pid):
    """PIDs of ``pid``'s children (/proc/PID/task/*/children; else a scan of /proc).

    For the agent itself only its main thread's list is read: every task is forked by the main
    thread, and an orphan is re-parented to the subreaper's first live thread, which is the
    main thread while the agent runs (kernel find_alive_thread).  One read per sweep instead
    of one per thread (the agent has a reaper thread per running task).
    """
    if pid == os.getpid() and threading.main_thread().is_alive():
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(c) for c in f.read().split()]
        except OSError:
            pass
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
        return out
    except OSError:
        pass
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _attempt_of(pid):
    """The attempt key a process was started for (from the environment it inherited)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    except OSError:
        return None
    tid, att = env.get(ENV_TASK_ID.encode()), env.get(ENV_ATTEMPT.encode())
    return None if tid is None or att is None else f"{tid.decode()}#{att.decode()}"


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _reap(pid):
    try:
        os.waitpid(pid, 0)
    except OSError:
        pass


def _kill_tree_of(pid):
    """SIGKILL an orphan and its process group (a daemon usually leads one of its own)."""
    try:
        pgid = os.getpgid(pid)
        if pgid != os.getpgrp():  # never our own group
            os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _pidfile_of(slot):
    """The pid file of this run's agent on this host (``slot`` names the run directory and
    host label), read by the next agent of the run."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"lasair-agent-{os.getuid()}-{slot}.pid")


def _kill_previous(pidfile):
    """A reconnecting head's new agent: kill the previous agent of this run and host (it may
    be frozen, and its guardian with it), so its tasks die before they run again here."""
    try:
        with open(pidfile) as f:
            old_agent, old_guardian = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return
    for pid in (old_agent, old_guardian):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"zlib" not in f.read():  # not an agent (the pid was reused)
                    continue
            os.kill(pid, signal.SIGKILL if pid == old_agent else signal.SIGCONT)
        except OSError:
            pass
    # The old guardian, woken, sees its agent's pipe close and kills the old task groups.


class Agent:
    def __init__(self, procs, heartbeat, fence=None, slot=None):
        self.procs = procs
        self.heartbeat = heartbeat
        # Tell the guardian we live four times per fence: a healthy agent on a loaded worker
        # (a thread scheduled late) then has 3/4 of the fence as slack, not fence - heartbeat
        # (0.5 s with --heartbeat-timeout 2).  A pipe write costs microseconds.
        self.alive_every = heartbeat if fence is None else min(heartbeat, fence / 4)
        self.out = sys.stdout.buffer
        self.lock = threading.Lock()
        self.tasks = {}  # key -> Popen
        # Held while a task is started and registered, and while orphans are reaped: a child
        # not yet in ``tasks`` (just forked, maybe already exited) must never be taken for an
        # orphan, or its status is reaped away from the thread that reports its exit.
        self.children_lock = threading.Lock()
        self.timed_out = set()
        self.subreaper = False  # set in main(), after the hello and before any task
        agent_pid = os.getpid()
        self.token = os.urandom(12).hex()  # unique to this agent: no pid reuse can match it
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            _guardian(r, agent_pid, fence, self.token)
        os.close(r)
        self.guardian_pid = pid
        self.guardian_w = w
        self.pidfile = None
        if slot:
            self.claim(slot)

    def claim(self, slot):
        """Become this run's agent on this host (``slot`` names the run and host: at start, or
        as an op before any task for an agent the head started before it held the run's
        lock): kill the previous agent its pid file names, and write ours."""
        pidfile = _pidfile_of(slot)
        _kill_previous(pidfile)
        self.pidfile = pidfile
        try:
            with open(pidfile, "w") as f:
                f.write(f"{os.getpid()} {self.guardian_pid}\n")
        except OSError:
            pass

    def send(self, msg):
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        with self.lock:
            self.out.write(data)
            self.out.flush()

    def tell_guardian(self, sign, pgid):
        try:
            os.write(self.guardian_w, b"%s%d\n" % (sign, pgid))
        except OSError:
            pass

    def run(self, m):
        key = m["key"]
        env = dict(os.environ)
        env[ENV_PYTHON] = sys.executable  # apps' commands run on the agent's interpreter
        task_id, attempt = split_key(key)
        env[ENV_TASK_ID] = task_id
        env[ENV_ATTEMPT] = str(attempt)
        env[ENV_AGENT_TOKEN] = self.token
        env.update(m.get("env") or {})
        cwd = m.get("cwd") or None
        for path in [m["out"], m["err"]] + list(m.get("outputs") or []):
            d = os.path.dirname(os.path.join(cwd or ".", path))
            if d:
                os.makedirs(d, exist_ok=True)
        emit_r = emit_w = None
        if m.get("emit"):
            emit_r, emit_w = os.pipe()
            env[ENV_EMIT_FD] = str(emit_w)
        spawn_r = spawn_w = None
        if m.get("spawn"):  # new tasks from the task: its lines go out as "spawn" events
            spawn_r, spawn_w = os.pipe()
            env[ENV_SPAWN_FD] = str(spawn_w)
        child_fds = tuple(fd for fd in (emit_w, spawn_w) if fd is not None)
        try:
            with open(m["out"], "wb") as fo, open(m["err"], "wb") as fe, self.children_lock:
                p = subprocess.Popen(
                    _argv(m["cmd"], env), shell=False, cwd=cwd, env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=fo, stderr=fe, start_new_session=True,
                    pass_fds=child_fds,
                )
                self.tasks[key] = p
        except OSError as e:
            for fd in (emit_r, emit_w, spawn_r, spawn_w):
                if fd is not None:
                    os.close(fd)
            self.send({"ev": "exit", "key": key, "rc": 127, "sig": None, "t": time.time(),
                       "maxrss_kb": None, "timed_out": False, "out_size": 0, "err_size": 0,
                       "out_tail": "", "err_tail": "cannot start task: " + str(e),
                       "missing_outputs": []})
            return
        reader = None
        if emit_w is not None:
            os.close(emit_w)  # the task holds the write end; EOF comes when it is done
            reader = threading.Thread(target=self.forward_rows, args=(key, emit_r), daemon=True)
            reader.start()
        m["_reader"] = reader
        if spawn_w is not None:
            os.close(spawn_w)
            m["_spawns"] = threading.Thread(target=self.forward_rows,
                                            args=(key, spawn_r, "spawn"), daemon=True)
            m["_spawns"].start()
        self.tell_guardian(b"+", p.pid)
        self.send({"ev": "start", "key": key, "pid": p.pid, "t": time.time()})
        timer = None
        if m.get("timeout"):
            timer = threading.Timer(m["timeout"], self.expire, (key,))
            timer.daemon = True
            timer.start()
        threading.Thread(target=self.reap, args=(key, p, m, timer), daemon=True).start()

    def forward_rows(self, key, fd, ev="rows"):
        """Send the task's streamed lines to the head as they come, whole lines only.

        ``send`` blocks while the channel is full; then this thread stops reading, the pipe
        fills and the task's own writes block: back-pressure all the way to the task.
        """
        pending = b""
        with os.fdopen(fd, "rb", buffering=0) as f:
            while True:
                chunk = f.read(ROWS_CHUNK)
                if not chunk:
                    break
                pending += chunk
                cut = pending.rfind(b"\n") + 1
                if cut:
                    self.send({"ev": ev, "key": key,
                               "data": pending[:cut].decode("utf-8", "replace")})
                    pending = pending[cut:]
        if pending:
            self.send({"ev": ev, "key": key, "data": pending.decode("utf-8", "replace")})

    def expire(self, key):
        self.timed_out.add(key)
        self.kill(key)

    def kill(self, key):
        p = self.tasks.get(key)
        if p is None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except OSError:
            return
        t = threading.Timer(KILL_GRACE, self._kill_hard, (p.pid,))
        t.daemon = True
        t.start()

    @staticmethod
    def _kill_hard(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass

    def reap(self, key, p, m, timer):
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = status
        if timer is not None:
            timer.cancel()
        # The group may outlive its leader (a backgrounded child): finish it off so a finished
        # task leaves nothing behind.
        self._kill_hard(p.pid)
        # Orphans too, before waiting for the task's pipes to close: a daemon that inherited
        # one would hold it open (and the exit event back) for as long as it lives.
        self.kill_orphans(key)
        for reader in (m.get("_reader"), m.get("_spawns")):
            if reader is not None:
                reader.join()  # every streamed row and spawn goes out before the exit event
        self.tell_guardian(b"-", p.pid)
        self.tasks.pop(key, None)
        rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        out_size, out_tail = _tail(m["out"])
        err_size, err_tail = _tail(m["err"])
        inline = {}
        limit = m.get("inline_max") or 0
        for name, size in (("out", out_size), ("err", err_size)):
            if size <= limit:
                # Small logs travel with the event: no file copy for a worker that does not
                # share the head's filesystem.
                with open(m[name], "rb") as f:
                    inline[name + "_b64"] = base64.b64encode(f.read()).decode()
        cwd = m.get("cwd") or "."
        missing = [o for o in (m.get("outputs") or [])
                   if rc == 0 and not os.path.exists(os.path.join(cwd, o))]
        timed_out = key in self.timed_out
        self.timed_out.discard(key)
        self.send({"ev": "exit", "key": key, "rc": rc, "sig": sig, "t": time.time(),
                   "maxrss_kb": ru.ru_maxrss, "timed_out": timed_out,
                   "out_size": out_size, "err_size": err_size,
                   "out_tail": out_tail, "err_tail": err_tail, "missing_outputs": missing,
                   **inline})

    def kill_orphans(self, key=None):
        """Kill what the attempt ``key`` (None: every attempt) left behind outside its
        process group (a ``setsid`` daemon): as a subreaper we inherit such orphans.

        Killing one orphan makes its own children ours, hence the rounds (bounded: a fork
        bomb must not keep us here).  Orphans that exited by themselves are reaped too.
        """
        if not self.subreaper:
            return
        with self.children_lock:
            self._kill_orphans(key)

    def _kill_orphans(self, key):
        for _ in range(20):
            leaders = {p.pid for p in list(self.tasks.values())}
            found = False
            for pid in _children(os.getpid()):
                if pid == self.guardian_pid or pid in leaders:
                    continue
                if _zombie(pid):  # an orphan that ended by itself: reap it
                    _reap(pid)
                    continue
                owner = _attempt_of(pid)
                if key is None or owner == key:
                    found = True
                    _kill_tree_of(pid)
                    _reap(pid)
            if not found:
                return

    def alive(self):
        """Tell the guardian we are alive, every ``alive_every`` seconds.

        A thread of its own, not the heartbeat's: sending to the head may block for long
        (a full channel: streamed rows the head is slow to take), and that is no reason to
        fence.  A frozen agent (SIGSTOP, a stuck interpreter) stops this thread too.
        """
        while True:
            time.sleep(self.alive_every)
            self.tell_guardian(b"h", 0)

    def beat(self):
        while True:
            time.sleep(self.heartbeat)
            self.send({"ev": "hb", "t": time.time(), "memfree": _memfree(), "load": _load(),
                       "running": len(self.tasks)})

    def shutdown(self):
        for key in list(self.tasks):
            self.kill(key)
        deadline = time.time() + KILL_GRACE + 0.5
        while self.tasks and time.time() < deadline:
            time.sleep(0.05)  # bounded wait for reapers at exit only, not a completion poll
        self.kill_orphans()
        self._drop_pidfile()
        self.tell_guardian(b"q", 0)  # a clean end: the guardian need not look for leftovers
        os._exit(0)

    def _drop_pidfile(self):
        """A clean exit leaves nothing for the next agent to kill: remove our pid file
        (only if it still names us; a newer agent may have written its own)."""
        if not self.pidfile:
            return
        try:
            with open(self.pidfile) as f:
                if f.read().split()[:1] == [str(os.getpid())]:
                    os.unlink(self.pidfile)
        except (OSError, IndexError):
            pass

    def main(self):
        self.send({"ev": "hello", "protocol": PROTOCOL_VERSION, "pid": os.getpid(), "hostname": os.uname().nodename,
                   "cores": os.cpu_count(), "python": sys.version.split()[0],
                   "executable": sys.executable, "cwd": os.getcwd(), "memfree": _memfree(), "load": _load(),
                   "disk_free": _disk_free(), "version": project_version()})
        # ctypes' import (~1.2 ms) after the hello: the head's first task is read below.
        self.subreaper = _become_subreaper()
        threading.Thread(target=self.beat, daemon=True).start()
        threading.Thread(target=self.alive, daemon=True).start()
        for line in sys.stdin.buffer:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            op = m.get("op")
            if op == "run":
                self.run(m)
            elif op == "kill":
                self.kill(m["key"])
            elif op == "slot":
                self.claim(m["slot"])
            elif op == "stop":
                break
        self.shutdown()


def project_version(path=None):
    """The lasair-parallel version installed for this interpreter, if any (for deploy checks).

    Read from the first ``*.dist-info``/``*.egg-info`` folder of that name on ``path``
    (default: where this interpreter imports from, ``search_path``), the folders
    importlib.metadata would find first: importing importlib.metadata took 14-35 ms of each
    agent's start (python -X importtime on a worker), ahead of its hello.
    """
    for entry in search_path() if path is None else path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            stem, dot, kind = name.rpartition(".")
            if not dot or kind not in ("dist-info", "egg-info"):
                continue
            if not re.match(r"lasair[-_.]parallel(-|$)", stem, re.IGNORECASE):
                continue
            meta = "METADATA" if kind == "dist-info" else "PKG-INFO"
            try:
                with open(os.path.join(entry or ".", name, meta), encoding="utf-8") as f:
                    for line in f:
                        if line.startswith("Version:"):
                            return line.split(":", 1)[1].strip()
                        if not line.strip():
                            break  # the headers end here
            except OSError:
                pass
    return None


def search_path():
    """sys.path, with the site-packages folders ``site`` would add when it is not run.

    The agent runs under ``python -S`` (``transport.agent_command``): site's .pth files cost
    2-3 ms of a plain venv's start and 16 ms of an editable install's (its import finder pulls
    in pathlib and importlib.util; ``python -X importtime``), all before the hello, and the
    agent imports only the standard library.  The folders are listed here as site.main()
    would order them: a venv's own, then the user's (unless a venv hides the system's), then
    the system's.  Under -S, importing site adds nothing to sys.path.
    """
    if not sys.flags.no_site:
        return sys.path
    import site

    # A venv is found as site.venv finds it: pyvenv.cfg beside the interpreter or one folder
    # up; under -S nothing has set sys.prefix to it yet.
    bin_dir = os.path.dirname(os.path.abspath(sys.executable))
    venv = os.path.dirname(bin_dir)
    cfg = next((os.path.join(d, "pyvenv.cfg") for d in (bin_dir, venv)
                if os.path.isfile(os.path.join(d, "pyvenv.cfg"))), None)
    folders = []
    sees_system = True
    if cfg is not None:
        libs = dict.fromkeys([getattr(sys, "platlibdir", "lib"), "lib"])
        ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        folders += [os.path.join(venv, lib, ver, "site-packages") for lib in libs]
        sees_system = _cfg_value(cfg, "include-system-site-packages", "false") == "true"
    if sees_system:
        if site.check_enableusersite():
            folders.append(site.getusersitepackages())
        folders += site.getsitepackages([sys.base_prefix, sys.base_exec_prefix])
    return sys.path + [f for f in dict.fromkeys(folders) if f not in sys.path]


def _cfg_value(path, key, default):
    """One ``key = value`` of a pyvenv.cfg, lowercased (as site.venv reads it), or ``default``."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                name, eq, value = line.partition("=")
                if eq and name.strip().lower() == key:
                    return value.strip().lower()
    except OSError:
        pass
    return default


def main(argv):
    cfg = json.loads(argv[1]) if len(argv) > 1 else {}
    signal.signal(signal.SIGHUP, lambda *a: None)  # a hang-up is seen as EOF on stdin instead
    # the slot names the run directory and host label: one pid file each, for the next agent
    Agent(int(cfg.get("procs", 1)), float(cfg.get("heartbeat", 1.0)), cfg.get("fence"),
          cfg.get("slot")).main()


if __name__ == "__main__":
    main(sys.argv)
