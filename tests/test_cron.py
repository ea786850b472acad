"""install_cron on crontab files (never the real crontab): two jars, schedules, removal."""

from __future__ import annotations

import os
import subprocess


def lines(path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x.strip()]


def test_two_jars_share_a_crontab_and_each_removes_only_its_own(jar, tmp_path):
    tab = tmp_path / "tab"  # does not exist yet: created
    other = {"JJ_HOME": str(tmp_path / "other jar")}  # a space in the path, too
    jar.run("install_cron", "--file", str(tab), check=True)
    jar.run("install_cron", "--file", str(tab), env=other, check=True)
    jar.run("install_cron", "--file", str(tab), env=other, check=True)
    assert len(lines(tab)) == 4
    mine = [x for x in lines(tab) if f"JJ_HOME={jar.home} " in x]
    assert len(mine) == 2

    before = tab.read_text()
    dry = jar.run("install_cron", "--file", str(tab), "--remove", "--dry-run", check=True)
    assert tab.read_text() == before and str(jar.home) not in dry.stdout
    jar.run("install_cron", "--file", str(tab), "--remove", check=True)
    assert len(lines(tab)) == 2 and all("other jar" in x for x in lines(tab))
    jar.run("install_cron", "--file", str(tab), "--remove", check=True)  # again: nothing to do
    assert len(lines(tab)) == 2
    jar.run("install_cron", "--file", str(tab), "--remove", env=other, check=True)
    assert lines(tab) == []


def test_schedules_and_stale_are_filled_in_and_replaced(jar, tmp_path):
    tab = tmp_path / "tab"
    jar.run("install_cron", "--file", str(tab), "--worker-schedule", "@reboot",
            "--recover-schedule", "7 * * * *", "--stale", "900", check=True)
    worker, recover = lines(tab)
    assert worker.startswith("@reboot ") and worker.count("check_workers") == 1
    assert recover.startswith("7 * * * * ") and "recover_jobs --stale 900 " in recover
    jar.run("install_cron", "--file", str(tab), check=True)  # defaults replace them
    worker, recover = lines(tab)
    assert worker.startswith("*/5 * * * * ") and recover.startswith("*/15 * * * * ")
    assert "--stale" not in recover
    # The PATH in the line finds this Python and the commands.
    path = worker.split("PATH=", 1)[1].split()[0].strip("'")
    found = subprocess.run(["sh", "-c", "command -v check_workers"], env={"PATH": path},
                           capture_output=True, text=True)
    assert found.returncode == 0 and os.access(found.stdout.strip(), os.X_OK)


def test_bad_input_changes_nothing(jar, tmp_path):
    tab = tmp_path / "tab"
    tab.write_text("0 3 * * * /usr/bin/backup\n")
    for args in (["--recover-schedule", "61 * * * *"], ["--stale", "-1"],
                 ["--worker-schedule", "* * *"]):
        bad = jar.run("install_cron", "--file", str(tab), *args)
        assert bad.returncode != 0 and len(bad.stderr.splitlines()) == 1, (args, bad.stderr)
        assert "Traceback" not in bad.stderr
        assert tab.read_text() == "0 3 * * * /usr/bin/backup\n"
    unreadable = tmp_path / "a directory"
    unreadable.mkdir()
    bad = jar.run("install_cron", "--file", str(unreadable))
    assert bad.returncode != 0 and len(bad.stderr.splitlines()) == 1
    assert "Traceback" not in bad.stderr
