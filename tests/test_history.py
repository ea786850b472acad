"""Accounting in every record, and ``job_history``: finished jobs with real workers."""

from __future__ import annotations

import csv
import io
import json
import os
import pwd

import pytest

from conftest import one_line_error, wait_for

#: The login that owns the files this test submits.
ME = pwd.getpwuid(os.getuid()).pw_name

#: A job that holds 100 MiB, every page touched, then burns a little CPU.
BIG = ("python3 -c 'b = bytearray(100 * 2**20)\n"
       "for i in range(0, len(b), 4096): b[i] = 1\n"
       "sum(range(2 * 10**6))'")


def test_a_job_of_100_mb_is_accounted_for(jar):
    name = jar.submit(BIG)
    small = jar.submit("-c", "x", "true")
    jar.start_worker()
    wait_for(lambda: name in jar.completed(), 60)
    record = jar.record(name)
    assert record["status"] == "succeeded"
    assert record["max_rss_kb"] >= 100 * 1024, record["max_rss_kb"]
    assert record["max_rss_kb"] < 1024 * 1024  # a peak of one process, not a sum of absurdities
    assert record["cpu_user_s"] >= 0 and record["cpu_system_s"] >= 0
    assert record["cpu_user_s"] + record["cpu_system_s"] > 0
    assert record["node"] and record["command"] == "python3 -c 'b = bytearray(100 * 2**20)"
    shown = jar.run("job_info", name, check=True).stdout
    for field in ("max_rss_kb", "cpu_user_s", "cpu_system_s", "command", "node"):
        assert f"  {field}: " in shown
    info = json.loads(jar.run("job_info", "--json", name, check=True).stdout)
    assert info["record"]["max_rss_kb"] == record["max_rss_kb"]
    # A job that never ran has every field, empty.
    jar.run("cancel_job", small, check=True)
    never = jar.record(small)
    assert never["status"] == "cancelled"
    assert [never[k] for k in ("max_rss_kb", "cpu_user_s", "cpu_system_s")] == [None] * 3


def test_the_command_of_a_script_is_its_first_line_of_code(jar):
    script = jar.root / "job.sh"
    script.write_text("#!/bin/sh\n# a comment\n\necho from the script\nexit 3\n")
    script.chmod(0o755)
    name = jar.submit("-f", str(script))
    jar.start_worker()
    wait_for(lambda: name in jar.completed(), 60)
    record = jar.record(name)
    assert record["command"] == "echo from the script" and record["exit_code"] == 3
    assert record["max_rss_kb"] > 0


def history(jar, *args: str) -> list[dict]:
    return json.loads(jar.run("job_history", "--json", *args, check=True).stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a file to another user (root)")
def test_job_history_every_flag(jar):
    ok = jar.submit("echo fine")
    bad = jar.submit("exit 3")
    cancelled = jar.submit("-c", "never", "true")
    jar.run("cancel_job", cancelled, check=True)
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 3, 60)
    rows = history(jar)
    assert [r["finished"] for r in rows] == sorted((r["finished"] for r in rows), reverse=True)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {ok, bad, cancelled}
    assert by_name[bad]["status"] == "failed" and by_name[bad]["exit_code"] == 3
    assert by_name[ok]["command"] == "echo fine" and by_name[ok]["max_rss_kb"] > 0
    assert by_name[ok]["owner"] == ME and by_name[ok]["state"] == "completed"
    assert by_name[cancelled]["max_rss_kb"] is None and by_name[cancelled]["started"] is None
    assert [r["name"] for r in history(jar, "--status", "failed")] == [bad]
    assert [r["name"] for r in history(jar, "--status", "cancelled")] == [cancelled]
    # --since looks at when the record was written: make one of them two days old
    old = jar.path("results", f"{ok}.yaml")
    os.utime(old, (old.stat().st_atime, old.stat().st_mtime - 2 * 86400))
    assert {r["name"] for r in history(jar, "--since", "1d")} == {bad, cancelled}
    assert {r["name"] for r in history(jar, "--since", "3d")} == {ok, bad, cancelled}
    # owners: the job file's, as the file system says
    os.chown(jar.path("completed", bad), 65534, 65534)
    assert {r["name"] for r in history(jar, "--mine")} == {ok, cancelled}
    assert [r["name"] for r in history(jar, "-u", "65534")] == [bad]
    # a batch id from the record (the field batches add)
    record = jar.path("results", f"{bad}.yaml")
    record.write_text(record.read_text().replace("batch: null", 'batch: "bat9"'))
    jar.path("batches").mkdir(exist_ok=True)
    jar.path("batches", "bat9").write_text(f"{bad}\n")
    assert [r["name"] for r in history(jar, "--batch", "bat9")] == [bad]
    one_line_error(jar.run("job_history", "--batch", "nosuch10"), "no batch", status=1)
    # --format, --csv and the text table
    assert history(jar, "--format", "name,status")[0].keys() == {"name", "status"}
    table = list(csv.reader(io.StringIO(jar.run("job_history", "--csv", "--format",
                                                "name,exit_code", check=True).stdout)))
    assert table[0] == ["name", "exit_code"] and [bad, "3"] in table
    text = jar.run("job_history", check=True).stdout.splitlines()
    assert text[0].split()[:3] == ["FINISHED", "NAME", "STATUS"] and len(text) == 4
    assert any(bad in line and "failed" in line for line in text)


def test_job_history_bad_input(jar):
    jar.submit("true")
    one_line_error(jar.run("job_history", "--since", "yesterday"), "--since", status=1)
    one_line_error(jar.run("job_history", "--status", "fine"), "unknown status 'fine'", status=1)
    one_line_error(jar.run("job_history", "--format", "name,size"), "unknown column", status=1)
    one_line_error(jar.run("job_history", "--json", "--csv"), status=2)
    one_line_error(jar.run("job_history", "-u", "no-such-user-here"), "no such user", status=1)


def test_job_history_from_python(jar):
    import jobjar

    name = jobjar.submit_job("exit 4")
    jar.start_worker()
    wait_for(lambda: name in jar.completed(), 60)
    [row] = jobjar.job_history(status="failed")
    assert (row["name"], row["exit_code"]) == (name, 4)
    assert jobjar.job_history(since=3600, status="succeeded") == []


def test_a_job_cancelled_in_the_queue_has_its_command_in_history(jar):
    """No worker ran it, so its record is ``records.never_ran``'s: it still says what it was."""
    name = jar.submit("-c", "idle", "echo never run  ")
    jar.run("cancel_job", name, check=True)
    [row] = history(jar, "--status", "cancelled")
    assert (row["name"], row["command"]) == (name, "echo never run")
    assert jar.record(name)["command"] == "echo never run"
