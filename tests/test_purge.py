"""``purge_jobs`` and ``install_cron --purge`` with real workers."""

from __future__ import annotations

import os
import time

import pytest

from conftest import one_line_error, wait_for

DAY = 86400


@pytest.fixture
def gate(jar):
    path = jar.root / "gate"
    yield path
    path.touch()


def age_by(jar, name: str, seconds: float) -> None:
    """Make a finished job's record look ``seconds`` older (its age for the purge)."""
    record = jar.path("results", f"{name}.yaml")
    then = record.stat().st_mtime - seconds
    os.utime(record, (then, then))


def traces(jar, name: str) -> list[str]:
    """What of a job is left on disk: its file (where), its record, its default output."""
    found = [state for state in ("completed", "rejected") if jar.path(state, name).exists()]
    found += [f"results/{name}.yaml"] if jar.path("results", f"{name}.yaml").exists() else []
    found += [f"output/{name}{s}" for s in (".out", ".err")
              if jar.path("output", name + s).exists()]
    return found


def test_purge_leaves_the_jar_and_what_it_depends_on(jar, gate):
    old_ok = jar.submit("echo old; echo err >&2")
    old_bad = jar.submit("echo failing; exit 2")
    needed = jar.submit("echo needed")
    needed_too = jar.submit("echo needed too")
    recent = jar.submit("echo recent")
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 5, 60)
    assert traces(jar, old_ok) == ["completed", f"results/{old_ok}.yaml", f"output/{old_ok}.out",
                                   f"output/{old_ok}.err"]
    for name in (old_ok, old_bad, needed, needed_too):
        age_by(jar, name, 10 * DAY)
    # Still in the jar: a running job, a job waiting for it and for `needed`, and a
    # queued job (in a category nobody serves) that depends on `needed_too`.
    running = jar.submit("-c", "run", f"while [ ! -e {gate} ]; do sleep 0.05; done")
    waiting = jar.submit("-c", "run", "--after", f"{running},{needed}", "echo after")
    jar.start_worker("run")
    wait_for(lambda: jar.run("job_info", running).stdout.split(":")[1].split()[0] == "running",
             60)
    queued = jar.submit("-c", "idle", "--after", needed_too, "echo queued")
    wait_for(lambda: jar.path("unclaimed", "idle", queued).exists(), 60)  # released by a worker
    assert jar.path("waiting", "run", waiting).exists()

    dry = jar.run("purge_jobs", "--older-than", "7d", "--dry-run", check=True)
    assert sorted(dry.stdout.split()) == sorted([old_ok, old_bad])
    assert "would purge 2 finished jobs (2 kept for waiting jobs)" in dry.stderr
    assert traces(jar, old_ok)[0] == "completed"  # a dry run removes nothing

    failed_only = jar.run("purge_jobs", "--older-than", "7d", "--status", "failed", "-v",
                          check=True)
    assert failed_only.stdout.split() == [old_bad] and traces(jar, old_bad) == []
    assert traces(jar, old_ok)[0] == "completed"

    done = jar.run("purge_jobs", "--older-than", "1d12h", check=True)
    assert "purged 1 finished jobs" in done.stderr
    assert traces(jar, old_ok) == []
    for name in (needed, needed_too):  # a job in the jar depends on them: all of them stays
        assert traces(jar, name) == ["completed", f"results/{name}.yaml", f"output/{name}.out"]
        assert f"kept {name}: a job in the jar depends on it" in done.stderr
    assert traces(jar, recent)[0] == "completed"  # not old enough
    # The jar itself is untouched, and its jobs go on as if nothing happened.
    assert jar.path("waiting", "run", waiting).exists()
    assert jar.path("unclaimed", "idle", queued).exists()
    gate.touch()
    wait_for(lambda: waiting in jar.completed(), 60)
    assert jar.record(waiting)["status"] == "succeeded" and jar.record(running)["status"] == \
        "succeeded"
    jar.start_worker("idle")
    wait_for(lambda: queued in jar.completed(), 60)
    assert jar.record(queued)["status"] == "succeeded"
    # With nothing left depending on them, the old ones go; the new ones stay.
    jar.run("purge_jobs", "--older-than", "7d", check=True)
    assert traces(jar, needed) == traces(jar, needed_too) == []
    assert {recent, running, waiting, queued} <= set(jar.completed())


def test_purge_of_records_whose_file_is_gone_and_of_rejected_jobs(jar):
    gone = jar.submit("true")
    jar.submit_by_hand("not-executable.0", mode=0o644)
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 1 and os.listdir(jar.path("rejected")), 60)
    os.unlink(jar.path("completed", gone))  # an interrupted purge leaves this
    age_by(jar, gone, 2 * DAY)
    age_by(jar, "not-executable.0", 2 * DAY)
    retrying = jar.path("results", "again.0.yaml")  # a record of a job back in the jar
    retrying.write_text('status: "retrying"\n')
    os.utime(retrying, (time.time() - 9 * DAY,) * 2)
    out = jar.run("purge_jobs", "--older-than", "1d", "-v", check=True).stdout.split()
    assert sorted(out) == sorted([gone, "not-executable.0"])
    assert traces(jar, gone) == traces(jar, "not-executable.0") == []
    assert retrying.exists()


def test_purge_bad_input_changes_nothing(jar):
    name = jar.submit("true")
    jar.start_worker()
    wait_for(lambda: name in jar.completed(), 60)
    age_by(jar, name, 9 * DAY)
    one_line_error(jar.run("purge_jobs", "--older-than", "yesterday"), "--older-than",
                   status=1)
    one_line_error(jar.run("purge_jobs"), "--older-than", status=2)
    one_line_error(jar.run("purge_jobs", "--older-than", "1d", "--status", "old"),
                   "unknown status", status=1)
    one_line_error(jar.run("purge_jobs", "--older-than", "1d", env={"JJ_HOME": "/nonexistent"}),
                   "no jar", status=1)
    assert traces(jar, name)[0] == "completed"
    import jobjar

    with pytest.raises(jobjar.JobJarError):
        jobjar.purge_jobs(-1)
    nothing_else = {"kept": [], "batches": []}
    assert jobjar.purge_jobs(8 * DAY, dry_run=True) == {"purged": [name], **nothing_else}
    assert jobjar.purge_jobs(8 * DAY) == {"purged": [name], **nothing_else}
    assert traces(jar, name) == []


def lines(path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x.strip()]


def test_install_cron_purge_keeps_the_other_lines_and_they_keep_it(jar, tmp_path):
    tab = tmp_path / "tab"
    tab.write_text("0 3 * * * /usr/bin/backup\n")
    jar.run("install_cron", "--file", str(tab), check=True)
    jar.run("install_cron", "--file", str(tab), "--purge", "30d", check=True)
    purge = [x for x in lines(tab) if "purge_jobs" in x]
    assert len(purge) == 1 and "purge_jobs --older-than 2592000 " in purge[0]
    assert purge[0].startswith("17 3 * * * ") and "jobjar:purge" in purge[0]
    assert len(lines(tab)) == 4 and lines(tab)[0] == "0 3 * * * /usr/bin/backup"
    jar.run("install_cron", "--file", str(tab), "--stale", "600", check=True)  # no --purge
    assert [x for x in lines(tab) if "purge_jobs" in x] == purge
    assert len(lines(tab)) == 4
    jar.run("install_cron", "--file", str(tab), "--purge", "1d12h", "--purge-schedule",
            "@daily", check=True)
    purge = [x for x in lines(tab) if "purge_jobs" in x]
    assert len(purge) == 1 and purge[0].startswith("@daily ") and "--older-than 129600 " in purge[0]
    assert any("recover_jobs" in x for x in lines(tab))
    one_line_error(jar.run("install_cron", "--file", str(tab), "--purge", "soon"), "--purge")
    one_line_error(jar.run("install_cron", "--file", str(tab), "--purge-schedule", "@daily"),
                   "--purge", status=2)
    assert len(lines(tab)) == 4
    jar.run("install_cron", "--file", str(tab), "--remove", check=True)
    assert lines(tab) == ["0 3 * * * /usr/bin/backup"]
