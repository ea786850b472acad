"""fjd's INI job files: ``submit_job --ini FILE`` and ``jobjar.submit_ini_file``.

The job files are written in the format of fjd's own example (a ``[control]``
section naming the executable and a log file, and a ``[params]`` section for
the program); the program is a small Python script that reads the copy it
is given, as fjd's example job does.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import BIN, one_line_error, wait_for

#: fjd's example job (test/ajob.py): read the job file given as argument, write the log file.
AJOB = """\
import configparser, os, sys
conf = configparser.ConfigParser()
conf.read(sys.argv[1])
with open(conf.get("control", "logfile"), "w") as log:
    log.write(conf.get("params", "param1") + " " + sys.argv[1] + " " + os.getcwd() + "\\n")
"""


@pytest.fixture
def project(tmp_path):
    """A directory like fjd's example: test/ajob.py and data/, the INI files beside them."""
    top = tmp_path / "fjd-example"
    (top / "test").mkdir(parents=True)
    (top / "data").mkdir()
    (top / "test" / "ajob.py").write_text(AJOB)
    return top


def submit_in(jar, cwd, *args: str) -> str:
    """``submit_job ARGS`` run in directory ``cwd`` (where ``workdir: submit`` points)."""
    result = subprocess.run([str(BIN / "submit_job"), *args], env=jar.env, cwd=cwd,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def fjd_file(where, number: int, extra: str = "workdir: submit\n") -> str:
    path = where / f"job{number}.ini"
    path.write_text(f"[control]\nexecutable: {sys.executable} test/ajob.py\n"
                    f"logfile: data/job{number}.dat \n{extra}\n[params]\nparam1: value{number}\n")
    return str(path)


def test_an_fjd_job_file_runs_in_the_submitters_directory(jar, project):
    names = [submit_in(jar, project, "--ini", fjd_file(project, i), "--timeout", "5m")
             for i in range(3)]
    for name in names:  # a plain executable job, and the copy kept in the jar
        job = (jar.home / "unclaimed" / name).read_text()
        assert job.startswith("#!/bin/sh\n#JJ --timeout 300\n")
        copy = jar.home / "ini" / f"{name}.ini"
        assert "executable:" in copy.read_text()
    os.remove(project / "job0.ini")  # the copy is what runs, not the submitter's file
    jar.start_worker()
    jar.wait_completed(3)
    for i, name in enumerate(names):
        assert jar.record(name)["status"] == "succeeded"
        param, given, cwd = (project / "data" / f"job{i}.dat").read_text().split()
        assert param == f"value{i}"
        assert given == str(jar.home / "ini" / f"{name}.ini")
        assert cwd == str(project)
        assert (jar.home / "ini" / f"{name}.ini").exists()  # kept with the job's file
    # resubmitted, it runs again on the same copy
    (project / "data" / "job1.dat").unlink()
    jar.run("resubmit_job", names[1], check=True)
    jar.run("wait_jobs", names[1], check=True)
    assert (project / "data" / "job1.dat").read_text().startswith("value1 ")
    # purged, a job's copy goes with its file
    jar.run("purge_jobs", "--older-than", "0", check=True)
    assert not any((jar.home / "ini").iterdir())


def test_without_workdir_it_runs_in_scratch_and_from_python(jar, project):
    import jobjar

    data = project / "data"
    path = project / "abs.ini"
    path.write_text(f"[control]\nexecutable: {sys.executable} {project}/test/ajob.py\n"
                    f"logfile: {data}/abs.dat\n\n[params]\nparam1: hello\n")
    name = jobjar.submit_ini_file(str(path), 5, id="fjd", category="FJD")
    assert name.endswith("-fjd.5")
    assert (jar.home / "unclaimed" / "FJD" / name).exists()
    jar.start_worker("FJD")
    jar.wait_completed(1)
    param, _, cwd = (data / "abs.dat").read_text().split()
    assert param == "hello" and "/scratch/" in cwd


def test_a_swapped_copy_is_not_run(jar, project):
    """Someone who replaced the copy (a file not of the submitter) gets nothing run."""
    name = submit_in(jar, project, "--ini", fjd_file(project, 7))
    copy = jar.home / "ini" / f"{name}.ini"
    copy.unlink()
    copy.symlink_to(project / "job7.ini")  # a link is not a regular file: refused
    jar.start_worker()
    jar.wait_completed(1)
    record = jar.record(name)
    assert record["status"] == "failed"
    assert "not the submitter's file" in (jar.home / "output" / f"{name}.err").read_text()
    assert not (project / "data" / "job7.dat").exists()


@pytest.mark.parametrize("text, words", [
    ("[params]\nparam1: x\n", ["no [control] section"]),
    ("[control]\nlogfile: x\n", ["no 'executable'"]),
    ("[control]\nexecutable:\n", ["no 'executable'"]),
    ("executable: x\n", ["not an INI file"]),
    ("[control]\nexecutable: a\nexecutable: b\n", ["not an INI file"]),
    ("[control]\nexecutable: run\n  more\n", ["one line"]),
    ("[control]\nexecutable: run\nworkdir: relative/dir\n", ["workdir"]),
    ("[control]\nexecutable: run\nworkdir: /no/such/dir\n", ["no such directory"]),
])
def test_bad_ini_files_are_refused_at_submission(jar, tmp_path, text, words):
    bad = tmp_path / "bad.ini"
    bad.write_text(text)
    one_line_error(jar.run("submit_job", "--ini", str(bad)), str(bad), *words, status=1)
    assert not (jar.home / "ini").exists() or not os.listdir(jar.home / "ini")
    assert not (jar.home / "unclaimed").exists() or not os.listdir(jar.home / "unclaimed")


def test_ini_and_a_command_are_exclusive(jar, project):
    one_line_error(jar.run("submit_job", "--ini", fjd_file(project, 1), "true"), "exactly one")
    one_line_error(jar.run("submit_job", "--ini", str(project / "missing.ini")), "missing.ini")


def test_in_a_team_jar_a_colleague_cannot_swap_the_copy(team):
    """ann's INI jobs run on bob's worker; a copy bob replaced is not handed to the program."""
    ini = team.root / "ann.ini"
    ini.write_text("[control]\nexecutable: cat\n\n[params]\nwho: ann\n")
    ini.chmod(0o644)
    names = []
    for _ in range(2):
        result = team.run("ann", "submit_job", "--ini", str(ini))
        assert result.returncode == 0, result.stderr
        names.append(result.stdout.strip())
    kept, swapped = names
    copy = team.home / "ini" / f"{swapped}.ini"

    def swap() -> None:  # ini/ is the group's (the jar's mode): bob may replace the name
        os.unlink(copy)
        with open(copy, "w") as forged:
            forged.write("[control]\nexecutable: cat\n\n[params]\nwho: bob\n")

    team.as_user("bob", swap)
    team.start_worker("bob")
    completed = team.home / "completed"
    wait_for(lambda: completed.exists() and len(os.listdir(completed)) == 2, 60,
             message="both jobs")
    assert (team.home / "output" / f"{kept}.out").read_text() == ini.read_text()
    from jobjar import records

    assert records.read(team.home / "results" / f"{kept}.yaml")["status"] == "succeeded"
    assert records.read(team.home / "results" / f"{swapped}.yaml")["status"] == "failed"
    assert not (team.home / "output" / f"{swapped}.out").exists()  # cat never ran
    assert "not the submitter's file" in (team.home / "output" / f"{swapped}.err").read_text()


def test_an_array_of_ini_jobs_gets_a_copy_each(jar, project):
    names = submit_in(jar, project, "--ini", fjd_file(project, 3), "--array", "1-3").split()
    assert len(names) == 3
    copies = sorted(os.listdir(jar.home / "ini"))
    assert copies == sorted(f"{name}.ini" for name in names)
    for name in names:
        assert "#JJ --array-index" in (jar.home / "unclaimed" / name).read_text()
