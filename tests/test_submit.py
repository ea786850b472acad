"""Submission from the shell and from Python, and its error paths."""

from __future__ import annotations

import getpass
import os
import re
import socket
import subprocess

import pytest

from conftest import BIN

NAME = re.compile(r"^(\d{8}T\d{6}_\d{6}Z)-(.+)-(.+)-(\d+)-(\d+)(?:-(.+))?\.(-?\d+)$")


def queued(jar) -> list[str]:
    found = []
    for root, _dirs, files in os.walk(jar.path("unclaimed")):
        found += [os.path.relpath(os.path.join(root, f), jar.path("unclaimed")) for f in files]
    return sorted(found)


def test_submit_prints_only_the_name_and_writes_a_script(jar):
    result = jar.run("submit_job", "-p", "10", "-c", "LINUX", "-i", "test_run",
                     "/usr/local/bin/big_computation", "/data/infile.tmp", "104.1", "30")
    assert result.returncode == 0 and result.stderr == ""
    name = result.stdout.strip()
    assert result.stdout == name + "\n"
    match = NAME.match(name)
    assert match, name
    assert match.group(2) == getpass.getuser()
    assert match.group(3) == socket.gethostname().split(".")[0]
    assert match.group(6) == "test_run" and match.group(7) == "10"
    job = jar.path("unclaimed", "LINUX", name)
    assert job.read_text() == ("#!/bin/sh\nexec /usr/local/bin/big_computation /data/infile.tmp "
                               "104.1 30\n")
    assert os.access(job, os.X_OK)
    assert os.listdir(jar.path("limbo")) == []


def test_names_are_unique_across_concurrent_submitters(jar):
    procs = [subprocess.Popen([str(BIN / "submit_job"), "true"], env={**jar.env, "JJ_NODE": n},
                              stdout=subprocess.PIPE, text=True)
             for n in ("n1", "n2") for _ in range(10)]
    names = [p.communicate()[0].strip() for p in procs]
    assert len(set(names)) == 20 and len(queued(jar)) == 20


def test_submit_file_copies_an_executable(jar, tmp_path):
    src = tmp_path / "standalone_job"
    src.write_bytes(b"#!/bin/sh\necho standalone\n")
    src.chmod(0o750)
    name = jar.submit("-p", "-3", "-f", str(src))
    assert name.endswith(".-3")
    assert jar.path("unclaimed", name).read_bytes() == src.read_bytes()


def test_python_api_guide_example(jar, tmp_path):
    import jobjar

    src = tmp_path / "standalone_job"
    src.write_text("#!/bin/sh\necho hi\n")
    src.chmod(0o755)
    first = jobjar.submit_job("/usr/local/bin/big_computation /data/infile.tmp 104.1 30")
    low = jobjar.submit_job_file(str(src), -3, id="test_run")
    linux = jobjar.submit_job_file(str(src), category="LINUX")
    assert low.endswith("-test_run.-3") and first.endswith(".0")
    assert queued(jar) == sorted([first, low, f"LINUX/{linux}"])
    path = jobjar.unique_job_name(15, id="x")
    assert os.path.isabs(path) and path.endswith("-x.15")
    assert os.path.dirname(path) == str(jar.path("limbo"))


def test_unique_job_name_command_then_cp_and_mv(jar, tmp_path):
    path = jar.run("unique_job_name", "-p", "15", check=True).stdout.strip()
    assert path.startswith(str(jar.path("limbo"))) and path.endswith(".15")
    src = tmp_path / "job"
    src.write_text("#!/bin/sh\necho by hand\n")
    src.chmod(0o755)
    subprocess.run(f"cp {src} {path} && mv {path} {jar.path('unclaimed')}", shell=True,
                   check=True)
    jar.start_worker()
    (done,) = jar.wait_completed(1)
    assert done == os.path.basename(path)
    assert jar.record(done)["priority"] == 15


@pytest.mark.parametrize("args,message", [
    (["-c", "a/b", "true"], "category"),
    (["-c", "..", "true"], "category"),
    (["-c", ".hidden", "true"], "category"),
    (["-c", "bad\x01name", "true"], "category"),
    (["-c", "x" * 300, "true"], "category"),
    (["-p", "ten", "true"], "priority"),
    (["-p", "1.5", "true"], "priority"),
    (["-p", "99999999999999999999", "true"], "priority"),
    (["-i", "a/b", "true"], "identifier"),
    ([], "command"),
    (["--timeout", "soon", "true"], "timeout"),
    (["--retries", "-1", "true"], "retries"),
    (["--bogus", "true"], None),
])
def test_bad_arguments_give_one_line_and_nothing_is_submitted(jar, args, message):
    result = jar.run("submit_job", *args)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    if message:
        assert message in lines[0]
    assert queued(jar) == []
    assert not jar.path("limbo").exists() or os.listdir(jar.path("limbo")) == []


@pytest.mark.parametrize("kind", ["missing", "directory", "not-executable", "fifo"])
def test_submit_file_errors(jar, tmp_path, kind):
    path = tmp_path / kind
    if kind == "directory":
        path.mkdir()
    elif kind == "not-executable":
        path.write_text("#!/bin/sh\n")
    elif kind == "fifo":
        os.mkfifo(path)
    result = jar.run("submit_job", "-f", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith("submit_job: error: ") and len(result.stderr.splitlines()) == 1
    assert queued(jar) == []


def test_python_api_validates_like_the_command(jar):
    import jobjar

    for kwargs in ({"category": "a/b"}, {"priority": "x"}, {"timeout": -5}, {"retries": "x"}):
        with pytest.raises(jobjar.JobJarError):
            jobjar.submit_job("true", **kwargs)
    with pytest.raises(jobjar.JobJarError, match="no such file"):
        jobjar.submit_job_file("/nonexistent/job")
    assert queued(jar) == []


def test_jar_under_a_file_is_a_clear_error(jar, tmp_path):
    blocker = tmp_path / "plainfile"
    blocker.write_text("")
    result = jar.run("submit_job", "true", env={"JJ_HOME": str(blocker / "jar")})
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_one_table_of_options_drives_parse_render_check_and_the_flags():
    """A new per-job option is one row of ``directives.OPTIONS``: everything else follows."""
    from jobjar import directives, submit
    from jobjar.cli.submit import _parser

    given = directives.Directives(timeout=90.5, retries=3, after=["a.0", "b.0"],
                                  after_any=["c.0"], output="out file", error="/tmp/e",
                                  array_index=7)
    script = "\n".join(["#!/bin/sh", *directives.render(given), "true"]).encode()
    assert directives.parse(script) == given
    assert directives.render(directives.Directives()) == []
    flags = {flag for action in _parser()._actions for flag in action.option_strings}
    for option in directives.OPTIONS:
        assert directives.Directives.FIELDS.count(option.name) == 1
        if option.help is None:  # set by --array, not a flag of its own
            assert option.name not in submit.OPTION_NAMES
            continue
        assert option.name in submit.OPTION_NAMES
        assert set(option.flags) <= flags, option.flags
        with pytest.raises(directives.DirectiveError, match=option.flags[0]):
            directives.check(option.name, "" if option.adds_up else "\x00bad\n")
