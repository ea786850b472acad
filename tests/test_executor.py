"""``jobjar.Executor`` and ``jobjar.map`` with real workers: values, failures, cancel, trust.

The functions of this module travel by value (``cloudpickle``'s
``register_pickle_by_value``), as a notebook's do; the missing-module test
submits one that travels by reference, then removes its module.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import cloudpickle
import pytest
from test_nodes import cluster  # noqa: F401 - the multi-node fixture, reused

from conftest import ROOT, wait_for

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def no_pickles(home) -> bool:
    """Nothing of any executor left in ``calls/`` (the directory itself may stay)."""
    calls = home / "calls"
    return not calls.exists() or not any(calls.iterdir())


def square_and_node(x):
    return x * x, os.uname().nodename


def slow_once(marker: str, value):
    """Runs long the first time (to be killed), returns at once the second time."""
    if not os.path.exists(marker):
        with open(marker, "w") as out:
            out.write(str(os.getpid()))
        time.sleep(120)
    return value


def test_map_returns_values_in_order_and_leaves_nothing(jar, capsys):
    import jobjar

    jar.start_worker()
    jar.start_worker()
    offset = 7
    with jobjar.Executor() as executor:
        values = list(executor.map(lambda x: x * x + offset, range(300)))
        assert values == [x * x + offset for x in range(300)]
        pairs = list(executor.map(pow, range(40), [2] * 40, chunksize=3))  # 14 jobs
        assert pairs == [x ** 2 for x in range(40)]
        # the first chunks end while the last are submitted: the function file must stay
        assert list(executor.map(lambda x: -x, range(80), chunksize=1)) == [-x for x in range(80)]
        futures = [executor.submit(divmod, n, 7) for n in range(12)]
        done = list(cf.as_completed(futures, timeout=120))
        assert sorted(done, key=futures.index) == futures
        assert [f.result() for f in futures] == [divmod(n, 7) for n in range(12)]
        info = jobjar.job_info(futures[0].job)
        assert info["state"] == "completed" and info["record"]["status"] == "succeeded"
    assert jobjar.map(abs, [-3, 2, -1], chunksize=1, progress=False) == [3, 2, 1]
    capsys.readouterr()
    assert jobjar.map(abs, [-3, 2, -1], chunksize=1, progress=True) == [3, 2, 1]
    assert "3/3 done, 0 failed" in capsys.readouterr().err  # wait_jobs' bar
    assert no_pickles(jar.home)
    assert not any(jar.path("unclaimed").rglob("*"))


def test_a_remote_exception_keeps_its_type_and_brings_its_traceback(jar):
    import jobjar

    class Unlucky(ValueError):
        pass

    def unlucky(n):
        if n == 13:
            raise Unlucky(f"{n} is unlucky")
        return n

    jar.start_worker()
    with jobjar.Executor() as executor:
        future = executor.submit(unlucky, 13)
        with pytest.raises(Unlucky, match="13 is unlucky") as caught:
            future.result(120)
        cause = caught.value.__cause__
        assert isinstance(cause, jobjar.executor.RemoteTraceback)
        assert f"job {future.job}" in str(cause) and "Traceback on node" in str(cause)
        assert "in unlucky" in str(cause)
        assert jobjar.job_info(future.job)["record"]["status"] == "failed"
        with pytest.raises(Unlucky):  # a map raises at the failing call's place
            list(executor.map(unlucky, [1, 2, 13, 4], chunksize=2))
    assert no_pickles(jar.home)


def test_a_timeout_gives_job_failed_with_the_record(jar):
    import jobjar

    jar.start_worker()
    with jobjar.Executor(timeout="1s") as executor:
        future = executor.submit(time.sleep, 60)
        with pytest.raises(jobjar.JobFailed) as caught:
            future.result(120)
    failure = caught.value
    assert isinstance(failure, jobjar.JobJarError)
    assert failure.status == "timed-out" and failure.job == future.job
    assert "timed-out" in str(failure)
    assert no_pickles(jar.home)


def test_a_call_whose_worker_is_killed_runs_again_and_returns(jar):
    import jobjar

    marker = jar.root / "first-run"
    worker = jar.start_worker()
    with jobjar.Executor() as executor:
        future = executor.submit(slow_once, str(marker), "second run")
        wait_for(marker.exists, 60, message="the first run to start")
        os.kill(int(worker.rsplit(".", 1)[1]), signal.SIGKILL)
        wait_for(lambda: "returned" in jar.run("recover_jobs").stdout
                 or jobjar.job_info(future.job)["state"] == "unclaimed", 60,
                 message="recovery to put the job back")
        jar.start_worker()
        assert future.result(120) == "second run"
        record = jobjar.job_info(future.job)["record"]
        assert record["status"] == "succeeded" and record["recoveries"] >= 1
    assert no_pickles(jar.home)


def test_cancel_of_a_queued_call_and_not_of_a_running_one(jar):
    import jobjar

    executor = jobjar.Executor()
    queued = executor.submit(abs, -1)
    assert jobjar.job_info(queued.job)["state"] == "unclaimed"
    assert queued.cancel() and queued.cancelled()
    with pytest.raises(cf.CancelledError):
        queued.result(1)
    wait_for(lambda: jobjar.job_info(queued.job)["record"] is not None, 30)
    assert jobjar.job_info(queued.job)["record"]["status"] == "cancelled"

    marker = jar.root / "running"
    running = executor.submit(slow_once, str(marker), "ran")
    jar.start_worker()
    wait_for(marker.exists, 60, message="the call to run")
    wait_for(running.running, 30, message="the future to say it runs")
    assert running.cancel() is False and not running.cancelled()
    jobjar.cancel_job(running.job)  # cancel_job while it runs: JobFailed, status cancelled
    with pytest.raises(jobjar.JobFailed) as caught:
        running.result(120)
    assert caught.value.status == "cancelled"
    executor.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        executor.submit(abs, 1)
    assert no_pickles(jar.home)


def test_shutdown_cancel_futures_and_after_futures(jar):
    import jobjar

    first_marker = jar.root / "first"
    executor = jobjar.Executor()
    first = executor.submit(slow_once, str(first_marker), "first")
    later = jobjar.Executor(after=[first])
    second = later.submit(abs, -2)
    assert jobjar.job_info(second.job)["state"] == "waiting"
    first_marker.touch()  # the first call now returns at once
    jar.start_worker()
    assert second.result(120) == 2 and first.result(60) == "first"
    later.shutdown()
    executor.shutdown()
    nobody = jobjar.Executor(category="nobody_serves_this")
    pending = [nobody.submit(abs, -n) for n in range(5)]
    assert pending[0].cancel()
    assert cf.wait(pending[:1], timeout=30).done == {pending[0]}
    nobody.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in pending)
    assert no_pickles(jar.home)


def test_unpicklable_input_fails_at_submit_and_leaves_nothing(jar):
    import jobjar

    with jobjar.Executor() as executor:
        with pytest.raises(jobjar.JobJarError) as caught:
            executor.submit(abs, threading.Lock())
        message = str(caught.value)
        assert "cannot pickle" in message and "nothing submitted" in message
        assert "\n" not in message
        with pytest.raises(jobjar.JobJarError, match="cannot pickle"):
            list(executor.map(abs, [1, threading.Lock(), 3]))
    assert not jar.path("unclaimed").exists() or not any(jar.path("unclaimed").rglob("*"))
    assert no_pickles(jar.home)


def test_an_unpicklable_result_becomes_an_exception(jar):
    import jobjar

    jar.start_worker()
    with jobjar.Executor() as executor:
        with pytest.raises(pickle.PicklingError, match="cannot be pickled"):
            executor.submit(threading.Lock).result(120)
    assert no_pickles(jar.home)


def test_a_module_missing_on_the_node_is_named(jar, tmp_path):
    import jobjar

    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "jj_vanishing_module.py").write_text("def triple(x):\n    return 3 * x\n")
    sys.path.insert(0, str(modules))
    try:
        import jj_vanishing_module

        with jobjar.Executor() as executor:
            future = executor.submit(jj_vanishing_module.triple, 2)
            (modules / "jj_vanishing_module.py").unlink()
            jar.start_worker()
            with pytest.raises(jobjar.JobFailed, match="no module named 'jj_vanishing_module'"):
                future.result(120)
    finally:
        sys.path.remove(str(modules))
        sys.modules.pop("jj_vanishing_module", None)
    assert no_pickles(jar.home)


def test_another_python_version_is_reported_as_such(jar):
    import jobjar
    from jobjar import calls, files

    with jobjar.Executor() as executor:
        future = executor.submit(abs, -1)
        path = executor._caller.path / "c1.call"
        head, payload = calls.unpack(path.read_bytes())
        head["python"] = [2, 7]  # as if the caller ran another Python than the node
        files.write_new(path, calls.pack(head, payload), 0o600)
        jar.start_worker()
        with pytest.raises(jobjar.JobFailed, match="pickled by Python 2.7") as caught:
            future.result(120)
        assert caught.value.status == "failed"
    assert no_pickles(jar.home)


def test_a_nodes_jj_python_runs_the_calls_unless_python_is_given(jar, tmp_path):
    """JJ_PYTHON, a node's setting, names the interpreter of Python calls there."""
    import jobjar

    used = tmp_path / "used"
    wrapper = tmp_path / "python-here"
    wrapper.write_text(f"#!/bin/sh\necho \"$@\" >> {used}\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    jar.start_worker(env={"JJ_PYTHON": str(wrapper)})
    with jobjar.Executor() as executor:
        assert executor.submit(pow, 3, 4).result(timeout=120) == 81
    assert "-m jobjar.runner" in used.read_text()
    used.unlink()
    with jobjar.Executor(python=sys.executable) as executor:  # python= wins over the node's
        assert executor.submit(pow, 2, 5).result(timeout=120) == 32
    assert not used.exists()


def test_recover_jobs_removes_the_calls_of_a_killed_caller(jar):
    code = ("import os, jobjar; e = jobjar.Executor(); f = e.submit(abs, -1); "
            "print(f.job, flush=True); os.kill(os.getpid(), 9)")
    result = subprocess.run([sys.executable, "-c", code], env={**jar.env, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL
    job = result.stdout.strip()
    assert not no_pickles(jar.home)
    assert "calls/" not in jar.run("recover_jobs", check=True).stdout  # its job needs them
    assert not no_pickles(jar.home)
    jar.run("cancel_job", job, check=True)
    assert "calls/" in jar.run("recover_jobs", check=True).stdout
    assert no_pickles(jar.home)


def test_recover_jobs_never_follows_a_link_at_calls(jar, tmp_path):
    old = time.time() - 3 * 24 * 3600
    victim = tmp_path / "victim"
    for top in (victim, jar.home / "calls"):  # a link's target, and the real thing
        caller = top / "otherhost.1.abcdefabcdef"
        caller.mkdir(parents=True)
        (caller / "c1.call").write_text("keep")
        os.utime(caller, (old, old))
    os.rename(jar.home / "calls", jar.home / "calls.real")
    (jar.home / "calls").symlink_to(victim)
    assert "calls/" not in jar.run("recover_jobs", check=True).stdout
    assert (victim / "otherhost.1.abcdefabcdef" / "c1.call").read_text() == "keep"
    (jar.home / "calls").unlink()
    os.rename(jar.home / "calls.real", jar.home / "calls")
    assert "calls/otherhost.1.abcdefabcdef" in jar.run("recover_jobs", check=True).stdout
    assert no_pickles(jar.home)


# -- several nodes --------------------------------------------------------------------

#: Run on one node: a map whose calls run on the other nodes' workers.
NODE_MAP = """
import json, os, time, jobjar
def call(x):  # a tenth of a second each: one node's two workers cannot drain all 20
    time.sleep(0.1)  # chunks before the other node's workers next look at the queue
    return x * x, os.uname().nodename
print(json.dumps(jobjar.map(call, range(120), chunksize=6, progress=False)))
"""


def test_map_from_one_node_runs_on_the_others(cluster):  # noqa: F811 - the fixture
    from test_nodes import assert_jar_drained

    for node in ("bravo", "charlie"):
        cluster.start_worker(node)
        cluster.start_worker(node)
    result = cluster.nodes["alpha"].run([sys.executable, "-c", NODE_MAP], check=True,
                                        timeout=300)
    pairs = json.loads(result.stdout)
    assert [value for value, _ in pairs] == [x * x for x in range(120)]
    assert {node for _, node in pairs} <= {"bravo", "charlie"}
    assert len({node for _, node in pairs}) == 2
    assert_jar_drained(cluster)
    calls = cluster.home / "calls"
    wait_for(lambda: not any(calls.iterdir()), 30, message="no call files left")


# -- two users -----------------------------------------------------------------------

#: Ann's program: two calls in category A (only ann may write it); prints the
#: caller directory and job names, then, on "go", how each call ended.
ANN = """
import sys, jobjar
executor = jobjar.Executor(category="A")
first, second = executor.submit(pow, 6, 2), executor.submit(pow, 7, 2)
print(executor._caller.name, first.job, second.job, flush=True)
sys.stdin.readline()
for future in (first, second):
    try:
        print("value", future.result(120), flush=True)
    except Exception as exc:
        print(type(exc).__name__, str(exc).replace(chr(10), " "), flush=True)
"""


class Planted:
    """Bob's payload: unpickling it creates the marker directory."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_bob_cannot_get_his_pickles_run_by_ann(team):
    from jobjar import calls

    if subprocess.run([team.python, "-c", "import cloudpickle"]).returncode != 0:
        message = (f"TWO-USER EXECUTOR TEST SKIPPED: {team.python} has no cloudpickle "
                   "(apt-get install python3-cloudpickle)")
        print(f"WARNING: {message}", file=sys.stderr)
        pytest.skip(message)
    home = team.home
    opened = team.root / "open"
    opened.mkdir()
    opened.chmod(0o777)
    marker = str(opened / "bob-was-here")
    team.run("ann", "check_workers", "--dry-run")  # the tree, group-writable
    team.as_user("ann", lambda: (os.makedirs(home / "unclaimed" / "A"),
                                 os.chmod(home / "unclaimed" / "A", 0o2750)))
    ann = subprocess.Popen([team.python, "-c", ANN], env=team.env("ann", {
        "PYTHONPATH": str(team.code)}), user=team.uid["ann"], group=team.gid,
        extra_groups=[team.gid], umask=0o002, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=str(team.root))
    try:
        caller, first, second = ann.stdout.readline().split()
        evil = pickle.dumps(Planted(marker))

        def plant_result_in_anns_directory():  # sticky: bob may add, not replace
            with open(home / "calls" / caller / "c2.result", "wb") as out:
                out.write(pickle.dumps(("ok", [Planted(marker)])))

        team.as_user("bob", plant_result_in_anns_directory)
        assert team.run("ann", "cancel_job", second).returncode == 0

        def replace_the_calls_directory():  # calls/ is in the group-writable jar
            wait_for(lambda: not (home / "calls" / caller / "c2.call").exists(), 60)
            os.rename(home / "calls", home / "calls.old")
            fake = home / "calls" / caller
            os.makedirs(fake)
            (fake / "c1.call").write_bytes(calls.pack(calls.header(), evil))
            (fake / "c1.result").write_bytes(pickle.dumps(("ok", [Planted(marker)])))
            fake.chmod(0o1777)

        team.as_user("bob", replace_the_calls_directory)
        team.start_worker("ann", "A")
        out, err = ann.communicate("go\n", timeout=180)
    finally:
        if ann.poll() is None:
            ann.kill()
    lines = out.splitlines()
    assert len(lines) == 2, (out, err)
    assert lines[0].startswith("JobFailed") and "not trusted" in lines[0], lines
    assert lines[1].startswith("JobFailed") and "not trusted" in lines[1], lines
    assert not os.path.exists(marker)
    err_file = home / "output" / f"{first}.err"
    assert "belongs to" in err_file.read_text()  # the worker refused bob's call file

    # Bob swaps the job file in ann's worker directory for his own as it starts: his
    # call is still not run as ann, since bob may not submit to unclaimed/A.
    fake_job = team.root / "open" / "job"

    def bobs_job():
        fake_job.write_text("#!/bin/sh\n")

    team.as_user("bob", bobs_job)
    caller_dir = home / "calls" / caller  # bob's tree from above: c1.call is his

    def run_the_runner_as_ann():
        from jobjar import runner

        os.environ.update(JJ_HOME=str(home), JJ_JOB_FILE=str(fake_job), JJ_CATEGORY="A")
        runner.main([caller_dir.name, "c1"])

    team.as_user("ann", run_the_runner_as_ann)
    assert not os.path.exists(marker)
