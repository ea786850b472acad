"""Stopping and pausing by target, check_workers, cron lines, system_status."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml

from conftest import pid_alive, wait_for


def exited(jar, worker) -> bool:
    return (jar.workers_dir / worker / "exited").exists()


def test_stop_targets_all_node_and_worker(jar):
    rain = [jar.start_worker(env={"JJ_NODE": "rain"}) for _ in range(2)]
    meadow = jar.start_worker(env={"JJ_NODE": "meadow"})
    flower = [jar.start_worker(env={"JJ_NODE": "flower.lab"}) for _ in range(2)]
    result = jar.run("stop_worker", "rain", flower[0], "nosuchnode")
    assert result.returncode == 1 and "nosuchnode" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    for worker in rain + flower[:1]:
        wait_for(lambda w=worker: exited(jar, w), message=f"{worker} stops")
    assert not exited(jar, meadow) and not exited(jar, flower[1])
    assert jar.run("stop_worker", "flower.lab").returncode == 0  # node names may have dots
    wait_for(lambda: exited(jar, flower[1]))
    assert jar.run("stop_worker", "all").returncode == 0
    wait_for(lambda: exited(jar, meadow))
    assert not (jar.workers_dir / "STOP_ALL").exists()  # all = a STOP per worker
    (jar.workers_dir / "notes.old").mkdir()  # not a worker: never a target
    for command in ("stop_worker", "pause_worker", "unpause_worker"):
        result = jar.run(command, "notes", "all")
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1 and "notes" in result.stderr
    assert os.listdir(jar.workers_dir / "notes.old") == []
    late = jar.start_worker()  # new workers are unaffected
    jar.submit("true")
    jar.wait_completed(1)
    assert not exited(jar, late)


def test_pause_and_unpause_targets(jar):
    a = jar.start_worker(env={"JJ_NODE": "nodea"})
    b = jar.start_worker(env={"JJ_NODE": "nodeb"})
    assert jar.run("pause_worker", "all").returncode == 0
    assert (jar.workers_dir / a / "PAUSE").exists() and (jar.workers_dir / b / "PAUSE").exists()
    jar.submit("-c", "nodea", "true")
    time.sleep(0.6)
    assert jar.completed() == []
    assert jar.run("unpause_worker", a).returncode == 0
    jar.wait_completed(1)
    # Unpausing a worker that is not paused is fine; an unknown target is reported.
    assert jar.run("unpause_worker", a, "nodeb").returncode == 0
    result = jar.run("unpause_worker", "ghost.123")
    assert result.returncode == 1 and "ghost.123" in result.stderr


def test_python_control_functions(jar):
    import jobjar

    worker = jar.start_worker(env={"JJ_NODE": "pynode"})
    assert jobjar.pause_workers("pynode") == [worker]
    assert (jar.workers_dir / worker / "PAUSE").exists()
    assert jobjar.unpause_workers("all") == [worker]
    assert not (jar.workers_dir / worker / "PAUSE").exists()
    jobjar.pause_all()
    assert (jar.workers_dir / "PAUSE_ALL").exists()
    jobjar.unpause_all()
    assert not (jar.workers_dir / "PAUSE_ALL").exists()
    with pytest.raises(jobjar.JobJarError, match="nobody"):
        jobjar.stop_workers("nobody")
    jobjar.stop_all()
    wait_for(lambda: exited(jar, worker))
    jobjar.unstop_all()


def test_check_workers_fills_the_node_and_ignores_recycled_pids(jar):
    jar.env.update(JJ_MAX_WORKERS="3", JJ_NODE="checknode")
    # A dead worker whose pid now belongs to another program.
    impostor = subprocess.Popen(["sleep", "60"])
    try:
        fake = jar.workers_dir / f"checknode.{impostor.pid}"
        fake.mkdir(parents=True)
        (fake / "info.yaml").write_text(f"pid: {impostor.pid}\ncreate_time: 1000.0\n")
        first = jar.start_worker()
        result = jar.run("check_workers", check=True)
        started = [line.split()[1] for line in result.stdout.splitlines()
                   if line.startswith("started")]
        jar.worker_pids += [int(w.rsplit(".", 1)[1]) for w in started]
        assert len(started) == 2, result.stdout
        assert "1 of 3 workers alive" in result.stdout
        again = jar.run("check_workers", check=True).stdout
        assert "3 of 3 workers alive" in again and "started" not in again
        assert first not in started
    finally:
        impostor.kill()
        impostor.wait()


def test_check_workers_starts_nothing_under_stop_all(jar):
    jar.env["JJ_MAX_WORKERS"] = "2"
    jar.workers_dir.mkdir(parents=True)
    (jar.workers_dir / "STOP_ALL").touch()
    result = jar.run("check_workers", check=True)
    assert "STOP_ALL" in result.stdout and "started" not in result.stdout
    # Only STOP_ALL, and the dot-file lock that serialises check_workers on a node.
    assert [n for n in os.listdir(jar.workers_dir) if not n.startswith(".")] == ["STOP_ALL"]


def test_check_workers_prunes_old_dead_worker_directories(jar):
    jar.env["JJ_MAX_WORKERS"] = "0"
    worker = jar.start_worker()
    (jar.workers_dir / worker / "STOP").touch()
    wait_for(lambda: exited(jar, worker))
    wait_for(lambda: not pid_alive(int(worker.rsplit(".", 1)[1])))
    assert jar.run("check_workers", "--prune", "3600", check=True).stdout.count("pruned") == 0
    old = time.time() - 7200
    for entry in (jar.workers_dir / worker).iterdir():
        os.utime(entry, (old, old), follow_symlinks=False)
    result = jar.run("check_workers", "--prune", "3600", check=True)
    assert f"pruned {worker}" in result.stdout
    assert not (jar.workers_dir / worker).exists()


def test_cron_install_reinstall_remove_and_dry_run(jar, tmp_path):
    tab = tmp_path / "crontab"
    tab.write_text("0 3 * * * /usr/bin/backup # someone else's line\n")
    dry = jar.run("install_cron", "--file", str(tab), "--dry-run", check=True).stdout
    assert "check_workers" in dry and "recover_jobs" in dry and str(jar.home) in dry
    assert "check_workers" not in tab.read_text()
    jar.run("install_cron", "--file", str(tab), check=True)
    jar.run("install_cron", "--file", str(tab), "--stale", "600", check=True)
    text = tab.read_text()
    assert text.count("check_workers") == 1 and text.count("recover_jobs --stale 600") == 1
    assert "PATH=" in text and f"JJ_HOME={jar.home}" in text and "/usr/bin/backup" in text
    line = next(x for x in text.splitlines() if "check_workers" in x)
    assert line.startswith("*/5 * * * * ")
    jar.run("install_cron", "--file", str(tab), "--remove", check=True)
    assert tab.read_text().strip() == "0 3 * * * /usr/bin/backup # someone else's line"
    bad = jar.run("install_cron", "--file", str(tab), "--worker-schedule", "every day")
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1


def test_cron_line_really_runs_check_workers(jar, tmp_path):
    """Run the installed line as cron would, with an almost empty environment.

    The settings of the shell that installed it (a separate worker home, a
    node name, the worker count) must travel in the line itself.
    """
    tab = tmp_path / "crontab"
    elsewhere = tmp_path / "workers-elsewhere"
    jar.env.update(JJ_MAX_WORKERS="1", JJ_NODE="cronnode", JJ_WORKER_HOME=str(elsewhere))
    jar.run("install_cron", "--file", str(tab), check=True)
    line = next(x for x in tab.read_text().splitlines() if "check_workers" in x)
    command = line.split(" ", 5)[5].rsplit(" # ", 1)[0]
    env = {"HOME": jar.env["HOME"]}  # what cron gives, more or less
    for _ in range(2):  # the second run finds the worker the first one started
        subprocess.run(["/bin/sh", "-c", command], env=env, check=True, timeout=60)
    log = (elsewhere / "cron-worker.log").read_text()
    started = log.split("started ")[1].split()[0]
    jar.worker_pids.append(int(started.rsplit(".", 1)[1]))
    assert started.startswith("cronnode.") and (elsewhere / started).is_dir()
    assert log.count("started ") == 1, log


def running_jobs(jar) -> set[str]:
    """Names of the jobs the ``claimed/`` links point at now."""
    names = set()
    for entry in os.scandir(jar.path("claimed")):
        try:
            names.add(os.path.basename(os.readlink(entry.path)))
        except OSError:  # released meanwhile
            continue
    return names


def test_system_status_on_a_busy_jar(jar):
    gate = jar.root / "gate"
    jar.submit("-p", "3", "-c", "LINUX", "true")
    jar.submit("-p", "-2", "-c", "LINUX", "true")
    jar.submit("exit 4")
    slow = jar.submit(f"while [ ! -e {gate} ]; do sleep 0.05; done")
    busy = jar.start_worker()
    # The worker may first run the quick "exit 4": wait for the job asserted on below.
    wait_for(lambda: slow in running_jobs(jar), message=f"{slow} running")
    (jar.workers_dir / "PAUSE_ALL").touch()
    idle = jar.start_worker()
    text = jar.run("system_status", check=True).stdout
    assert "PAUSE_ALL" in text and "unclaimed LINUX: 2 (priority -2..3)" in text
    assert f"working on {slow}" in text and idle in text
    data = json.loads(jar.run("system_status", "--json", check=True).stdout)
    assert data == data | {"control": {"stop_all": False, "pause_all": True}}
    assert data["jobs"]["unclaimed"]["categories"]["LINUX"]["count"] == 2
    states = {w["name"]: w for w in data["workers"]}
    assert states[busy]["state"] == "working" and states[busy]["job"] == slow
    assert states[idle]["state"] == "paused"
    gate.touch()
    os.unlink(jar.workers_dir / "PAUSE_ALL")
    jar.start_worker("LINUX")
    jar.wait_completed(4)
    data = yaml.safe_load(jar.run("system_status", "--yaml", check=True).stdout)
    done = data["jobs"]["completed"]
    assert (done["total"], done["succeeded"], done["failed"]) == (4, 3, 1)
    assert data["recent_failures"][0]["exit_code"] == 4
    import jobjar

    assert jobjar.system_status()["jobs"]["completed"]["failed"] == 1


def test_system_status_only_reads(jar):
    """Status and job_info change nothing: no file, no directory mtime, on a jar with a worker."""
    jar.submit("-c", "PARKED", "true")
    running = jar.submit(f"touch {jar.root}/started; sleep 30")
    worker = jar.start_worker()
    wait_for((jar.root / "started").exists, message="the job runs")
    jar.run("pause_worker", worker, check=True)  # nothing else moves while we look

    def snapshot() -> dict:
        found = {}
        for path in [jar.home, *jar.home.rglob("*")]:
            if path.name in ("heartbeat", "log") or ".spare." in path.name:
                continue  # the worker's own, refreshed while its job runs
            found[str(path)] = os.lstat(path).st_mtime_ns
        return found

    before = snapshot()
    for args in ([], ["--json"], ["--yaml"]):
        jar.run("system_status", *args, check=True)
    jar.run("job_info", running, check=True)
    assert snapshot() == before
    jar.run("cancel_job", running, check=True)
