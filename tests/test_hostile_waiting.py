"""``waiting/`` and worker directories in a hostile world (issue 11, findings 9 and 16).

Whoever can write ``waiting/`` must not get a job into a queue they may not
write; a job that depends on itself fails instead of waiting forever; a
worker never writes into a directory at its name that is not its own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from conftest import wait_for

NODE = "vm"


def _record(home: Path, name: str) -> dict | None:
    try:
        return yaml.safe_load((home / "results" / f"{name}.yaml").read_text())
    except FileNotFoundError:
        return None


def _status(home: Path, name: str) -> str | None:
    record = _record(home, name)
    return record and record.get("status")


# -- finding 9: a job put in waiting/CAT is not laundered into unclaimed/CAT ----------


def _ann_only_queue(home: Path) -> None:
    queue = home / "unclaimed" / "A"
    queue.mkdir(parents=True, exist_ok=True)
    queue.chmod(0o2755)


def _plant_waiting(home: Path, name: str, marker: Path) -> None:
    job = home / "waiting" / "A" / name
    job.parent.mkdir(parents=True, exist_ok=True)
    job.write_text(f"#!/bin/sh\ntouch {marker}\n")
    job.chmod(0o755)


def test_a_waiting_job_enters_only_a_queue_its_owner_may_write(team):
    home = team.home
    assert team.run("ann", "check_workers", "--dry-run").returncode == 0  # makes the jar
    team.as_user("ann", _ann_only_queue, home)
    assert team.run("bob", "submit_job", "-c", "A", "true").returncode != 0  # bob may not
    marker, ran = home / "pwned", home / "ann-ran"
    team.as_user("bob", _plant_waiting, home, "x.0", marker)
    first = team.run("ann", "submit_job", "-c", "A", "true").stdout.strip()
    second = team.run("ann", "submit_job", "-c", "A", "--after", first, f"touch {ran}")
    second = second.stdout.strip()
    assert (home / "waiting" / "A" / second).exists()
    team.start_worker("ann", "A", env={"JJ_NODE": NODE})
    wait_for(lambda: _status(home, second) == "succeeded", message="ann's dependent ran")
    wait_for(lambda: (home / "rejected" / "x.0").exists(), message="bob's job set aside")
    assert ran.exists() and not marker.exists()
    assert not (home / "waiting" / "A" / "x.0").exists()
    assert not (home / "unclaimed" / "A" / "x.0").exists()
    record = _record(home, "x.0")
    assert record["status"] == "rejected" and record["submitter"] == team.names["bob"], record
    assert "may not submit to unclaimed/A" in record["reason"], record


# -- finding 16: a job that depends on itself --------------------------------------


def test_a_job_that_depends_on_itself_fails_instead_of_waiting(jar):
    """Put in waiting/ by hand, or in unclaimed/ (its worker moves it to waiting/ first)."""
    marker = jar.root / "ran"
    waiting = jar.path("waiting")
    waiting.mkdir(parents=True)
    for name, option in (("self.0", "--after"), ("selfany.0", "--after-any")):
        job = waiting / name
        job.write_text(f"#!/bin/sh\n#JJ {option} {name}\ntouch {marker}\n")
        job.chmod(0o755)
    jar.submit_by_hand("selfq.0", f"#!/bin/sh\n#JJ --after selfq.0\ntouch {marker}\n")
    jar.start_worker()
    for name in ("self.0", "selfany.0", "selfq.0"):
        wait_for(lambda n=name: jar.path("completed", n).exists(), message=f"{name} settled")
        record = jar.record(name)
        assert record["status"] == "dependency-failed", record
        assert record["reason"] == "it depends on itself", record
    assert not marker.exists() and os.listdir(waiting) == []


def test_jobs_that_wait_for_each_other_fail_instead_of_waiting(jar):
    marker = jar.root / "ran"
    waiting = jar.path("waiting")
    (waiting / "R").mkdir(parents=True)
    for where, name, option, dep in (
            (waiting, "a.0", "--after", "b.0"), (waiting / "R", "b.0", "--after", "c.0"),
            (waiting, "c.0", "--after", "a.0"), (waiting, "d.0", "--after", "a.0"),
            (waiting, "e.0", "--after-any", "a.0")):
        job = where / name
        job.write_text(f"#!/bin/sh\n#JJ {option} {dep}\necho {name} >> {marker}\n")
        job.chmod(0o755)
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 5, message="all five settled")
    for name in ("a.0", "b.0", "c.0"):
        record = jar.record(name)
        assert record["status"] == "dependency-failed", record
        assert record["reason"].startswith("it depends on itself (through "), record
    assert jar.record("b.0")["category"] == "R"
    assert jar.record("d.0")["status"] == "dependency-failed"
    assert "a.0" in jar.record("d.0")["reason"]
    assert jar.record("e.0")["status"] == "succeeded"
    assert marker.read_text() == "e.0\n"


# -- a worker's directory that is not its own ------------------------------------------


def _setup_worker_as(team, who: str, prepare) -> str:
    """Set up a ``Worker`` as ``who`` in a child, after ``prepare(name)`` ran for its name.

    The worker's name holds its pid, known only once the child exists: the
    child waits on a pipe until the parent has prepared the directory.
    Returns ``"started"`` or ``"refused: <message>"``.
    """
    import psutil  # noqa: F401 - loaded before the child drops root

    from jobjar import recovery  # noqa: F401
    from jobjar.config import load
    from jobjar.errors import JobJarError
    from jobjar.worker import Worker

    go_read, go_write = os.pipe()
    say_read, say_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(go_write)
            os.read(go_read, 1)
            os.setgroups([team.gid])
            os.setgid(team.gid)
            os.setuid(team.uid[who])
            os.umask(0o002)
            os.environ.clear()
            os.environ.update(team.env(who, {"JJ_NODE": NODE}))
            try:
                Worker(config=load()).setup()
                said = "started"
            except JobJarError as exc:
                said = f"refused: {exc}"
            except Exception as exc:  # the assertion below shows it
                said = f"crashed: {type(exc).__name__}: {exc}"
            os.write(say_write, said.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(go_read)
    os.close(say_write)
    try:
        prepare(f"{NODE}.{pid}")
    finally:
        os.write(go_write, b"x")
        os.close(go_write)
        _, status = os.waitpid(pid, 0)
    said = os.read(say_read, 4096).decode()
    os.close(say_read)
    assert os.waitstatus_to_exitcode(status) == 0, f"the worker's set-up failed: {said!r}"
    return said


def _plant_worker_dir(where: str, sentinel: str) -> None:
    wdir = Path(where)
    wdir.mkdir()
    (wdir / "info.yaml").write_text(f'worker: "{wdir.name}"\n')
    os.symlink(sentinel, wdir / "log")


def test_a_worker_moves_aside_a_directory_of_another_user_at_its_name(team):
    assert team.run("ann", "check_workers", "--dry-run").returncode == 0  # makes the jar
    workers = team.home / "workers"
    sentinel = team.root / "sentinel"
    sentinel.write_text("precious\n")
    said = _setup_worker_as(team, "ann", lambda name: team.as_user(
        "bob", _plant_worker_dir, str(workers / name), str(sentinel)))
    assert said == "started", said
    [name] = [n for n in os.listdir(workers) if not n.startswith(".") and n != "STOP_ALL"]
    own = workers / name
    info = own.lstat()
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == team.uid["ann"]
    assert yaml.safe_load((own / "info.yaml").read_text())["user"] == team.names["ann"]
    assert (own / "log").lstat().st_uid == team.uid["ann"] and not (own / "log").is_symlink()
    assert "moved aside" in (own / "log").read_text()
    [aside] = [n for n in os.listdir(workers) if n.startswith(f".planted.{name}.")]
    planted = workers / aside
    assert planted.lstat().st_uid == team.uid["bob"]
    assert sorted(os.listdir(planted)) == ["info.yaml", "log"]  # nothing of ann's in it
    assert os.readlink(planted / "log") == str(sentinel)
    assert sentinel.read_text() == "precious\n"


def test_a_worker_refuses_to_start_in_a_directory_it_cannot_move_aside(team):
    assert team.run("ann", "check_workers", "--dry-run").returncode == 0  # makes the jar
    workers = team.home / "workers"
    os.chown(workers, 0, team.gid)  # a sticky worker home that ann does not own
    workers.chmod(0o3770)
    planted: list[Path] = []

    def prepare(name: str) -> None:
        planted.append(workers / name)
        team.as_user("bob", Path.mkdir, planted[0])

    said = _setup_worker_as(team, "ann", prepare)
    assert said.startswith("refused: ") and "cannot be moved aside" in said, said
    assert len(said.splitlines()) == 1
    assert planted[0].lstat().st_uid == team.uid["bob"] and os.listdir(planted[0]) == []
