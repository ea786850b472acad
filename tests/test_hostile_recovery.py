"""Recovery, liveness and worker control in a hostile or faulty world (issue 11).

A job goes back into a queue only when its process is known dead and it
came from a real worker that could have queued it; a clock step does not
make live workers dead; forged numbers are "unknown", never a traceback;
``check_workers`` keeps the limit even when run twice at once; links planted
in ``workers/`` are never followed.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from test_repairs import assert_complete

from conftest import BIN, pid_alive, wait_for

NODE = "vm"


def dead_pid() -> int:
    """The pid of a process that has just ended (not reused within a test)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def fake_worker(workers: Path, pid: int, job: str, category: str | None = None,
                info: bool = True, content: str = "#!/bin/sh\ntrue\n") -> Path:
    """The directory of a worker of node ``vm`` that died holding ``job``."""
    name = f"{NODE}.{pid}"
    wdir = workers / name
    jobdir = wdir / "job" / category if category else wdir / "job"
    jobdir.mkdir(parents=True)
    if info:
        (wdir / "info.yaml").write_text(
            f'worker: "{name}"\npid: {pid}\nstart_ticks: 1\ncreate_time: 1000.5\n')
    (jobdir / job).write_text(content)
    (jobdir / job).chmod(0o755)
    return jobdir / job


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr


# -- finding 2: a clock step -------------------------------------------------------


def test_a_clock_step_does_not_make_a_live_worker_dead(jar, monkeypatch):
    import psutil
    import psutil._pslinux

    from jobjar import liveness, records
    from jobjar.layout import Jar

    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        home = Jar(jar.home)
        name = f"{NODE}.{proc.pid}"
        wdir = home.worker_dir(name)
        wdir.mkdir(parents=True)
        info = {"worker": name, "pid": proc.pid, **liveness.identity(proc.pid)}
        assert isinstance(info["start_ticks"], int) and isinstance(info["create_time"], float)
        records.write(wdir / "info.yaml", info)
        assert liveness.is_alive_here(home, name, NODE) is True
        booted = psutil._pslinux.boot_time()
        monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: booted + 2.0)  # clock +2 s
        assert liveness.is_alive_here(home, name, NODE) is True
        # An older worker (create_time only) is still judged by the wall clock.
        records.write(wdir / "info.yaml", {"worker": name, "pid": proc.pid,
                                           "create_time": info["create_time"]})
        assert liveness.is_alive_here(home, name, NODE) is False
        monkeypatch.undo()
        assert liveness.is_alive_here(home, name, NODE) is True
        # A recycled pid: another start time in ticks is another process, whatever the clock.
        records.write(wdir / "info.yaml", {**info, "start_ticks": info["start_ticks"] - 1})
        assert liveness.is_alive_here(home, name, NODE) is False
    finally:
        proc.kill()
        proc.wait()


# -- finding 8: forged numbers -------------------------------------------------------


def test_forged_numbers_are_unknown_never_a_traceback(jar):
    jar.env["JJ_NODE"] = NODE
    workers = jar.workers_dir
    (workers / f"{NODE}.1").mkdir(parents=True)  # pid 1 exists: its identity is read
    (workers / f"{NODE}.1" / "info.yaml").write_text(
        f'worker: "{NODE}.1"\npid: 1\ncreate_time: "x"\nheartbeat: "x"\n')
    (workers / f"{NODE}.2").mkdir()
    (workers / f"{NODE}.2" / "info.yaml").write_text("start_ticks: [1]\ncreate_time: .nan\n")
    held = fake_worker(workers, dead_pid(), "forged.0")
    jar.path("results").mkdir(parents=True)
    jar.path("results", "forged.0.yaml").write_text(
        'name: forged.0\nstatus: retrying\nrecoveries: "x"\nattempt: "y"\nattempts: 7\n')
    for command in (("check_workers", "--dry-run"), ("recover_jobs",),
                    ("recover_jobs", "--stale", "0"), ("system_status",),
                    ("stop_worker", "all"), ("unpause_worker", "all")):
        no_traceback(jar.run(*command))
    assert jar.path("unclaimed", "forged.0").exists() and not held.exists()
    record = jar.record("forged.0")
    assert record["recoveries"] == 1 and record["status"] == "retrying"
    assert "0 of" in jar.run("check_workers", "--dry-run").stdout  # unknown is not alive


# -- finding 5: two check_workers at once ---------------------------------------


def started_by(outputs: list[str]) -> list[str]:
    return [line.split()[1] for text in outputs for line in text.splitlines()
            if line.startswith("started ")]


def test_two_check_workers_at_once_keep_the_limit(jar):
    jar.env.update(JJ_MAX_WORKERS="2", JJ_NODE=NODE)
    runs = [subprocess.Popen([str(BIN / "check_workers")], env=jar.env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    outputs = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0 and "Traceback" not in err, err
        outputs.append(out)
    started = started_by(outputs)
    jar.worker_pids.extend(int(w.rsplit(".", 1)[1]) for w in started)
    assert len(started) == 2, outputs
    assert "2 of 2 workers alive" in jar.run("check_workers", check=True).stdout


def test_check_workers_stops_the_youngest_workers_over_the_limit(jar):
    jar.env.update(JJ_MAX_WORKERS="3", JJ_NODE=NODE)
    os.environ.update(jar.env)
    first, second, third = (jar.start_worker() for _ in range(3))
    os.environ["JJ_MAX_WORKERS"] = "1"
    import jobjar

    out = jar.run("check_workers", env={"JJ_MAX_WORKERS": "1"}, check=True).stdout
    assert f"stopped {third} (over JJ_MAX_WORKERS)" in out
    assert f"stopped {second} (over JJ_MAX_WORKERS)" in out and "started" not in out
    for worker in (second, third):
        assert (jar.workers_dir / worker / "STOP").is_file()
        wait_for(lambda w=worker: not pid_alive(int(w.rsplit(".", 1)[1])), message="stops")
    assert pid_alive(int(first.rsplit(".", 1)[1]))
    again = jobjar.check_workers()
    assert again["stopped"] == [] and again["alive"] == [first] and again["started"] == []


# -- finding 10: links planted in workers/ -----------------------------------------------


def snapshot(base: Path) -> dict:
    """Every entry below ``base``: its kind and, for files, its bytes and mode."""
    found = {}
    for path in sorted(base.rglob("*")):
        info = path.lstat()
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        found[str(path.relative_to(base))] = (info.st_mode, data)
    return found


def test_links_planted_in_workers_are_never_followed(jar):
    jar.env["JJ_NODE"] = NODE
    alice = jar.root / "alice"
    (alice / "scratch").mkdir(parents=True)
    (alice / "scratch" / "thesis.tex").write_text("years of work\n")
    (alice / ".bashrc").write_text("echo hello\n")
    before = snapshot(alice)
    workers = jar.workers_dir
    workers.mkdir(parents=True)
    os.symlink(alice, workers / f"{NODE}.{dead_pid()}")
    real = workers / f"{NODE}.{dead_pid()}"
    real.mkdir()
    os.symlink(alice / "STOP", real / "STOP")
    os.symlink(alice / "PAUSE", real / "PAUSE")
    os.symlink(alice, real / "scratch")
    for command in (("recover_jobs",), ("recover_jobs", "--stale", "0"), ("stop_worker", "all"),
                    ("pause_worker", "all"), ("unpause_worker", "all"), ("system_status",)):
        no_traceback(jar.run(*command))
    assert (real / "STOP").is_file() and not (real / "STOP").is_symlink()
    no_traceback(jar.run("check_workers", "--dry-run", "--prune", "0"))
    assert snapshot(alice) == before


# -- finding 9: a planted job is not laundered into someone's queue ----------------


def _ann_only_queue(home: Path) -> None:
    queue = home / "unclaimed" / "A"
    queue.mkdir(parents=True, exist_ok=True)
    queue.chmod(0o2755)


def _plant(workers: str, pid: int, info: bool, job: str) -> None:
    fake_worker(Path(workers), pid, job, "A", info=info,
                content="#!/bin/sh\necho pwned > /tmp/never\n")


def test_recovery_rejects_a_job_planted_in_a_fake_worker_directory(team):
    assert team.run("ann", "check_workers", "--dry-run").returncode == 0  # makes the jar
    team.as_user("ann", _ann_only_queue, team.home)
    workers = team.home / "workers"
    team.as_user("bob", _plant, str(workers), dead_pid(), True, "evil.0")
    team.as_user("bob", _plant, str(workers), dead_pid(), False, "evil2.0")
    result = team.run("ann", "recover_jobs", env={"JJ_NODE": NODE})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert os.listdir(team.home / "unclaimed" / "A") == []
    for job, why in (("evil.0", "may not submit to unclaimed/A"),
                     ("evil2.0", "not a real worker's directory")):
        assert (team.home / "rejected" / job).exists()
        record = yaml.safe_load((team.home / "results" / f"{job}.yaml").read_text())
        assert_complete(record, job, "rejected")
        assert why in record["reason"] and record["submitter"] == team.names["bob"], record
        assert f"{job} (worker" in result.stdout and "moved to rejected/" in result.stdout


# -- finding 1: nothing is put back while a process of it may run --------------------


def _dead_worker_with_live_job(workers: str, pid: int, job: str, pidfile: str) -> None:
    fake_worker(Path(workers), pid, job)
    env = {"PATH": "/usr/bin:/bin", "JJ_WORKER": f"{NODE}.{pid}", "JJ_JOB_NAME": job}
    orphan = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    Path(pidfile).write_text(str(orphan.pid))


def test_recovery_leaves_a_job_whose_process_it_cannot_see(team):
    assert team.run("ann", "check_workers", "--dry-run").returncode == 0  # makes the jar
    workers, pid, pidfile = team.home / "workers", dead_pid(), team.home / "orphan.pid"
    team.as_user("ann", _dead_worker_with_live_job, str(workers), pid, "busy.0", str(pidfile))
    orphan = int(pidfile.read_text())
    held = workers / f"{NODE}.{pid}" / "job" / "busy.0"
    try:
        result = team.run("bob", "recover_jobs", env={"JJ_NODE": NODE})
        assert result.returncode == 0 and "left in place" in result.stdout, result
        assert held.exists() and pid_alive(orphan)
        assert not (team.home / "unclaimed" / "busy.0").exists()
    finally:
        os.kill(orphan, signal.SIGKILL)
    wait_for(lambda: not pid_alive(orphan), message="the orphan dies")
    result = team.run("bob", "recover_jobs", env={"JJ_NODE": NODE})
    assert "busy.0 (worker" in result.stdout and "put back" in result.stdout, result
    assert (team.home / "unclaimed" / "busy.0").exists() and not held.exists()


def test_recovery_ends_the_lost_attempt_before_putting_the_job_back(jar):
    jar.env["JJ_NODE"] = NODE
    pid = dead_pid()
    held = fake_worker(jar.workers_dir, pid, "lost.0")
    env = {"PATH": "/usr/bin:/bin", "JJ_WORKER": f"{NODE}.{pid}", "JJ_JOB_NAME": "lost.0"}
    orphan = subprocess.Popen(["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"],
                              env=env, start_new_session=True)
    try:
        out = jar.run("recover_jobs", env={"JJ_KILL_GRACE": "0.2"}, check=True).stdout
        assert "process(es) of the lost attempt" in out and "put back" in out
        assert orphan.wait(timeout=30) == -signal.SIGKILL
        assert jar.path("unclaimed", "lost.0").exists() and not held.exists()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


# -- finding 16: a huge kill grace -------------------------------------------------


@pytest.mark.parametrize("grace, wait", [(1e300, 300.0), (float("inf"), 300.0),
                                          (float("nan"), 300.0), (-5, 0.0), ("x", 300.0),
                                          (2, 2.0)])
def test_recovery_waits_are_bounded_whatever_the_kill_grace(grace, wait):
    from jobjar import recovery

    assert recovery._grace(grace) == wait == min(wait, recovery.MAX_GRACE)


def _forge_death(worker_dir: str) -> None:
    """As bob: replace a live worker's info.yaml by a forged one and add an ``exited`` file."""
    directory = Path(worker_dir)
    forged = directory / ".forged"
    forged.write_text(f'worker: "{directory.name}"\npid: {directory.name.rsplit(".", 1)[1]}\n'
                      'start_ticks: 1\ncreate_time: 1.0\n')
    os.rename(forged, directory / "info.yaml")
    (directory / "exited").write_text("")


def test_a_live_worker_is_not_recovered_on_files_another_user_forged(team):
    """bob may write workers/, so he may replace a worker's info.yaml or add ``exited``;
    neither is evidence that ann's worker died: its running job is not killed or put back."""
    import jobjar.records as records

    worker = team.start_worker("ann")
    result = team.run("ann", "submit_job", "sleep 3; echo done")
    name = result.stdout.strip()
    wait_for(lambda: (team.home / "claimed" / worker).is_symlink(), message="the job runs")
    team.as_user("bob", _forge_death, str(team.home / "workers" / worker))
    for who in ("ann", "bob"):
        out = team.run(who, "recover_jobs")
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        assert name not in out.stdout, out.stdout
    status = team.run("ann", "check_workers", "--dry-run", env={"JJ_MAX_WORKERS": "1"})
    assert status.returncode == 0, status.stderr
    record_path = team.home / "results" / f"{name}.yaml"
    wait_for(lambda: (records.read(record_path) or {}).get("status"), 30,
             message="the job's record")
    record = records.read(record_path)
    assert record["status"] == "succeeded" and record["attempt"] == 1, record
    assert record["recoveries"] == 0, record
    assert pid_alive(int(worker.rsplit(".", 1)[1]))


def _plant_links(workers: str, victim: str, pids: tuple[int, int]) -> None:
    """As bob: a worker "directory" that is a link to ann's files, and a worker
    directory of his own whose control files and scratch are links to them."""
    from jobjar.naming import default_node

    node = default_node()
    os.symlink(victim, os.path.join(workers, f"{node}.{pids[0]}"))
    real = os.path.join(workers, f"{node}.{pids[1]}")
    os.mkdir(real)
    for name in ("STOP", "PAUSE"):
        os.symlink(os.path.join(victim, name), os.path.join(real, name))
    os.symlink(victim, os.path.join(real, "scratch"))


def test_links_another_user_plants_in_workers_never_reach_their_files(team):
    """Finding 10 with two users: bob's links in workers/ point at ann's private files;
    no command ann runs (recovery, controls, pruning, status) writes or deletes there."""
    assert team.run("ann", "check_workers", "--dry-run").returncode == 0
    private = team.root / team.names["ann"]
    (private / "scratch").mkdir()
    (private / "scratch" / "thesis.tex").write_text("years of work\n")
    (private / ".bashrc").write_text("echo hello\n")
    for path in (private / "scratch", private / "scratch" / "thesis.tex", private / ".bashrc"):
        os.chown(path, team.uid["ann"], team.gid)
    before = snapshot(private)
    team.as_user("bob", _plant_links, str(team.home / "workers"), str(private),
                 (dead_pid(), dead_pid()))
    for command in (("recover_jobs",), ("recover_jobs", "--stale", "0"), ("stop_worker", "all"),
                    ("pause_worker", "all"), ("unpause_worker", "all"), ("system_status",),
                    ("check_workers", "--dry-run", "--prune", "0")):
        no_traceback(team.run("ann", *command))
    assert snapshot(private) == before
    assert not (private / "STOP").exists() and not (private / "PAUSE").exists()


def test_check_workers_gives_up_on_a_lock_someone_holds(jar, monkeypatch):
    """Anyone who may write workers/ may hold the node's check lock for ever:
    check_workers then gives up with one clear error instead of piling up."""
    import fcntl

    from jobjar import launch
    from jobjar.errors import JobJarError

    jar.env.update(JJ_NODE=NODE)
    os.environ.update(jar.env)
    jar.run("check_workers", "--dry-run", check=True)
    lock = jar.workers_dir / f".check.{NODE}.lock"
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        monkeypatch.setattr(launch, "LOCK_WAIT", 0.3)
        with pytest.raises(JobJarError, match="another check_workers"):
            launch.check_workers()
    finally:
        os.close(fd)
    assert launch.check_workers(start=False)["started"] == []
