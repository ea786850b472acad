"""Single jobs people can rely on: records, cancel, timeouts, retries,
resubmission, directives, arrays, ``job_info`` — all with real workers."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import BIN, pid_alive, wait_for


def status(jar, name):
    record = jar.record(name)
    return record and record.get("status")


def test_records_for_each_outcome(jar):
    ok = jar.submit("echo fine")
    bad = jar.submit("exit 3")
    slow = jar.submit("--timeout", "0.5", "sleep 30")
    killed = jar.submit("kill -9 $$")
    dep_failed = jar.submit("--after", bad, "echo never")
    jar.submit_by_hand("empty.0", "")
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 5 and os.listdir(jar.path("rejected")),
             message="all settled")
    assert status(jar, ok) == "succeeded" and status(jar, bad) == "failed"
    assert status(jar, slow) == "timed-out" and status(jar, dep_failed) == "dependency-failed"
    assert status(jar, killed) == "failed" and jar.record(killed)["signal"] == 9
    assert "SIGKILL" in jar.record(killed)["reason"]
    assert status(jar, "empty.0") == "rejected" and "empty" in jar.record("empty.0")["reason"]
    record = jar.record(ok)
    for field in ("name", "category", "priority", "submitter", "node", "worker", "submitted",
                  "claimed", "started", "finished", "duration", "exit_code", "signal",
                  "status", "reason", "attempt", "retries", "recoveries", "stdout", "stderr",
                  "attempts"):
        assert field in record, field
    assert record["finished"].endswith("Z") and record["attempt"] == 1
    assert record["submitter"] and record["node"] and record["worker"].startswith(record["node"])
    assert record["exit_code"] == 0 and record["signal"] is None and record["duration"] >= 0
    assert open(record["stdout"]).read() == "fine\n"
    assert jar.record(bad)["exit_code"] == 3
    assert jar.record(slow)["signal"] == 15 and "timeout" in jar.record(slow)["reason"]
    assert bad in jar.record(dep_failed)["reason"]
    for other in (bad, slow, killed, dep_failed):  # one schema, however a job ended
        assert set(jar.record(other)) == set(record), other
    assert jar.record(dep_failed)["submitter"] == record["submitter"]
    assert jar.record(dep_failed)["started"] is None and jar.record(dep_failed)["attempts"] == []
    # Records are plain YAML too, and written by rename (no dot-files left over).
    import yaml

    assert yaml.safe_load(jar.path("results", f"{ok}.yaml").read_text())["status"] == "succeeded"
    assert not [n for n in os.listdir(jar.path("results")) if n.startswith(".")]


def test_timeout_kills_the_whole_process_group(jar):
    pids = jar.root / "pids"
    name = jar.submit("--timeout", "1", f"sh -c 'echo $$ >> {pids}; exec sleep 300' & "
                      f"echo $$ >> {pids}; wait")
    jar.start_worker()
    wait_for(lambda: status(jar, name) == "timed-out", message="timed out")
    assert len(pids.read_text().split()) == 2
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda p=pid: not pid_alive(p), message=f"process {pid} gone")


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace(jar):
    name = jar.submit("--timeout", "0.5", "trap '' TERM; sleep 300")
    jar.start_worker(env={"JJ_KILL_GRACE": "0.5"})
    wait_for(lambda: status(jar, name) == "timed-out")
    assert jar.record(name)["signal"] == 9


def test_a_cancelled_job_is_not_retried(jar):
    started = jar.root / "started"
    name = jar.submit("--retries", "3", f"echo $JJ_ATTEMPT >> {started}; sleep 300")
    jar.start_worker()
    wait_for(started.exists)
    jar.run("cancel_job", name, check=True)
    wait_for(lambda: status(jar, name) == "cancelled")
    assert jar.record(name)["attempt"] == 1 and started.read_text() == "1\n"


def test_cancel_queued_and_waiting_jobs(jar):
    queued = jar.submit("-c", "LATER", "echo never")
    waiting = jar.submit("--after", queued, "echo never either")
    result = jar.run("cancel_job", queued, check=True)
    assert result.stdout == f"{queued}: cancelled\n"
    assert status(jar, queued) == "cancelled" and queued in jar.completed()
    assert jar.record(queued)["category"] == "LATER" and jar.record(queued)["submitter"]
    assert os.listdir(jar.path("cancel")) == []
    jar.start_worker()
    wait_for(lambda: status(jar, waiting) == "dependency-failed")
    assert not jar.path("output", f"{queued}.out").exists()
    again = jar.run("cancel_job", queued, check=True)
    assert again.stdout == f"{queued}: already finished\n"
    missing = jar.run("cancel_job", "no-such-job")
    assert missing.returncode == 1 and missing.stderr.startswith("cancel_job: error: ")
    assert "no-such-job" in missing.stderr and len(missing.stderr.splitlines()) == 1
    assert jar.run("cancel_job").returncode == 1


def test_cancel_a_waiting_job_directly(jar):
    gate = jar.submit("-c", "NOBODY", "true")
    waiting = jar.submit("--after", gate, "true")
    import jobjar

    assert jobjar.cancel_job(waiting) == [(waiting, "cancelled")]
    assert status(jar, waiting) == "cancelled" and "waiting" in jar.record(waiting)["reason"]
    assert os.listdir(jar.path("waiting")) == []


def test_cancel_a_running_job_with_children_on_another_node(jar):
    pids = jar.root / "pids"
    script = (f"sh -c 'echo $$ >> {pids}; exec sleep 300' &\n"
              f"sh -c 'trap \"\" TERM; sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait' &\n"
              f"setsid sh -c 'echo $$ >> {pids}; exec sleep 300' &\n"
              f"echo $$ >> {pids}\nwait\n")
    name = jar.submit(script)
    worker = jar.start_worker(env={"JJ_NODE": "othernode"})
    assert worker.startswith("othernode.")
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 5, message="started")
    import jobjar

    assert jobjar.job_info(name)["state"] == "running"
    assert jobjar.cancel_job(name) == [(name, f"cancel requested (running on {worker})")]
    wait_for(lambda: status(jar, name) == "cancelled", message="cancelled")
    record = jar.record(name)
    assert record["node"] == "othernode" and record["signal"] in (15, 9)
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda p=pid: not pid_alive(p), message=f"process {pid} gone")
    wait_for(lambda: os.listdir(jar.path("cancel")) == [], message="request removed")
    follow = jar.submit("echo next")  # the worker carries on
    wait_for(lambda: status(jar, follow) == "succeeded")


def test_cancel_gives_children_their_grace_period(jar):
    """A child that cleans up on SIGTERM gets JJ_KILL_GRACE, even when its parent dies at once."""
    done = jar.root / "cleaned"
    ready = jar.root / "ready"
    child = f"trap 'sleep 0.5; echo cleaned > {done}; exit 0' TERM; touch {ready}; " \
            "while :; do sleep 0.1; done"
    name = jar.submit(f"sh -c \"{child}\" & wait")
    jar.start_worker()
    wait_for(ready.exists, message="child ready")
    import jobjar

    jobjar.cancel_job(name)
    wait_for(lambda: status(jar, name) == "cancelled", message="cancelled")
    assert done.read_text() == "cleaned\n"


def test_a_request_made_by_hand_cancels_before_the_start(jar):
    name = jar.submit(f"touch {jar.root}/ran")
    jar.path("cancel").mkdir(exist_ok=True)
    jar.path("cancel", name).touch()
    jar.start_worker()
    wait_for(lambda: status(jar, name) == "cancelled")
    assert not (jar.root / "ran").exists() and jar.record(name)["started"] is None
    wait_for(lambda: os.listdir(jar.path("cancel")) == [], message="request removed")


def test_cancel_by_category_and_mine(jar):
    batch = [jar.submit("-c", "BATCH", "true") for _ in range(3)]
    other = jar.submit("-c", "KEEP", "true")
    waiting = jar.submit("-c", "KEEP", "--after", other, "true")
    result = jar.run("cancel_job", "-c", "BATCH", check=True)
    assert sorted(result.stdout.splitlines()) == sorted(f"{n}: cancelled" for n in batch)
    assert status(jar, other) is None
    mine = jar.run("cancel_job", "--mine", check=True)
    assert status(jar, other) == "cancelled" and status(jar, waiting) == "cancelled"
    assert len(mine.stdout.splitlines()) == 2
    assert jar.run("cancel_job", "--mine", check=True).stdout == ""  # nothing left
    for category, message in (("BATCH", "no job of category 'BATCH'"), ("a/b", "category")):
        result = jar.run("cancel_job", "-c", category)  # done already, or not a category
        assert result.returncode == 1 and message in result.stderr
        assert len(result.stderr.splitlines()) == 1


def test_retries_keep_every_attempt(jar):
    name = jar.submit("-p", "4", "--retries", "2",
                      f'echo try $JJ_ATTEMPT; echo $JJ_ATTEMPT >> {jar.root}/attempts; '
                      '[ "$JJ_ATTEMPT" -ge 3 ]')
    jar.start_worker()
    wait_for(lambda: status(jar, name) == "succeeded", message="third attempt succeeds")
    record = jar.record(name)
    assert record["attempt"] == 3 and record["priority"] == 4 and record["retries"] == 2
    assert [a["status"] for a in record["attempts"]] == ["failed", "failed", "succeeded"]
    assert [a["exit_code"] for a in record["attempts"]] == [1, 1, 0]
    assert [a["attempt"] for a in record["attempts"]] == [1, 2, 3]
    assert (jar.root / "attempts").read_text().split() == ["1", "2", "3"]
    assert jar.path("output", f"{name}.out").read_text() == "try 1\ntry 2\ntry 3\n"


def test_retries_run_out(jar):
    name = jar.submit("--retries", "1", "--timeout", "0.3", "sleep 10")
    jar.start_worker()
    wait_for(lambda: status(jar, name) == "timed-out")
    assert [a["status"] for a in jar.record(name)["attempts"]] == ["timed-out", "timed-out"]
    assert [a["signal"] for a in jar.record(name)["attempts"]] == [15, 15]


def test_resubmit_a_finished_job(jar):
    name = jar.submit("-c", "AGAIN", f"echo ran >> {jar.root}/ran; exit 1")
    jar.start_worker("AGAIN")
    wait_for(lambda: status(jar, name) == "failed")
    assert jar.run("resubmit_job", name, check=True).stdout == f"{name}\n"
    wait_for(lambda: (jar.root / "ran").read_text().count("ran") == 2)
    wait_for(lambda: status(jar, name) == "failed" and jar.record(name)["attempt"] == 2)
    record = jar.record(name)
    assert record["category"] == "AGAIN" and len(record["attempts"]) == 2
    gate = jar.root / "gate"
    busy = jar.submit("-c", "AGAIN", f"while [ ! -e {gate} ]; do sleep 0.05; done")
    bad = jar.run("resubmit_job", busy)
    assert bad.returncode == 1 and "has not finished" in bad.stderr
    assert jar.run("resubmit_job", "nope").returncode == 1
    gate.touch()


def test_resubmit_is_recorded_retrying_before_the_move(jar):
    import jobjar

    name = jar.submit("-c", "IDLE", "true")
    jobjar.cancel_job(name)
    jar.path("cancel", name).touch()  # a stale request must not cancel the new attempt
    assert jobjar.resubmit_job(name) == [name]
    assert status(jar, name) == "retrying" and jar.path("unclaimed", "IDLE", name).exists()
    assert not jar.path("cancel", name).exists()
    jar.start_worker("IDLE")
    wait_for(lambda: status(jar, name) == "succeeded")


def test_hand_made_job_with_directives(jar):
    jar.submit_by_hand("hand.0", "#!/bin/sh\n# a comment\n#JJ --timeout 0.5\n"
                       "#JJ --retries=1 --output out.txt\nsleep 5\n")
    jar.start_worker()
    wait_for(lambda: status(jar, "hand.0") == "timed-out", message="settled")
    record = jar.record("hand.0")
    assert record["attempt"] == 2 and record["retries"] == 1
    assert record["stdout"] == str(jar.path("output", "out.txt"))
    assert [a["status"] for a in record["attempts"]] == ["timed-out", "timed-out"]


def test_malformed_directive_fails_that_job_and_the_worker_carries_on(jar):
    jar.submit_by_hand("broken.0", "#!/bin/sh\n#JJ --timeout soon\ntrue\n")
    jar.submit_by_hand("unknown.0", "#!/bin/sh\n#JJ --frobnicate 3\ntrue\n")
    jar.submit_by_hand("quote.0", "#!/bin/sh\n#JJ --output 'unterminated\ntrue\n")
    jar.submit_by_hand("after.0", "#!/bin/sh\n#JJ --after broken.0\ntrue\n")
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 4, message="settled")
    assert status(jar, "broken.0") == "failed"
    assert "--timeout must be a duration" in jar.record("broken.0")["reason"]
    assert "unknown directive '--frobnicate'" in jar.record("unknown.0")["reason"]
    assert status(jar, "quote.0") == "failed" and "bad directive" in jar.record("quote.0")["reason"]
    assert status(jar, "after.0") == "dependency-failed"
    fine = jar.submit("true")
    wait_for(lambda: status(jar, fine) == "succeeded", message="the worker carries on")


def test_directives_after_the_first_command_are_ignored(jar):
    jar.submit_by_hand("late.0", "#!/bin/sh\necho hi\n#JJ --timeout nonsense\n")
    jar.start_worker()
    wait_for(lambda: status(jar, "late.0") == "succeeded")


def test_arrays_and_from_file(jar, tmp_path):
    result = jar.run("submit_job", "--array", "2-8:3", "echo index=$JJ_ARRAY_INDEX", check=True)
    names = result.stdout.splitlines()
    lines = tmp_path / "lines"
    lines.write_text("echo one\n\n   \necho two\necho three $JJ_ARRAY_INDEX\n")
    more = jar.run("submit_job", "--from-file", str(lines), check=True).stdout.splitlines()
    piped = jar.run("submit_job", "-c", "PIPE", "--from-file", "-", input="echo four\n",
                    check=True).stdout.splitlines()
    assert len(names) == 3 and len(more) == 3 and len(piped) == 1
    assert len(set(names + more + piped)) == 7
    jar.start_worker("PIPE")
    jar.wait_completed(7)
    outs = {jar.path("output", f"{n}.out").read_text().strip() for n in names + more + piped}
    assert outs == {"index=2", "index=5", "index=8", "one", "two", "three", "four"}
    assert jar.record(piped[0])["category"] == "PIPE"
    for bad in (["--array", "5-1", "true"], ["--array", "x", "true"],
                ["--array", "1-2", "--from-file", str(lines)]):
        result = jar.run("submit_job", *bad)
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, bad


def test_submit_options_are_python_keywords_with_the_same_checks(jar, tmp_path):
    import jobjar

    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho from file\n")
    script.chmod(0o755)
    first = jobjar.submit_job("true", category="PY", timeout=30, retries=1, output="o.txt",
                              error=str(tmp_path / "e.txt"))
    text = jar.path("unclaimed", "PY", first).read_text()
    assert "#JJ --timeout 30\n" in text and "#JJ --retries 1\n" in text
    assert f"#JJ --output {os.path.abspath('o.txt')}\n" in text  # relative to the submitter
    names = jobjar.submit_job_file(script, array="1-3", after=[first], after_any=first)
    assert len(names) == 3 and all(jar.path("waiting", n).exists() for n in names)
    head = jar.path("waiting", names[0]).read_text()
    assert head.startswith("#!/bin/sh\n#JJ --after ") and "#JJ --array-index 1\n" in head
    lined = tmp_path / "lines"
    lined.write_text("true\n")
    assert len(jobjar.submit_from_file(lined, timeout="5")) == 1
    bad_values = [{"timeout": "soon"}, {"timeout": 0}, {"retries": -1}, {"retries": "x"},
                  {"retries": True}, {"after": "no-such-job"}, {"after": []},
                  {"array": "3-1"}, {"output": ""}, {"colour": "red"}]
    before = sorted(os.listdir(jar.path("unclaimed"))), sorted(os.listdir(jar.path("waiting")))
    for kwargs in bad_values:
        for submit, what in ((jobjar.submit_job, "true"), (jobjar.submit_job_file, script)):
            with pytest.raises(jobjar.JobJarError):
                submit(what, **kwargs)
    after = sorted(os.listdir(jar.path("unclaimed"))), sorted(os.listdir(jar.path("waiting")))
    assert before == after
    for args, word in ((["--timeout", "0"], "timeout"), (["--retries", "x"], "retries"),
                       (["--after", "no-such-job"], "unknown dependency"),
                       (["--after", ""], "at least one job name"),
                       (["--after-any", ","], "at least one job name"),
                       (["--array", "3-1"], "array")):
        for source in (["true"], ["-f", str(script)]):
            result = jar.run("submit_job", *args, *source)
            assert result.returncode == 1 and word in result.stderr, (args, source)


def test_job_info(jar):
    gate = jar.root / "gate"
    name = jar.submit("-c", "INFO", f"while [ ! -e {gate} ]; do sleep 0.05; done")
    info = json.loads(jar.run("job_info", "--json", name, check=True).stdout)
    assert info["state"] == "unclaimed" and info["category"] == "INFO"
    assert info["record"] is None
    later = jar.submit("--after", name, "true")
    both = json.loads(jar.run("job_info", "--json", name, later, check=True).stdout)
    assert [i["state"] for i in both] == ["unclaimed", "waiting"]
    worker = jar.start_worker("INFO")
    wait_for(lambda: json.loads(jar.run("job_info", "--json", name).stdout)["state"]
             == "running")
    text = jar.run("job_info", name, check=True).stdout
    assert f"{name}: running on {worker} for " in text
    import jobjar

    running = jobjar.job_info(name)
    assert running["worker"] == worker and running["running_for"] >= 0
    gate.touch()
    wait_for(lambda: status(jar, later) == "succeeded")
    info = jobjar.job_info(name)
    assert info["state"] == "completed" and info["record"]["status"] == "succeeded"
    text = jar.run("job_info", name, check=True).stdout
    assert "  status: succeeded" in text and "None" not in text
    assert "  stdout: (nothing printed)" in text and "  stderr: (nothing printed)" in text
    assert "  attempt 1: succeeded, exit 0, on " in text
    piped = subprocess.run(["sh", "-c", f'"$0" {" ".join([name] * 300)} | head -1',
                            str(BIN / "job_info")], env=jar.env, capture_output=True, text=True)
    assert piped.stdout == f"{name}: completed\n" and piped.stderr == ""  # quiet on a closed pipe
    missing = jar.run("job_info", "nope")
    assert missing.returncode == 1 and "nope" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_command_line_options_win_over_the_files_own(jar, tmp_path):
    """``submit_job --timeout 100 -f s.sh`` beats ``#JJ --timeout 1`` in s.sh; --after adds up."""
    first = jar.submit("true")
    script = tmp_path / "s.sh"
    script.write_text(f"#!/bin/sh\n# a comment\n#JJ --timeout 1 --after {first}\n\nsleep 2\n")
    script.chmod(0o755)
    second = jar.submit("true")
    name = jar.submit("--timeout", "100", "--after", second, "-f", str(script))
    assert jar.path("waiting", name).exists()
    jar.start_worker()
    wait_for(lambda: status(jar, name) == "succeeded", message="the slow job to finish")
    assert jar.record(name)["duration"] >= 2
    text = jar.path("completed", name).read_text()
    assert text.index("#JJ --timeout 1 ") < text.index("#JJ --timeout 100\n") < text.index("sleep")


def test_dependencies_and_directives_in_a_submitted_file_are_checked(jar, tmp_path):
    import jobjar

    for line, word in (("#JJ --after typo-no-such-job", "unknown dependency"),
                       ("#JJ --timeout soon", "timeout")):
        script = tmp_path / "s.sh"
        script.write_text(f"#!/bin/sh\n{line}\ntrue\n")
        script.chmod(0o755)
        result = jar.run("submit_job", "-f", str(script))
        assert result.returncode == 1 and word in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        with pytest.raises(jobjar.JobJarError):
            jobjar.submit_job_file(script)
    assert not jar.path("unclaimed").exists() or os.listdir(jar.path("unclaimed")) == []
    assert not jar.path("waiting").exists() or os.listdir(jar.path("waiting")) == []


def _sleeper(jar, *args):
    return jar.submit(*args, f"touch {jar.root}/started-$JJ_JOB_NAME; sleep 60")


def test_cancel_running_jobs_by_category_and_mine(jar):
    """``-c`` and ``--mine`` reach running jobs too, and only those they name."""
    batch = _sleeper(jar, "-c", "BATCH")
    keep = _sleeper(jar, "-c", "KEEP")
    for category in ("BATCH", "KEEP"):
        jar.start_worker(category)
    for name in (batch, keep):
        wait_for((jar.root / f"started-{name}").exists, message=f"{name} to run")
    out = jar.run("cancel_job", "-c", "BATCH", check=True).stdout
    assert out.startswith(f"{batch}: cancel requested (running on ")
    wait_for(lambda: status(jar, batch) == "cancelled", message="the BATCH job cancelled")
    assert status(jar, keep) is None
    out = jar.run("cancel_job", "--mine", check=True).stdout
    assert out.startswith(f"{keep}: cancel requested")
    wait_for(lambda: status(jar, keep) == "cancelled", message="my running job cancelled")


def test_cancel_mine_spares_other_users_jobs(jar):
    if os.geteuid() != 0:
        pytest.skip("needs root: a job owned by another user")
    mine = jar.submit("true")
    theirs = jar.submit_by_hand("theirs.0")
    os.chown(theirs, 65534, 65534)
    out = jar.run("cancel_job", "--mine", check=True).stdout
    assert out.splitlines() == [f"{mine}: cancelled"]
    assert theirs.exists()
    info = jar.run("job_info", "--json", "theirs.0", check=True).stdout
    assert json.loads(info)["state"] == "unclaimed"


def test_a_category_named_job(jar):
    """A category called ``job`` (like the worker's own ``job/`` directory) is still a category."""
    name = _sleeper(jar, "-c", "job")
    jar.start_worker("job")
    wait_for((jar.root / f"started-{name}").exists, message="it runs")
    info = json.loads(jar.run("job_info", "--json", name, check=True).stdout)
    assert info["state"] == "running" and info["category"] == "job"
    out = jar.run("cancel_job", "-c", "job", check=True).stdout
    assert out.startswith(f"{name}: cancel requested")
    wait_for(lambda: status(jar, name) == "cancelled", message="cancelled")
    assert jar.record(name)["category"] == "job"
