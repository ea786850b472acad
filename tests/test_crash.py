"""Crashes: SIGKILL at every step, on paths ``test_recover.py`` does not take, and chaos.

``test_recover.py`` kills a worker at each fault point on a plain job.  Here
the same points are hit on the *retry* path (a categorized, prioritized job
that fails once, ``#JJ --retries 1``), where a crash after the record leaves
a ``retrying`` record behind; ``submit_job`` is killed between limbo and
rename with a category and a dependency; ``recover_jobs`` is killed inside
the poison path, between two dead workers and inside the limbo clean-up.
Every job appends ``name attempt`` to one log, so extra runs are counted
exactly.  ``tests/test_units.py`` checks that every crash point of the
package has a test here and a line in ``docs/protocol.md``.

The chaos run: ``JJ_TEST_SCALE`` x 4,000 jobs (CI default 4,000), four
workers killed by SIGKILL at random moments while ``check_workers`` and
``recover_jobs`` run in a loop as cron would.  In the end nothing is lost,
nothing completed twice, and a job ran more than once only if a recovery
put it back (its record counts the recoveries).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from conftest import BIN, ROOT, pid_alive, wait_for

SCALE = float(os.environ.get("JJ_TEST_SCALE", "1") or 1)
POINTS = ["after-claim", "after-link", "after-scratch", "while-running", "after-exit",
          "after-record", "after-move", "after-unlink"]
DAY = 24 * 3600


def job_body(log) -> str:
    """A job that logs ``name attempt`` and fails its first attempt if named ``flaky*``."""
    return ("#!/bin/sh\n#JJ --retries 1\n"
            f'echo "$JJ_JOB_NAME $JJ_ATTEMPT" >> "{log}"\n'
            'case "$JJ_JOB_NAME" in flaky*) [ "$JJ_ATTEMPT" -gt 1 ] || exit 3;; esac\n')


def runs(log) -> Counter:
    try:
        return Counter(line.split()[0] for line in log.read_text().splitlines())
    except FileNotFoundError:
        return Counter()


def worker_pid(name: str) -> int:
    return int(name.rsplit(".", 1)[1])


def held(jar) -> list[str]:
    return [str(p) for p in jar.workers_dir.glob("*/job/**/*") if p.is_file()]


def settled(jar, names) -> None:
    """All jobs completed once, nothing claimed, held, queued, or left in scratch."""
    wait_for(lambda: sorted(jar.completed()) == sorted(names), message="all completed")
    wait_for(lambda: os.listdir(jar.path("claimed")) == [], message="no claimed links")
    assert held(jar) == []
    assert not [p for p in jar.path("unclaimed").rglob("*") if p.is_file()]
    assert scratch_left(jar) == []


def scratch_left(jar) -> list[str]:
    """Scratch directories left behind: anything but a live worker's one empty kept one."""
    left = []
    for worker in jar.workers_dir.glob("*/scratch"):
        entries = list(worker.iterdir())
        alive = pid_alive(worker_pid(worker.parent.name)) and \
            not (worker.parent / "exited").exists()
        kept = alive and len(entries) == 1 and entries[0].is_dir() \
            and not entries[0].is_symlink() and not any(entries[0].iterdir())
        left += [] if kept else [str(p) for p in entries]
    return left


#: The other ways a claimed job leaves a worker, and the points each one passes.
BRANCHES = [(branch, point) for branch in ("rejected", "cancelled", "waiting")
            for point in ("after-link", "after-exit", "after-record", "after-move",
                          "after-unlink")
            if not (branch == "waiting" and point == "after-record")]  # waiting has no record


@pytest.mark.parametrize("branch,point", BRANCHES)
def test_crash_on_the_other_ways_out(jar, branch, point):
    """A worker killed while setting aside a non-job, a cancelled job, or a waiting job.

    After ``recover_jobs`` and fresh workers: a non-job ends in ``rejected/``
    once and never runs; a job cancelled before it started ends
    ``cancelled`` and never runs, its request gone; a job waiting for a
    dependency runs once, after it.
    """
    log = jar.root / "runs.log"
    line = f'#!/bin/sh\necho "$JJ_JOB_NAME $JJ_ATTEMPT" >> "{log}"\n'
    name = f"{branch}.0"
    if branch == "rejected":
        jar.submit_by_hand(name, line, mode=0o644)  # not executable
    elif branch == "cancelled":
        jar.path("cancel").mkdir(parents=True, exist_ok=True)
        (jar.path("cancel") / name).touch()  # the request came first (see docs/jobs.md)
        jar.submit_by_hand(name, line)
    else:  # its dependency sits in a category only the later workers serve
        jar.submit_by_hand("dep.0", line, category="later")
        jar.submit_by_hand(name, line.replace("\n", "\n#JJ --after dep.0\n", 1))
    victim = jar.start_worker(env={"JJ_FAULT": point})
    wait_for(lambda: not pid_alive(worker_pid(victim)), message="the worker dies")
    jar.run("recover_jobs", check=True)
    jar.start_worker("later")
    jar.start_worker("later")
    expected = {"rejected": [], "cancelled": [name], "waiting": ["dep.0", name]}[branch]
    settled(jar, expected)
    counts = runs(log)
    record = jar.record(name)
    if branch == "rejected":
        wait_for(lambda: os.listdir(jar.path("rejected")) == [name], message="set aside")
        assert record["status"] == "rejected" and counts == Counter()
    elif branch == "cancelled":
        assert record["status"] == "cancelled" and counts == Counter()
        jar.run("recover_jobs", check=True)  # settles a request the crash left behind
        assert os.listdir(jar.path("cancel")) == []
    else:
        assert counts == Counter({"dep.0": 1, name: 1})
        assert record["status"] == "succeeded"
        assert jar.record("dep.0")["finished"] < record["started"]
        assert os.listdir(jar.path("waiting")) == []


@pytest.mark.parametrize("point", POINTS)
def test_crash_on_the_retry_path(jar, point):
    log = jar.root / "runs.log"
    body = job_body(log)
    flaky = jar.submit_by_hand("flaky.5", body, category="cat").name
    others = [jar.submit_by_hand(f"plain{i}.0", body).name for i in range(2)]
    victim = jar.start_worker("cat", env={"JJ_FAULT": point})
    wait_for(lambda: not pid_alive(worker_pid(victim)), message="the worker dies")
    if point in ("while-running",):  # the orphaned first attempt still logs itself
        wait_for(lambda: runs(log)[flaky] == 1, message="orphan done")
    report = jar.run("recover_jobs", check=True).stdout
    if point not in ("after-move", "after-unlink"):  # later, only a link or scratch is left
        assert victim in report
    jar.start_worker("cat")
    jar.start_worker("cat")
    settled(jar, [flaky, *others])
    counts = runs(log)
    assert counts[others[0]] == counts[others[1]] == 1
    record = jar.record(flaky)
    assert record["status"] == "succeeded" and record["category"] == "cat", record
    assert record["priority"] == 5
    statuses = [a["status"] for a in record["attempts"]]
    assert statuses.count("succeeded") == 1 and statuses[-1] == "succeeded", statuses
    ran_before_crash = point in ("while-running", "after-exit")
    assert counts[flaky] == (3 if ran_before_crash else 2), (counts, statuses, report)
    if point in ("after-record", "after-move", "after-unlink"):
        assert record["recoveries"] == 0 and statuses == ["failed", "succeeded"]
    else:
        assert record["recoveries"] == 1 and "lost" in statuses


def test_same_worker_dies_in_its_own_retry(jar):
    """The worker that wrote the ``retrying`` record claims the job again and dies running it.

    That is a lost attempt (counted towards poisoning), not a lost move.
    """
    log = jar.root / "runs.log"
    flaky = jar.submit_by_hand("flaky.0", job_body(log)).name
    victim = jar.start_worker(env={"JJ_FAULT": "after-exit@2"})
    wait_for(lambda: not pid_alive(worker_pid(victim)), message="dies in attempt 2")
    report = jar.run("recover_jobs", check=True).stdout
    assert "put back in unclaimed/" in report, report
    assert jar.record(flaky)["recoveries"] == 1
    jar.start_worker()
    settled(jar, [flaky])
    record = jar.record(flaky)
    assert record["status"] == "succeeded" and record["recoveries"] == 1
    assert [a["status"] for a in record["attempts"]] == ["failed", "lost", "succeeded"]


def test_same_worker_dies_running_a_reused_name(jar):
    """A finished job's name submitted again, and its worker dies running it: not lost."""
    log = jar.root / "runs.log"
    body = job_body(log)
    jar.submit_by_hand("again.0", body)
    victim = jar.start_worker(env={"JJ_FAULT": "after-scratch@2"})
    jar.wait_completed(1)
    jar.submit_by_hand("again.0", body.replace("#JJ --retries 1\n", "echo second >> "
                                               f"{jar.root}/second\n"))
    wait_for(lambda: not pid_alive(worker_pid(victim)), message="dies on the second one")
    report = jar.run("recover_jobs", check=True).stdout
    assert "put back" in report and "had finished" not in report, report
    jar.start_worker()
    wait_for(lambda: (jar.root / "second").exists(), message="the second job ran")
    settled(jar, ["again.0"])
    assert runs(log)["again.0"] == 2
    assert jar.record("again.0")["status"] == "succeeded"


@pytest.mark.parametrize("how", ["command", "python"])
def test_submission_killed_before_the_rename(jar, how):
    marker = jar.root / "ran"
    first = jar.submit("true")
    env = {"JJ_FAULT": "submit-after-limbo"}
    if how == "command":
        result = jar.run("submit_job", "-c", "cat", "--after", first, "touch", str(marker),
                         env=env)
    else:
        code = ("import jobjar, sys; jobjar.submit_job(sys.argv[1], category='cat', "
                "after=[sys.argv[2]])")
        result = subprocess.run([sys.executable, "-c", code, f"touch {marker}", first],
                                env={**jar.env, **env, "PYTHONPATH": str(ROOT)})
    assert result.returncode == -signal.SIGKILL
    (left,) = os.listdir(jar.path("limbo"))
    assert not jar.path("waiting").exists() or not any(jar.path("waiting").rglob("*"))
    assert jar.run("recover_jobs", check=True).stdout == ""  # young: perhaps still copying
    assert os.listdir(jar.path("limbo")) == [left]
    old = time.time() - 2 * DAY
    os.utime(jar.path("limbo", left), (old, old))
    assert "moved from limbo/ to rejected/" in jar.run("recover_jobs", check=True).stdout
    assert os.listdir(jar.path("limbo")) == [] and os.listdir(jar.path("rejected")) == [left]
    jar.start_worker("cat")
    jar.wait_completed(1)
    assert jar.completed() == [first] and not marker.exists()
    assert "abandoned" in jar.record(left)["reason"]


def test_recover_jobs_killed_in_the_limbo_clean_up(jar):
    jar.run("check_workers", "--dry-run", check=True)
    limbo = jar.path("limbo")
    for name in ("old1.0", "old2.0"):
        (limbo / name).write_text("#!/bin/sh\ntrue\n")
        os.utime(limbo / name, (time.time() - 2 * DAY,) * 2)
    first = jar.run("recover_jobs", env={"JJ_FAULT": "recover-limbo"})
    assert first.returncode == -signal.SIGKILL
    jar.run("recover_jobs", check=True)
    assert os.listdir(limbo) == []
    assert sorted(os.listdir(jar.path("rejected"))) == ["old1.0", "old2.0"]
    for name in ("old1.0", "old2.0"):
        record = jar.record(name)
        assert record and record["status"] == "rejected" and "abandoned" in record["reason"]


@pytest.mark.parametrize("point", ["recover-after-record", "recover-after-move"])
def test_recover_jobs_killed_while_poisoning(jar, point):
    """A job that exhausted its recoveries is poisoned exactly once, even if recovery dies."""
    jar.env["JJ_MAX_RECOVERIES"] = "0"
    name = jar.submit_by_hand("doomed.0", "#!/bin/sh\ntouch \"$JJ_HOME/../ran\"\n",
                              category="cat").name
    victim = jar.start_worker("cat", env={"JJ_FAULT": "after-scratch"})
    wait_for(lambda: not pid_alive(worker_pid(victim)))
    assert jar.run("recover_jobs", env={"JJ_FAULT": point}).returncode == -signal.SIGKILL
    second = jar.run("recover_jobs", check=True).stdout
    assert jar.run("recover_jobs", check=True).stdout == ""
    assert jar.completed() == [name], second
    record = jar.record(name)
    assert record["status"] == "poisoned" and record["recoveries"] == 1, record
    assert [a["status"] for a in record["attempts"]] == ["lost"]
    assert held(jar) == [] and os.listdir(jar.path("claimed")) == []
    assert not (jar.root / "ran").exists()


def test_recover_jobs_killed_between_two_dead_workers(jar):
    """Killed after repairing one dead worker: the next run repairs the other, only it.

    The first worker's job went back to its own category and is not counted
    again; the second worker's job is still held until the second run.
    """
    log = jar.root / "runs.log"
    body = job_body(log)
    names = {cat: jar.submit_by_hand(f"{cat}job.{i}", body, category=cat).name
             for i, cat in enumerate(("red", "blue"))}
    victims = {cat: jar.start_worker(cat, env={"JJ_FAULT": "after-scratch"})
               for cat in names}
    for victim in victims.values():
        wait_for(lambda v=victim: not pid_alive(worker_pid(v)), message="the worker dies")
    assert len(held(jar)) == 2
    first = jar.run("recover_jobs", env={"JJ_FAULT": "recover-after-worker"})
    assert first.returncode == -signal.SIGKILL
    assert len(held(jar)) == 1
    (requeued,) = [cat for cat in names if jar.path("unclaimed", cat, names[cat]).exists()]
    (other,) = set(names) - {requeued}
    second = jar.run("recover_jobs", check=True).stdout
    assert victims[other] in second and victims[requeued] not in second, second
    assert held(jar) == [] and os.listdir(jar.path("claimed")) == []
    assert scratch_left(jar) == []
    assert jar.run("recover_jobs", check=True).stdout == ""
    for cat in names:
        jar.start_worker(cat)
    settled(jar, list(names.values()))
    assert runs(log) == Counter({name: 1 for name in names.values()})
    for cat, name in names.items():
        record = jar.record(name)
        assert record["status"] == "succeeded" and record["category"] == cat, record
        assert record["recoveries"] == 1
        assert [a["status"] for a in record["attempts"]] == ["lost", "succeeded"]


# -- chaos ----------------------------------------------------------------------------------

CHAOS_JOBS = max(100, int(4000 * SCALE))


class Cron(threading.Thread):
    """``check_workers`` then ``recover_jobs``, over and over, as cron would."""

    def __init__(self, jar) -> None:
        super().__init__(daemon=True)
        self.jar, self.stop, self.errors, self.rounds = jar, threading.Event(), [], 0

    def run(self) -> None:
        while not self.stop.is_set():
            for command in ("check_workers", "recover_jobs"):
                result = subprocess.run([str(BIN / command)], env=self.jar.env,
                                        capture_output=True, text=True, timeout=120)
                if result.returncode != 0 or "Traceback" in result.stderr:
                    self.errors.append(f"{command}: {result.stderr}")
                for line in result.stdout.splitlines():
                    if line.startswith("started "):
                        self.jar.worker_pids.append(worker_pid(line.split()[1]))
            self.rounds += 1
            self.stop.wait(0.2)


class Killer(threading.Thread):
    """SIGKILL a random live worker every few tens of milliseconds."""

    def __init__(self, jar) -> None:
        super().__init__(daemon=True)
        self.jar, self.stop, self.kills = jar, threading.Event(), 0
        self.rng = random.Random(os.environ.get("JJ_TEST_SEED", "7"))

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(0.05, 0.4)):
            alive = [p for p in list(self.jar.worker_pids) if pid_alive(p)]
            if alive:
                try:
                    os.kill(self.rng.choice(alive), signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    pass


def test_chaos_random_sigkills_while_cron_repairs(jar):
    log = jar.root / "runs.log"
    jar.env.update(JJ_MAX_WORKERS="4", JJ_CATEGORIES="chaos", JJ_MAX_RECOVERIES="100000")
    jar.run("check_workers", "--dry-run", check=True)
    names = []
    for i in range(CHAOS_JOBS):
        body = job_body(log) + ("sleep 0.05\n" if i % 10 == 0 else "")
        prefix = "flaky" if i % 25 == 0 else "job"
        names.append(jar.submit_by_hand(f"{prefix}{i}.{i % 3}", body,
                                        category="chaos" if i % 2 else None).name)
    cron, killer = Cron(jar), Killer(jar)
    cron.start()
    wait_for(lambda: jar.worker_pids, message="cron started workers")
    killer.start()
    try:
        wait_for(lambda: len(jar.completed()) >= CHAOS_JOBS, timeout=240 * max(1.0, SCALE),
                 interval=0.25, message=f"{CHAOS_JOBS} jobs completed under chaos")
    finally:
        killer.stop.set()
        killer.join()
        cron.stop.set()
        cron.join()
    assert not cron.errors, cron.errors[:3]
    assert killer.kills >= 5, f"only {killer.kills} kills: the chaos was too mild to mean much"
    jar.run("recover_jobs", check=True)  # the links of workers killed after their last move
    settled(jar, names)

    counts = runs(log)
    assert set(counts) == set(names), "a job never ran"
    reruns = 0
    for name in names:
        record = jar.record(name)
        assert record["status"] == "succeeded", record
        statuses = [a["status"] for a in record["attempts"]]
        assert statuses.count("succeeded") == 1, (name, statuses)
        normal = 2 if name.startswith("flaky") else 1
        extra = counts[name] - normal
        assert 0 <= extra <= record["recoveries"], (name, counts[name], record, [
            line for line in log.read_text().splitlines() if line.split()[0] == name])
        reruns += extra
    assert reruns <= killer.kills
