"""Elastic hosts over the sshd bed: a host added mid-run gets work; a drained host finishes
its running task and starts nothing new."""

from __future__ import annotations

from pathlib import Path

from helpers import count, gated, journal, parallel, start_parallel, wait_for


def gated_list(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """A task list of ``n`` tasks that wait for the returned gate file, then take 0.3 s: what
    runs stays running until the test opens the gate, however slow the machine."""
    gate = tmp_path / "gate"
    p = tmp_path / "work.txt"
    p.write_text("".join(gated(f"sleep 0.3; echo {i}", gate) + "\n" for i in range(n)))
    return p, gate


def test_host_added_to_hosts_file_mid_run_gets_tasks(sshbed, tmp_path):
    a, b = sshbed.hosts[0], sshbed.hosts[1]
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, hosts=[a], shared_fs=True)
    run = tmp_path / "runs" / "work"
    tasks, gate = gated_list(tmp_path, 16)
    proc = start_parallel("run", "--tasks", tasks, "--workers", hosts,
                          "--ssh-config", sshbed.ssh_config, "-q", cwd=tmp_path)
    wait_for(lambda: count(run, "SELECT COUNT(*) FROM attempts WHERE outcome = 'running'") == 1)
    # Rewrite the file the way an editor does: a new file renamed over the old one.
    new = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml.new", procs=2, hosts=[a, b],
                                  shared_fs=True)
    new.replace(hosts)
    wait_for(lambda: count(run, "SELECT COUNT(*) FROM attempts WHERE host = ?", b.label) >= 1)
    gate.touch()  # the run could not end before b joined: every task waited for the gate
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    db = journal(run)
    added = db.execute("SELECT t FROM host_events WHERE host = ? AND event = 'added'",
                       (b.label,)).fetchone()
    assert added is not None
    on_b = db.execute("SELECT COUNT(*), MIN(start) FROM attempts WHERE host = ?",
                      (b.label,)).fetchone()
    assert on_b[0] >= 1 and on_b[1] >= added[0]
    # The existing host took the new procs value as well (slots 0 and 1 both used after it).
    assert {r[0] for r in db.execute("SELECT slot FROM attempts WHERE host = ?", (a.label,))} \
        <= {0, 1}
    assert db.execute("SELECT COUNT(*) FROM tasks WHERE state = 'done'").fetchone()[0] == 16


def test_hosts_add_and_remove_commands_drain_without_restart(sshbed, tmp_path):
    a, b = sshbed.hosts[2], sshbed.hosts[3]
    hosts = sshbed.write_hosts_yaml(tmp_path / "hosts.yaml", procs=1, hosts=[a], shared_fs=True)
    run = tmp_path / "runs" / "work"
    tasks, gate = gated_list(tmp_path, 10)
    proc = start_parallel("run", "--tasks", tasks, "--workers", hosts,
                          "--ssh-config", sshbed.ssh_config, "-q", cwd=tmp_path)
    wait_for(lambda: count(run, "SELECT COUNT(*) FROM attempts WHERE host = ? AND "
                                "outcome = 'running'", a.label) == 1)
    p = parallel("hosts", "add", "runs/work", f"{sshbed.user}@{b.addr}:{b.port}", "--procs",
                 "2", "--identity", sshbed.identity, "--shared-fs", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: count(run, "SELECT COUNT(*) FROM attempts WHERE host = ?", b.label) >= 1)
    p = parallel("hosts", "remove", "runs/work", a.label, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: count(run, "SELECT COUNT(*) FROM host_events WHERE host = ? AND "
                                "event = 'draining'", a.label) == 1)
    gate.touch()  # a's task is still running at its drain (the gate held it): now it ends
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    db = journal(run)
    drain_t = db.execute("SELECT t FROM host_events WHERE host = ? AND event = 'draining'",
                         (a.label,)).fetchone()[0]
    # Nothing started on the drained host after the drain; what ran there finished normally.
    rows = db.execute("SELECT start, end, outcome FROM attempts WHERE host = ?",
                      (a.label,)).fetchall()
    assert all(r["start"] < drain_t for r in rows)
    assert all(r["outcome"] == "ok" for r in rows)
    assert any(r["start"] < drain_t < r["end"] for r in rows)  # it was running; it finished
    events = [r[0] for r in db.execute("SELECT event FROM host_events WHERE host = ?",
                                       (a.label,))]
    assert "drained" in events
    assert db.execute("SELECT COUNT(*) FROM tasks WHERE state = 'done'").fetchone()[0] == 10
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 10  # nothing lost
    # A finished run takes no more commands: one line, exit status 2.
    p = parallel("hosts", "remove", "runs/work", b.label, cwd=tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "no head is running" in p.stderr
