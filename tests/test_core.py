"""The core protocol end to end: submission, claim order, control files, the job's world."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from conftest import ROOT, wait_for

LOG_JOB = '#!/bin/sh\necho "$JJ_JOB_NAME" >> "$JJ_HOME/../order.log"\n'


def read_log(jar) -> list[str]:
    try:
        return (jar.root / "order.log").read_text().split()
    except FileNotFoundError:
        return []


def test_manual_cp_mv_submission_with_priority_extension(jar):
    job = jar.root / "standalone_job"
    job.write_text('#!/bin/sh\necho "prio=$JJ_PRIORITY"\n')
    job.chmod(0o755)
    limbo = jar.path("limbo")
    limbo.mkdir(parents=True)
    os.system(f"cd {limbo} && cp {job} ./standalone_job.15 && mkdir -p ../unclaimed "
              "&& mv standalone_job.15 ../unclaimed")
    jar.start_worker()
    jar.wait_completed(1)
    record = jar.record("standalone_job.15")
    assert record["status"] == "succeeded"
    assert record["priority"] == 15
    assert (jar.path("output", "standalone_job.15.out").read_text() == "prio=15\n")
    assert not os.listdir(jar.path("limbo"))


def test_claim_order_priorities_ages_categories(jar):
    from jobjar import control

    control.pause_all()
    node = jar.env["JJ_NODE"] = "orderhost"
    now = time.time()
    plan = [  # (name, category, age in seconds)
        ("u-low.-3", None, 50), ("u-old.0", None, 40), ("u-new.0", None, 10),
        ("u-high.7", None, 5), ("a-1.2", "A", 30), ("a-2.2", "A", 20), ("a-top.9", "A", 1),
        ("b-1.100", "B", 1), ("node-job.-50", node, 1), ("z-ignored.99", "C", 1),
    ]
    for name, category, age in plan:
        src = jar.path("limbo", name)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(LOG_JOB)
        src.chmod(0o755)
        os.utime(src, (now - age, now - age))
        target = jar.path("unclaimed", *(filter(None, [category])), name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, target)
    # Same priority and age: the name breaks the tie.
    for name in ("tie-b.1", "tie-a.1"):
        path = jar.submit_by_hand(name, LOG_JOB)
        os.utime(path, (now - 100, now - 100))
    jar.start_worker("A", "B")
    control.unpause_all()
    wait_for(lambda: len(read_log(jar)) == 11, message="11 jobs run")
    assert read_log(jar) == ["node-job.-50", "a-top.9", "a-1.2", "a-2.2", "b-1.100",
                             "u-high.7", "tie-a.1", "tie-b.1", "u-old.0", "u-new.0", "u-low.-3"]
    assert os.listdir(jar.path("unclaimed", "C")) == ["z-ignored.99"]


def test_per_node_category_runs_only_on_that_node(jar):
    jar.submit("-c", "nodeB", "hostname_is=$JJ_NODE; echo $hostname_is")
    jar.start_worker(env={"JJ_NODE": "nodeA"})
    other = jar.submit("-c", "nodeA", "echo $JJ_NODE")
    jar.wait_completed(1)
    assert jar.completed() == [other]
    assert len(os.listdir(jar.path("unclaimed", "nodeB"))) == 1
    jar.start_worker(env={"JJ_NODE": "nodeB"})
    jar.wait_completed(2)
    outs = sorted(p.read_text().strip() for p in jar.path("output").glob("*.out"))
    assert outs == ["nodeA", "nodeB"]


def test_default_node_is_short_host_name(jar):
    name = jar.start_worker()
    assert name.rsplit(".", 1)[0] == socket.gethostname().split(".")[0]


def test_job_environment_and_scratch_directory(jar):
    script = jar.root / "envjob"
    script.write_text("#!/bin/sh\n"
                      "env | grep '^JJ_' | sort > \"$JJ_HOME/../env.txt\"\n"
                      "pwd > \"$JJ_HOME/../cwd.txt\"\n"
                      "test -d \"$JJ_SCRATCH_DIR\" && touch \"$JJ_SCRATCH_DIR/leftover\"\n"
                      "cat \"$JJ_JOB_FILE\" > /dev/null && echo ok\n")
    script.chmod(0o755)
    name = jar.submit("-p", "4", "-c", "LINUX", "-f", str(script))
    worker = jar.start_worker("LINUX")
    jar.wait_completed(1)
    env = dict(line.split("=", 1) for line in (jar.root / "env.txt").read_text().splitlines())
    wdir = jar.home / "workers" / worker
    assert env["JJ_HOME"] == str(jar.home)
    assert env["JJ_WORKER_HOME"] == str(jar.home / "workers")
    assert env["JJ_WORKER_DIR"] == str(wdir)
    scratch = env["JJ_SCRATCH_DIR"]  # workers/W/scratch/T: a new name for every job
    assert os.path.dirname(scratch) == str(wdir / "scratch")
    assert env["JJ_JOB_NAME"] == name
    assert env["JJ_JOB_FILE"] == str(wdir / "job" / "LINUX" / name)
    assert env["JJ_NODE"] == worker.rsplit(".", 1)[0]
    assert env["JJ_CATEGORY"] == "LINUX"
    assert env["JJ_PRIORITY"] == "4"
    assert env["JJ_ATTEMPT"] == "1"
    assert (jar.root / "cwd.txt").read_text().strip() == scratch
    wait_for(lambda: not os.path.exists(scratch), message="scratch removed")
    assert jar.path("output", f"{name}.out").read_text() == "ok\n"
    assert not os.listdir(jar.path("claimed"))


def test_uncategorized_env_is_empty_category(jar):
    jar.submit('echo "[$JJ_CATEGORY]"')
    jar.start_worker()
    (name,) = jar.wait_completed(1)
    assert jar.path("output", f"{name}.out").read_text() == "[]\n"


def test_seed_job_submits_into_the_same_jar(jar):
    seed = jar.root / "distribute"
    seed.write_text("#!/bin/sh\nfor i in 1 2 3; do submit_job -i part$i echo part $i; done\n"
                    "python3 -c 'import jobjar; print(jobjar.submit_job(\"echo from python\"))'\n")
    seed.chmod(0o755)
    jar.submit("-f", str(seed))
    jar.start_worker()
    done = jar.wait_completed(5)
    outputs = sorted(jar.path("output", f"{n}.out").read_text().strip() for n in done)
    assert "from python" in outputs and "part 2" in outputs
    assert all(jar.record(n)["status"] == "succeeded" for n in done)


def test_stop_file_stops_one_worker_after_its_job(jar):
    first = jar.start_worker()
    second = jar.start_worker()
    gate = jar.root / "gate"
    jar.submit(f"while [ ! -e {gate} ]; do sleep 0.05; done")
    running = wait_for(lambda: os.listdir(jar.path("claimed")), message="job claimed")
    busy = running[0]
    idle = second if busy == first else first
    (jar.home / "workers" / busy / "STOP").touch()
    (jar.home / "workers" / idle / "STOP").touch()
    wait_for(lambda: (jar.home / "workers" / idle / "exited").exists(), message="idle exits")
    assert not (jar.home / "workers" / busy / "exited").exists()  # finishing its job first
    gate.touch()
    wait_for(lambda: (jar.home / "workers" / busy / "exited").exists(), message="busy exits")
    assert len(jar.completed()) == 1
    assert (jar.home / "workers" / busy).is_dir()  # directories are kept


def test_stop_all_stops_current_and_new_workers(jar):
    worker = jar.start_worker()
    (jar.home / "workers" / "STOP_ALL").touch()
    wait_for(lambda: (jar.home / "workers" / worker / "exited").exists(), message="exit")
    queued = jar.submit("true")  # waiting for a worker when the new one starts
    late = jar.start_worker()
    wait_for(lambda: (jar.home / "workers" / late / "exited").exists(), message="new exits")
    assert jar.completed() == [] and jar.path("unclaimed", queued).exists()
    assert "claim" not in (jar.home / "workers" / late / "log").read_text()


def test_pause_and_pause_all(jar):
    worker = jar.start_worker()
    wdir = jar.home / "workers" / worker
    (wdir / "PAUSE").touch()
    time.sleep(0.1)  # let the worker reach its next check
    name = jar.submit("true")
    # Paused: the job stays unclaimed across several pause periods.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert jar.completed() == []
        time.sleep(0.1)
    os.unlink(wdir / "PAUSE")
    jar.wait_completed(1)
    (jar.home / "workers" / "PAUSE_ALL").touch()
    newcomer = jar.start_worker()  # starts paused
    jar.submit("true")
    time.sleep(0.6)
    assert len(jar.completed()) == 1
    assert not (jar.home / "workers" / newcomer / "exited").exists()
    (jar.home / "workers" / "STOP_ALL").touch()  # stop wins over pause
    wait_for(lambda: (jar.home / "workers" / newcomer / "exited").exists(), message="stop")
    assert name in jar.completed()


def test_failing_and_signalled_jobs_do_not_stop_the_worker(jar):
    jar.submit("exit 7")
    jar.submit("kill -9 $$")
    jar.submit("exec >&- 2>&- <&-; true")
    child_pid = jar.root / "child.pid"
    jar.submit(f"sleep 30 & echo $! > {child_pid}; echo left a child behind")
    jar.start_worker()
    try:
        done = jar.wait_completed(4)
    finally:
        pid = wait_for(lambda: child_pid.exists() and child_pid.read_text().strip())
        os.kill(int(pid), 9)
    statuses = [(jar.record(n)["status"], jar.record(n)["exit_code"], jar.record(n)["signal"])
                for n in done]
    assert ("failed", 7, None) in statuses
    assert ("failed", None, 9) in statuses
    assert statuses.count(("succeeded", 0, None)) == 2


def test_worker_log_has_claim_and_finish_lines(jar):
    name = jar.submit("true")
    worker = jar.start_worker()
    jar.wait_completed(1)
    log = wait_for(lambda: "finish" in (jar.home / "workers" / worker / "log").read_text()
                   and (jar.home / "workers" / worker / "log").read_text())
    assert f"claim {name}" in log and f"finish {name} succeeded" in log
    assert log.splitlines()[0][:4].isdigit()  # time-stamped


def test_foreground_worker(jar):
    import subprocess

    from conftest import BIN

    jar.submit("true")
    proc = subprocess.Popen([str(BIN / "start_worker"), "--foreground"], env=jar.env,
                            stdout=subprocess.PIPE, text=True)
    try:
        name = proc.stdout.readline().strip()
        assert name.endswith(f".{proc.pid}")
        jar.wait_completed(1)
        (jar.home / "workers" / name / "STOP").touch()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_separate_worker_home(jar):
    jar.env["JJ_WORKER_HOME"] = str(jar.root / "elsewhere")
    name = jar.submit("true")
    worker = jar.start_worker()
    jar.wait_completed(1)
    assert (jar.root / "elsewhere" / worker / "info.yaml").exists()
    assert not (jar.home / "workers").exists()
    assert jar.record(name)["worker"] == worker


def test_sigterm_stops_the_worker_after_its_current_job(jar):
    import signal

    idle = jar.start_worker()
    os.kill(int(idle.rsplit(".", 1)[1]), signal.SIGTERM)
    wait_for(lambda: (jar.home / "workers" / idle / "exited").exists(), message="idle exit")
    gate = jar.root / "gate"
    name = jar.submit(f"while [ ! -e {gate} ]; do sleep 0.05; done; echo done")
    busy = jar.start_worker()
    wait_for(lambda: os.listdir(jar.path("claimed")), message="claimed")
    os.kill(int(busy.rsplit(".", 1)[1]), signal.SIGTERM)
    time.sleep(0.3)
    assert not (jar.home / "workers" / busy / "exited").exists()
    gate.touch()
    wait_for(lambda: (jar.home / "workers" / busy / "exited").exists(), message="busy exit")
    assert jar.record(name)["status"] == "succeeded"


def test_a_script_without_a_shebang_line_runs_with_sh(jar):
    """As shells do: an executable text file with no ``#!`` line is run by ``/bin/sh``."""
    jar.submit_by_hand("plain.0", f'echo "no shebang $JJ_JOB_NAME" > {jar.root}/plain.txt\n')
    jar.start_worker()
    jar.wait_completed(1)
    assert (jar.root / "plain.txt").read_text() == "no shebang plain.0\n"
    assert jar.record("plain.0")["status"] == "succeeded"


def test_a_job_named_like_a_category_does_not_confuse_its_workers(jar):
    """An uncategorized job called ``LINUX`` is left to workers that do not serve LINUX.

    A worker of category LINUX has a ``job/LINUX/`` directory: renaming the
    job there fails (it is a directory), and that failure must not be taken
    for a claim that happened.
    """
    (jar.workers_dir / "PAUSE_ALL").parent.mkdir(parents=True, exist_ok=True)
    (jar.workers_dir / "PAUSE_ALL").touch()
    worker = jar.start_worker("LINUX")
    clash = jar.submit_by_hand("LINUX", f"#!/bin/sh\necho x >> {jar.root}/clash\n")
    # tried after LINUX (lower priority): once it ran, the worker has passed LINUX by
    after = jar.submit_by_hand("after.-1", f"#!/bin/sh\ntouch {jar.root}/after\n")
    (jar.workers_dir / "PAUSE_ALL").unlink()
    wait_for(lambda: (jar.root / "after").exists(), message="the lower-priority job")
    jar.wait_completed(1)
    assert clash.exists() and (jar.workers_dir / worker / "job" / "LINUX").is_dir()
    assert not jar.path("rejected").exists() or os.listdir(jar.path("rejected")) == []
    jar.start_worker()  # an uncategorized worker takes the clashing one
    jar.wait_completed(2)
    assert (jar.root / "clash").read_text() == "x\n"
    # (while it sat in unclaimed/, no LINUX job could be submitted: the name was taken)
    linux = jar.submit("-c", "LINUX", f"touch {jar.root}/linux")  # LINUX is still served
    jar.wait_completed(3)
    assert sorted(jar.completed()) == sorted(["LINUX", after.name, linux])
    assert jar.record(linux)["worker"] == worker


def test_a_worker_that_dies_of_an_error_says_why_in_its_log(jar):
    """A detached worker has no terminal: an unexpected error goes to its log, not to void.

    The error is a bug simulated in a subclass (the worker survives every
    hostile file the other tests throw at it).
    """
    code = ("import sys\n"
            "from jobjar.worker import Worker\n"
            "class Buggy(Worker):\n"
            "    def claim(self):\n"
            "        raise RuntimeError('a bug')\n"
            "w = Buggy()\n"
            "print(w.name, flush=True)\n"
            "w.run()\n")
    result = subprocess.run([sys.executable, "-c", code], env={**jar.env, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "RuntimeError: a bug" in result.stderr
    worker = result.stdout.strip()
    text = (jar.workers_dir / worker / "log").read_text()
    assert "fatal: RuntimeError: a bug" in text and "Traceback" in text
    assert not (jar.workers_dir / worker / "exited").exists()  # a crash, for recovery
