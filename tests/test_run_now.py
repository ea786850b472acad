"""``run_now`` (``jr``): one command at once on an idle worker, its output as it is written,
its exit status; Ctrl-C cancels it; ``--max-wait`` gives up when no worker is idle."""

from __future__ import annotations

import os
import signal
import time

from test_follow import Watched, gated

from conftest import one_line_error, pid_alive, wait_for


def test_run_now_streams_output_before_the_command_ends(jar, tmp_path):
    jar.start_worker()
    runner = Watched(jar, "run_now", gated(tmp_path, "first", "second", status=0))
    runner.until(lambda w: b"first\n" in w.out and b"first-err\n" in w.err,
                 message="the first lines while the command runs")
    assert runner.proc.poll() is None and not (tmp_path / "go").exists()
    (tmp_path / "go").touch()
    assert runner.finish() == 0
    assert runner.out == b"first\nsecond\n" and runner.err == b"first-err\nsecond-err\n"
    (name,) = jar.completed()
    record = jar.record(name)
    assert record["status"] == "succeeded" and name.endswith(".1000000000")  # top priority
    assert "-run_now." in name and record["category"] == record["node"]


def test_run_now_exits_with_the_commands_status(jar):
    jar.start_worker()
    assert jar.run("run_now", "true").returncode == 0
    assert jar.run("run_now", "exit", "3").returncode == 3
    killed = jar.run("run_now", "kill -TERM $$")
    assert killed.returncode == 128 + signal.SIGTERM, killed.stderr
    assert jar.run("jr", "exit 5").returncode == 5  # its other name


def test_run_now_runs_in_the_callers_directory_with_the_callers_environment(jar, tmp_path):
    jar.start_worker(env={"WORKER_ONLY": "from-the-worker"})
    here = tmp_path / "here with space"
    here.mkdir()
    runner = Watched(jar, "run_now", 'pwd; echo "[$CALLER_ONLY]"; echo "${WORKER_ONLY-unset}";'
                     ' echo "$JJ_JOB_NAME"', env={"CALLER_ONLY": "x  'y'\nz"}, cwd=str(here))
    assert runner.finish() == 0, runner.err
    lines = runner.out.decode().split("\n")
    assert lines[0] == str(here)
    assert lines[1:3] == ["[x  'y'", "z]"]
    assert lines[3] == "unset"  # the caller's environment, not the worker's
    assert lines[4] in jar.completed()  # the job's own variables are kept


def test_run_now_gives_up_after_max_wait_with_no_worker(jar):
    result = jar.run("run_now", "--max-wait", "1", "echo never")
    assert result.returncode == 124, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert "no idle worker" in lines[0] and "error" in lines[-1] and len(lines) == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not jar.path("unclaimed").exists() or not any(jar.path("unclaimed").rglob("*"))


def test_run_now_waits_for_a_busy_worker(jar, tmp_path):
    jar.start_worker()
    busy = jar.submit(gated(tmp_path, "busy", "free"))
    wait_for(lambda: jar.run("job_info", busy).stdout.split(":")[1].startswith(" running"))
    runner = Watched(jar, "run_now", "echo ran")
    runner.until(lambda w: b"no idle worker" in w.err, message="it says it waits")
    assert runner.proc.poll() is None
    (tmp_path / "go").touch()
    assert runner.finish() == 0 and runner.out == b"ran\n"
    assert len(runner.err.splitlines()) == 1


def test_ctrl_c_cancels_the_job_and_exits_130(jar, tmp_path):
    jar.start_worker()
    pidfile = tmp_path / "pid"
    runner = Watched(jar, "run_now", f"echo $$ > {pidfile}; echo started; sleep 300")
    runner.until(lambda w: b"started\n" in w.out, message="the command running")
    pid = int(pidfile.read_text())
    runner.proc.send_signal(signal.SIGINT)
    assert runner.finish() == 130
    assert b"cancelled" in runner.err
    (name,) = jar.wait_completed(1)
    assert jar.record(name)["status"] == "cancelled"
    wait_for(lambda: not pid_alive(pid), message="the command ended by its worker")


def test_run_now_bad_input(jar):
    one_line_error(jar.run("run_now"), "no command", status=2)
    one_line_error(jar.run("run_now", "--max-wait", "soon", "true"), "--max-wait", status=1)
    one_line_error(jar.run("run_now", "--timeout", "-1", "true"), "--timeout", status=1)


def test_choose_node_prefers_the_least_loaded_idle_node():
    from jobjar.immediate import choose_node
    from jobjar.machine import Machine

    def figures(node, load, cpus):
        return Machine(node, time.time(), cpus, load, load, load, 1 << 20, 1 << 19)

    machines = {"a": figures("a", 3.0, 4), "b": figures("b", 1.0, 1), "c": figures("c", 0.2, 1),
                "d": None}
    assert choose_node({"a": 1, "b": 2, "d": 5}, machines) == "a"  # 0.75 per CPU beats 1.0
    assert choose_node({"a": 1, "c": 1}, machines) == "c"
    assert choose_node({"d": 1, "e": 1}, machines) == "d"  # unknown: by name
    assert choose_node({"d": 1, "e": 3}, machines) == "e"  # then more idle workers
    assert choose_node({"a": 0}, machines) is None and choose_node({}, machines) is None


def test_run_now_from_python(jar, tmp_path, capfd):
    import io

    import jobjar

    jar.start_worker()
    out = io.BytesIO()
    record = jobjar.run_now("echo $X; exit 7", env={"X": "given", "PATH": os.environ["PATH"]},
                            cwd=str(tmp_path), out=out, err=io.BytesIO())
    assert out.getvalue() == b"given\n" and record["exit_code"] == 7
    assert jobjar.exit_status(record) == 7


def test_choose_node_leaves_out_a_node_whose_gates_hold_claims():
    from jobjar.immediate import choose_node
    from jobjar.machine import Machine

    now = time.time()
    loaded = Machine("a", now, 1, 0.9, 0.9, 0.9, 1 << 20, 1 << 19, max_load=0.5)
    short = Machine("b", now, 1, 0.1, 0.1, 0.1, 1 << 20, 1 << 10, min_free_memory_kb=1 << 15)
    busy = Machine("c", now, 1, 2.0, 2.0, 2.0, 1 << 20, 1 << 19)
    machines = {"a": loaded, "b": short, "c": busy}
    assert choose_node({"a": 1, "b": 1}, machines) is None
    assert choose_node({"a": 1, "b": 1, "c": 1}, machines) == "c"  # loaded, but not gated


def test_run_now_job_asks_for_its_node(jar):
    jar.start_worker()
    assert jar.run("run_now", "true").returncode == 0
    (name,) = jar.completed()
    head = jar.path("completed", name).read_text()
    node = jar.record(name)["node"]
    assert f"#JJ --node {node}" in head and jar.record(name)["category"] == node
