"""system_status: every worker state, every job state, machine output, files moving under it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import pid_alive, wait_for


@pytest.fixture
def gate(jar):
    """The file gated jobs wait for; created at the end whatever happens, so no job lingers."""
    path = jar.root / "gate"
    yield path
    path.touch()


def pid_of(worker: str) -> int:
    return int(worker.rsplit(".", 1)[1])


def by_name(status: dict) -> dict:
    return {w["name"]: w for w in status["workers"]}


def stable(status: dict) -> dict:
    """The status without what changes from one second to the next."""
    status = json.loads(json.dumps(status))
    status.pop("time")
    for worker in status["workers"]:
        worker.pop("heartbeat_age")
        worker.pop("running_for")
    for node in status.get("nodes", []):  # what the nodes measure moves every heartbeat
        for key in ("age", "updated", "load1", "load5", "load15", "load_per_cpu",
                    "mem_available_kb"):
            node.pop(key)
    return status


def test_every_worker_state_and_job_state(jar, gate):
    import jobjar

    pids = jar.root / "pids"
    wait_job = f"echo $$ >> {pids}; while [ ! -e {gate} ]; do sleep 0.05; done"
    # Finished jobs: one success, twelve failures (only the last ten are listed), a timeout.
    jar.submit("true")
    failing = [jar.submit("-i", f"f{i}", f"exit {i + 1}") for i in range(12)]
    jar.submit("--timeout", "0.3", "sleep 30")
    jar.submit_by_hand("empty.0", "")
    jar.submit_by_hand("notexec.0", "#!/bin/sh\ntrue\n", mode=0o644)
    finisher = jar.start_worker()
    jar.wait_completed(14)
    wait_for(lambda: len(os.listdir(jar.path("rejected"))) == 2, message="two rejected")
    jar.path("workers", finisher, "STOP").touch()
    wait_for(lambda: (jar.workers_dir / finisher / "exited").exists(), message="exited")

    # Queued in categories no worker serves, waiting, limbo.
    for priority in ("9", "-4", "0"):
        jar.submit("-c", "GPU", "-p", priority, "true")
    blocker = jar.submit("-c", "nobody", "true")
    waiting = jar.submit("--after", blocker, "true")
    (jar.path("limbo") / "half-written.0").write_text("#!/bin/sh\n")

    # Workers: working, stopping (still working), idle, paused, dead on this node,
    # unresponsive on another node.
    working = jar.start_worker("busy", env={"JJ_NODE": "n1"})
    stopping = jar.start_worker("busy2", env={"JJ_NODE": "n2"})
    dead = jar.start_worker("busy3")  # on this node: its death can be seen
    far = jar.start_worker("busy4", env={"JJ_NODE": "far.away"})
    busy = {}
    for worker, category in ((working, "busy"), (stopping, "busy2"), (dead, "busy3"),
                             (far, "busy4")):
        busy[worker] = jar.submit("-c", category, wait_job)
        wait_for(lambda w=worker: os.path.islink(jar.path("claimed", w)),
                 message=f"{worker} busy")
    (jar.workers_dir / stopping / "STOP").touch()
    for worker in (dead, far):
        os.kill(pid_of(worker), signal.SIGKILL)
        wait_for(lambda w=worker: not pid_alive(pid_of(w)), message=f"{worker} dies")
    old = time.time() - 3600
    os.utime(jar.workers_dir / far / "heartbeat", (old, old))
    paused = jar.start_worker("none", env={"JJ_NODE": "n3"})
    (jar.workers_dir / paused / "PAUSE").touch()
    idle = jar.start_worker("none", env={"JJ_NODE": "n4"})
    jar.submit("-c", "none", "true")  # the idle one runs it, so it is idle afterwards
    jar.wait_completed(15)

    status = jobjar.system_status()
    workers = by_name(status)
    expect = {working: "working", stopping: "stopping", dead: "dead", far: "unresponsive",
              paused: "paused", idle: "idle", finisher: "exited"}
    assert {w: workers[w]["state"] for w in expect} == expect
    for worker in (working, stopping, dead, far):
        assert workers[worker]["job"] == busy[worker]
    assert workers[working]["running_for"] is not None
    assert workers[working]["node"] == "n1" and workers[far]["node"] == "far.away"
    assert workers[working]["categories"] == ["n1", "busy"]
    assert workers[far]["heartbeat_age"] >= 3000
    assert workers[idle]["job"] is None and workers[idle]["heartbeat_age"] < 3000
    stranded = sorted((s["job"], s["worker"], s["worker_state"]) for s in status["stranded"])
    assert stranded == sorted([(busy[dead], dead, "dead"), (busy[far], far, "unresponsive")])

    jobs = status["jobs"]
    assert jobs["unclaimed"]["categories"]["GPU"] == {"count": 3, "min_priority": -4,
                                                     "max_priority": 9}
    assert jobs["unclaimed"]["categories"][""]["count"] == 0
    assert jobs["unclaimed"]["categories"]["nobody"]["count"] == 1
    assert jobs["unclaimed"]["total"] == 4
    assert jobs["waiting"] == 1 and jobs["limbo"] == 1 and jobs["running"] == 4
    done = jobs["completed"]
    assert (done["total"], done["succeeded"], done["failed"]) == (15, 2, 12)
    assert done["other"] == {"timed-out": 1}
    reasons = {r["name"]: r["reason"] for r in jobs["rejected"]}
    assert reasons == {"empty.0": "an empty file", "notexec.0": "not executable"}
    recent = status["recent_failures"]
    assert len(recent) == 10
    assert [r["finished"] for r in recent] == sorted((r["finished"] for r in recent),
                                                     reverse=True)
    assert failing[0] not in [r["name"] for r in recent]
    assert status["control"] == {"stop_all": False, "pause_all": False}

    text = jar.run("system_status", check=True).stdout
    assert f"working on {busy[working]}" in text and f"stopping on {busy[stopping]}" in text
    assert f"STRANDED: {busy[dead]} (worker {dead} dead" in text
    assert f"STRANDED: {busy[far]} (worker {far} unresponsive" in text
    assert "unclaimed GPU: 3 (priority -4..9)" in text
    assert "rejected: empty.0: an empty file" in text and "1 in limbo" in text
    assert "1 waiting" in text and "timed-out" in text and "IN FORCE" not in text
    assert waiting not in text  # waiting jobs are counted, not listed

    # --json and --yaml say the same thing as the dict.
    as_json = json.loads(jar.run("system_status", "--json", check=True).stdout)
    as_yaml = yaml.safe_load(jar.run("system_status", "--yaml", check=True).stdout)
    assert stable(as_json) == stable(as_yaml) == stable(jobjar.system_status())
    gate.touch()
    for pid in pids.read_text().split():
        wait_for(lambda p=int(pid): not pid_alive(p), message="gated jobs end")


def test_control_files_in_force(jar):
    jar.workers_dir.mkdir(parents=True)
    (jar.workers_dir / "STOP_ALL").touch()
    (jar.workers_dir / "PAUSE_ALL").touch()
    text = jar.run("system_status", check=True).stdout
    assert "IN FORCE: STOP_ALL, PAUSE_ALL" in text
    data = json.loads(jar.run("system_status", "--json", check=True).stdout)
    assert data["control"] == {"stop_all": True, "pause_all": True}
    bad = jar.run("system_status", "--json", "--yaml")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_empty_and_missing_jar(jar):
    """A missing jar (a mistyped JJ_HOME) is an error, not an empty jar; an empty one is empty."""
    for args in ([], ["--json"]):
        result = jar.run("system_status", *args)
        assert result.returncode == 1 and f"no jar at {jar.home}" in result.stderr
        assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert not jar.home.exists()  # reading created nothing
    jar.home.mkdir()
    data = json.loads(jar.run("system_status", "--json", check=True).stdout)
    assert data["jobs"]["unclaimed"]["total"] == 0 and data["workers"] == []
    assert os.listdir(jar.home) == []



def test_a_long_history_is_counted_up_to_a_limit_not_listed_whole(jar):
    """``completed.total`` is exact below ``COUNT_LIMIT`` and capped (and said so) above it:
    the status never lists a history of any size whole (docs/operating.md)."""
    from jobjar.status import COUNT_LIMIT

    done = jar.path("completed")
    done.mkdir(parents=True)
    (done / ".rsync-partial").write_text("")  # never a job
    for i in range(COUNT_LIMIT - 1):
        os.close(os.open(done / f"old{i}.0", os.O_WRONLY | os.O_CREAT, 0o644))
    status = json.loads(jar.run("system_status", "--json", check=True).stdout)
    assert (status["jobs"]["completed"]["total"],
            status["jobs"]["completed"]["total_capped"]) == (COUNT_LIMIT - 1, False)
    for i in range(2):
        (done / f"new{i}.0").write_text("")
    status = json.loads(jar.run("system_status", "--json", check=True).stdout)
    assert (status["jobs"]["completed"]["total"],
            status["jobs"]["completed"]["total_capped"]) == (COUNT_LIMIT, True)
    assert f"{COUNT_LIMIT}+ completed" in jar.run("system_status", check=True).stdout

CHURN = r"""
import os, shutil, sys, time
home, stop = sys.argv[1], sys.argv[2]
i = 0
while not os.path.exists(stop):
    i += 1
    cat = os.path.join(home, "unclaimed", f"C{i % 3}")
    os.makedirs(cat, exist_ok=True)
    job = os.path.join(cat, f"j{i}.{i % 7}")
    with open(job, "w") as f:
        f.write("#!/bin/sh\n")
    done = os.path.join(home, "completed", f"j{i}.{i % 7}")
    os.rename(job, done)
    rec = os.path.join(home, "results", f"j{i}.{i % 7}.yaml")
    with open(rec, "w") as f:
        f.write('status: "failed"\nfinished: "x"\n')
    wdir = os.path.join(home, "workers", f"ghost.{100000 + i}")
    os.makedirs(os.path.join(wdir, "job", "C1"))
    with open(os.path.join(wdir, "job", "C1", "held.0"), "w"):
        pass
    os.symlink(f"../workers/ghost.{100000 + i}/job/C1/held.0",
               os.path.join(home, "claimed", f"ghost.{100000 + i}"))
    with open(os.path.join(wdir, "info.yaml"), "w") as f:
        f.write("pid: 1\ncreate_time: 5.0\n")
    os.unlink(os.path.join(home, "claimed", f"ghost.{100000 + i}"))
    shutil.rmtree(wdir)
    os.unlink(done)
    os.unlink(rec)
    if i % 5 == 0:
        shutil.rmtree(cat)
"""


def test_files_moving_under_it_are_not_errors(jar):
    import jobjar

    for name in ("unclaimed", "completed", "results", "workers", "claimed"):
        jar.path(name).mkdir(parents=True)
    stop = jar.root / "stop"
    churn = subprocess.Popen([sys.executable, "-c", CHURN, str(jar.home), str(stop)])
    try:
        wait_for(lambda: os.listdir(jar.path("completed")) or churn.poll() is not None,
                 message="churn running")
        seen = set()
        for _ in range(150):
            status = jobjar.system_status()
            assert status["jobs"]["unclaimed"]["total"] >= 0
            seen.update(w["name"] for w in status["workers"])
            for worker in status["workers"]:
                assert worker["state"] in ("dead", "exited", "idle", "working", "paused",
                                           "stopping", "unresponsive")
        for _ in range(5):
            assert jar.run("system_status", "--json", check=True).returncode == 0
        assert churn.poll() is None, "the churn process died"
        assert len(seen) > 1  # the listings really overlapped with the churn
    finally:
        stop.touch()
        churn.wait(30)
    assert churn.returncode == 0
