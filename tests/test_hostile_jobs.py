"""Submitting and handling single jobs in a hostile or faulty world (issue 11).

Partial submissions say exactly what was submitted; a malformed number in a
directive is one clear line; directories made at submission are as usable
as their parents whatever the submitter's umask; a record's category never
becomes a path; the record is the truth about a job whose file is gone;
names and reasons reach a terminal escaped; an unknown name does not stop
``wait_jobs`` waiting for the others; names too long for a record are
refused at submission.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import one_line_error as _one_line_error
from conftest import wait_for


def one_line_error(result: subprocess.CompletedProcess, *expect: str) -> str:
    """One line, no traceback, and exit status 1 (a user error)."""
    return _one_line_error(result, *expect, status=1)


def queued(jar) -> list[str]:
    """Every job file in ``unclaimed/`` (and its categories)."""
    found = []
    for _root, _dirs, names in os.walk(jar.path("unclaimed")):
        found += names
    return sorted(found)


# -- 4: partial submissions ------------------------------------------------------------------


def test_an_array_that_fills_the_disk_prints_every_submitted_name(jar, small_disk):
    result = jar.run("submit_job", "--array", "1-1000", "true")
    line = one_line_error(result, "disk is full", "of 1000 jobs submitted", "--array")
    printed = result.stdout.split()
    assert printed, "not one job fitted on the disk"
    assert f"{len(printed)} of 1000 jobs submitted" in line
    assert f"the rest is --array {len(printed) + 1}-1000" in line
    assert sorted(printed) == queued(jar)  # exactly the queued ones: a retry runs none twice
    assert os.listdir(jar.path("limbo")) == []


def test_the_python_api_says_which_jobs_of_an_array_were_submitted(jar, small_disk):
    import jobjar
    from jobjar.errors import SubmitError
    from jobjar.submit import PartialSubmitError

    with pytest.raises(PartialSubmitError) as caught:
        jobjar.submit_job("true", array="1-1000")
    assert isinstance(caught.value, SubmitError) and caught.value.total == 1000
    assert sorted(caught.value.submitted) == queued(jar)
    assert f"{len(caught.value.submitted)} of 1000" in str(caught.value)


def test_from_file_with_a_bad_line_submits_nothing(jar, tmp_path):
    commands = tmp_path / "commands"
    commands.write_bytes(b"echo one\necho two\necho \x00three\necho four\n")
    result = jar.run("submit_job", "--from-file", str(commands))
    one_line_error(result, "line 3", "NUL", "nothing submitted")
    assert result.stdout == "" and queued(jar) == []


# -- 6: numbers in directives ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["--5", "\u00b2", "\u0663", "-0", "5x", "99999999999"])
def test_a_malformed_count_is_a_directive_error_not_a_crash(value):
    from jobjar import directives

    for line in (f"#JJ --retries {value}", f"#JJ --retries={value}",
                 f"#JJ --array-index {value}"):
        with pytest.raises(directives.DirectiveError, match="non-negative integer"):
            directives.parse(f"#!/bin/sh\n{line}\ntrue\n".encode())


@pytest.mark.parametrize("value", ["--5", "\u0663", "1_0", "nan", "inf", "0"])
def test_a_malformed_timeout_is_a_directive_error(value):
    from jobjar import directives

    with pytest.raises(directives.DirectiveError, match="--timeout"):
        directives.parse(f"#!/bin/sh\n#JJ --timeout {value}\ntrue\n".encode())


def test_submit_job_refuses_malformed_numbers_in_one_line(jar, tmp_path):
    for args in (["--retries=--5"], ["--retries", "\u00b2"], ["--timeout", "\u0663"]):
        one_line_error(jar.run("submit_job", *args, "true"), "submit_job: error:", "--")
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n#JJ --retries --5\ntrue\n")
    script.chmod(0o755)
    one_line_error(jar.run("submit_job", "-f", str(script)), "--retries")
    assert queued(jar) == []


# -- 7: directories made at submission -------------------------------------------------------


def group_writable_like_parent(path) -> None:
    info, parent = os.lstat(path), os.lstat(os.path.dirname(path))
    assert stat.S_ISDIR(info.st_mode)
    assert stat.S_IMODE(info.st_mode) & 0o2070 == stat.S_IMODE(parent.st_mode) & 0o2070, \
        (oct(info.st_mode), oct(parent.st_mode))
    assert info.st_mode & stat.S_IWGRP


@pytest.mark.parametrize("umask", [0o077, 0o022])
def test_a_new_category_is_as_usable_as_its_parent_whatever_the_umask(team, umask):
    first = team.run("ann", "submit_job", "-c", "NEWCAT", "true", umask=umask)
    assert first.returncode == 0, first.stderr
    for name in ("limbo", "unclaimed", "waiting", "cancel", "results", "output"):
        group_writable_like_parent(team.home / name)
    group_writable_like_parent(team.home / "unclaimed" / "NEWCAT")
    waiter = team.run("ann", "submit_job", "-c", "WAITCAT", "--after", first.stdout.strip(),
                      "true", umask=umask)
    assert waiter.returncode == 0, waiter.stderr
    group_writable_like_parent(team.home / "waiting" / "WAITCAT")
    for category in ("NEWCAT", "WAITCAT"):
        bob = team.run("bob", "submit_job", "-c", category, "true")
        assert bob.returncode == 0, bob.stderr
        assert (team.home / "unclaimed" / category / bob.stdout.strip()).exists()


# -- 11: a record's category is a name read from a file ----------------------------------------


def finished_job(jar, command: str = "true") -> str:
    """A job that has run and left the jar (a worker runs it, then stops)."""
    name = jar.submit(command)
    jar.start_worker()
    wait_for(lambda: (jar.record(name) or {}).get("status") in ("succeeded", "failed"),
             message=f"{name} finished")
    jar.stop_all_workers()
    return name


def test_resubmit_never_turns_a_forged_category_into_a_path(jar):
    from jobjar import records

    name = finished_job(jar)
    record = jar.record(name)
    record["category"] = "../../x"
    records.write(jar.path("results", f"{name}.yaml"), record)
    before = sorted(os.listdir(jar.root))
    result = jar.run("resubmit_job", name)
    one_line_error(result, "resubmit_job: error:", "category")
    assert jar.path("completed", name).exists()
    assert sorted(os.listdir(jar.root)) == before and not (jar.root / "x").exists()
    assert not (jar.home / "x").exists() and queued(jar) == []


# -- 13: a job that deletes its own file -------------------------------------------------------


def test_a_job_that_deletes_its_own_file_has_left_the_jar(jar):
    import jobjar

    name = jar.submit('rm -f "$0"')
    jar.start_worker()
    waited = jar.run("wait_jobs", "--timeout", "60", name)
    assert waited.returncode == 0, (waited.stdout, waited.stderr)
    assert jobjar.wait([name])[0]["status"] == "succeeded"
    info = jar.run("job_info", name)
    assert info.returncode == 0, info.stderr
    assert info.stdout.startswith(f"{name}: completed (its job file is gone")
    assert jobjar.job_info(name)["state"] == "completed"
    assert jobjar.job_info(name)["path"] is None


# -- 14: names and reasons reach a terminal escaped --------------------------------------------


def test_control_characters_in_names_and_reasons_are_escaped(jar):
    from jobjar import records

    evil = "evil\x1b[2J\x07.0"
    jar.submit_by_hand(evil, category="EVIL")
    for command, args in (("job_info", [evil]), ("cancel_job", ["-c", "EVIL"]),
                          ("wait_jobs", ["--timeout", "10", evil]), ("job_info", [evil]),
                          ("resubmit_job", [evil]), ("cancel_job", [evil])):
        result = jar.run(command, *args)
        assert "\x1b" not in result.stdout + result.stderr, (command, result.stdout)
        assert "\x07" not in result.stdout + result.stderr, (command, result.stdout)
        assert "evil\\x1b[2J\\x07.0" in result.stdout + result.stderr, (command, result)
    record = jar.record(evil)
    record["reason"] = "\x1b]0;owned\x07 done"
    records.write(jar.path("results", f"{evil}.yaml"), record)
    info = jar.run("job_info", evil)
    assert "\x1b" not in info.stdout and "\\x1b]0;owned\\x07 done" in info.stdout


# -- 15: an unknown name does not stop wait_jobs -----------------------------------------------


def test_wait_jobs_waits_for_the_known_jobs_then_names_the_unknown_one(jar):
    import jobjar

    failing = jar.submit("false")
    jar.start_worker()
    result = jar.run("wait_jobs", "--timeout", "60", failing, "no-such-job")
    assert result.returncode == 1, result.stderr
    assert result.stdout == f"{failing}: failed\n"  # it waited for the known one
    one_line_error(result, "no-such-job")
    records = jobjar.wait([failing, "no-such-job"])
    assert records[0]["status"] == "failed"
    assert records[1]["name"] == "no-such-job" and records[1]["status"] is None


# -- 16: names, self-dependencies, rejected and lost jobs --------------------------------------


def test_a_name_too_long_for_its_record_is_refused_at_submission(jar):
    env = {"JJ_NODE": "n" * 90, "USER": "u" * 60, "LOGNAME": "u" * 60}
    result = jar.run("submit_job", "-i", "i" * 90, "true", env=env)
    one_line_error(result, "longer than 250 bytes")
    assert queued(jar) == [] and result.stdout == ""


def test_a_rejected_job_is_not_resubmitted_as_unfinished(jar):
    jar.submit_by_hand("empty.0", content="")
    jar.start_worker()
    wait_for(lambda: (jar.record("empty.0") or {}).get("status") == "rejected")
    result = jar.run("resubmit_job", "empty.0")
    line = one_line_error(result, "was rejected", "cannot be resubmitted")
    assert "has not finished" not in line


def test_a_job_that_depends_on_itself_is_not_resubmitted(jar):
    from jobjar import records

    name = "selfish.0"
    jar.path("completed").mkdir(parents=True)
    job = jar.path("completed", name)
    job.write_text(f"#!/bin/sh\n#JJ --after-any {name}\ntrue\n")
    job.chmod(0o755)
    records.write(jar.path("results", f"{name}.yaml"),
                  records.never_ran(job, None, 0, "cancelled", "cancelled while waiting",
                                    time.time()))
    one_line_error(jar.run("resubmit_job", name), "depends on itself")
    assert job.exists() and queued(jar) == []


def test_job_info_describes_a_lost_attempt(jar):
    from jobjar import records

    name = "lost.0"
    jar.path("completed").mkdir(parents=True)
    job = jar.path("completed", name)
    job.write_text("#!/bin/sh\ntrue\n")
    record = records.lost(job, None, 0, "vm.4242", "its worker died", None, time.time())
    record["status"] = "poisoned"
    records.write(jar.path("results", f"{name}.yaml"), record)
    info = jar.run("job_info", name)
    assert info.returncode == 0, info.stderr
    lost = [line for line in info.stdout.splitlines() if "attempt" in line and "lost" in line]
    assert len(lost) == 1 and "None" not in lost[0], info.stdout
    assert "vm.4242" in lost[0] and "its worker died" in lost[0] and "recovered 20" in lost[0]


def test_wait_jobs_says_when_a_job_left_without_a_record(jar):
    jar.path("completed").mkdir(parents=True)
    (jar.path("completed", "norecord.0")).write_text("#!/bin/sh\ntrue\n")
    result = jar.run("wait_jobs", "--timeout", "10", "norecord.0")
    assert result.returncode == 1, result.stderr
    assert result.stdout == "norecord.0: left the jar without a record\n"


def _forge_category(results: str, name: str) -> None:
    """As bob: replace the record of ann's job by one whose category climbs out of the jar."""
    from jobjar import records

    path = os.path.join(results, f"{name}.yaml")
    record = records.read(Path(path))
    record["category"] = "../../../x"
    records.write(Path(path), record)


def test_resubmit_never_follows_a_category_another_user_forged(team):
    """Finding 11 with two users: bob may write results/; ann's resubmit_job still
    checks the record's category like a typed name and moves nothing outside the jar."""
    from jobjar import records

    name = team.run("ann", "submit_job", "true").stdout.strip()
    team.start_worker("ann")
    wait_for(lambda: (records.read(team.home / "results" / f"{name}.yaml") or {})
             .get("status") == "succeeded", message="ann's job")
    team.as_user("bob", _forge_category, str(team.home / "results"), name)
    before = sorted(os.listdir(team.root))
    one_line_error(team.run("ann", "resubmit_job", name), "resubmit_job: error:", "category")
    assert (team.home / "completed" / name).exists()
    assert sorted(os.listdir(team.root)) == before and not (team.root / "x").exists()
