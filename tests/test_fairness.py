"""JJ_FAIR_SHARE and JJ_USER_LIMIT with real workers (two real users when root)."""

from __future__ import annotations

import os
import re

import pytest

from conftest import wait_for


def claims(log: str) -> list[str]:
    """Job names in the order a worker claimed them (its log)."""
    return re.findall(r" claim (\S+)$", log, re.MULTILINE)


def submit_as(team, who: str, count: int, command: str = "true") -> list[str]:
    names = []
    for _ in range(count):
        result = team.run(who, "submit_job", command)
        assert result.returncode == 0, result.stderr
        names.append(result.stdout.strip())
    return names


def completed(home) -> set[str]:
    try:
        return set(os.listdir(home / "completed"))
    except FileNotFoundError:
        return set()


def run_one_worker(team, fair: str) -> list[str]:
    """ann submits 30 jobs, then bob 5; one worker runs them all; the order it claimed them."""
    ann = submit_as(team, "ann", 30)
    bob = submit_as(team, "bob", 5)
    worker = team.start_worker("ann", env={"JJ_FAIR_SHARE": fair})
    wait_for(lambda: set(ann + bob) <= completed(team.home), 120, message="all 35 jobs")
    order = claims((team.home / "workers" / worker / "log").read_text())
    assert sorted(order) == sorted(ann + bob)
    team.run("ann", "stop_worker", worker)
    return [order.index(name) for name in bob]


def test_fair_share_interleaves_two_users_jobs(team):
    # as the guide says, by default: priority, then age: bob waits for all of ann's jobs
    assert run_one_worker(team, "no") == list(range(30, 35))
    # fair share: among equal priorities, the user with fewer running jobs, in turns
    places = run_one_worker(team, "yes")
    assert max(places) < 12, places  # ann, bob, ann, bob...: bob's five are among the first


def test_user_limit_holds_a_users_third_job_while_another_users_runs(team):
    flag = team.root / "go"
    blocked = f"while [ ! -e {flag} ]; do sleep 0.05; done"
    ann = submit_as(team, "ann", 3, blocked)
    bob = submit_as(team, "bob", 1)
    env = {"JJ_USER_LIMIT": "2"}
    claimed = team.home / "claimed"
    for busy in (1, 2):  # one at a time: workers that count at the same instant may overshoot
        team.start_worker("ann", env=env)
        wait_for(lambda busy=busy: claimed.is_dir() and len(os.listdir(claimed)) == busy,
                 60, message=f"{busy} of ann's jobs running")
    team.start_worker("ann", env=env)  # without the limit, it would take ann's third job
    wait_for(lambda: bob[0] in completed(team.home), 60, message="bob's job")
    assert (team.home / "unclaimed" / ann[2]).exists()
    assert len(os.listdir(claimed)) == 2
    flag.touch()
    wait_for(lambda: set(ann) <= completed(team.home), 60, message="ann's jobs once released")


def test_user_limit_with_one_user(jar):
    flag = jar.root / "go"
    first = jar.submit(f"while [ ! -e {flag} ]; do sleep 0.05; done")
    second = jar.submit("true")
    env = {"JJ_USER_LIMIT": "1"}
    jar.start_worker(env=env)
    wait_for(lambda: jar.path("claimed").is_dir() and os.listdir(jar.path("claimed")),
             message="the first job running")
    late = jar.start_worker(env=env)
    third = jar.submit("true")  # a submission wakes the idle worker: it must still skip
    heartbeat = jar.workers_dir / late / "heartbeat"
    beats = set()  # a few heartbeats: the worker has been round its loop several times
    wait_for(lambda: beats.add(heartbeat.stat().st_mtime_ns) or len(beats) >= 3,
             message="the second worker's heartbeats")
    assert jar.path("unclaimed", second).exists() and jar.path("unclaimed", third).exists()
    assert first not in jar.completed()
    flag.touch()
    jar.wait_completed(3)


def test_fair_share_keeps_priorities_first(jar):
    low = [jar.submit("-p", "-5", "true") for _ in range(3)]
    high = [jar.submit("-p", "5", "true") for _ in range(3)]
    worker = jar.start_worker(env={"JJ_FAIR_SHARE": "yes"})
    jar.wait_completed(6)
    order = claims((jar.workers_dir / worker / "log").read_text())
    assert order == high + low


def test_the_fair_view_orders_by_priority_then_running_then_turns(tmp_path):
    """The claim order itself, on real files of three owners (root: chown)."""
    from jobjar.claim import FairQueueView, Running, running_per_user

    if os.geteuid() != 0:
        pytest.skip("needs root to give files to other users")
    ann, bob, carol = 60001, 60002, 60003
    queue, taken = tmp_path / "unclaimed", tmp_path / "workers" / "w.1" / "job"
    claimed = tmp_path / "claimed"
    for path in (queue, taken, claimed):
        path.mkdir(parents=True)
    jobs = [("a1", ann), ("a2", ann), ("a3", ann), ("b1", bob), ("b2", bob), ("c1.5", carol)]
    for age, (name, uid) in enumerate(jobs):
        (queue / name).write_text("#!/bin/sh\n")
        os.chown(queue / name, uid, 0)
        os.utime(queue / name, ns=(age * 10**9, age * 10**9))
    workers = tmp_path / "workers"

    def claim_all(view) -> list[str]:
        order = [view.claim(taken) for _ in range(len(jobs) + 1)]
        assert order[-1] is None
        names = [path.name for path in order[:-1] if path]
        for name in names:  # back in the queue, as they were
            os.rename(taken / name, queue / name)
        return names

    # nobody runs anything: the highest priority, then ann and bob in turns, each oldest first
    fair = FairQueueView(queue, running=Running(claimed, workers, 0.0))
    assert claim_all(fair) == ["c1.5", "a1", "b1", "a2", "b2", "a3"]
    # bob runs one job elsewhere in the jar: among equals, ann's come first
    running = workers / "w.2" / "job" / "b0"
    running.parent.mkdir(parents=True)
    running.write_text("")
    os.chown(running, bob, 0)
    os.symlink("../workers/w.2/job/b0", claimed / "w.2")
    os.symlink("/etc/passwd", claimed / "w.3")  # outside the workers' home: no one's
    assert running_per_user(claimed, workers) == {bob: 1}
    fair = FairQueueView(queue, running=Running(claimed, workers, 0.0))
    assert claim_all(fair) == ["c1.5", "a1", "a2", "a3", "b1", "b2"]
    # a limit of one without fair share: bob (running one) is skipped, the rest by age
    limited = FairQueueView(queue, running=Running(claimed, workers, 0.0), fair=False, limit=1)
    assert claim_all(limited) == ["c1.5", "a1", "a2", "a3"]
