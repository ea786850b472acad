"""system_status and the operator commands in a jar other people write into.

Names with escape sequences, forged worker files and records, directories a
colleague made unreadable: the operator gets a sensible summary, never a
traceback, and nothing in it drives the terminal.
"""

from __future__ import annotations

import json
import os

import pytest

EVIL = "evil\x1b[2J\nforged line.0"
ESCAPED = "evil\\x1b[2J\\nforged line.0"


def unused_pid() -> int:
    """A pid no process can have (above the kernel's limit)."""
    with open("/proc/sys/kernel/pid_max") as src:
        return int(src.read()) + 1


def clean(result) -> str:
    """The output of a command that must have succeeded without a raw control character."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert not any(line.startswith("forged line") for line in result.stdout.splitlines())
    return result.stdout


def forge_worker(jar, name: str, info: str | None = None, job: str | None = None) -> None:
    """A worker directory as anyone who may write ``workers/`` can make one."""
    wdir = jar.workers_dir / name
    (wdir / "job").mkdir(parents=True)
    if info is not None:
        (wdir / "info.yaml").write_text(info)
    if job is not None:
        (wdir / "job" / job).write_text("#!/bin/sh\ntrue\n")


def test_system_status_escapes_control_characters_in_every_name_and_reason(jar):
    jar.submit("-c", "nobody", "true")
    jar.path("unclaimed", "C\x1b[2J\nforged line").mkdir()
    jar.submit_by_hand("x.0", category="C\x1b[2J\nforged line")
    (jar.path("unclaimed") / f".{EVIL}").write_text("")  # a hidden file
    forge_worker(jar, f"far.{unused_pid()}", job=EVIL)  # held, stranded
    (jar.path("rejected") / EVIL).write_text("")
    jar.path("results", f"{EVIL}.yaml").write_text('reason: "no\\u001b[2J\\nforged line"\n')
    (jar.path("rejected") / os.fsdecode(b"raw\xff.0")).write_text("")  # not UTF-8
    (jar.path("completed") / "failed.0").write_text("")
    jar.path("results", "failed.0.yaml").write_text(
        'status: "bad\\u001b[2J\\nforged line"\nreason: "r\\u001b[2J\\nforged line"\n'
        'name: "n\\u001b[2J\\nforged line"\nfinished: "2026"\n')
    (jar.path("completed") / "x\x1b[2J.0").write_text("")
    # Recent finishes come from workers' logs: a forged one, with raw control characters.
    logger = f"logger.{unused_pid()}"
    forge_worker(jar, logger)
    (jar.workers_dir / logger / "log").write_text(
        "2026-01-01T00:00:00Z finish failed.0 failed\n"
        "2026-01-01T00:00:01Z finish x\x1b[2J.0 failed\n")

    text = clean(jar.run("system_status"))
    assert f"STRANDED: {ESCAPED} " in text
    assert f"rejected: {ESCAPED}: no\\x1b[2J\\nforged line" in text
    assert f"hidden: unclaimed/.{ESCAPED} " in text
    assert "unclaimed C\\x1b[2J\\nforged line: 1" in text
    assert "rejected: raw\\xff.0: (no reason recorded)" in text
    assert "2026 failed.0 failed: r\\x1b[2J\\nforged line" in text  # the jar's name, the log's
    assert "x\\x1b[2J.0 failed" in text                        # status; the record's reason

    machine = json.loads(jar.run("system_status", "--json", check=True).stdout)
    assert EVIL in [item["name"] for item in machine["jobs"]["rejected"]]  # the true name


def test_operator_commands_escape_worker_and_job_names(jar):
    jar.submit("-c", "nobody", "true")
    jar.path("workers").mkdir(exist_ok=True)
    forge_worker(jar, f"node\x1b[2J\nforged line.{unused_pid()}", job=EVIL)
    for command in ("stop_worker", "pause_worker", "unpause_worker"):
        text = clean(jar.run(command, "all"))
        assert "node\\x1b[2J\\nforged line." in text, command
    clean(jar.run("check_workers", "--dry-run"))
    recovered = jar.run("recover_jobs", "--stale", "0")
    assert "\x1b" not in recovered.stdout + recovered.stderr
    assert "Traceback" not in recovered.stderr


FORGED_INFO = {
    "create_time is text": 'create_time: "x"\n',
    "heartbeat is text": 'heartbeat: "x"\n',
    "heartbeat is a list": "heartbeat: [1, 2]\n",
    "heartbeat is infinite": "heartbeat: .inf\npid: [1]\n",
    "create_time is a list": "create_time: [1, 2]\n",
    "categories is text": 'categories: "abc"\n',
    "categories hold numbers and lists": "categories: [1, [2], null]\n",
    "started is a mapping": "started: {a: 1}\n",
    "not a mapping": "- a\n- b\n",
    "binary": "\x00\xff garbage",
}


@pytest.mark.parametrize("info", FORGED_INFO.values(), ids=FORGED_INFO.keys())
def test_a_forged_info_yaml_gives_a_sensible_status(jar, info):
    jar.submit("-c", "nobody", "true")
    here = f"here.{os.getpid()}"  # a live pid on this node: its info is read
    forge_worker(jar, here, info=info, job="held.0")
    forge_worker(jar, f"far.{unused_pid()}", info=info)
    env = {"JJ_NODE": "here"}
    clean(jar.run("system_status", env=env))
    status = json.loads(clean(jar.run("system_status", "--json", env=env)))
    workers = {w["name"]: w for w in status["workers"]}
    assert workers[here]["job"] == "held.0"
    for worker in workers.values():
        assert worker["categories"] is None or all(isinstance(c, str)
                                                   for c in worker["categories"])
        assert worker["started"] is None or isinstance(worker["started"], str)


def test_a_directory_where_info_yaml_belongs(jar):
    jar.submit("-c", "nobody", "true")
    forge_worker(jar, f"here.{os.getpid()}")
    (jar.workers_dir / f"here.{os.getpid()}" / "info.yaml").mkdir()
    status = json.loads(clean(jar.run("system_status", "--json", env={"JJ_NODE": "here"})))
    assert [w["name"] for w in status["workers"]] == [f"here.{os.getpid()}"]


def test_records_with_fields_of_the_wrong_type_are_counted_not_trusted(jar):
    jar.submit("-c", "nobody", "true")
    forged = {"list.0": "status: [1, 2]\n", "map.0": "status: {a: 1}\nfinished: 5\n",
              "num.0": "status: failed\nfinished: 7\nexit_code: \"x\"\nsignal: [9]\n",
              "text.0": 'status: failed\nfinished: "2026"\nreason: [1]\nname: {a: 1}\n',
              "bool.0": "status: failed\nexit_code: true\nworker: 3\n"}
    for name, text in forged.items():
        (jar.path("completed") / name).write_text("")
        jar.path("results", f"{name}.yaml").write_text(text)
    (jar.path("rejected") / "r.0").write_text("")
    jar.path("results", "r.0.yaml").write_text("reason: [1, 2]\n")
    worker = f"logger.{unused_pid()}"  # how they ended: from a worker's log (status.finished)
    forge_worker(jar, worker)
    (jar.workers_dir / worker / "log").write_text(
        "".join(f"2026-01-01T00:00:0{i}Z finish {name} {status}\n" for i, (name, status) in
                enumerate([("num.0", "failed"), ("text.0", "failed"), ("bool.0", "failed"),
                           ("list.0", "timed-out"), ("map.0", "[1, 2]"), ("gone.0", "failed"),
                           ("../x.0", "failed")])))
    clean(jar.run("system_status"))
    status = json.loads(clean(jar.run("system_status", "--json")))
    done = status["jobs"]["completed"]
    assert done["total"] == 5 and done["failed"] == 3 and done["other"] == {"timed-out": 1}
    assert done["recent"] == 4  # not a bad status, not a job that is not in completed/
    for failure in status["recent_failures"]:
        assert failure["exit_code"] is None and failure["signal"] is None
        assert all(failure[k] is None or isinstance(failure[k], str)
                   for k in ("name", "finished", "reason", "worker"))
    assert status["jobs"]["rejected"] == [{"name": "r.0", "reason": None}]


# -- a directory a colleague made unreadable (docs/security.md's split set-up) --


def test_an_unreadable_directory_is_shown_not_a_crash(team):
    assert team.run("ann", "submit_job", "-c", "A", "true").returncode == 0

    def hide(home):
        for state in ("waiting", "unclaimed"):
            private = home / state / "B"
            private.mkdir()
            private.chmod(0o2700)
            (private / "secret.0").write_text("#!/bin/sh\ntrue\n")

    team.as_user("ann", hide, team.home)
    text = team.run("bob", "system_status")
    assert text.returncode == 0 and "Traceback" not in text.stderr, text.stderr
    assert "cannot read waiting/B" in text.stdout and "cannot read unclaimed/B" in text.stdout
    machine = team.run("bob", "system_status", "--json")
    assert machine.returncode == 0, machine.stderr
    status = json.loads(machine.stdout)
    assert status["unreadable"] == ["unclaimed/B", "waiting/B"]
    assert status["jobs"]["unclaimed"]["categories"]["A"]["count"] == 1
    ann = json.loads(team.run("ann", "system_status", "--json").stdout)
    assert ann["unreadable"] == [] and ann["jobs"]["waiting"] == 1
