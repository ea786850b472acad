"""Several nodes sharing one jar: exactly once, per-node categories, control, recovery.

Each node is a set of UTS + PID + mount namespaces with its own host name
(``tests/nodes.py``), so worker names come from the host name and pids
collide across nodes.  The tests run on a local directory, and over sshfs
from a loopback sshd with one mount per node, caches on, so that nodes see
each other's changes late, as NFS clients do ("sshfs-strict" is the same
with sshfs refusing ``..`` symlinks, as some builds do by default).  Where
namespaces or FUSE are missing the tests are skipped with a warning that
says why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import psutil
import pytest

from conftest import BIN, ROOT, wait_for
from nodes import Node, NoFuse, SshServer, missing_support, sshfs_contains_symlinks

NAMES = ("alpha", "bravo", "charlie")

#: Over sshfs another node's attributes and listings may be 20 s old (sshfs's
#: default cache timeout), timestamps have whole seconds, and the heartbeat
#: adds its own period: a staleness threshold must exceed all three.
STALE = {"local": 3.0, "sshfs": 28.0, "sshfs-strict": 28.0}

#: Submits ``count`` jobs (round robin over the given categories, "" = none),
#: each appending "name host" to the log with O_APPEND; prints their names.
SUBMIT = """
import sys
from jobjar import submit_job
count, log, categories = int(sys.argv[1]), sys.argv[2], sys.argv[3:] or [""]
for i in range(count):
    cat = categories[i % len(categories)] or None
    print(submit_job(f'echo "$JJ_JOB_NAME $(hostname)" >> {log}', category=cat), flush=True)
"""


#: A worker, as ``start_worker`` runs it.
WORKER = "import sys; from jobjar.worker import main_loop; main_loop(sys.argv[1:] or None)"


class Cluster:
    """Nodes sharing one jar, and the helpers the tests drive them with."""

    def __init__(self, root: Path, kind: str) -> None:
        self.root = root
        self.kind = kind
        self.network = kind != "local"
        self.strict = kind == "sshfs-strict"  # sshfs refusing ".." symlinks (EPERM)
        self.shared = root / "shared"  # sshd's export; each node mounts it over itself
        self.home = self.shared / "jar"
        self.log = root / "log"  # on the local disk: the jobs' witness, outside the jar
        (root / "home").mkdir()
        self.shared.mkdir()
        self.log.touch()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JJ_")}
        self.env.update(HOME=str(root / "home"), JJ_HOME=str(self.home), JJ_ALLOW_ROOT="yes",
                        JJ_PAUSE_TIME="0.2", JJ_HEARTBEAT="0.5", JJ_KILL_GRACE="2",
                        PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(ROOT))
        self.server = SshServer(root / "ssh") if self.network else None
        self.nodes: dict[str, Node] = {}
        self.known_pids: dict[str, set[int]] = {}

    def start(self, *names: str) -> None:
        if self.server:
            self.server.start()
        for name in names:
            node = Node(name, self.env)
            self.nodes[name] = node
            node.start()
            if self.server:
                node.mount_sshfs(self.server, self.shared, self.shared, self.strict)
        for node in self.nodes.values():  # the same commands everywhere keep pids in step
            node.run([sys.executable, "-c",
                      "from jobjar.layout import Jar; Jar.from_config().ensure()"], check=True)

    def shutdown(self) -> None:
        for node in self.nodes.values():
            node.shutdown()
        if self.server:
            self.server.stop()

    def cmd(self, node: str, command: str, *args: str, check: bool = True):
        """Run ``bin/<command>`` on a node."""
        return self.nodes[node].run([str(BIN / command), *args], check=check)

    def start_worker(self, node: str, *categories: str, pid: int | None = None) -> str:
        """Start a worker on ``node``; with ``pid``, make it get that process id there.

        Without ``pid`` this is ``start_worker``.  With it, the node's next
        pid is set through ``ns_last_pid`` and the worker forked right after,
        before anything touches the jar (an sshfs thread woken by jar access
        would take the pid first); should the pid be lost all the same, the
        worker is stopped and started again.
        """
        if pid is None:
            name = self.cmd(node, "start_worker", *categories).stdout.strip()
            assert name.rsplit(".", 1)[0] == node, f"worker {name} not named after host {node}"
            return name
        name = f"{node}.{pid}"
        for _ in range(5):
            wait_for(lambda: self.nodes[node].run(["test", "-e", f"/proc/{pid}"]).returncode,
                     30, message=f"pid {pid} to be free on {node}")
            self.nodes[node].run(
                ["sh", "-c", 'echo "$1" > /proc/sys/kernel/ns_last_pid || exit 1; shift; '
                 'setsid "$@" </dev/null >/dev/null 2>&1 &',
                 "sh", str(pid - 1), sys.executable, "-c", WORKER, *categories], check=True)
            got = wait_for(lambda: self.newest_worker(node), 30, message=f"a worker on {node}")
            got_info = self.home / "workers" / got / "info.yaml"
            wait_for(got_info.exists, 30, message=f"{got} to report in")
            if got == name:
                return name
            (self.home / "workers" / got / "STOP").touch()
            wait_for(lambda n=got: not self.worker_pid_alive(n), 30, message=f"{got} to stop")
            # removed through the node's own mount, so that its cache forgets it too
            self.nodes[node].run(["rm", "-rf", str(self.home / "workers" / got)], check=True)
        raise AssertionError(f"could not start a worker with pid {pid} on {node}")

    def newest_worker(self, node: str) -> str | None:
        """The node's worker process not yet seen by ``start_worker`` (by pid)."""
        out = self.nodes[node].run(["pgrep", "-f", "jobjar.worker import main_loop"]).stdout
        known = self.known_pids.setdefault(node, set())
        fresh = [int(p) for p in out.split() if int(p) not in known]
        if len(fresh) != 1:
            return None
        self.known_pids[node].add(fresh[0])
        return f"{node}.{fresh[0]}"

    def submit(self, node: str, count: int, *categories: str) -> list[str]:
        """Submit ``count`` logging jobs from ``node``; return their names."""
        result = self.nodes[node].run([sys.executable, "-c", SUBMIT, str(count), str(self.log),
                                       *categories], check=True, timeout=120)
        return result.stdout.split()

    def submit_script(self, node: str, script: str, *args: str) -> str:
        return self.cmd(node, "submit_job", *args, script).stdout.strip()

    def completed(self) -> list[str]:
        try:
            return os.listdir(self.home / "completed")
        except FileNotFoundError:
            return []

    def log_lines(self) -> list[tuple[str, str]]:
        return [tuple(line.split()) for line in self.log.read_text().splitlines()]

    def record(self, name: str) -> dict:
        from jobjar import records

        return records.read(self.home / "results" / f"{name}.yaml") or {}

    def worker_pid_alive(self, worker: str) -> bool:
        node, pid = worker.rsplit(".", 1)
        return self.nodes[node].host_pid(int(pid)) is not None

    def held(self, worker: str) -> list[str]:
        """Job files in a worker's ``job/`` directory (any category)."""
        found = []
        for _, _, files in os.walk(self.home / "workers" / worker / "job"):
            found.extend(files)
        return found


def skip_loudly(kind: str, reason: str) -> None:
    message = f"SKIPPING multi-node {kind} test: {reason}"
    print(f"WARNING: {message}", file=sys.stderr)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


@pytest.fixture(params=["local", "sshfs"])
def cluster(request):
    """Three nodes sharing a jar: on a local directory, or each through its own sshfs."""
    kind = request.param
    reason = missing_support(network=kind != "local")
    if kind == "sshfs-strict" and not reason and not sshfs_contains_symlinks():
        reason = "this sshfs follows '..' symlinks anyway (no contain_symlinks option)"
    if reason:
        skip_loudly(kind, reason)
    # not under pytest's tmp_path: a concurrent pytest session may prune that
    # while a slow network test still runs in it
    root = Path(tempfile.mkdtemp(prefix="jj-nodes-"))
    test_cluster = Cluster(root, kind)
    try:
        try:
            test_cluster.start(*NAMES)
        except NoFuse as exc:
            skip_loudly(kind, str(exc))
        yield test_cluster
    finally:
        test_cluster.shutdown()
        shutil.rmtree(root, ignore_errors=True)


def wait_done(cluster: Cluster, count: int, timeout: float = 120) -> None:
    wait_for(lambda: len(cluster.completed()) >= count, timeout,
             message=f"{count} completed jobs on {cluster.kind}")


def assert_jar_drained(cluster: Cluster) -> None:
    home = cluster.home
    # A worker removes its claimed/ link just after it moves its last job to
    # completed/ (the "after-move" step): on a loaded machine over sshfs the
    # count of completed jobs can be reached in between.
    wait_for(lambda: os.listdir(home / "claimed") == [], 15, message="no claimed links")
    for worker in os.listdir(home / "workers"):
        if (home / "workers" / worker).is_dir():
            assert cluster.held(worker) == [], f"{worker} still holds a job"
    left = [f for _, _, files in os.walk(home / "unclaimed") for f in files]
    assert left == []


def test_exactly_once_and_node_categories(cluster):
    """600 jobs from three nodes, two workers each: each runs exactly once, on the right node."""
    for node in NAMES:  # the same two pids on every node
        cluster.start_worker(node, pid=100)
        cluster.start_worker(node, pid=101)
    submitted: dict[str, str | None] = {}  # job -> the node category it needs, or None
    procs = []
    for i, node in enumerate(NAMES):
        # every node submits uncategorized jobs and jobs for the *next* node
        target = NAMES[(i + 1) % len(NAMES)]
        procs.append((target, cluster.nodes[node].popen(
            [sys.executable, "-c", SUBMIT, "200", str(cluster.log), "", "", target])))
    for target, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        for index, name in enumerate(out.split()):
            submitted[name] = target if index % 3 == 2 else None
    assert len(submitted) == 600
    wait_done(cluster, 600)
    ran = cluster.log_lines()
    counts = Counter(name for name, _ in ran)
    assert set(counts) == set(submitted)
    assert [n for n, c in counts.items() if c != 1] == [], "jobs that ran more than once"
    assert sorted(cluster.completed()) == sorted(submitted)
    hosts = dict(ran)
    wrong = {n: (cat, hosts[n]) for n, cat in submitted.items() if cat and hosts[n] != cat}
    assert wrong == {}, "node-category jobs that ran elsewhere"
    assert set(hosts.values()) == set(NAMES), "every node should have run jobs"
    for name in list(submitted)[::37]:
        record = cluster.record(name)
        assert record["status"] == "succeeded" and record["node"] == hosts[name]
    assert_jar_drained(cluster)


@pytest.mark.parametrize("cluster", ["sshfs"], indirect=True)
def test_sshfs_nodes_see_stale_listings(cluster):
    """The network variant is NFS-like: a node's cached listing misses another's new file."""
    limbo = str(cluster.home / "limbo")
    alpha, bravo = cluster.nodes["alpha"], cluster.nodes["bravo"]
    assert bravo.run(["ls", limbo], check=True).stdout.split() == []
    alpha.run(["touch", f"{limbo}/probe"], check=True)
    assert alpha.run(["ls", limbo], check=True).stdout.split() == ["probe"]
    assert bravo.run(["ls", limbo], check=True).stdout.split() == [], "bravo's listing is fresh"
    assert os.listdir(limbo) == ["probe"]


def _hand_in(cluster: Cluster, name: str, category: str) -> Path:
    """Submit a logging job on the file server itself, as another machine would."""
    limbo = cluster.home / "limbo" / name
    limbo.write_text(f'#!/bin/sh\necho "$JJ_JOB_NAME $(hostname)" >> {cluster.log}\n')
    limbo.chmod(0o755)
    target = cluster.home / "unclaimed" / category / name
    os.rename(limbo, target)
    return target


@pytest.mark.parametrize("cluster", ["sshfs"], indirect=True)
def test_an_idle_worker_relists_even_if_the_directory_mtime_stays(cluster):
    """A new job must be found although the queue directory's mtime did not move.

    Whole-second timestamps (SFTP, many NFS servers) and cached attributes
    can hide an addition from the directory's mtime; inotify does not see
    other machines.  An idle worker must still re-list at bounded intervals.
    """
    queue = cluster.home / "unclaimed" / "alpha"
    worker = cluster.start_worker("alpha")
    first = cluster.submit("alpha", 1, "alpha")  # through alpha's own mount: seen at once
    wait_done(cluster, 1, timeout=60)
    done = time.time()
    beat = cluster.home / "workers" / worker / "heartbeat"
    # a heartbeat a full second later: the worker has looked at the empty queue since
    wait_for(lambda: os.stat(beat).st_mtime >= int(done) + 2, 30, message="a later heartbeat")
    before = os.stat(queue)
    _hand_in(cluster, "second", "alpha")
    os.utime(queue, ns=(before.st_atime_ns, before.st_mtime_ns))
    wait_done(cluster, 2, timeout=60)
    assert cluster.log_lines() == [(first[0], "alpha"), ("second", "alpha")]


def test_stop_worker_node_stops_only_that_node(cluster):
    """``stop_worker bravo``, run on charlie, stops bravo's workers and no others."""
    workers = {n: [cluster.start_worker(n, pid=p) for p in (100, 101)] for n in NAMES}
    out = cluster.cmd("charlie", "stop_worker", "bravo").stdout
    assert sorted(line.split()[-1] for line in out.splitlines()) == sorted(workers["bravo"])
    wait_for(lambda: not any(cluster.worker_pid_alive(w) for w in workers["bravo"]), 30,
             message="bravo's workers to exit")
    for worker in workers["bravo"]:
        assert (cluster.home / "workers" / worker / "exited").exists()
    others = workers["alpha"] + workers["charlie"]
    assert all(cluster.worker_pid_alive(w) for w in others)
    # the others still work, and nothing runs on bravo any more
    names = cluster.submit("alpha", 12, "", "alpha", "charlie")
    wait_done(cluster, 12, timeout=60)
    hosts = dict(cluster.log_lines())
    assert sorted(hosts) == sorted(names) and "bravo" not in hosts.values()
    assert all(cluster.worker_pid_alive(w) for w in others)


def _blocking_job(cluster: Cluster, tag: str) -> str:
    """A job that logs its start, then waits for ``release`` before logging its end."""
    release = cluster.root / "release"
    return (f'echo "start-$JJ_JOB_NAME $(hostname)" >> {cluster.log}\n'
            f"while [ ! -e {release} ]; do sleep 0.1; done\n"
            f'echo "$JJ_JOB_NAME $(hostname)" >> {cluster.log}\n# {tag}')


def _running(cluster: Cluster, worker: str) -> str:
    """Wait until ``worker`` runs a job (its start is logged); return the job."""
    node = worker.rsplit(".", 1)[0]

    def started() -> str | None:
        held = cluster.held(worker)
        if held and (f"start-{held[0]}", node) in cluster.log_lines():
            return held[0]
        return None

    return wait_for(started, 60, message=f"{worker} to run a job")


@pytest.mark.parametrize("cluster", ["local", "sshfs", "sshfs-strict"], indirect=True)
def test_recover_jobs_never_touches_other_nodes_workers(cluster):
    """A dead worker alpha.P is recovered on alpha; living bravo.P and charlie.P are not.

    "sshfs-strict" is sshfs refusing to follow ``..`` symlinks, as some builds
    do by default: ``claimed/`` links cannot be followed there, and must
    still not be taken for dangling ones.
    """
    workers = {n: cluster.start_worker(n, n, pid=100) for n in NAMES}
    jobs = {n: cluster.submit_script(n, _blocking_job(cluster, n), "-c", n) for n in NAMES}
    held = {n: _running(cluster, workers[n]) for n in NAMES}
    assert held == jobs
    dead = workers["alpha"]
    host_pid = cluster.nodes["alpha"].host_pid(int(dead.rsplit(".", 1)[1]))
    doomed = [host_pid] + [p.pid for p in psutil.Process(host_pid).children(recursive=True)]
    for pid in doomed:  # the worker crashes, and its job with it
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not cluster.worker_pid_alive(dead), 10, message="alpha's worker to die")
    # alpha knows its worker is dead; the others' workers with the same pid are alive
    status = json.loads(cluster.cmd("alpha", "system_status", "--json").stdout)
    states = {w["name"]: w["state"] for w in status["workers"]}
    assert states == {dead: "dead", workers["bravo"]: "working", workers["charlie"]: "working"}
    assert [s["job"] for s in status["stranded"]] == [jobs["alpha"]]
    # every node runs recover_jobs; only alpha may (and must) act, only on alpha.P
    for node in ("bravo", "charlie", "alpha"):
        cluster.cmd(node, "recover_jobs")
    assert cluster.held(dead) == []
    assert (cluster.home / "unclaimed" / "alpha" / jobs["alpha"]).exists()
    assert cluster.record(jobs["alpha"])["recoveries"] == 1
    for node in ("bravo", "charlie"):
        assert cluster.held(workers[node]) == [jobs[node]]
        assert os.path.islink(cluster.home / "claimed" / workers[node])
        assert cluster.worker_pid_alive(workers[node])
    # check_workers counts each node's own workers: only alpha needs a new one
    for node in NAMES:
        out = cluster.nodes[node].run([str(BIN / "check_workers")], env={"JJ_MAX_WORKERS": "1"},
                                      check=True).stdout
        started = [line.split()[-1] for line in out.splitlines() if line.startswith("started")]
        assert len(started) == (node == "alpha"), out
    # the new alpha worker reruns alpha's job; everything finishes exactly once
    (cluster.root / "release").touch()
    wait_done(cluster, 3, timeout=60)
    ends = Counter(line for line in cluster.log_lines() if not line[0].startswith("start-"))
    assert ends == Counter((jobs[n], n) for n in NAMES)
    for node in ("bravo", "charlie"):
        assert cluster.record(jobs[node])["recoveries"] == 0


def test_cancel_a_job_running_on_another_node(cluster):
    """``cancel_job`` on alpha stops a job running on bravo, despite alpha's stale listings."""
    worker = cluster.start_worker("bravo", pid=100)
    cluster.cmd("alpha", "system_status")  # alpha lists claimed/ and workers/: now cached
    job = cluster.submit_script("bravo", _blocking_job(cluster, "cancel me"))
    _running(cluster, worker)
    out = cluster.cmd("alpha", "cancel_job", job).stdout
    assert out.strip() == f"{job}: cancel requested (running on {worker})"
    wait_done(cluster, 1, timeout=60)
    record = cluster.record(job)
    assert record["status"] == "cancelled" and record["node"] == "bravo"
    assert [line for line in cluster.log_lines() if line[0] == job] == []
    assert cluster.worker_pid_alive(worker)


def test_stale_recovery_of_a_crashed_node(cluster):
    """Kill every process of bravo; alpha recovers bravo's job with --stale, not charlie's."""
    workers = {"bravo": cluster.start_worker("bravo")}
    jobs = {"bravo": cluster.submit_script("bravo", _blocking_job(cluster, "bravo"))}
    _running(cluster, workers["bravo"])
    for node in ("alpha", "charlie"):  # busy with jobs of their own node's category
        workers[node] = cluster.start_worker(node, node)
        jobs[node] = cluster.submit_script(node, _blocking_job(cluster, node), "-c", node)
        _running(cluster, workers[node])
    cluster.nodes["bravo"].kill()  # the machine crashes: workers, jobs, its mount
    assert not cluster.nodes["bravo"].alive()
    # without --stale nobody may judge another node's workers
    assert "bravo" not in cluster.cmd("alpha", "recover_jobs").stdout
    assert cluster.held(workers["bravo"]) == [jobs["bravo"]]
    stale = STALE[cluster.kind]

    def recovered() -> bool:
        out = cluster.cmd("alpha", "recover_jobs", "--stale", f"{stale:g}").stdout
        assert workers["charlie"] not in out and workers["alpha"] not in out, out
        return workers["bravo"] in out

    wait_for(recovered, stale + 40, interval=0.5, message="--stale to recover bravo's job")
    assert cluster.held(workers["bravo"]) == []
    assert (cluster.home / "unclaimed" / jobs["bravo"]).exists()
    assert not os.path.lexists(cluster.home / "claimed" / workers["bravo"])
    for node in ("alpha", "charlie"):
        assert cluster.held(workers[node]) == [jobs[node]]
        assert cluster.worker_pid_alive(workers[node])
    (cluster.root / "release").touch()  # alpha or charlie runs bravo's job again
    wait_done(cluster, 3, timeout=60)
    ends = dict(line for line in cluster.log_lines() if not line[0].startswith("start-"))
    assert sorted(ends) == sorted(jobs.values())
    assert ends[jobs["bravo"]] in ("alpha", "charlie")
    starts = Counter(line[0] for line in cluster.log_lines() if line[0].startswith("start-"))
    assert starts[f"start-{jobs['bravo']}"] == 2  # the running job, and only it, ran again
    record = cluster.record(jobs["bravo"])
    assert record["recoveries"] == 1 and record["node"] == ends[jobs["bravo"]]


@pytest.mark.parametrize("cluster", ["sshfs"], indirect=True)
def test_a_job_waiting_from_another_node_is_released_from_a_settled_waiting_dir(cluster):
    """An idle worker trusts an old, empty ``waiting/`` by its time (``docs/nfs.md``);
    a job put there through another node's mount, whose dependency then ends on this
    node, is released all the same, stale caches and whole-second times notwithstanding.
    """
    waiting = cluster.home / "waiting"
    old = time.time() - 600
    os.utime(waiting, (old, old))
    worker = cluster.start_worker("alpha")
    beat = cluster.home / "workers" / worker / "heartbeat"
    begun = time.time()
    wait_for(lambda: os.stat(beat).st_mtime >= int(begun) + 2, 30,
             message="a later heartbeat (idle passes that trusted waiting/)")
    first = cluster.submit_script("bravo", "sleep 1", "-c", "alpha")
    second = cluster.submit_script("bravo", "true", "-c", "alpha", "--after", first)
    wait_done(cluster, 2, timeout=150)
    before, after = cluster.record(first), cluster.record(second)
    assert before["status"] == after["status"] == "succeeded"
    assert after["started"] >= before["finished"] and after["node"] == "alpha"
