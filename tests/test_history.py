"""Accounting in every record, and ``job_history``: finished jobs with real workers."""

from __future__ import annotations

import json

from conftest import wait_for

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
