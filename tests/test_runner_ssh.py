"""The runner over real sshd hosts: dispatch, slots, retries, timeouts, outputs, host keys."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from helpers import journal, parallel, processes_with


def write_tasks(path: Path, commands: list[str]) -> Path:
    path.write_text("\n".join(commands) + "\n")
    return path


def max_concurrent(rows) -> int:
    """The most attempts running at one instant (a sweep over start/end events)."""
    events = sorted([(r["start"], 1) for r in rows] + [(r["end"], -1) for r in rows],
                    key=lambda e: (e[0], e[1]))  # an end at t frees the slot before a start at t
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def atomic_echo(i: int, outdir: Path, extra: str = "") -> str:
    """A shell task that writes ``outdir/<i>.txt`` atomically (temp name, then rename)."""
    return (f"{extra}mkdir -p {outdir} && echo task-{i} > {outdir}/.{i}.$$ && "
            f"mv {outdir}/.{i}.$$ {outdir}/{i}.txt")


def test_many_tasks_over_hosts_respect_slots(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=3, shared_fs=True)
    out = tmp_path / "out"
    cmds = [atomic_echo(i, out, extra="sleep 0.2; ") for i in range(40)]
    tl = write_tasks(tmp_path / "cmds.txt", cmds)
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in out.glob("*.txt")) == sorted(f"{i}.txt" for i in range(40))
    db = journal(tmp_path / "runs" / "cmds")
    rows = db.execute("SELECT host, slot, start, end FROM attempts").fetchall()
    assert len(rows) == 40
    assert {r["host"] for r in rows} == {h.label for h in sshbed.hosts}
    # At no moment does a host run more tasks than it has slots, nor two on one slot.
    for host in {r["host"] for r in rows}:
        mine = [r for r in rows if r["host"] == host]
        assert {r["slot"] for r in mine} <= {0, 1, 2}
        assert max_concurrent(mine) <= 3
        for slot in {r["slot"] for r in mine}:
            assert max_concurrent([r for r in mine if r["slot"] == slot]) == 1
    # The joblog lists every attempt in GNU parallel's format.
    lines = (tmp_path / "runs" / "cmds" / "joblog.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["Seq", "Host", "Starttime", "JobRuntime", "Send",
                                    "Receive", "Exitval", "Signal", "Command"]
    assert len(lines) == 41
    assert all(line.split("\t")[6] == "0" for line in lines[1:])


def test_failed_task_is_retried_on_another_host_and_recorded(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, shared_fs=True)
    marker = tmp_path / "failed-once"
    cmd = f"if [ -e {marker} ]; then echo fine; else touch {marker}; echo boom >&2; exit 3; fi"
    tl = write_tasks(tmp_path / "flaky.txt", [cmd, "true"])
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--retries", "2", "--retry-delay", "0.1", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    db = journal(tmp_path / "runs" / "flaky")
    att = db.execute("SELECT a.* FROM attempts a JOIN tasks t ON t.id = a.task_id "
                     "WHERE t.command LIKE 'if%' ORDER BY attempt").fetchall()
    assert [(a["attempt"], a["outcome"], a["exit_code"]) for a in att] == [
        (1, "failed", 3), (2, "ok", 0)]
    assert "boom" in att[0]["err_tail"]
    assert att[0]["host"] != att[1]["host"]  # the retry preferred another host
    joblog = (tmp_path / "runs" / "flaky" / "joblog.tsv").read_text().splitlines()
    assert [line.split("\t")[6] for line in joblog[1:]].count("3") == 1  # every attempt listed


def test_final_failure_exit_status_and_status_command(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2)
    tl = write_tasks(tmp_path / "bad.txt", ["echo about to fail >&2; exit 7", "true"])
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--retries", "1", "--retry-delay", "0", cwd=tmp_path)
    assert p.returncode == 1
    assert "exit status 7" in p.stderr
    s = json.loads(parallel("status", "runs/bad", "--json", cwd=tmp_path, check=True).stdout)
    assert (s["total"], s["done"], s["failed"], s["attempts"]) == (2, 1, 1, 3)
    assert s["failures"][0]["exit_code"] == 7
    assert "about to fail" in s["failures"][0]["err_tail"]
    text = parallel("status", "runs/bad", cwd=tmp_path, check=True).stdout
    assert "1 failed" in text and "about to fail" in text


def test_timeout_kills_the_whole_process_group(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, shared_fs=True)
    token = f"{time.time_ns() % 10**9}.5"  # a unique sleep duration to find leftovers by
    tl = write_tasks(tmp_path / "hang.txt", [f"sleep {token} & sleep {token}; wait", "true"])
    t0 = time.monotonic()
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--timeout", "1", cwd=tmp_path)
    assert p.returncode == 1
    assert time.monotonic() - t0 < 60
    row = journal(tmp_path / "runs" / "hang").execute(
        # (a backup copy of the straggler may also run: its original is then recorded as
        # superseded, the copy as timed out)
        "SELECT outcome, signal, reason FROM attempts WHERE outcome = 'timeout'").fetchone()
    assert row is not None
    assert row["outcome"] == "timeout" and "timed out" in row["reason"], dict(row)
    assert row["signal"] in (15, 9)
    assert processes_with(f"sleep {token}") == []


def test_outputs_copied_back_from_hosts_without_shared_fs(sshbed, tmp_path):
    """Workers with their own directory: inputs are sent, declared outputs come back."""
    remote = tmp_path / "remote-home"
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, shared_fs=False,
                                    workdir=remote)
    p = parallel("run", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--", "--count", "6", "--seconds", "0", "--outputs", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    run = tmp_path / "runs" / "busy"
    for i in range(6):
        assert (run / "out" / f"busy-{i:05d}.txt").read_text() == f"busy {i} 0.0 cpu\n"
        # ...and were written on the worker's side, not straight into the head's run dir
        assert (worker_run(remote, "busy") / "out" / f"busy-{i:05d}.txt").exists()
    logs = sorted((run / "logs").glob("*.out"))
    assert len(logs) == 6 and all("done on" in f.read_text() for f in logs)


def worker_run(workdir: Path, name: str) -> Path:
    """The worker-side copy of run ``name`` (``lasair-runs/<name>-<digest>``): exactly one."""
    found = list((workdir / "lasair-runs").glob(f"{name}-*"))
    assert len(found) == 1, found
    return found[0]


def test_paths_with_spaces_and_shell_text_are_never_substituted_into_commands(sshbed, tmp_path):
    """A workdir with a space broke every app task with outputs; a run name with ``$(...)``
    ran on the worker.  Paths now reach tasks as argv (mapped) or $PARALLEL_RUN_DIR."""
    remote = tmp_path / "remote home"
    marker = tmp_path / "pwned"
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, shared_fs=False,
                                    workdir=f"'{remote}'")
    name = f"x$(touch {marker})"
    for mode in ("cpu", "sleep"):  # a Python command (argv) and a plain shell one
        p = parallel("run", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                     "--name", name, "--run-dir", tmp_path / mode, "--", "--count", "3",
                     "--seconds", "0", "--mode", mode, "--outputs", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        for i in range(3):
            assert (tmp_path / mode / "out" / f"busy-{i:05d}.txt").read_text() == \
                f"busy {i} 0.0 {mode}\n"
    assert not marker.exists()
    # Two run directories of one name keep separate worker folders.
    assert len(list((remote / "lasair-runs").iterdir())) == 2


def test_relative_and_home_workdirs_resolve_against_the_login_directory(sshbed, tmp_path):
    """Before, a relative workdir was entered twice (every task failed with 127) and ``~``
    became a folder named ``~``."""
    home = Path.home()
    token = f"lasair-test-{time.time_ns()}"
    try:
        for workdir, where in ((token, home / token), (f"~/{token}-h", home / f"{token}-h")):
            hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1,
                                            hosts=sshbed.hosts[:1], workdir=workdir)
            tl = write_tasks(tmp_path / "pwd.txt", ["pwd > here.txt"])
            p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config",
                         sshbed.ssh_config, "--run-dir", tmp_path / where.name, cwd=tmp_path)
            assert p.returncode == 0, p.stderr
            assert (where / "here.txt").read_text().strip() == str(where)
        assert not (home / "~").exists()
    finally:
        for d in home.glob(f"{token}*"):
            shutil.rmtree(d)


def test_unknown_host_key_is_refused(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, hosts=sshbed.hosts[:1])
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n  UserKnownHostsFile {tmp_path / 'empty_known_hosts'}\n")
    tl = write_tasks(tmp_path / "one.txt", ["true"])
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", cfg, cwd=tmp_path)
    assert p.returncode == 1
    assert "host key" in p.stderr and "not in" in p.stderr
    assert "Traceback" not in p.stderr
    # Explicitly turning verification off works, with a warning.
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", cfg,
                 "--no-host-key-check", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "NOT verified" in p.stderr


def test_revoked_host_key_is_refused(sshbed, tmp_path):
    """OpenSSH refuses a key marked @revoked even when another line lists it as known."""
    h = sshbed.hosts[0]
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, hosts=[h])
    line = next(x for x in sshbed.known_hosts.read_text().splitlines()
                if x.startswith(f"[{h.addr}]:{h.port} "))
    known = tmp_path / "known_hosts"
    known.write_text(f"{line}\n@revoked * {' '.join(line.split()[1:])}\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n  UserKnownHostsFile {known}\n")
    tl = write_tasks(tmp_path / "one.txt", ["true"])
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", cfg, cwd=tmp_path)
    assert p.returncode == 1
    assert "REVOKED" in p.stderr and f"{known}:2" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    n = journal(tmp_path / "runs" / "one").execute("SELECT COUNT(*) FROM attempts").fetchone()
    assert n[0] == 0


def test_ssh_config_and_sshloginfile(sshbed, tmp_path):
    """Hosts named only by their ~/.ssh/config alias; GNU parallel's sshloginfile format."""
    logins = tmp_path / "sshlogins"
    logins.write_text("# GNU parallel format\n2/node0\n"
                      f"2/{sshbed.user}@{sshbed.hosts[1].addr}:{sshbed.hosts[1].port}\n")
    tl = write_tasks(tmp_path / "ten.txt", ["sleep 0.5; hostname"] * 10)
    p = parallel("run", "--tasks", tl, "--workers", logins, "--ssh-config", sshbed.ssh_config,
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    hosts = {r[0] for r in journal(tmp_path / "runs" / "ten").execute(
        "SELECT DISTINCT host FROM attempts")}
    assert hosts == {"node0", sshbed.hosts[1].label}


def test_halt_now_stops_at_first_failure(sshbed, tmp_path):
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, hosts=sshbed.hosts[:1])
    tl = write_tasks(tmp_path / "halt.txt", ["exit 1"] + ["sleep 0.1"] * 20)
    p = parallel("run", "--tasks", tl, "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--halt", "now,fail=1", cwd=tmp_path)
    assert p.returncode == 1
    assert "halted" in p.stderr
    n = journal(tmp_path / "runs" / "halt").execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    assert n < 21


def test_parallel_clean_removes_the_runs_worker_folders(sshbed, tmp_path):
    """Worker-side run folders were never removed; now `parallel clean RUN` does it (and
    only that run's: another run directory of the same name keeps its folder)."""
    remote = tmp_path / "remote"
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, shared_fs=False,
                                    hosts=sshbed.hosts[:2], workdir=remote)
    for rd in ("a", "b"):
        p = parallel("run", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                     "--run-dir", tmp_path / rd, "--name", "same", "-q", "--", "--count", "4",
                     "--seconds", "0", "--mode", "sleep", "--outputs", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    assert len(list((remote / "lasair-runs").iterdir())) == 2
    p = parallel("clean", tmp_path / "a", "--ssh-config", sshbed.ssh_config, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.strip().splitlines()) == 2 and "removed lasair-runs/same-" in p.stdout
    left = list((remote / "lasair-runs").iterdir())
    assert len(left) == 1
    # ...the other run's folder, which still holds its outputs
    assert len(list((left[0] / "out").iterdir())) == 4
    assert (tmp_path / "a" / "journal.sqlite").exists()  # the head's run directory is kept


def test_clean_workers_removes_the_worker_folder_at_the_end(sshbed, tmp_path):
    remote = tmp_path / "remote"
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=2, shared_fs=False,
                                    hosts=sshbed.hosts[:1], workdir=remote)
    p = parallel("run", "apps/busy", "--workers", hosts, "--ssh-config", sshbed.ssh_config,
                 "--clean-workers", "-q", "--", "--count", "3", "--seconds", "0", "--mode",
                 "sleep", "--outputs", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path / "runs" / "busy" / "out").iterdir())) == 3  # copied back first
    assert list((remote / "lasair-runs").iterdir()) == []
