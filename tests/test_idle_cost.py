"""What an idle worker costs the file server: only what its guarantees need.

``bench/run.py --only fileserver`` counts the operations; these tests hold
the behaviour behind the counts: the node file is not rewritten at every
heartbeat when nothing moved, and an empty ``waiting/`` that has settled is
trusted by its modification time, yet a job that enters it is still seen.
"""

from __future__ import annotations

import os
import time

from jobjar import machine, records
from jobjar.layout import Jar

from conftest import wait_for

MEMINFO = "MemTotal: 8000000 kB\nMemFree: 100000 kB\nMemAvailable: 6000000 kB\n"


def _published_time(jar, node: str) -> float | None:
    record = records.read(Jar(jar.home).node_file(node)) if Jar(jar.home).node_file(
        node).exists() else None
    return record.get("time") if isinstance(record, dict) else None


def test_an_idle_node_file_is_rewritten_when_its_figures_move_not_at_every_beat(jar, tmp_path):
    load, mem = tmp_path / "loadavg", tmp_path / "meminfo"
    load.write_text("0.50 0.50 0.50 1/1 1\n")
    mem.write_text(MEMINFO)
    env = {"JJ_NODE": "quiet", "JJ_TEST_LOADAVG": str(load), "JJ_TEST_MEMINFO": str(mem),
           "JJ_HEARTBEAT": "0.3"}
    worker = jar.start_worker(env=env)
    first = wait_for(lambda: _published_time(jar, "quiet"), 30, message="the node file")
    heartbeat = jar.workers_dir / worker / "heartbeat"
    beat = os.stat(heartbeat).st_mtime
    wait_for(lambda: os.stat(heartbeat).st_mtime >= beat + 1.5, 30,
             message="five more heartbeats")
    assert _published_time(jar, "quiet") == first  # steady figures: not rewritten
    load.write_text("0.60 0.50 0.50 1/1 1\n")  # less than a quarter of a load point
    mark = os.stat(heartbeat).st_mtime
    wait_for(lambda: os.stat(heartbeat).st_mtime >= mark + 1.0, 30, message="more heartbeats")
    assert _published_time(jar, "quiet") == first
    load.write_text("2.50 0.50 0.50 1/1 1\n")  # a reader choosing a node would notice
    wait_for(lambda: (machine.read_all(Jar(jar.home)).get("quiet") or
                      machine.measure("x")).load1 == 2.5, 30, message="the new load published")
    assert _published_time(jar, "quiet") > first


def _worker(jar, monkeypatch):
    """A worker object on the test's jar, in this process (nothing started)."""
    from jobjar.config import load
    from jobjar.worker import Worker

    for key, value in jar.env.items():
        if key.startswith("JJ_") or key == "HOME":
            monkeypatch.setenv(key, value)
    Jar(jar.home).ensure()
    return Worker(config=load())


def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_settled_empty_waiting_dir_is_trusted_until_its_time_moves(jar, monkeypatch):
    worker = _worker(jar, monkeypatch)
    waiting = jar.path("waiting")
    _age(waiting, 600)
    assert worker.waiting_is_empty()
    assert worker.waiting_empty == os.stat(waiting).st_mtime_ns  # settled: trusted
    limbo = jar.path("limbo", "job.0")
    limbo.write_text("#!/bin/sh\ntrue\n")
    os.rename(limbo, waiting / "job.0")  # the directory's time moves
    assert not worker.waiting_is_empty()
    assert worker.waiting_busy == os.stat(waiting).st_mtime_ns  # left to depend.release
    os.unlink(waiting / "job.0")
    assert worker.waiting_is_empty()  # listed: empty, but changed just now
    assert worker.waiting_empty is None  # not trusted: listed again next time
    os.mkdir(waiting / "CAT")  # a category's jobs do not move waiting/'s own time
    assert not worker.waiting_is_empty()


def test_a_trusted_empty_waiting_dir_is_listed_again_after_a_while(jar, monkeypatch):
    """Its time put back as it was (a job in the same second, a clock): seen within the relist."""
    from jobjar import worker as worker_module

    worker = _worker(jar, monkeypatch)
    waiting = jar.path("waiting")
    _age(waiting, 600)
    before = os.stat(waiting)
    assert worker.waiting_is_empty()
    limbo = jar.path("limbo", "job.0")
    limbo.write_text("#!/bin/sh\ntrue\n")
    os.rename(limbo, waiting / "job.0")
    os.utime(waiting, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert worker.waiting_is_empty()  # trusted: its time says nothing moved
    worker.waiting_relist = time.monotonic() - 1  # WAITING_RELIST seconds later
    assert worker_module.WAITING_RELIST <= 600
    assert not worker.waiting_is_empty()


def test_a_job_waiting_in_a_settled_jar_is_still_released(jar):
    """The worker trusts an old, empty waiting/; a dependent job submitted later still runs."""
    Jar(jar.home).ensure()
    _age(jar.path("waiting"), 600)
    jar.start_worker()
    first = jar.submit("sleep 1")
    second = jar.submit("--after", first, "true")
    wait_for(lambda: len(jar.completed()) == 2, 60, message="both jobs")
    assert jar.record(second)["status"] == "succeeded"
    assert jar.record(second)["started"] >= jar.record(first)["finished"]
