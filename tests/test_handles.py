"""Short handles (unique prefixes, ``-i ID``), ``--version`` and shell completion.

Names are resolved in one place (``find.select``), so every command that
takes job names, and the Python API, accept the same handles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jobjar.cli import COMMANDS

from conftest import BIN, ROOT, one_line_error


def names_of(result: subprocess.CompletedProcess) -> list[str]:
    return [line.split(": ")[0] for line in result.stdout.splitlines()]


def test_a_unique_prefix_names_its_job_in_every_command(jar):
    jar.submit_by_hand("alpha-1.0", "#!/bin/sh\nexit 3\n")
    jar.submit_by_hand("beta-1.0")
    found = json.loads(jar.run("job_info", "--json", "alph", check=True).stdout)
    assert found["name"] == "alpha-1.0"
    after = jar.submit("--after-any", "alp", "true")  # submit_job's dependencies too
    assert "#JJ --after-any alpha-1.0\n" in jar.path("waiting", after).read_text()
    jar.start_worker()
    assert jar.run("wait_jobs", "--no-progress", "alp").returncode == 1  # it exits 3
    assert jar.run("wait_jobs", "--no-progress", "bet").returncode == 0
    assert jar.run("resubmit_job", "alph", check=True).stdout.strip() == "alpha-1.0"
    import jobjar

    assert [r["name"] for r in jobjar.wait(["alph"], timeout=60)] == ["alpha-1.0"]
    assert jobjar.job_info("bet")["name"] == "beta-1.0"
    assert jobjar.resubmit_job("alph") == ["alpha-1.0"]
    assert jobjar.cancel_job("alph")[0][0] == "alpha-1.0"


def test_an_ambiguous_prefix_is_refused_with_its_candidates(jar):
    for name in ("run-a.0", "run-b.0", "other.0"):
        jar.submit_by_hand(name)
    for command in ("job_info", "cancel_job", "wait_jobs", "resubmit_job"):
        line = one_line_error(jar.run(command, "run-"), "run-a.0", "run-b.0", status=1)
        assert "other.0" not in line
    assert sorted(os.listdir(jar.path("unclaimed"))) == ["other.0", "run-a.0", "run-b.0"]
    one_line_error(jar.run("submit_job", "--after", "run-", "true"), "run-a.0", status=1)
    import jobjar

    with pytest.raises(jobjar.JobJarError, match="run-b.0"):
        jobjar.cancel_job("run-")


def test_an_exact_name_wins_over_a_longer_one_it_starts(jar):
    jar.submit_by_hand("job.1")
    jar.submit_by_hand("job.10")
    assert json.loads(jar.run("job_info", "--json", "job.1", check=True).stdout)["name"] == "job.1"
    assert names_of(jar.run("cancel_job", "job.1", check=True)) == ["job.1"]
    assert jar.path("unclaimed", "job.10").exists()
    assert names_of(jar.run("cancel_job", "job.", check=True)) == ["job.10"]  # job.1 has left


def test_a_prefix_that_starts_no_name_is_an_unknown_name(jar):
    jar.submit_by_hand("known.0")
    one_line_error(jar.run("job_info", "zzz"), "no job named 'zzz'", status=1)
    result = jar.run("wait_jobs", "--no-progress", "zzz", "known.0", "--timeout", "1")
    assert result.returncode == 2  # known.0 waits (no worker); zzz was never waited for


def test_dash_i_selects_the_jobs_submitted_with_that_identifier(jar):
    gate = jar.root / "gate"
    mine = [jar.submit("-i", "exp1", f"while [ ! -e {gate} ]; do sleep 0.05; done")
            for _ in range(2)]
    other = jar.submit("-i", "exp12", "true")
    also = jar.submit("-i", "exp1-b", "true")
    limbo = jar.run("unique_job_name", "-i", "exp1", check=True).stdout.strip()
    assert limbo.endswith("-exp1.0")  # -i is the identifier there too
    shown = json.loads(jar.run("job_info", "--json", "-i", "exp1", check=True).stdout)
    assert sorted(i["name"] for i in shown) == sorted(mine)
    assert sorted(names_of(jar.run("cancel_job", "-i", "exp1", check=True))) == sorted(mine)
    assert jar.run("wait_jobs", "--no-progress", "-i", "exp1").returncode == 1  # cancelled
    assert all(jar.path("unclaimed", n).exists() for n in (other, also))
    one_line_error(jar.run("cancel_job", "-i", "nothing"), "identifier", "nothing", status=1)
    one_line_error(jar.run("wait_jobs", "-i", "nothing"), "identifier", status=1)
    one_line_error(jar.run("job_info", "-i", "../x"), "identifier", status=1)
    import jobjar

    assert sorted(r["name"] for r in jobjar.wait(id="exp1", timeout=10)) == sorted(mine)
    jar.start_worker()
    assert jar.run("wait_jobs", "-i", "exp12").returncode == 0
    assert jobjar.resubmit_job(id="exp12") == [other]


# -- --version ---------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS) + ["jobjar"])
def test_every_command_has_version(jar, command):
    import jobjar

    result = jar.run(command, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f" {jobjar.__version__}")
    assert result.stdout.startswith(command)


def test_the_package_metadata_takes_its_version_from_the_package():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'version = {attr = "jobjar.__version__"}' in text
    assert "\nversion =" not in text.split("[project]")[1].split("\n[")[0]


# -- shell completion --------------------------------------------------------------


def complete(jar, line: str, command: str | None = None) -> list[str]:
    """What the shell gets for ``line`` with the cursor at its end (argcomplete's protocol).

    The command runs as a shell's completion function runs it: argument
    completion asked for in the environment, the answer written to file
    descriptor 8 (here, sent to our standard output).
    """
    command = command or line.split()[0]
    env = {**jar.env, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "_ARGCOMPLETE_IFS": "\n", "_ARGCOMPLETE_SUPPRESS_SPACE": "1"}
    result = subprocess.run(["sh", "-c", 'exec "$0" 8>&1 1>/dev/null 9>/dev/null',
                             str(BIN / command)], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return [word.rstrip() for word in result.stdout.split("\n") if word]


def test_completion_offers_job_names_categories_workers_and_batches(jar):
    queued = jar.submit("-c", "LINUX", "true")
    jar.submit_by_hand("handmade.0")
    batch = jar.run("submit_job", "--array", "1-2", "true", check=True).stderr.split()[-1]
    assert queued in complete(jar, "cancel_job ")
    assert complete(jar, "job_info hand") == ["handmade.0"]
    assert complete(jar, f"jobjar wait_jobs {queued[:-2]}") == [queued]
    assert complete(jar, "cancel_job -c ") == ["LINUX"]
    assert complete(jar, "wait_jobs --batch ") == [batch]
    assert "--batch" in complete(jar, "resubmit_job --ba")
    assert complete(jar, "jobjar cancel_j") == ["cancel_job"]
    worker = jar.start_worker()
    assert worker in complete(jar, "stop_worker ")


def test_a_command_not_completing_never_loads_argcomplete(jar):
    result = subprocess.run([sys.executable, "-X", "importtime", str(BIN / "job_info"), "--help"],
                            env=jar.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "argcomplete" not in result.stderr
    assert "jobjar.cli.common" in result.stderr  # (the import log is there to read)
