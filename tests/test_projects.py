"""Projects: ``--project NAME`` / ``JJ_PROJECT`` select the jar ``projects/NAME`` inside the jar.

Two projects and the jar itself keep their queues, workers and status apart:
a worker of one never runs another's jobs.
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import one_line_error, wait_for


def test_projects_keep_queues_workers_and_status_apart(jar):
    alpha = jar.submit("--project", "alpha", "echo alpha")
    beta = jar.submit("true", env={"JJ_PROJECT": "beta"})
    plain = jar.submit("true")
    assert (jar.home / "projects" / "alpha" / "unclaimed" / alpha).exists()
    assert (jar.home / "projects" / "beta" / "unclaimed" / beta).exists()
    assert (jar.home / "unclaimed" / plain).exists()

    worker = jar.start_worker(env={"JJ_PROJECT": "alpha"})
    assert (jar.home / "projects" / "alpha" / "workers" / worker).is_dir()
    done = jar.home / "projects" / "alpha" / "completed" / alpha
    wait_for(done.exists, 60, message="alpha's job to complete")
    out = jar.home / "projects" / "alpha" / "output" / f"{alpha}.out"
    assert out.read_text() == "alpha\n"
    # beta's job and the jar's own stay queued: the alpha worker never sees them
    assert (jar.home / "projects" / "beta" / "unclaimed" / beta).exists()
    assert (jar.home / "unclaimed" / plain).exists()
    assert jar.completed() == []

    status = json.loads(jar.run("system_status", "--project", "alpha", "--json",
                                check=True).stdout)
    assert status["jar"] == str(jar.home / "projects" / "alpha")
    assert [w["name"] for w in status["workers"]] == [worker]
    assert status["jobs"]["completed"]["total"] == 1
    plain_status = json.loads(jar.run("system_status", "--json", check=True).stdout)
    assert plain_status["workers"] == [] and plain_status["jobs"]["unclaimed"]["total"] == 1
    assert "projects" not in plain_status

    every = json.loads(jar.run("system_status", "--all-projects", "--json",
                               check=True).stdout)["projects"]
    assert sorted(every) == ["alpha", "beta"]
    assert every["alpha"]["jobs"]["completed"] == 1 and every["alpha"]["jobs"]["unclaimed"] == 0
    assert every["beta"]["jobs"]["unclaimed"] == 1
    text = jar.run("system_status", "--all-projects", check=True).stdout
    assert "projects: 2" in text and "  beta: 1 unclaimed" in text

    # stop_worker, job_info, wait_jobs: all see the project's jar
    assert "succeeded" in jar.run("job_info", "--project", "alpha", alpha, check=True).stdout
    assert jar.run("job_info", alpha).returncode != 0  # not in the jar itself
    jar.run("stop_worker", "--project", "alpha", "all", check=True)


def test_a_job_submits_into_its_own_project(jar):
    """A job's JJ_HOME is its project's jar; no project is applied on top, not even a file's."""
    personal = jar.root / "home" / ".jobjar"
    personal.mkdir()
    (personal / "config.ini").write_text("[Job Jar]\nJJ_PROJECT: beta\n")
    seed = jar.submit("--project", "alpha", "submit_job -i child true")
    jar.start_worker(env={"JJ_PROJECT": "alpha"})
    completed = jar.home / "projects" / "alpha" / "completed"
    wait_for(lambda: len(os.listdir(completed)) == 2 if completed.exists() else False, 60,
             message="the seed and its child")
    assert seed in os.listdir(completed)
    assert not (jar.home / "projects" / "alpha" / "projects").exists()
    assert not (jar.home / "projects" / "beta").exists()
    # the file's project is the default; JJ_PROJECT="" (or set_project("")) is the jar itself
    plain = jar.submit("true", env={"JJ_PROJECT": ""})
    assert (jar.home / "unclaimed" / plain).exists()
    beta = jar.submit("true")
    assert (jar.home / "projects" / "beta" / "unclaimed" / beta).exists()


def test_python_set_project(jar):
    import jobjar

    jobjar.set_project("gamma")
    try:
        name = jobjar.submit_job("true")
        assert jobjar.get_project() == "gamma"
        assert jobjar.get_home() == jar.home / "projects" / "gamma"
        assert (jar.home / "projects" / "gamma" / "unclaimed" / name).exists()
    finally:
        jobjar.set_project(None)
    assert jobjar.get_home() == jar.home


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a b", "a/b"])
def test_bad_project_names(jar, name):
    one_line_error(jar.run("submit_job", "--project", name, "true"), "project", status=2)
    one_line_error(jar.run("system_status", env={"JJ_PROJECT": name}) if name else
                   jar.run("system_status", "--project", name), "project")
    assert not (jar.home / "projects").exists()


def test_a_link_at_a_project_is_never_followed(jar, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    jar.home.mkdir()
    (jar.home / "projects").mkdir()
    (jar.home / "projects" / "alpha").symlink_to(elsewhere)
    one_line_error(jar.run("submit_job", "--project", "alpha", "true"), "not a directory",
                   status=1)
    one_line_error(jar.run("start_worker", "--project", "alpha"), "not a directory", status=1)
    assert os.listdir(elsewhere) == []
    (jar.home / "projects" / "alpha").unlink()
    (jar.home / "projects").rmdir()
    (jar.home / "projects").symlink_to(elsewhere)
    one_line_error(jar.run("submit_job", "--project", "beta", "true"), "not a directory")
    assert os.listdir(elsewhere) == []


def test_a_project_made_in_a_team_jar_is_the_teams(team):
    """ann makes the project with umask 077; bob's worker of that project runs her job."""
    made = team.run("ann", "unique_job_name", "--project", "shared", umask=0o077)
    assert made.returncode == 0, made.stderr  # it makes the project's jar
    result = team.run("ann", "submit_job", "--project", "shared", "echo ann")
    assert result.returncode == 0, result.stderr
    name = result.stdout.strip()
    for path in (team.home / "projects", team.home / "projects" / "shared",
                 team.home / "projects" / "shared" / "unclaimed"):
        assert os.stat(path).st_mode & 0o2070 == 0o2070, path  # group rwx and set-gid
    team.start_worker("bob", env={"JJ_PROJECT": "shared"})
    out = team.home / "projects" / "shared" / "output" / f"{name}.out"
    wait_for(out.exists, 60, message="ann's job run by bob's project worker")
    assert out.read_text() == "ann\n"


def test_every_command_takes_project(jar):
    from jobjar.cli import COMMANDS

    for command in COMMANDS:
        assert "--project NAME" in jar.run(command, "--help", check=True).stdout, command
