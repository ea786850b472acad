"""More repairs by recover_jobs, and dead workers as check_workers sees them.

Complements ``test_recover.py``: cancel requests whose job already left the
jar, abandoned temporary record files, many recoverers on several nodes at
once over dead workers' directories, and a SIGKILLed worker (which stays a
zombie when nobody reaps it) counted as dead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, pid_alive, wait_for

DAY = 24 * 3600


@pytest.fixture
def gate(jar):
    """The file gated jobs wait for; created at the end whatever happens, so no job lingers."""
    path = jar.root / "gate"
    yield path
    path.touch()


def job_files(base: Path) -> list[str]:
    """Every file below ``base`` (names only, dot-files skipped)."""
    return sorted(f for _d, _s, files in os.walk(base) for f in files if not f.startswith("."))


#: The type(s) of each field of a record (``records.FIELDS``).
OPTIONAL_TEXT = (str, type(None))
FIELD_TYPES = {
    "name": (str,), "category": OPTIONAL_TEXT, "priority": (int,), "submitter": OPTIONAL_TEXT,
    "node": OPTIONAL_TEXT, "worker": OPTIONAL_TEXT, "submitted": OPTIONAL_TEXT,
    "claimed": OPTIONAL_TEXT, "started": OPTIONAL_TEXT, "finished": OPTIONAL_TEXT,
    "duration": (int, float, type(None)), "exit_code": (int, type(None)),
    "signal": (int, type(None)), "status": (str,), "reason": OPTIONAL_TEXT,
    "attempt": (int,), "retries": (int,), "recoveries": (int,), "stdout": OPTIONAL_TEXT,
    "stderr": OPTIONAL_TEXT, "attempts": (list,)}
FIELD_TYPES["batch"] = OPTIONAL_TEXT  # the batch of an --array or --from-file job
FIELD_TYPES.update(max_rss_kb=(int, type(None)), cpu_user_s=(int, float, type(None)),
                   cpu_system_s=(int, float, type(None)), command=OPTIONAL_TEXT)  # accounting


def assert_complete(record: dict | None, name: str, status: str) -> dict:
    """A repaired record has every field of ``records.FIELDS``, each of its type."""
    from jobjar import records

    assert record is not None, name
    assert tuple(record) == records.FIELDS, sorted(set(records.FIELDS) ^ set(record))
    assert set(FIELD_TYPES) == set(records.FIELDS)
    for field, types in FIELD_TYPES.items():
        value = record[field]
        assert isinstance(value, types) and not isinstance(value, bool), (field, value)
    assert record["name"] == name and record["status"] == status
    assert min(record["attempt"], record["retries"], record["recoveries"]) >= 0
    assert all(isinstance(a, dict) for a in record["attempts"])
    assert record["submitted"] and record["submitter"], record  # the file tells
    return record


def test_old_temporaries_fresh_limbo_and_settled_cancels(jar):
    made = jar.root / "made"
    limbo = jar.path("limbo")
    limbo.mkdir(parents=True)
    for name in ("abandoned.3", "fresh.3"):
        (limbo / name).write_text(f"#!/bin/sh\ntouch {made}\n")
        (limbo / name).chmod(0o755)
    results = jar.path("results")
    results.mkdir()
    (results / ".x.yaml.other.1.tmp").write_text("status: ")
    (results / ".y.yaml.other.2.tmp").write_text("status: ")
    old = time.time() - 2 * DAY
    for path in (limbo / "abandoned.3", results / ".x.yaml.other.1.tmp"):
        os.utime(path, (old, old))
    # Cancel requests: for a job that is nowhere, for a job moved to completed/ by hand
    # (no record), for a finished job, and for a queued job (that one is the worker's).
    cancel, completed = jar.path("cancel"), jar.path("completed")
    cancel.mkdir()
    completed.mkdir()
    (completed / "moved.0").write_text("#!/bin/sh\ntrue\n")
    finished = jar.submit("true")
    jar.start_worker()
    jar.wait_completed(2)
    queued = jar.submit("-c", "nobody", "true")
    for name in ("ghost.0", "moved.0", finished, queued):
        (cancel / name).touch()

    out = jar.run("recover_jobs", check=True).stdout
    assert "abandoned.3: moved from limbo/ to rejected/" in out
    assert "moved.0: wrote the missing cancelled record" in out
    assert os.listdir(limbo) == ["fresh.3"]  # young: its submitter may still be writing
    assert jar.record("abandoned.3")["status"] == "rejected"
    assert "limbo" in jar.record("abandoned.3")["reason"]
    assert not (results / ".x.yaml.other.1.tmp").exists()
    assert (results / ".y.yaml.other.2.tmp").exists()
    assert sorted(os.listdir(cancel)) == [queued]
    assert jar.record("moved.0")["status"] == "cancelled"
    for job, status in (("abandoned.3", "rejected"), ("moved.0", "cancelled")):
        record = assert_complete(jar.record(job), job, status)
        assert record["finished"] and record["reason"]
        assert record["priority"] == int(job.rsplit(".", 1)[1])
    assert jar.record(finished)["status"] == "succeeded"
    assert jar.run("recover_jobs", check=True).stdout == ""
    # The abandoned file is never run: a later job completes, it does not.
    jar.submit("true")
    jar.wait_completed(3)
    assert not made.exists()


def fake_dead_worker(jar, node: str, pid: int, job: str, category: str | None,
                     runs: Path) -> None:
    """The directory a worker that died mid-job leaves behind, made by hand."""
    wdir = jar.workers_dir / f"{node}.{pid}"
    jobdir = wdir / "job" / category if category else wdir / "job"
    jobdir.mkdir(parents=True)
    (wdir / "scratch").mkdir()
    # create_time 1000.5: whatever process has this pid now, it is not this worker.
    (wdir / "info.yaml").write_text(f'worker: "{node}.{pid}"\npid: {pid}\ncreate_time: 1000.5\n')
    (jobdir / job).write_text(f"#!/bin/sh\necho $JJ_JOB_NAME >> {runs}\n")
    (jobdir / job).chmod(0o755)
    (wdir / "heartbeat").touch()
    old = time.time() - 3600
    os.utime(wdir / "heartbeat", (old, old))
    jar.path("claimed").mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(jobdir / job, jar.path("claimed")),
               jar.path("claimed", f"{node}.{pid}"))


def test_six_recoverers_on_three_nodes_at_once(jar):
    from jobjar.layout import Jar

    Jar(jar.home).ensure()  # a jar that has been used: its directories exist
    runs = jar.root / "runs"
    jobs = {}
    for i in range(60):
        node = "here" if i % 2 else "far.away"
        category = "C" if i % 3 else None
        job = f"job{i:02d}.{i % 5}"
        # job01's dead worker has a recycled pid: this test's own.
        fake_dead_worker(jar, node, os.getpid() if i == 1 else 3_000_000 + i, job, category,
                         runs)
        jobs[job] = category
    # Two copies on node "here" (they judge its workers by pid), and two each on
    # "far.away" and on a third node, which judge by heartbeat age.
    copies = []
    for node, stale in (("here", None), ("here", None), ("far.away", "60"), ("far.away", "60"),
                        ("third", "60"), ("third", "60")):
        args = [str(BIN / "recover_jobs")] + (["--stale", stale] if stale else [])
        copies.append(subprocess.Popen(args, env={**jar.env, "JJ_NODE": node},
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True))
    outputs = [copy.communicate(timeout=120) for copy in copies]
    assert all(copy.returncode == 0 for copy in copies), outputs
    assert all(err == "" for _out, err in outputs), outputs
    put_back = [line for out, _err in outputs for line in out.splitlines()
                if ": put back" in line]
    assert len(put_back) == 60, put_back  # each job put back by exactly one copy
    job_workers = set(os.listdir(jar.workers_dir))

    assert job_files(jar.path("unclaimed")) == sorted(jobs)
    for job, category in jobs.items():
        where = jar.path("unclaimed", category, job) if category else jar.path("unclaimed", job)
        assert where.exists()
        record = assert_complete(jar.record(job), job, "retrying")
        assert record["recoveries"] == 1 and len(record["attempts"]) == 1, record
        assert record["category"] == category and record["reason"].startswith("recovered")
        assert record["attempts"][0]["status"] == "lost" and record["worker"] in job_workers
    assert os.listdir(jar.path("claimed")) == []
    assert all(job_files(jar.workers_dir / w / "job") == [] for w in os.listdir(jar.workers_dir))

    jar.start_worker("C")
    jar.start_worker("C")
    jar.wait_completed(60)
    assert sorted(runs.read_text().split()) == sorted(jobs)  # each ran exactly once


def test_a_sigkilled_worker_is_dead_to_check_workers_and_recover_jobs(jar, gate):
    jar.env["JJ_MAX_WORKERS"] = "1"
    name = jar.submit(f"while [ ! -e {gate} ]; do sleep 0.05; done")
    (first,) = [jar.start_worker()]
    wait_for(lambda: os.path.islink(jar.path("claimed", first)), message="busy")
    assert "1 of 1 workers alive" in jar.run("check_workers", check=True).stdout
    pid = int(first.rsplit(".", 1)[1])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), message="the worker dies")  # a zombie counts as dead
    out = jar.run("check_workers", check=True).stdout
    assert "0 of 1 workers alive" in out
    (started,) = [line.split()[1] for line in out.splitlines() if line.startswith("started")]
    jar.worker_pids.append(int(started.rsplit(".", 1)[1]))
    assert f"{name} (worker {first}): put back" in jar.run("recover_jobs", check=True).stdout
    wait_for(lambda: os.path.islink(jar.path("claimed", started)), message="the new one runs it")
    gate.touch()
    jar.wait_completed(1)
    assert jar.record(name)["worker"] == started


def test_bad_stale_values(jar):
    for value in ("soon", "-5", "nan", "inf"):
        bad = jar.run("recover_jobs", "--stale", value)
        assert bad.returncode != 0 and len(bad.stderr.splitlines()) == 1, (value, bad.stderr)
        assert "Traceback" not in bad.stderr
