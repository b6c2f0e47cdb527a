"""Bad input gets one clear line (file, line, fix) and exit status 2; good input runs locally."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import journal, parallel
from lasair_parallel.head.connect.hosts import HostsError, read_hosts
from lasair_parallel.head.core.scheduler import HaltError, HaltPolicy
from lasair_parallel.tasks.model import command_ids
from lasair_parallel.tasks.tasklist import TaskListError, read_task_list
from lasair_parallel.tasks.weights import split_by_weight


def one_line_error(p) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


@pytest.mark.parametrize("text, expect", [
    ("workers:\n  - host: a\n    procs: zero\n", "hosts.yaml:2: procs must be a whole number"),
    ("workers:\n  - host: a\n    prcs: 2\n", "hosts.yaml:2: unknown field 'prcs'"),
    ("workers:\n  - port: 22\n", "hosts.yaml:2: worker has no `host:`"),
    ("workers:\n  - host: a\n  - host: a\n", "hosts.yaml:3: worker a is listed twice"),
    ("workers:\n  - host: a\n   bad: [\n", "hosts.yaml:3: not valid YAML"),
    ("workers:\n  - host: a\n    transport: telnet\n", "transport must be `ssh`"),
    ("workers: []\n", "no workers listed"),
])
def test_bad_hosts_yaml(tmp_path, text, expect):
    f = tmp_path / "hosts.yaml"
    f.write_text(text)
    with pytest.raises(HostsError) as e:
        read_hosts(f)
    assert expect in str(e.value)
    tl = tmp_path / "t.txt"
    tl.write_text("true\n")
    line = one_line_error(parallel("run", "--tasks", tl, "--workers", f, cwd=tmp_path))
    assert expect in line
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_sshloginfile_forms(tmp_path):
    f = tmp_path / "logins"
    f.write_text("# comment\n8/alice@node1:2222\nnode2\n4/:\n[::1]:2200\n")
    hosts = read_hosts(f)
    assert [(h.host, h.user, h.port, h.procs, h.transport) for h in hosts] == [
        ("node1", "alice", 2222, 8, "ssh"), ("node2", None, None, 1, "ssh"),
        ("localhost", None, None, 4, "local"), ("::1", None, 2200, 1, "ssh")]
    assert [h.procs for h in read_hosts(f, procs=3)] == [3, 3, 3, 3]
    f.write_text("node1\nssh -p 22 node3\n")
    with pytest.raises(HostsError, match="logins:2: .*put them in ~/.ssh/config"):
        read_hosts(f)


@pytest.mark.parametrize("content, expect", [
    (b"echo a\n\x00bad\n", "t.txt:2: NUL byte"),
    (b"echo \xff\n", "t.txt:1: not UTF-8"),
    (b"# only comments\n\n", "no commands"),
    (b"echo a \\\n", "t.txt:1: the last command ends in a backslash"),
])
def test_bad_task_lists(tmp_path, content, expect):
    f = tmp_path / "t.txt"
    f.write_bytes(content)
    with pytest.raises(TaskListError) as e:
        read_task_list(f)
    assert expect in str(e.value)
    assert expect in one_line_error(parallel("run", "--tasks", f, cwd=tmp_path))


def test_task_list_ids_are_stable_and_repeats_distinct(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("echo a\n# c\necho b \\\n  more\necho a\n")
    tasks = read_task_list(f)
    assert [t.command for t in tasks] == ["echo a", "echo b \n  more", "echo a"]
    assert len({t.id for t in tasks}) == 3
    f.write_text("# inserted\necho a\necho b \\\n  more\necho a\n")
    assert [t.id for t in read_task_list(f)] == [t.id for t in tasks]
    assert command_ids(["x", "x", "y"])[1].endswith("-1")


def test_usage_errors(tmp_path):
    assert "either an app" in one_line_error(parallel("run", cwd=tmp_path))
    assert "no app named 'nope'" in one_line_error(parallel("run", "apps/nope", cwd=tmp_path))
    line = one_line_error(parallel("run", "apps/busy", "--", "--count", "x", cwd=tmp_path))
    assert "--count" in line
    assert "--halt" in one_line_error(parallel("run", "apps/busy", "--halt", "sometimes",
                                               cwd=tmp_path))
    assert "no runs" in one_line_error(parallel("status", cwd=tmp_path))


def test_app_help_shows_app_options(tmp_path):
    p = parallel("run", "apps/busy", "--help", cwd=tmp_path)
    assert p.returncode == 0
    assert "--workers" in p.stdout and "--seconds" in p.stdout and "--fail-every" in p.stdout


def test_halt_policy_parsing():
    assert HaltPolicy.parse("now,fail=1").triggered(1, 1)
    assert not HaltPolicy.parse("soon,fail=3").triggered(2, 10)
    p = HaltPolicy.parse("now,fail=20%")
    assert not p.triggered(1, 10) and p.triggered(2, 10)
    assert not HaltPolicy.parse("never").triggered(100, 100)
    with pytest.raises(HaltError):
        HaltPolicy.parse("now,done=1")


def test_split_by_weight_keeps_order_and_balances():
    w = [5, 1, 1, 1, 1, 1, 9, 1, 1]
    blocks = split_by_weight(w, max_weight=5)
    assert sorted(int(i) for b in blocks for i in b) == list(range(len(w)))
    assert all(list(b) == list(range(b[0], b[-1] + 1)) for b in blocks)  # contiguous
    sums = [sum(w[i] for i in b) for b in blocks]
    assert sums == sorted(sums, reverse=True)  # heaviest first
    assert sums[0] == 9 and all(s <= 5 for s in sums[1:])


def test_split_by_weight_is_the_item_by_item_greedy_cut():
    """The blocks are those of the plain rule, item by item: a block ends before the item
    that would take it over max_weight (integer weights, zeros and heavy items included)."""
    def greedy(w, most):
        blocks, block, acc = [], [], 0
        for i, wi in enumerate(w):
            if block and acc + wi > most:
                blocks.append(block)
                block, acc = [], 0
            block.append(i)
            acc += wi
        return [*blocks, block] if block else blocks

    rng = np.random.default_rng(5)
    for _ in range(2000):
        w = rng.integers(0, 20, int(rng.integers(0, 60)))
        if len(w) and rng.random() < 0.3:
            w[rng.integers(0, len(w), 3)] = 100  # heavier than any block: a block each
        most = int(rng.integers(1, 40))
        got = sorted(b.tolist() for b in split_by_weight(w, most))
        assert got == sorted(greedy(w.tolist(), most)), (w.tolist(), most)


def test_local_run_resume_and_joblog(tmp_path):
    """The shipped default (local transport): run, resume, status --json."""
    p = parallel("run", "apps/busy", "--procs", "2", "-q", "--", "--count", "5", "--seconds",
                 "0", "--fail-every", "5", "--outputs", cwd=tmp_path)
    assert p.returncode == 1
    p = parallel("run", "apps/busy", "--procs", "2", "-q", "--", "--count", "5", "--seconds",
                 "0", "--fail-every", "5", "--outputs", cwd=tmp_path)
    assert p.returncode == 1 and "4 of 5 task(s) already done" in p.stderr
    db = journal(tmp_path / "runs" / "busy")
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 6  # 4 ok + 2 x task 5
    s = json.loads(parallel("status", "--json", cwd=tmp_path, check=True).stdout)
    assert (s["done"], s["failed"], s["attempts"]) == (4, 1, 6)
    assert len((tmp_path / "runs/busy/joblog.tsv").read_text().splitlines()) == 7
    assert sorted(p.name for p in (tmp_path / "runs/busy/out").iterdir()) == [
        f"busy-{i:05d}.txt" for i in range(5)]  # the failing task wrote its output, then exit 1


@pytest.mark.parametrize("args, expect", [
    (["--heartbeat-timeout", "0"], "--heartbeat-timeout 0.0: give seconds above"),
    (["--heartbeat-timeout", "-1"], "--heartbeat-timeout -1.0"),
    (["--heartbeat-timeout", "nan"], "--heartbeat-timeout nan"),
    (["--timeout", "-1"], "--timeout -1.0: give a number of seconds above 0"),
    (["--timeout", "nan"], "--timeout nan"),
    (["--retry-delay", "-5"], "--retry-delay -5.0: give seconds, 0 or more"),
    (["--retries", "-1"], "--retries -1"),
    (["--serve", "99999"], "--serve 99999: give a TCP port from 1 to 65535"),
    (["--procs", "1000000000"], "procs 1000000000: give 1 to 4096 slots"),
    (["--procs", str(2**63)], "give 1 to 4096 slots"),
    (["--ssh-config", "no-such-config"], "--ssh-config no-such-config: no such file"),
    (["--run-dir", "/proc/x"], "/proc/x: cannot create the run directory"),
    (["--", "--seconds", "nan"], "--seconds nan: give a number of seconds"),
])
def test_nonsense_values_get_one_line_up_front(tmp_path, args, expect):
    """Before: loops forever (heartbeat 0), tracebacks (port, /proc/x), 22 GB then killed
    (procs 10^9), a silent hang (2^63), ignored (--ssh-config), a run of nan seconds."""
    run_opts = [a for a in args if a != "--"] if "--" not in args else args[:args.index("--")]
    app_opts = args[args.index("--"):] if "--" in args else []
    p = parallel("run", "apps/busy", *run_opts, "-q", *(app_opts or ["--", "--count", "1"]),
                 cwd=tmp_path, timeout=60)
    assert expect in one_line_error(p)
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_serve_port_out_of_range(tmp_path):
    assert parallel("run", "apps/busy", "-q", "--", "--count", "1", "--seconds", "0",
                    cwd=tmp_path).returncode == 0
    line = one_line_error(parallel("serve", "--port", "99999", cwd=tmp_path))
    assert "--port 99999: give a TCP port from 1 to 65535" in line


@pytest.mark.parametrize("content", [b"", b"this is not a database, just text" * 200])
def test_status_of_an_empty_or_corrupt_journal(tmp_path, content):
    run = tmp_path / "runs" / "broken"
    run.mkdir(parents=True)
    (run / "journal.sqlite").write_bytes(content)
    line = one_line_error(parallel("status", "runs/broken", cwd=tmp_path))
    assert "journal.sqlite" in line or "no such table" in line or "not a database" in line
    assert one_line_error(parallel("report", "runs/broken", cwd=tmp_path))


@pytest.mark.parametrize("text, expect", [
    ("workers:\n  - host: a\n    workdir: [1, 2]\n", "hosts.yaml:2: workdir must be text"),
    ("workers:\n  - host: a\n    procs: 1000000000\n", "hosts.yaml:2: procs 1000000000 is more"),
    (f"workers:\n  - host: a\n    procs: {2**63}\n", "is more than 4096"),
])
def test_nonsense_worker_values(tmp_path, text, expect):
    f = tmp_path / "hosts.yaml"
    f.write_text(text)
    with pytest.raises(HostsError) as e:
        read_hosts(f)
    assert expect in str(e.value)
    logins = tmp_path / "logins"
    logins.write_text("1000000000/node1\n")
    with pytest.raises(HostsError, match="logins:1: 1000000000 slots is more than 4096"):
        read_hosts(logins)


def test_task_list_with_a_utf8_bom_runs_its_first_command(tmp_path):
    """Before: the first task ran ``\\ufeffecho`` (exit 127)."""
    f = tmp_path / "bom.txt"
    f.write_bytes(b"\xef\xbb\xbfecho first > first.txt\n")
    assert [t.command for t in read_task_list(f)] == ["echo first > first.txt"]
    p = parallel("run", "--tasks", f, "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "first.txt").read_text() == "first\n"
