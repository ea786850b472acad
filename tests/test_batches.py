"""Batches and Slurm-style arrays, with real workers.

Every ``--array`` and ``--from-file`` submission is a batch: its id on
standard error, in every job's record and in ``job_info --json``, and
``wait_jobs``, ``cancel_job`` and ``resubmit_job --failed`` act on it.
``--array`` takes ``1-5,7,10-20:2`` and a ``%N`` cap.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import one_line_error, wait_for

BATCH_LINE = re.compile(r"^submit_job: (\d+) jobs in batch ([a-z0-9]{8})$")


def submit_batch(jar, *args: str, input: str | None = None) -> tuple[list[str], str]:
    """``submit_job ARGS``: the names (stdout) and the batch id (the one stderr line)."""
    result = jar.run("submit_job", *args, input=input, check=True)
    names = result.stdout.splitlines()
    match = BATCH_LINE.match(result.stderr.strip())
    assert match, result.stderr
    assert int(match.group(1)) == len(names)
    return names, match.group(2)


def info(jar, *args: str):
    return json.loads(jar.run("job_info", "--json", *args, check=True).stdout)


def running(jar) -> set[str]:
    """The names of the jobs running now, from the jar's own ``claimed/`` links."""
    from jobjar.find import running_jobs
    from jobjar.layout import Jar

    return set(running_jobs(Jar(jar.home)))


def test_an_array_is_a_batch_on_stderr_in_job_info_and_in_every_record(jar):
    names, batch = submit_batch(jar, "--array", "1-3", "echo $JJ_ARRAY_INDEX")
    assert len(names) == 3
    assert jar.path("batches", batch).read_text().splitlines() == names
    assert info(jar, names[0])["batch"] == batch  # queued: from its file
    jar.start_worker()
    assert jar.run("wait_jobs", "--batch", batch).returncode == 0
    for name in names:
        assert jar.record(name)["batch"] == batch
        shown = info(jar, name)
        assert shown["batch"] == batch and shown["record"]["batch"] == batch
    assert "batch" in jar.run("job_info", names[1], check=True).stdout
    single = jar.submit("true")
    assert info(jar, single)["batch"] is None


def test_from_file_and_the_python_api_make_batches_too(jar, tmp_path):
    import jobjar

    lines = tmp_path / "lines"
    lines.write_text("echo one\necho two\n")
    names, batch = submit_batch(jar, "--from-file", str(lines))
    piped, other = submit_batch(jar, "--from-file", "-", input="echo three\n")
    assert len(names) == 2 and len(piped) == 1 and batch != other
    from_file = jobjar.submit_from_file(lines)
    array = jobjar.submit_job("true", array="1-2")
    scripted = tmp_path / "job.sh"
    scripted.write_text("#!/bin/sh\ntrue\n")
    scripted.chmod(0o755)
    files = jobjar.submit_job_file(scripted, array="4,6")
    ids = {batch, other, from_file.batch, array.batch, files.batch}
    assert len(ids) == 5  # each submission its own batch
    assert list(array) == jar.path("batches", array.batch).read_text().splitlines()
    jar.start_worker()
    records = jobjar.wait(batch=files.batch, timeout=60)
    assert [r["name"] for r in records] == list(files)
    assert all(r["batch"] == files.batch and r["status"] == "succeeded" for r in records)


def test_wait_cancel_and_resubmit_failed_by_batch(jar):
    flag = jar.root / "fixed"
    names, batch = submit_batch(
        jar, "--array", "1-4",
        f'test -e {flag} || test $(( JJ_ARRAY_INDEX % 2 )) -eq 1')  # 2 and 4 fail at first
    jar.start_worker()
    result = jar.run("wait_jobs", "--no-progress", "--batch", batch)
    assert result.returncode == 1
    assert sorted(result.stdout.splitlines()) == sorted(f"{n}: failed" for n in names[1::2])
    flag.touch()
    again = jar.run("resubmit_job", "--batch", batch, "--failed", check=True)
    assert again.stdout.splitlines() == names[1::2]  # only the failed ones, in order
    assert jar.run("wait_jobs", "--no-progress", "--batch", batch).returncode == 0
    assert [jar.record(n)["attempt"] for n in names] == [1, 2, 1, 2]
    none_left = jar.run("resubmit_job", "--batch", batch, "--failed")
    assert none_left.returncode == 0 and none_left.stdout == ""
    assert "nothing resubmitted" in none_left.stderr


def test_cancel_a_batch_running_and_queued(jar):
    gate = jar.root / "gate"
    names, batch = submit_batch(jar, "--array", "1-3",
                                f"while [ ! -e {gate} ]; do sleep 0.05; done")
    keep = jar.submit(f"while [ ! -e {gate} ]; do sleep 0.05; done")
    jar.start_worker()
    wait_for(lambda: running(jar) & set(names), 60, message="one of the batch running")
    done = jar.run("cancel_job", "--batch", batch, check=True).stdout.splitlines()
    assert len(done) == 3 and all(line.split(": ")[0] in names for line in done)
    assert jar.run("wait_jobs", "--no-progress", "--batch", batch, timeout=90).returncode == 1
    assert {jar.record(n)["status"] for n in names} == {"cancelled"}
    assert all(jar.record(n)["batch"] == batch for n in names)  # queued ones too
    gate.touch()
    assert jar.run("wait_jobs", keep).returncode == 0  # not of the batch: untouched


def test_an_unknown_batch_is_one_line_and_wait_treats_it_as_an_unknown_name(jar):
    jar.submit("true")
    unknown_name = jar.run("wait_jobs", "--no-progress", "no-such-job.0")
    for command, extra in (("wait_jobs", ["--no-progress"]), ("cancel_job", []),
                           ("resubmit_job", ["--failed"]), ("job_info", [])):
        result = jar.run(command, *extra, "--batch", "abcd2345")
        line = one_line_error(result, "abcd2345", status=1)
        assert "batch" in line
        if command == "wait_jobs":
            assert result.returncode == unknown_name.returncode
        one_line_error(jar.run(command, *extra, "--batch", "../../etc"), "batch", status=1)


def test_a_forged_manifest_cannot_make_cancel_act_on_other_jobs(jar):
    names, batch = submit_batch(jar, "--array", "1-2", "true")
    other = jar.submit("true")
    manifest = jar.path("batches", batch)
    manifest.write_text(manifest.read_text() + other + "\n")
    done = jar.run("cancel_job", "--batch", batch, check=True).stdout
    assert other not in done and all(n in done for n in names)
    assert jar.path("unclaimed", other).exists()


def test_array_spec_forms(jar):
    names, batch = submit_batch(jar, "--array", "1-5,7,10-20:2", "true")
    from jobjar.depend import read_directives

    indexes = [read_directives(jar.path("unclaimed", n)).array_index for n in names]
    assert indexes == [1, 2, 3, 4, 5, 7, 10, 12, 14, 16, 18, 20]
    jar.start_worker()
    assert jar.run("wait_jobs", "--no-progress", "--batch", batch, timeout=120).returncode == 0
    more, _ = submit_batch(jar, "--array", "3%5", "echo $JJ_ARRAY_INDEX")  # a cap above the size
    assert jar.run("wait_jobs", *more).returncode == 0
    assert jar.path("output", f"{more[0]}.out").read_text() == "3\n"


def test_a_cap_never_lets_more_than_n_of_the_batch_run_at_once(jar):
    names, batch = submit_batch(jar, "--array", "1-6%2", "sleep 1")
    assert len(list(jar.path("waiting").iterdir())) == 4  # 3..6 wait for 1..4
    for _ in range(3):
        jar.start_worker()
    seen: list[int] = []

    def finished() -> bool:
        seen.append(len(running(jar) & set(names)))
        return all((jar.record(n) or {}).get("status") == "succeeded" for n in names)

    wait_for(finished, 120, interval=0.01, message="the capped batch")
    assert max(seen) <= 2, seen
    assert max(seen) >= 1


@pytest.mark.parametrize("spec", ["5-1", "1-5,3-7", "1-3,2", "1-3%0", "1-3:0", "1-3%",
                                  "1-3%-1", "1-3,,5", "1-3%x"])
def test_bad_array_specs_are_one_line_and_submit_nothing(jar, spec):
    result = jar.run("submit_job", "--array", spec, "true")
    one_line_error(result, "--array", status=1)
    for directory in ("unclaimed", "waiting", "batches"):
        assert not jar.path(directory).exists() or not os.listdir(jar.path(directory))
