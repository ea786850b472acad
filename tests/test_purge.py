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


def age_file(path, seconds: float) -> None:
    """Make a file (a batch manifest, a planted entry: never followed) look older."""
    then = os.lstat(path).st_mtime - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def snapshot(jar) -> dict:
    """Every entry of the jar's history directories, with its kind, size and times."""
    found = {}
    for sub in ("completed", "rejected", "results", "output", "batches", "ini"):
        for top, dirs, names in os.walk(jar.path(sub)):
            for name in dirs + names:
                info = os.lstat(os.path.join(top, name))
                found[os.path.join(top, name)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def test_purge_removes_a_batch_manifest_once_none_of_its_jobs_is_left(jar, gate):
    from test_batches import submit_batch

    done, done_id = submit_batch(jar, "--array", "1-3", "echo $JJ_ARRAY_INDEX")
    mixed, mixed_id = submit_batch(jar, "--array", "1-2", 'test "$JJ_ARRAY_INDEX" = 1')
    young, young_id = submit_batch(jar, "--array", "1-2", "true")
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 7, 60)
    held, held_id = submit_batch(jar, "-c", "run", "--array", "1-2",
                                 f"while [ ! -e {gate} ]; do sleep 0.05; done")
    jar.start_worker("run")
    wait_for(lambda: len(os.listdir(jar.path("claimed"))) == 1, 60)  # one runs, one queued
    for name in done + mixed + young:
        age_by(jar, name, 10 * DAY)
    for batch in (done_id, mixed_id, held_id):
        age_file(jar.path("batches", batch), 10 * DAY)
    # Not manifests: a note, and a link named like a batch id to a file of someone's.
    note = jar.path("batches", "notes.txt")
    note.write_text(f"{done[0]}\n")
    victim = jar.root / "victim"
    victim.write_text("precious\n")
    os.symlink(victim, jar.path("batches", "linked42"))
    age_file(note, 10 * DAY)
    age_file(jar.path("batches", "linked42"), 10 * DAY)

    before = snapshot(jar)
    dry = jar.run("purge_jobs", "--older-than", "7d", "--dry-run", check=True)
    assert f"would purge batch {done_id}" in dry.stderr
    assert f"would purge batch {mixed_id}" in dry.stderr
    assert "and 2 batch manifests" in dry.stderr
    assert snapshot(jar) == before  # a dry run changes nothing at all

    failed = jar.run("purge_jobs", "--older-than", "7d", "--status", "failed", "-v", check=True)
    assert failed.stdout.split() == [mixed[1]]
    assert "batch" not in failed.stderr  # its other job is left: the manifest stays
    assert jar.path("batches", mixed_id).exists()

    purged = jar.run("purge_jobs", "--older-than", "7d", "-v", check=True)
    assert sorted(purged.stdout.split()) == sorted(done + mixed[:1] + young)
    assert f"purged batch {done_id}" in purged.stderr and f"purged batch {mixed_id}" in \
        purged.stderr
    assert "purged 6 finished jobs (0 kept for waiting jobs) and 2 batch manifests" in \
        purged.stderr
    assert not jar.path("batches", done_id).exists()
    assert not jar.path("batches", mixed_id).exists()
    assert jar.path("batches", young_id).exists()  # its jobs are gone, but it is not old
    assert jar.path("batches", held_id).exists()  # its jobs are in the jar
    assert note.exists() and os.path.islink(jar.path("batches", "linked42"))
    assert victim.read_text() == "precious\n"

    gate.touch()
    wait_for(lambda: set(held) <= set(jar.completed()), 60)
    for name in held:
        age_by(jar, name, 10 * DAY)
    age_file(jar.path("batches", held_id), 10 * DAY)
    import jobjar

    report = jobjar.purge_jobs(7 * DAY)
    assert sorted(report["purged"]) == sorted(held) and report["batches"] == [held_id]
    assert sorted(os.listdir(jar.path("batches"))) == sorted([young_id, "notes.txt",
                                                              "linked42"])


def test_purge_never_follows_a_link_and_one_bad_entry_never_stops_it(jar):
    names = [jar.submit(f"echo {i}; echo e{i} >&2") for i in range(3)]
    own = jar.submit("--output", str(jar.path("output", "mine.txt")), "echo mine")
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 4, 60)
    assert jar.path("output", "mine.txt").read_text() == "mine\n"
    outside = jar.root / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious\n")
    # A link in completed/ with a final record: only the link goes.
    record = jar.path("results", f"{names[0]}.yaml").read_text()
    os.symlink(outside / "victim", jar.path("completed", "planted.0"))
    jar.path("results", "planted.0.yaml").write_text(record.replace(names[0], "planted.0"))
    # Records that are not files: a fifo (a plain open would block for good), a directory.
    os.mkfifo(jar.path("results", "fifo.0.yaml"))
    jar.path("completed", "fifo.0").write_text("#!/bin/sh\n")
    jar.path("results", "dir.0.yaml").mkdir()
    jar.path("completed", "dir.0").write_text("#!/bin/sh\n")
    # output/ replaced by a link to someone's directory holding a job's output names.
    os.rename(jar.path("output"), jar.root / "real-output")
    (outside / f"{names[1]}.out").write_text("not the jar's\n")
    os.symlink(outside, jar.path("output"))
    for name in [*names, own, "planted.0", "fifo.0", "dir.0"]:
        path = jar.path("results", f"{name}.yaml")
        age_file(path, 3 * DAY)
        age_file(jar.path("completed", name), 3 * DAY)

    out = jar.run("purge_jobs", "--older-than", "2d", "-v", check=True)
    assert sorted(out.stdout.split()) == sorted([*names, own, "planted.0"])
    assert not os.path.lexists(jar.path("completed", "planted.0"))
    assert (outside / "victim").read_text() == "precious\n"
    assert (outside / f"{names[1]}.out").read_text() == "not the jar's\n"
    for name in ("fifo.0", "dir.0"):  # no status read: not history we may remove
        assert jar.path("completed", name).exists()
    for name in [*names, own]:
        assert not os.path.lexists(jar.path("completed", name))
        assert not os.path.lexists(jar.path("results", f"{name}.yaml"))
    # The output behind the link stayed where it was; a job's own --output always stays.
    assert (jar.root / "real-output" / f"{names[2]}.err").exists()
    assert (jar.root / "real-output" / "mine.txt").read_text() == "mine\n"


def test_purge_with_output_where_it_belongs_removes_it_but_not_a_jobs_own_file(jar):
    plain = jar.submit("echo out; echo err >&2")
    quiet = jar.submit("true")
    own = jar.submit("--output", str(jar.path("output", "mine.txt")), "--error",
                     str(jar.path("output", "mine.err")), "echo mine; echo e >&2")
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 3, 60)
    for name in (plain, quiet, own):
        age_by(jar, name, 2 * DAY)
    jar.run("purge_jobs", "--older-than", "1d", check=True)
    shown = [n for n in os.listdir(jar.path("output")) if not n.startswith(".")]  # workers' own
    assert sorted(shown) == ["mine.err", "mine.txt"]
    assert os.listdir(jar.path("results")) == [] and jar.completed() == []


def test_one_user_purges_anothers_finished_jobs_in_a_team_jar(team):
    names = [team.run("ann", "submit_job", "echo hello").stdout.strip() for _ in range(3)]
    batch = team.run("ann", "submit_job", "--array", "1-30", "true")  # threads meet EPERM at once
    assert batch.returncode == 0, batch.stderr
    batch_id = batch.stderr.split()[-1]
    names += batch.stdout.split()
    team.start_worker("ann")
    completed = team.home / "completed"
    wait_for(lambda: completed.is_dir() and len(os.listdir(completed)) == 33, 60)
    # only a file's owner may read it with O_NOATIME: bob reads ann's records as anyone does
    out = team.run("bob", "purge_jobs", "--older-than", "0", "-v")
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted(names)
    assert f"purged batch {batch_id}" in out.stderr
    assert os.listdir(completed) == [] and os.listdir(team.home / "results") == []
    assert [n for n in os.listdir(team.home / "output") if not n.startswith(".")] == []


def test_a_link_at_results_stops_the_purge_with_one_line_and_removes_nothing(jar):
    name = jar.submit("echo kept")
    jar.start_worker()
    wait_for(lambda: name in jar.completed(), 60)
    age_by(jar, name, 3 * DAY)
    elsewhere = jar.root / "elsewhere"
    os.rename(jar.path("results"), elsewhere)
    os.symlink(elsewhere, jar.path("results"))  # its job files must not go unread
    one_line_error(jar.run("purge_jobs", "--older-than", "1d"), "cannot purge", "results",
                   status=1)
    assert jar.path("completed", name).exists() and (elsewhere / f"{name}.yaml").exists()
    assert jar.path("output", f"{name}.out").exists()
