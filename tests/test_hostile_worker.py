"""A worker in a hostile or faulty world (issue 11): nothing run twice, no crash loops.

Each test is one class of trouble a worker meets without any fault of its
own: a heartbeat it cannot touch, output it cannot keep, malformed files,
another user's directories, planted links, a previous job's daemon, names
made to forge log lines, a jar deleted under it.  Real workers, real jobs;
the two-user ones run as two real Unix users (``team``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from conftest import BIN, pid_alive, wait_for


def worker_pid(name: str) -> int:
    return int(name.rsplit(".", 1)[1])


def log_of(jar, worker: str) -> str:
    return (jar.workers_dir / worker / "log").read_text()


def status(jar, name: str) -> str | None:
    record = jar.record(name)
    return record and record.get("status")


# -- 1: a heartbeat that cannot be touched ---------------------------------------


def test_a_heartbeat_it_cannot_touch_never_hands_back_the_running_job(team):
    """Someone replaces the heartbeat with a file the worker may not touch: the job runs once."""
    shared = team.root / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    go = shared / "go"
    worker = team.start_worker("bob")
    job = team.run("bob", "submit_job", f"echo run >> {shared}/runs; "
                   f"while [ ! -e {go} ]; do sleep 0.05; done")
    name = job.stdout.strip()
    wait_for(lambda: (shared / "runs").exists(), message="the job runs")
    heartbeat = team.home / "workers" / worker / "heartbeat"

    def replace_heartbeat(path):  # ann's file, read-only for the group: bob cannot touch it
        planted = path.with_name(".planted")
        planted.write_text("")
        planted.chmod(0o644)
        os.rename(planted, path)

    team.as_user("ann", replace_heartbeat, heartbeat)
    log = team.home / "workers" / worker / "log"
    wait_for(lambda: "heartbeat: " in log.read_text(), message="the failed beat, logged")
    go.touch()
    done = team.home / "completed" / name
    wait_for(done.exists, message="the job completes")
    from jobjar import records

    record = records.read(team.home / "results" / f"{name}.yaml")
    assert (shared / "runs").read_text() == "run\n"  # exactly once
    assert record["status"] == "succeeded" and record["attempt"] == 1
    assert len(record["attempts"]) == 1 and record["recoveries"] == 0
    assert pid_alive(worker_pid(worker))
    assert os.stat(heartbeat).st_uid == team.uid["bob"]  # replaced by a heartbeat of its own


# -- 3: output that cannot be kept ----------------------------------------------


def test_a_job_whose_output_cannot_be_kept_is_finished_not_run_again(jar):
    """``output/NAME.out`` is a directory: the job ran, keeps its status, and runs no more."""
    runs = jar.root / "runs"
    jar.path("output", "outdir.0.out").mkdir(parents=True)
    jar.submit_by_hand("outdir.0", f"#!/bin/sh\necho run >> {runs}\necho hello\n")
    worker = jar.start_worker()
    jar.wait_completed(1)
    record = jar.record("outdir.0")
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert "could not be renamed" in record["reason"]
    assert open(record["stdout"]).read() == "hello\n"  # kept, under its hidden name
    assert record["attempt"] == 1 and record["recoveries"] == 0
    assert runs.read_text() == "run\n"
    assert jar.completed() == ["outdir.0"]
    after = jar.submit("true")
    wait_for(lambda: status(jar, after) == "succeeded", message="the worker carries on")
    assert runs.read_text() == "run\n"
    assert "error while handling" not in log_of(jar, worker)


# -- 6: malformed directives ---------------------------------------------------


def test_malformed_directives_fail_their_job_and_no_worker_dies(jar):
    """``--retries --5`` and ``--retries ²``, waiting and queued: failed, set aside, logged."""
    bad = {"neg.0": "#JJ --retries --5", "sup.0": "#JJ --retries \u00b2"}
    jar.path("waiting").mkdir(parents=True)
    for name, line in bad.items():
        jar.submit_by_hand(name, f"#!/bin/sh\n{line}\ntrue\n")
        waiting = jar.path("waiting", f"w{name}")
        waiting.write_text(f"#!/bin/sh\n{line}\n#JJ --after nothing.0\ntrue\n")
        waiting.chmod(0o755)
    worker = jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 4, message="four jobs set aside")
    for name in (*bad, *(f"w{n}" for n in bad)):
        record = jar.record(name)
        assert record["status"] == "failed", record
        assert "retries" in record["reason"] or "directive" in record["reason"], record
    good = jar.submit("true")
    wait_for(lambda: status(jar, good) == "succeeded", message="a good job afterwards")
    assert pid_alive(worker_pid(worker))
    assert "fatal" not in log_of(jar, worker)


def test_a_fifo_or_link_in_waiting_is_set_aside_without_blocking_the_worker(jar):
    """Opening a fifo to read its directives would block every worker for good."""
    waiting = jar.path("waiting")
    waiting.mkdir(parents=True)
    os.mkfifo(waiting / "fifo.0")
    target = jar.root / "target"
    target.write_text("#!/bin/sh\n#JJ --after nothing.0\ntrue\n")
    os.symlink(target, waiting / "link.0")
    worker = jar.start_worker()
    good = jar.submit("true")
    wait_for(lambda: status(jar, good) == "succeeded", message="the worker carries on")
    wait_for(lambda: sorted(os.listdir(jar.path("rejected"))) == ["fifo.0", "link.0"],
             message="both set aside")
    assert status(jar, "fifo.0") == status(jar, "link.0") == "rejected"
    assert pid_alive(worker_pid(worker))


# -- 7: directories made with a colleague's umask -------------------------------


def test_directories_a_worker_cannot_use_are_skipped_with_one_line(team):
    """ann's umask 022 and 077 directories: bob's worker skips them and runs other jobs."""
    env = {"JJ_NODE": "tnode"}
    home = team.home

    def plant(home):
        def job(directory, name):
            path = directory / name
            path.write_text("#!/bin/sh\ntrue\n")
            path.chmod(0o755)

        for state in ("unclaimed", "waiting"):
            (home / state).mkdir()  # umask 002, as docs/security.md says
        os.umask(0o022)  # a node category others cannot write: claims fail with EACCES
        node = home / "unclaimed" / "tnode"
        node.mkdir()
        job(node, "n1.0")
        job(node, "n2.0")
        os.umask(0o077)  # categories others cannot even list
        for directory in (home / "waiting" / "CAT", home / "unclaimed" / "CAT2"):
            directory.mkdir()
            job(directory, "hidden.0")

    team.as_user("ann", plant, home)
    worker = team.start_worker("bob", "CAT", "CAT2", env=env)
    names = [team.run("ann", "submit_job", "true", env=env).stdout.strip() for _ in range(3)]
    for name in names:
        wait_for((home / "completed" / name).exists, message="bob's worker runs ann's job")
    assert pid_alive(worker_pid(worker))
    log = (home / "workers" / worker / "log").read_text()
    assert len([line for line in log.splitlines() if "unclaimed/tnode" in line]) == 1, log
    assert "unclaimed/CAT2" in log and "waiting/CAT" in log
    assert sorted(os.listdir(home / "unclaimed" / "tnode")) == ["n1.0", "n2.0"]
    assert "fatal" not in log


# -- 10: planted links -----------------------------------------------------------


def test_planted_links_never_lead_output_or_scratch_outside_the_jar(jar):
    """Spare-output links to someone's file, and a job's scratch replaced by links."""
    sentinel = jar.root / "bashrc"
    sentinel.write_text("alias ls=ls\n")
    outside = jar.root / "outside"
    outside.mkdir()
    worker = jar.start_worker()
    wdir = jar.workers_dir / worker
    for suffix in ("out", "err"):
        os.symlink(sentinel, jar.path("output", f".spare.{worker}.{suffix}"))
    hijack = jar.submit("-p", "2", f'echo first; cd /; rm -rf "$JJ_SCRATCH_DIR"; '
                        f'ln -s {outside} "$JJ_SCRATCH_DIR"; '
                        f'rm -rf "{wdir}/scratch"; ln -s {outside} "{wdir}/scratch"; '
                        f'ln -s {outside} "{wdir}/.scratch-spare"')
    wait_for(lambda: status(jar, hijack) == "succeeded", message="the hijacking job")
    victim = jar.submit("pwd -P; touch here; echo err >&2")
    wait_for(lambda: status(jar, victim) == "succeeded", message="the next job")
    assert sentinel.read_text() == "alias ls=ls\n"
    assert os.listdir(outside) == []
    cwd = jar.path("output", f"{victim}.out").read_text().strip()
    assert cwd.startswith(str(wdir.resolve() / "scratch") + os.sep), cwd


# -- 12: a daemon left behind by a job ---------------------------------------------


def test_a_daemon_of_one_job_cannot_write_into_the_next_jobs_output_or_scratch(jar, tmp_path):
    """``setsid sh -c 'sleep; echo LATE; touch late'`` from A: B's output and scratch stay B's."""
    written = tmp_path / "daemon-done"
    jar.submit("-p", "2", f"setsid sh -c 'sleep 1.5; echo LATE; echo LATE >&2; touch late; "
               f"touch \"$JJ_SCRATCH_DIR/late-abs\"; touch {written}' &")
    second = jar.submit("-p", "1", f"while [ ! -e {written} ]; do sleep 0.05; done; ls -A")
    jar.start_worker()
    wait_for(lambda: status(jar, second) == "succeeded", message="the second job")
    assert written.exists()
    out = jar.path("output", f"{second}.out")
    assert not out.exists() or out.read_text() == "", out.read_text()  # an empty scratch
    assert not jar.path("output", f"{second}.err").exists()


# -- 14: names that forge log lines ------------------------------------------------


def test_a_new_line_in_a_job_name_cannot_forge_a_log_line(jar):
    forged = "FORGED 2026-01-01T00:00:00.000000Z finish other.0 succeeded"
    name = f"evil\n{forged}\x1b[2J.0"
    jar.submit_by_hand(name)
    worker = jar.start_worker()
    jar.wait_completed(1)
    wait_for(lambda: "finish" in log_of(jar, worker), message="the finish line")
    lines = log_of(jar, worker).splitlines()
    assert not [line for line in lines if line.startswith("FORGED")], lines
    assert not [line for line in lines if "\x1b" in line]
    assert any("evil\\nFORGED" in line for line in lines)


# -- 16: a jar deleted under a worker ------------------------------------------------


def test_a_worker_whose_jar_is_deleted_stops_with_one_line(jar):
    """No traceback: one line on its standard error, status 1 (it has nothing left to run)."""
    proc = subprocess.Popen([sys.executable, str(BIN / "start_worker"), "--foreground"],
                            env=jar.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        worker = proc.stdout.readline().strip()
        wait_for(lambda: "start" in log_of(jar, worker), message="the worker's start")
        info = (jar.workers_dir / worker / "info.yaml").read_text()
        assert "start_ticks" in info and "create_time" in info  # finding 2's identity

        def delete_jar():
            shutil.rmtree(jar.home, ignore_errors=True)
            return not jar.home.exists()

        wait_for(delete_jar, message="the jar deleted")
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "is gone" in err


def test_a_worker_runs_no_file_whose_owner_may_not_submit_to_its_queue(team):
    """However a file reached a queue, its owner must have been able to put it there.

    ``unclaimed/A`` is ann's (2755: only she may submit).  A file of bob's
    is put there by someone with more rights (here root, standing for any
    race between recovery or release and a swap): ann's worker must set it
    aside, not run bob's code as ann.
    """
    from jobjar import records

    assert team.run("ann", "check_workers", "--dry-run").returncode == 0
    queue = team.home / "unclaimed" / "A"
    queue.mkdir()
    os.chown(queue, team.uid["ann"], team.gid)
    queue.chmod(0o2755)
    marker = team.root / "ran-as-ann"
    planted = team.root / team.names["bob"] / "evil.0"
    planted.write_text(f"#!/bin/sh\nid -un > {marker}\n")
    os.chown(planted, team.uid["bob"], team.gid)
    planted.chmod(0o755)
    os.rename(planted, queue / "evil.0")
    own = team.run("ann", "submit_job", "-c", "A", "true")
    assert own.returncode == 0, own.stderr
    team.start_worker("ann", "A")
    record_of = team.home / "results"
    wait_for(lambda: (records.read(record_of / "evil.0.yaml") or {}).get("status"),
             message="the planted job's record")
    record = records.read(record_of / "evil.0.yaml")
    assert record["status"] == "rejected", record
    assert "may not submit to unclaimed/A" in record["reason"], record
    assert (team.home / "rejected" / "evil.0").exists()
    wait_for(lambda: (records.read(record_of / f"{own.stdout.strip()}.yaml") or {})
             .get("status") == "succeeded", message="ann's own job")
    assert not marker.exists()


def test_a_directory_at_a_workers_claimed_link_does_not_bounce_its_jobs(jar):
    """Finding 8: ``claimed/W`` made a directory (with something in it) used to make
    worker W hand back every job it claimed, for good; now its jobs run, once each."""
    jar.run("check_workers", "--dry-run", check=True)
    jar.env["JJ_PAUSE_TIME"] = "0.2"
    worker = jar.start_worker()
    planted = jar.path("claimed", worker)
    planted.mkdir()
    (planted / "junk").write_text("x")
    names = [jar.submit("true") for _ in range(3)]
    jar.wait_completed(3)
    for name in names:
        record = jar.record(name)
        assert record["status"] == "succeeded" and record["attempt"] == 1, record
        assert record["recoveries"] == 0, record
    assert pid_alive(worker_pid(worker))


def test_the_last_jobs_scratch_is_reused_only_when_nothing_of_it_runs(jar, tmp_path):
    """A worker reuses the empty scratch directory (and output files) of its last job,
    a rename instead of new inodes, only when no process of that job is left (it is a
    child subreaper); after a job that leaves a daemon, the next job gets new ones."""
    inodes = tmp_path / "inodes"
    done = tmp_path / "daemon-done"
    record = f'stat -c %i . >> {inodes}'
    jar.start_worker()

    def run(command: str) -> None:
        name = jar.submit(command)
        wait_for(lambda: status(jar, name) == "succeeded", message=command)

    run(record)
    run(record)
    run(f"{record}; setsid sh -c 'sleep 1; touch {done}' >/dev/null 2>&1 &")
    run(record)
    first, second, third, fourth = inodes.read_text().split()
    assert second == first, "a quiet job's scratch directory was not reused"
    assert third == second
    assert fourth != third, "the scratch of a job whose daemon still runs was reused"
    wait_for(done.exists, message="the daemon")
    jar.stop_all_workers()
    hidden = [n for n in os.listdir(jar.path("output")) if n.startswith(".")]
    assert hidden == [], hidden
