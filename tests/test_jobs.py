"""Jobs people can rely on: records, output, cancel, timeouts, retries,
dependencies, arrays, waiting — all with real workers."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import psutil

from conftest import BIN, pid_alive, wait_for


def status(jar, name):
    record = jar.record(name)
    return record and record.get("status")


def test_records_for_each_outcome(jar):
    ok = jar.submit("echo fine")
    bad = jar.submit("exit 3")
    slow = jar.submit("--timeout", "0.5", "sleep 30")
    dep_failed = jar.submit("--after", bad, "echo never")
    jar.submit_by_hand("empty.0", "")
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 4 and os.listdir(jar.path("rejected")),
             message="all settled")
    assert status(jar, ok) == "succeeded" and status(jar, bad) == "failed"
    assert status(jar, slow) == "timed-out" and status(jar, dep_failed) == "dependency-failed"
    assert status(jar, "empty.0") == "rejected" and "empty" in jar.record("empty.0")["reason"]
    record = jar.record(ok)
    for field in ("name", "category", "priority", "submitter", "node", "worker", "submitted",
                  "claimed", "started", "finished", "duration", "exit_code", "signal",
                  "status", "attempt", "stdout", "stderr"):
        assert field in record, field
    assert record["finished"].endswith("Z") and record["attempt"] == 1
    assert open(record["stdout"]).read() == "fine\n"
    assert jar.record(slow)["signal"] == 15
    assert bad in jar.record(dep_failed)["reason"]


def test_output_of_a_huge_printer_keeps_the_worker_flat(jar):
    name = jar.submit("head -c 100000000 /dev/zero | tr '\\0' x; echo err >&2")
    worker = jar.start_worker()
    proc = psutil.Process(int(worker.rsplit(".", 1)[1]))
    peak = 0
    while not jar.completed():
        peak = max(peak, proc.memory_info().rss)
        time.sleep(0.02)
    out, err = jar.path("output", f"{name}.out"), jar.path("output", f"{name}.err")
    assert out.stat().st_size == 100_000_000 and err.read_text() == "err\n"
    assert peak < 60 * 1024 * 1024, peak


def test_output_and_error_paths(jar, tmp_path):
    name = jar.submit("-o", str(tmp_path / "o.txt"), "-e", str(tmp_path / "e.txt"),
                      "echo out; echo err >&2")
    jar.start_worker()
    jar.wait_completed(1)
    assert (tmp_path / "o.txt").read_text() == "out\n"
    assert (tmp_path / "e.txt").read_text() == "err\n"
    assert jar.record(name)["stdout"] == str(tmp_path / "o.txt")


def test_cancel_queued_and_waiting_jobs(jar):
    queued = jar.submit("echo never")
    waiting = jar.submit("--after", queued, "echo never either")
    result = jar.run("cancel_job", queued, check=True)
    assert f"{queued}: cancelled" in result.stdout
    assert status(jar, queued) == "cancelled" and queued in jar.completed()
    assert os.listdir(jar.path("cancel")) == []
    jar.start_worker()
    wait_for(lambda: status(jar, waiting) == "dependency-failed")
    assert not jar.path("output", f"{queued}.out").exists()
    missing = jar.run("cancel_job", "no-such-job")
    assert missing.returncode == 1 and "no-such-job" in missing.stderr


def test_cancel_a_running_job_with_children_on_another_node(jar):
    pids = jar.root / "pids"
    name = jar.submit(f"sleep 300 & echo $! >> {pids}; (trap '' TERM; sleep 300) & "
                      f"echo $! >> {pids}; echo $$ >> {pids}; wait")
    jar.start_worker(env={"JJ_NODE": "othernode"})
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 3, message="started")
    import jobjar

    assert jobjar.cancel_job(name)[0][1].startswith("cancel requested (running on othernode.")
    wait_for(lambda: status(jar, name) == "cancelled", message="cancelled")
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda p=pid: not pid_alive(p), message=f"process {pid} gone")
    assert os.listdir(jar.path("cancel")) == []
    follow = jar.submit("echo next")  # the worker carries on
    wait_for(lambda: status(jar, follow) == "succeeded")


def test_cancel_by_category_and_mine(jar):
    a = [jar.submit("-c", "BATCH", "true") for _ in range(3)]
    other = jar.submit("-c", "KEEP", "true")
    result = jar.run("cancel_job", "-c", "BATCH", check=True)
    assert result.stdout.count("cancelled") == 3 and all(status(jar, n) == "cancelled" for n in a)
    jar.run("cancel_job", "--mine", check=True)
    assert status(jar, other) == "cancelled"


def test_retries_keep_every_attempt(jar):
    name = jar.submit("-p", "4", "--retries", "2",
                      f'echo $JJ_ATTEMPT >> {jar.root}/attempts; [ "$JJ_ATTEMPT" -ge 3 ]')
    jar.start_worker()
    wait_for(lambda: status(jar, name) == "succeeded", message="third attempt succeeds")
    record = jar.record(name)
    assert record["attempt"] == 3 and record["priority"] == 4
    assert [a["status"] for a in record["attempts"]] == ["failed", "failed", "succeeded"]
    assert [a["exit_code"] for a in record["attempts"]] == [1, 1, 0]
    assert (jar.root / "attempts").read_text().split() == ["1", "2", "3"]


def test_retries_run_out(jar):
    name = jar.submit("--retries", "1", "--timeout", "0.3", "sleep 10")
    jar.start_worker()
    wait_for(lambda: status(jar, name) == "timed-out")
    assert [a["status"] for a in jar.record(name)["attempts"]] == ["timed-out", "timed-out"]


def test_resubmit_a_finished_job(jar):
    name = jar.submit(f"echo ran >> {jar.root}/ran")
    jar.start_worker()
    wait_for(lambda: status(jar, name) == "succeeded")
    assert jar.run("resubmit_job", name, check=True).stdout.strip() == name
    wait_for(lambda: (jar.root / "ran").read_text().count("ran") == 2)
    wait_for(lambda: status(jar, name) == "succeeded")
    assert jar.record(name)["attempt"] == 2


def test_dependency_chain_and_transitive_failure(jar):
    log = jar.root / "chain"
    first = jar.submit(f"echo 1 >> {log}")
    second = jar.submit("--after", first, f"echo 2 >> {log}")
    third = jar.submit("--after-any", second, f"echo 3 >> {log}")
    assert jar.path("waiting", second).exists()
    broken = jar.submit("exit 1")
    child = jar.submit("--after", broken, "true")
    grandchild = jar.submit("--after", child, "true")
    anyway = jar.submit("--after-any", broken, f"echo anyway >> {log}")
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 7, message="everything settled")
    assert log.read_text().split()[:3] == ["1", "2", "3"] and "anyway" in log.read_text()
    assert status(jar, child) == "dependency-failed"
    assert status(jar, grandchild) == "dependency-failed" and child in jar.record(
        grandchild)["reason"]
    assert status(jar, third) == "succeeded" and status(jar, anyway) == "succeeded"
    bad = jar.run("submit_job", "--after", "nonexistent-job", "true")
    assert bad.returncode == 1 and "unknown dependency" in bad.stderr


def test_fan_in_of_100_released_exactly_once_with_4_workers(jar):
    import jobjar

    names = jobjar.submit_job("true", array="1-100")
    merge = jobjar.submit_job(f"echo merged >> {jar.root}/merge.log", after=names)
    for _ in range(4):
        jar.start_worker()
    wait_for(lambda: status(jar, merge) == "succeeded", timeout=120)
    assert (jar.root / "merge.log").read_text() == "merged\n"
    assert len(jar.completed()) == 101


def test_arrays_and_from_file(jar, tmp_path):
    names = jar.run("submit_job", "--array", "2-8:3", "echo index=$JJ_ARRAY_INDEX",
                    check=True).stdout.split()
    lines = tmp_path / "lines"
    lines.write_text("echo one\n\n   \necho two\necho three\n")
    more = jar.run("submit_job", "--from-file", str(lines), check=True).stdout.split()
    assert len(names) == 3 and len(more) == 3
    jar.start_worker()
    jar.wait_completed(6)
    outs = {jar.path("output", f"{n}.out").read_text().strip() for n in names + more}
    assert outs == {"index=2", "index=5", "index=8", "one", "two", "three"}
    assert jar.run("submit_job", "--array", "5-1", "true").returncode == 1


def test_hand_made_job_with_directives(jar):
    jar.submit_by_hand("hand.0", "#!/bin/sh\n# a comment\n#JJ --timeout 0.5\n"
                       "#JJ --retries 1\nsleep 5\n")
    jar.submit_by_hand("broken.0", "#!/bin/sh\n#JJ --timeout soon\ntrue\n")
    jar.submit_by_hand("after.0", "#!/bin/sh\n#JJ --after broken.0\ntrue\n")
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 3, message="settled")
    assert status(jar, "hand.0") == "timed-out" and jar.record("hand.0")["attempt"] == 2
    assert status(jar, "broken.0") == "failed"
    assert "--timeout" in jar.record("broken.0")["reason"]
    assert status(jar, "after.0") == "dependency-failed"


def test_job_info(jar):
    gate = jar.root / "gate"
    name = jar.submit("-c", "INFO", f"while [ ! -e {gate} ]; do sleep 0.05; done")
    info = json.loads(jar.run("job_info", "--json", name, check=True).stdout)
    assert info["state"] == "unclaimed" and info["category"] == "INFO"
    worker = jar.start_worker("INFO")
    wait_for(lambda: json.loads(jar.run("job_info", "--json", name).stdout)["state"]
             == "running")
    assert worker in jar.run("job_info", name, check=True).stdout
    gate.touch()
    jar.wait_completed(1)
    import jobjar

    info = jobjar.job_info(name)
    assert info["state"] == "completed" and info["record"]["status"] == "succeeded"
    assert jar.run("job_info", "nope").returncode == 1


def test_wait_jobs_exit_statuses(jar):
    good = jar.submit("true")
    bad = jar.submit("false")
    gate = jar.root / "gate"
    blocked = jar.submit(f"while [ ! -e {gate} ]; do sleep 0.05; done")
    jar.start_worker()
    assert jar.run("wait_jobs", good).returncode == 0
    result = jar.run("wait_jobs", good, bad)
    assert result.returncode == 1 and f"{bad}: failed" in result.stdout
    assert jar.run("wait_jobs", "--timeout", "0.3", blocked).returncode == 2
    gate.touch()
    assert jar.run("wait_jobs").returncode == 0
    import jobjar

    assert [r["status"] for r in jobjar.wait([good, bad])] == ["succeeded", "failed"]


def test_wait_jobs_progress_bar_on_a_terminal(jar):
    names = [jar.submit("sleep 0.2") for _ in range(3)]
    jar.start_worker()
    pid, fd = pty.fork()
    if pid == 0:  # the child: wait_jobs on a terminal
        os.environ.clear()
        os.environ.update(jar.env)
        os.execv(str(BIN / "wait_jobs"), [str(BIN / "wait_jobs"), *names])
    output = b""
    deadline = time.monotonic() + 60
    while b"3/3 done" not in output and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                output += os.read(fd, 4096)
            except OSError:
                break
    _, code = os.waitpid(pid, 0)
    text = output.decode()
    assert "3/3 done, 0 failed" in text and "elapsed" in text and "[###" in text
    assert os.waitstatus_to_exitcode(code) == 0
    assert subprocess.run([str(BIN / "wait_jobs"), *names], env=jar.env, capture_output=True,
                          text=True).stderr == ""  # no bar when not on a terminal
