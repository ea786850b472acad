"""Crashes at every step of the worker, of submission and of recovery itself.

Each worker fault point (``JJ_FAULT``) kills the worker with SIGKILL right
there; then ``recover_jobs`` runs and fresh workers finish the jar.  No job
may be lost, none completed twice, and only the job that was running may run
a second time.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter

import pytest

from conftest import BIN, pid_alive, wait_for

RUN_LOG = '#!/bin/sh\necho "$JJ_JOB_NAME" >> "$JJ_HOME/../runs.log"\n'
POINTS = ["after-claim", "after-link", "after-scratch", "while-running", "after-exit",
          "after-record", "after-move", "after-unlink"]


def runs(jar) -> Counter:
    try:
        return Counter((jar.root / "runs.log").read_text().split())
    except FileNotFoundError:
        return Counter()


def worker_pid(name: str) -> int:
    return int(name.rsplit(".", 1)[1])


def held_anywhere(jar) -> list[str]:
    return [str(p) for p in jar.workers_dir.glob("*/job/**/*") if p.is_file()]


def submit_jobs(jar, count: int, content: str = RUN_LOG) -> list[str]:
    return [jar.submit_by_hand(f"job{i}.0", content).name for i in range(count)]


def settle(jar, names: list[str]) -> None:
    """Every job completed exactly once, nothing left claimed or held."""
    wait_for(lambda: sorted(jar.completed()) == sorted(names), message="all completed")
    assert os.listdir(jar.path("claimed")) == []
    assert held_anywhere(jar) == []
    for name in names:
        assert jar.record(name)["status"] == "succeeded", jar.record(name)


@pytest.mark.parametrize("point", POINTS)
def test_worker_killed_at_each_step(jar, point):
    names = submit_jobs(jar, 3)
    crashed = jar.start_worker(env={"JJ_FAULT": point})
    wait_for(lambda: not pid_alive(worker_pid(crashed)), message="the worker dies")
    before = runs(jar)
    report = jar.run("recover_jobs", check=True).stdout
    assert jar.run("recover_jobs", check=True).stdout == ""  # idempotent
    if point == "while-running":  # the orphaned job was ended by recover_jobs, or had finished
        assert "process(es) of the lost attempt" in report or sum(runs(jar).values()) == 1
    jar.start_worker()
    settle(jar, names)
    counts = runs(jar)
    assert set(counts) == set(names)
    assert sum(n - 1 for n in counts.values()) <= 1, (point, counts, before, report)
    if point in ("after-claim", "after-link", "after-scratch"):
        assert max(counts.values()) == 1 and "put back" in report
    if point == "after-record":
        assert "it had finished" in report and max(counts.values()) == 1


def test_killed_mid_job_then_recovered_same_name_and_category(jar):
    gate = jar.root / "gate"
    name = jar.submit("-c", "LINUX", "-p", "7",
                      f"echo $$ >> {jar.root}/pids; while [ ! -e {gate} ]; do sleep 0.05; done")
    victim = jar.start_worker("LINUX")
    wait_for(lambda: os.listdir(jar.path("claimed")), message="claimed")
    wait_for(lambda: (jar.root / "pids").exists(), message="the job runs")  # not only claimed
    os.kill(worker_pid(victim), 9)
    wait_for(lambda: not pid_alive(worker_pid(victim)))
    orphans = [int(p) for p in (jar.root / "pids").read_text().split()]
    assert orphans and all(pid_alive(p) for p in orphans)  # the job outlived its worker
    report = jar.run("recover_jobs", check=True).stdout
    assert f"{name} (worker {victim}): ended " in report  # the shell, and its sleep if any
    assert "process(es) of the lost attempt" in report
    assert not any(pid_alive(p) for p in orphans), "the lost attempt still runs"
    assert f"{name} (worker {victim}): put back in unclaimed/LINUX/" in report
    assert (jar.path("unclaimed", "LINUX", name)).exists()
    assert not (jar.workers_dir / victim / "scratch").exists()
    assert os.listdir(jar.path("claimed")) == []
    assert jar.record(name)["recoveries"] == 1
    jar.start_worker("LINUX")
    gate.touch()
    jar.wait_completed(1)
    record = jar.record(name)
    assert record["status"] == "succeeded" and record["category"] == "LINUX"
    assert record["priority"] == 7 and [a["status"] for a in record["attempts"]] == [
        "lost", "succeeded"]
    for pid in (jar.root / "pids").read_text().split():
        wait_for(lambda p=int(pid): not pid_alive(p), message="orphan ends")


def test_two_recoveries_at_once_never_lose_or_duplicate(jar):
    names = submit_jobs(jar, 12)
    crashed = [jar.start_worker(env={"JJ_FAULT": "after-link"}) for _ in range(8)]
    for worker in crashed:
        wait_for(lambda w=worker: not pid_alive(worker_pid(w)), message="crash")
    assert len(held_anywhere(jar)) == 8
    procs = [subprocess.Popen([str(BIN / "recover_jobs")], env=jar.env,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    reports = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    put_back = sum(r.count("put back") for r in reports)
    assert put_back == 8, reports
    jar.start_worker()
    jar.start_worker()
    settle(jar, names)
    assert runs(jar) == Counter({n: 1 for n in names})
    assert all(jar.record(n)["recoveries"] <= 1 for n in names)


@pytest.mark.parametrize("point", ["recover-after-record", "recover-after-move",
                                   "recover-after-worker"])
def test_recover_jobs_killed_half_way(jar, point):
    names = submit_jobs(jar, 2)
    for _ in range(2):
        worker = jar.start_worker(env={"JJ_FAULT": "after-scratch"})
        wait_for(lambda w=worker: not pid_alive(worker_pid(w)))
    first = jar.run("recover_jobs", env={"JJ_FAULT": point})
    assert first.returncode == -9
    jar.run("recover_jobs", check=True)
    jar.start_worker()
    settle(jar, names)
    assert runs(jar) == Counter({n: 1 for n in names})
    assert all(jar.record(n)["recoveries"] == 1 for n in names)


def test_poison_job_is_not_put_back_forever(jar):
    jar.env["JJ_MAX_RECOVERIES"] = "1"
    name = jar.submit("kill -9 $PPID")
    for _ in range(2):
        worker = jar.start_worker()
        wait_for(lambda w=worker: not pid_alive(worker_pid(w)), message="job kills worker")
        jar.run("recover_jobs", check=True)
    assert jar.completed() == [name]
    record = jar.record(name)
    assert record["status"] == "poisoned" and record["recoveries"] == 2
    from jobjar.records import FIELDS

    assert set(FIELDS) <= set(record), set(FIELDS) - set(record)  # a full record, as any
    assert record["submitter"] and record["submitted"] and record["node"]
    assert [a["status"] for a in record["attempts"]] == ["lost", "lost"]
    status = jar.run("system_status", check=True).stdout
    assert "1 poisoned" in status


def test_submit_killed_between_limbo_and_rename(jar):
    result = jar.run("submit_job", "true", env={"JJ_FAULT": "submit-after-limbo"})
    assert result.returncode == -9
    (left,) = os.listdir(jar.path("limbo"))
    assert jar.run("recover_jobs", check=True).stdout == ""  # young: maybe still being copied
    old = time.time() - 2 * 86400
    os.utime(jar.path("limbo", left), (old, old))
    report = jar.run("recover_jobs", check=True).stdout
    assert "moved from limbo/ to rejected/" in report
    assert os.listdir(jar.path("rejected")) == [left]
    assert jar.record(left)["status"] == "rejected"
    assert "abandoned" in jar.run("system_status", check=True).stdout


def test_half_states_by_hand(jar):
    """A dangling link, and a dead worker's leftover scratch, are cleaned up."""
    jar.path("claimed").mkdir(parents=True, exist_ok=True)
    os.symlink("../workers/ghost.1/job/x.0", jar.path("claimed", "ghost.1"))
    node = json.loads(jar.run("system_status", "--json", check=True).stdout)["node"]
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid is free now: a dead worker of this node
    dead = f"{node}.{gone.pid}"
    (jar.workers_dir / dead / "scratch" / "sub").mkdir(parents=True)
    (jar.workers_dir / dead / "scratch" / "sub" / "left.txt").write_text("x")
    report = jar.run("recover_jobs", check=True).stdout
    assert "dangling" in report and os.listdir(jar.path("claimed")) == []
    assert f"{dead}/scratch" in report and not (jar.workers_dir / dead / "scratch").exists()
    assert jar.run("recover_jobs", check=True).stdout == ""  # nothing left to do


def test_stale_heartbeat_recovers_other_nodes_but_never_living_ones(jar):
    gate = jar.root / "gate"
    alive_job = jar.submit("-c", "livenode", f"while [ ! -e {gate} ]; do sleep 0.05; done")
    living = jar.start_worker(env={"JJ_NODE": "livenode"})
    wait_for(lambda: os.listdir(jar.path("claimed")), message="living worker busy")
    names = submit_jobs(jar, 1)
    dead = jar.start_worker(env={"JJ_NODE": "deadnode", "JJ_FAULT": "after-link"})
    wait_for(lambda: not pid_alive(worker_pid(dead)))
    # Without --stale, another node's workers are never judged.
    assert jar.run("recover_jobs", check=True).stdout == ""
    report = wait_for(lambda: jar.run("recover_jobs", "--stale", "2", check=True).stdout,
                      message="stale recovery")
    assert f"(worker {dead}): put back" in report and living not in report
    assert jar.path("unclaimed", names[0]).exists()
    gate.touch()
    jar.start_worker()
    wait_for(lambda: sorted(jar.completed()) == sorted(names + [alive_job]))
    assert jar.record(alive_job)["recoveries"] == 0
