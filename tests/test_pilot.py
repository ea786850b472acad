"""Pilot workers: ``start_worker --exit-when-empty``, ``--max-jobs``, ``--max-time``.

Real detached workers on a temporary jar; each test waits (with a deadline)
for the pilot's process to end by itself, then checks what it ran, what it
left in the jar for others, and the reason in its log.
"""

from __future__ import annotations

import os
import signal

import pytest

from jobjar.layout import held_job

from conftest import one_line_error, pid_alive, wait_for


def start_pilot(jar, *args: str) -> tuple[str, int]:
    """``start_worker ARGS``: the worker's name and pid (stopped at the end if still alive)."""
    name = jar.run("start_worker", *args, check=True).stdout.strip()
    pid = int(name.rsplit(".", 1)[1])
    jar.worker_pids.append(pid)
    return name, pid


def ended(jar, name: str, pid: int, timeout: float = 60) -> str:
    """Wait for the pilot to end by itself; its log."""
    wait_for(lambda: not pid_alive(pid), timeout, message=f"pilot {name} to end")
    assert (jar.workers_dir / name / "exited").exists()
    return (jar.workers_dir / name / "log").read_text()


def queued(jar, category: str | None = None) -> list[str]:
    where = jar.path("unclaimed", category) if category else jar.path("unclaimed")
    return sorted(e.name for e in os.scandir(where) if e.is_file())


def test_exit_when_empty_runs_everything_then_ends(jar):
    names = [jar.submit("true") for _ in range(3)]
    name, pid = start_pilot(jar, "--exit-when-empty")
    log = ended(jar, name, pid)
    assert sorted(jar.completed()) == sorted(names)
    assert all(jar.record(n)["status"] == "succeeded" for n in names)
    assert "stop: exit-when-empty" in log
    assert "pilot: exit-when-empty" in log.splitlines()[0]


def test_exit_when_empty_stays_for_a_dependency_queued_elsewhere(jar):
    """A waiting job of its own whose dependency is queued for others keeps the pilot alive."""
    first = jar.submit("-c", "OTHER", "true")
    then = jar.submit("-c", "MINE", "--after", first, "true")
    name, pid = start_pilot(jar, "--exit-when-empty", "MINE")
    # It has looked (its log says it started and released nothing) and is still there.
    wait_for(lambda: "start" in (jar.workers_dir / name / "log").read_text())
    other, other_pid = start_pilot(jar, "--exit-when-empty", "OTHER")
    ended(jar, other, other_pid)
    log = ended(jar, name, pid)
    assert jar.record(first)["worker"] == other
    assert jar.record(then)["worker"] == name  # so the pilot was still there to run it
    assert jar.record(then)["status"] == "succeeded"
    assert "stop: exit-when-empty" in log


def test_exit_when_empty_leaves_other_categories_waiting_and_strands_nothing(jar):
    """A pilot ends while jobs of categories it does not serve wait on each other."""
    first = jar.submit("-c", "OTHER", "true")
    then = jar.submit("-c", "OTHER", "--after", first, "true")
    mine = jar.submit("true")
    name, pid = start_pilot(jar, "--exit-when-empty")
    log = ended(jar, name, pid)
    assert jar.completed() == [mine]
    assert queued(jar, "OTHER") == [first]
    assert os.listdir(jar.path("waiting", "OTHER")) == [then]
    assert held_job(jar.workers_dir / name) is None  # nothing held by the ended pilot
    # An ordinary worker finishes what the pilot left.
    jar.start_worker("OTHER")
    jar.wait_completed(3)
    assert jar.record(then)["status"] == "succeeded"
    assert "stop: exit-when-empty" in log


def test_a_dependency_that_can_never_finish_does_not_keep_a_pilot(jar):
    """A hand-made waiting job after a job that is nowhere: the pilot ends, and says why."""
    waiting = jar.path("waiting")
    waiting.mkdir(parents=True)
    job = waiting / "orphan"
    job.write_text("#!/bin/sh\n#JJ --after no-such-job-anywhere\ntrue\n")
    job.chmod(0o755)
    name, pid = start_pilot(jar, "--exit-when-empty")
    log = ended(jar, name, pid)
    assert "can never start" in log and "orphan" in log
    assert job.exists()  # left where it was: not the pilot's to decide


def test_a_waiting_job_release_cannot_move_keeps_a_pilot_one_look_only(jar):
    """Its dependencies ended, yet it is still waiting: after two looks it gives no hope."""
    from jobjar import pilot, records
    from jobjar.layout import Jar

    home = Jar(jar.home)
    stuck = jar.path("waiting", "MINE", "stuck")
    stuck.parent.mkdir(parents=True)
    stuck.write_text("#!/bin/sh\n#JJ --after dep\ntrue\n")
    stuck.chmod(0o755)
    seen: set[str] = set()
    assert pilot.waiting_hope(home, ["MINE"], None, seen) is None  # dep is nowhere
    jar.path("results").mkdir()
    records.write(home.record("dep"), {"name": "dep", "status": "running"})
    (jar.path("unclaimed")).mkdir()
    jar.path("unclaimed", "dep").write_text("#!/bin/sh\n")
    assert pilot.waiting_hope(home, ["MINE"], None, seen) == "stuck"  # dep is queued
    assert pilot.waiting_hope(home, [None], None, seen) is None  # not its category
    records.write(home.record("dep"), {"name": "dep", "status": "succeeded"})
    assert pilot.waiting_hope(home, ["MINE"], None, seen) == "stuck"  # release may move it
    lines: list[str] = []
    assert pilot.waiting_hope(home, ["MINE"], lines.append, seen) is None  # it did not
    assert "stuck" in lines[0]


def test_max_jobs(jar):
    names = [jar.submit("-p", str(10 - i), "true") for i in range(5)]
    name, pid = start_pilot(jar, "--max-jobs", "2")
    log = ended(jar, name, pid)
    assert sorted(jar.completed()) == sorted(names[:2])  # the two of highest priority
    assert queued(jar) == sorted(names[2:])
    assert "stop: max-jobs: ran 2 jobs" in log


def test_max_time_claims_only_jobs_whose_timeout_fits(jar):
    long = jar.submit("-p", "5", "--timeout", "1h", "true")
    short = jar.submit("--timeout", "20s", "true")
    untimed = jar.submit("-p", "-5", "true")
    name, pid = start_pilot(jar, "--exit-when-empty", "--max-time", "10m")
    log = ended(jar, name, pid)
    assert sorted(jar.completed()) == sorted([short, untimed])
    assert queued(jar) == [long]  # never moved: no recovery, no retry counted
    assert jar.record(long) is None
    assert "stop: exit-when-empty" in log


def test_max_time_ends_an_idle_pilot(jar):
    jar.env["JJ_PAUSE_TIME"] = "60"  # it must wake for its deadline, not for its pause
    name, pid = start_pilot(jar, "--max-time", "2s")
    log = ended(jar, name, pid, timeout=30)
    assert "stop: max-time: 2 s are up" in log


def test_max_time_ends_a_paused_pilot_and_exit_when_empty_waits_while_paused(jar):
    jar.workers_dir.mkdir(parents=True)
    (jar.workers_dir / "PAUSE_ALL").touch()
    timed, timed_pid = start_pilot(jar, "--exit-when-empty", "--max-time", "3s")
    assert "stop: max-time" in ended(jar, timed, timed_pid, timeout=30)
    # exit-when-empty alone: a paused pilot is told to wait, not to leave
    name, pid = start_pilot(jar, "--exit-when-empty")
    job = jar.submit("true")
    log = jar.workers_dir / name / "log"
    wait_for(lambda: "start" in log.read_text())
    assert pid_alive(pid) and jar.completed() == []
    (jar.workers_dir / "PAUSE_ALL").unlink()
    assert "stop: exit-when-empty" in ended(jar, name, pid)
    assert jar.completed() == [job]


def test_pilot_killed_mid_job_leaves_it_to_be_requeued(jar):
    """SIGTERM, then SIGKILL, as a scheduler ends an allocation: the job is put back."""
    marker = jar.root / "first-attempt"
    job = jar.submit(f'if [ ! -e {marker} ]; then touch {marker}; sleep 600; fi; true')
    name, pid = start_pilot(jar, "--exit-when-empty", "--max-time", "1h")
    wait_for(marker.exists, 60, message="the job to start")
    os.kill(pid, signal.SIGTERM)  # the worker would finish its job first, as STOP does,
    os.kill(pid, signal.SIGKILL)  # but the scheduler does not wait that long
    wait_for(lambda: not pid_alive(pid), 30)
    assert not (jar.workers_dir / name / "exited").exists()
    report = jar.run("recover_jobs", check=True).stdout  # ends the orphaned job, puts it back
    assert job in report
    jar.start_worker()
    jar.wait_completed(1)
    record = jar.record(job)
    assert record["status"] == "succeeded" and record["recoveries"] == 1
    assert record["attempts"][0]["worker"] == name


@pytest.mark.parametrize("args, words", [
    (["--max-jobs", "0"], ["--max-jobs", "positive integer"]),
    (["--max-jobs", "two"], ["--max-jobs"]),
    (["--max-time", "5x"], ["--max-time", "duration"]),
    (["--max-time", "-1"], ["--max-time"]),
    (["--max-time", "0s"], ["--max-time", "longer than 0"]),
])
def test_bad_limits_are_one_line(jar, args, words):
    one_line_error(jar.run("start_worker", *args), *words, status=1)
    one_line_error(jar.run("check_workers", *args), *words, status=1)
    assert not jar.workers_dir.exists() or not os.listdir(jar.workers_dir)


def test_python_api_has_the_same_limits(jar):
    import jobjar
    from jobjar.errors import JobJarError

    with pytest.raises(JobJarError, match="--max-jobs"):
        jobjar.start_worker(max_jobs=0)
    with pytest.raises(JobJarError, match="--max-time"):
        jobjar.start_worker(max_time="soon")
    names = [jobjar.submit_job("true") for _ in range(2)]
    name = jobjar.start_worker(exit_when_empty=True, max_time="1h")
    pid = int(name.rsplit(".", 1)[1])
    jar.worker_pids.append(pid)
    log = ended(jar, name, pid)
    assert sorted(jar.completed()) == sorted(names)
    assert "pilot: exit-when-empty max-time=3600s" in log


def test_check_workers_starts_pilots(jar):
    jar.env["JJ_MAX_WORKERS"] = "2"
    names = [jar.submit("true") for _ in range(4)]
    out = jar.run("check_workers", "--exit-when-empty", check=True).stdout
    started = [line.split()[1] for line in out.splitlines() if line.startswith("started")]
    assert len(started) == 2
    pids = [int(w.rsplit(".", 1)[1]) for w in started]
    jar.worker_pids.extend(pids)
    for worker, pid in zip(started, pids):
        assert "stop: exit-when-empty" in ended(jar, worker, pid)
    assert sorted(jar.completed()) == sorted(names)


def test_a_foreground_pilot_returns_when_done(jar):
    """``srun start_worker --foreground --exit-when-empty``: the command itself ends."""
    names = [jar.submit("true") for _ in range(2)]
    result = jar.run("start_worker", "--foreground", "--exit-when-empty", "--max-jobs", "5",
                     check=True, timeout=120)
    worker = result.stdout.strip()
    assert sorted(jar.completed()) == sorted(names)
    assert "stop: exit-when-empty" in (jar.workers_dir / worker / "log").read_text()
