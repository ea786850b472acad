"""The command list is written once (``jobjar.cli.COMMANDS``); everything else agrees with it.

Also: every command explains itself, and every command spells a duration
the same way (seconds as a plain number, bounded).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from jobjar.cli import COMMANDS

from conftest import BIN, ROOT


def setup_py():
    """``setup.py`` as a module (it calls ``setup()`` only when setuptools runs it)."""
    spec = importlib.util.spec_from_file_location("jobjar_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_installed_scripts_are_exactly_the_commands():
    expected = {name: f"jobjar.cli.{entry}" for name, entry in COMMANDS.items()}
    expected["jobjar"] = "jobjar.cli:dispatch"
    assert setup_py().entry_points() == expected


def test_pyproject_leaves_the_scripts_to_setup_py():
    """No console-script entry points: pip's script for one imports ``re`` first (setup.py)."""
    text = (ROOT / "pyproject.toml").read_text()
    assert "[project.scripts]" not in text and "entry-points" not in text
    assert re.search(r'^dynamic = \["version"\]$', text, re.M)


def test_every_script_setup_py_writes_runs_its_command(tmp_path):
    """The scripts pip installs, as setup.py writes them, run from a checkout on PYTHONPATH."""
    paths = setup_py().write_launchers(tmp_path / "scripts")
    assert sorted(os.path.basename(p) for p in paths) == sorted({*COMMANDS, "jobjar"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for path in paths:
        with open(path) as script:
            assert script.readline() == "#!/usr/bin/env python3\n"  # (the build rewrites it)
        done = subprocess.run([sys.executable, path, "--version"], capture_output=True,
                              text=True, env=env)
        assert done.returncode == 0 and "Job Jar" in done.stdout, (path, done.stderr)
    stopped = subprocess.run([sys.executable, str(tmp_path / "scripts" / "stop_worker"),
                              "no-such-worker.1"], capture_output=True, text=True, env=env)
    assert stopped.returncode != 0 and "stop_worker" in stopped.stderr  # told which command


def test_every_control_command_is_an_action_of_the_control_module():
    import jobjar.control

    for name, entry in COMMANDS.items():
        if entry == "workers:control_main":
            assert f"{name.removesuffix('_worker')}_workers" in jobjar.control.__all__, name


def test_the_package_exports_the_control_module_by_its_all():
    import jobjar
    import jobjar.control

    assert set(jobjar.control.__all__) <= set(jobjar.__all__)
    for name in jobjar.control.__all__:
        assert getattr(jobjar, name) is getattr(jobjar.control, name)


def test_bin_has_a_link_to_bin_jobjar_for_every_command_and_nothing_else():
    names = set(os.listdir(BIN)) - {"jobjar"}
    assert names == set(COMMANDS)
    for name in names:
        assert os.readlink(BIN / name) == "jobjar", name


def test_readme_lists_exactly_the_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    paragraph = section.strip().split("\n\n", 1)[0]
    listed = re.findall(r"`([a-z_]+)`", paragraph)
    assert sorted(listed) == sorted(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_explains_itself_with_an_example(jar, command):
    result = jar.run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "example:" in result.stdout


# -- durations: one spelling, one bound, one clear line -------------------------

#: Every duration option of the commands whose parsing is ``cli.common.seconds``
#: (``submit_job --timeout`` is a directive, checked where directives are).
DURATION_OPTIONS = [("recover_jobs", "--stale", ()), ("check_workers", "--prune", ("--dry-run",)),
                    ("install_cron", "--stale", ("--dry-run", "--file", "crontab")),
                    ("wait_jobs", "--timeout", ("--no-progress", "finished"))]


@pytest.mark.parametrize("command,option,extra", DURATION_OPTIONS)
def test_a_bad_duration_is_one_line_naming_the_option(jar, command, option, extra):
    for value in ("soon", "-1", "nan", "inf", "1e300", "10x", "12h1d", "1h1h", "5 m", "m",
                  "366d", str(365 * 86400 + 1)):
        result = jar.run(command, option, value, *extra)
        assert result.returncode == 1, (value, result.stdout, result.stderr)
        assert len(result.stderr.splitlines()) == 1 and option in result.stderr, value
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command,option,extra", DURATION_OPTIONS)
def test_a_duration_up_to_a_year_is_accepted(jar, command, option, extra):
    jar.run("submit_job", "-c", "nobody", "true", check=True)  # a jar to act on
    (jar.root / "crontab").write_text("")
    finished = jar.submit("true")
    if command == "wait_jobs":
        jar.start_worker()
        jar.wait_completed(1)
    words = {"crontab": str(jar.root / "crontab"), "finished": finished}
    extra = tuple(words.get(word, word) for word in extra)
    for value in ("0", "0.5", "1e3", "90s", "15m", "12h", "7d", "1d12h", "1h30m5s", "365d",
                  str(365 * 86400)):
        result = jar.run(command, option, value, *extra)
        assert result.returncode == 0, (value, result.stderr)
