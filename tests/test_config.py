"""Configuration: the four sources and their order, and every error path."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

PRINT = ("import jobjar, sys\n"
         "for a in sys.argv[1:]: exec(a)\n"
         "c = jobjar.config.load()\n"
         "print(c.pause_time, c.home, c.worker_home, ','.join(c.categories), c.max_workers,\n"
         "      sep='|')\n")


@pytest.fixture
def install(tmp_path):
    """A private copy of the installation, so it can have its own global config.ini."""
    top = tmp_path / "install"
    shutil.copytree(ROOT / "jobjar", top / "jobjar",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "bin", top / "bin", symlinks=True)
    return top


def effective(jar, install, *setters, env=None):
    result = subprocess.run([sys.executable, "-c", PRINT, *setters], cwd=install,
                            env={**jar.env, "PYTHONPATH": str(install), **(env or {})},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split("|"), result.stderr


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_any_configuration(jar, install):
    env = {k: v for k, v in jar.env.items() if k not in ("JJ_HOME", "JJ_PAUSE_TIME")}
    result = subprocess.run([sys.executable, "-c", PRINT], cwd=install,
                            env={**env, "PYTHONPATH": str(install)}, capture_output=True, text=True)
    pause, home, workers, _cats, max_workers = result.stdout.strip().split("|")
    assert float(pause) == 60 and max_workers.strip() == "4"
    assert home == str(jar.root / "home" / "jobjar")  # ~/jobjar, never in the package
    assert workers == home + "/workers"


def test_precedence_global_personal_environment_python(jar, install):
    env = {k: v for k, v in jar.env.items() if k != "JJ_PAUSE_TIME"}
    jar.env = env
    write(install / "config.ini", "# global\n[Job Jar]\nJJ_PAUSE_TIME: 11\nJJ_MAX_WORKERS=7\n"
          "JJ_CATEGORIES: FAST, LINUX\n")
    assert effective(jar, install)[0][0] == "11.0"
    assert effective(jar, install)[0][3:] == ["FAST,LINUX", "7"]
    write(jar.root / "home" / ".jobjar" / "config.ini", "; personal\n\n[Job Jar]\n"
          "JJ_PAUSE_TIME = 22\n")
    assert effective(jar, install)[0][0] == "22.0"
    assert effective(jar, install, env={"JJ_PAUSE_TIME": "33"})[0][0] == "33.0"
    values, _ = effective(jar, install, "jobjar.set_pause_time(44)",
                          env={"JJ_PAUSE_TIME": "33"})
    assert values[0] == "44.0"
    assert values[4] == "7"  # untouched parameters still come from the files


def test_jj_config_file_replaces_the_personal_file(jar, install):
    write(jar.root / "home" / ".jobjar" / "config.ini", "[Job Jar]\nJJ_MAX_WORKERS: 2\n")
    other = write(jar.root / "other.ini", "[Job Jar]\nJJ_MAX_WORKERS: 9\n")
    assert effective(jar, install, env={"JJ_CONFIG_FILE": str(other)})[0][4] == "9"


def test_python_setters_for_paths_and_categories(jar, install):
    values, _ = effective(jar, install, "jobjar.set_home('/srv/jar')",
                          "jobjar.set_worker_home('/srv/workers')",
                          "jobjar.set_categories(['A', 'B'])")
    assert values[1:4] == ["/srv/jar", "/srv/workers", "A,B"]


def test_max_workers_cannot_be_set_from_python(jar):
    import jobjar

    with pytest.raises(jobjar.JobJarError, match="JJ_MAX_WORKERS"):
        jobjar.config.set_parameter("JJ_MAX_WORKERS", 3)


def test_unknown_parameter_is_a_warning(jar, install):
    write(install / "config.ini", "[Job Jar]\nJJ_COLOUR: blue\n")
    _values, stderr = effective(jar, install)
    assert "warning" in stderr and "JJ_COLOUR" in stderr and "config.ini:2" in stderr


@pytest.mark.parametrize("text,expect", [
    ("JJ_PAUSE_TIME: 3\n", "first line must be [Job Jar]"),
    ("[Job Jar]\nthis is not a setting\n", ":2: expected 'name: value'"),
    ("", "empty configuration file"),
    ("# only comments\n", "empty configuration file"),
    ("[Job Jar]\nJJ_PAUSE_TIME: -1\n", "JJ_PAUSE_TIME"),
    ("[Job Jar]\nJJ_PAUSE_TIME: soon\n", "JJ_PAUSE_TIME"),
    ("[Job Jar]\nJJ_MAX_WORKERS: many\n", "JJ_MAX_WORKERS"),
    ("[Job Jar]\nJJ_HOME: relative/path\n", "JJ_HOME"),
    ("[Job Jar]\nJJ_CATEGORIES: ok, ../up\n", "JJ_CATEGORIES"),
])
def test_bad_files_are_one_line_errors_naming_file_and_line(jar, text, expect):
    bad = write(jar.root / "bad.ini", text)
    result = jar.run("submit_job", "true", env={"JJ_CONFIG_FILE": str(bad)})
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and expect in result.stderr
    if "first line" in expect or "expected" in expect:
        assert str(bad) in result.stderr
    assert not jar.path("unclaimed").exists()


def test_binary_config_file(jar):
    bad = jar.root / "bad.ini"
    bad.write_bytes(b"\x00\xff\xfe[Job Jar]\n")
    result = jar.run("submit_job", "true", env={"JJ_CONFIG_FILE": str(bad)})
    assert result.returncode == 1 and "not a text file" in result.stderr


@pytest.mark.parametrize("name,value", [("JJ_PAUSE_TIME", "-3"), ("JJ_MAX_WORKERS", "1.5"),
                                        ("JJ_HOME", "jar"), ("JJ_KILL_GRACE", "x"),
                                        ("JJ_NODE", "a/b"), ("JJ_ALLOW_ROOT", "maybe")])
def test_bad_environment_values(jar, name, value):
    result = jar.run("submit_job", "true", env={name: value})
    assert result.returncode == 1 and name in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_the_example_config_sets_every_parameter():
    from jobjar.config import PARAMETERS, parse_ini

    values = parse_ini(ROOT / "config.ini.example")
    # JJ_NODE is there but commented out: set in a shared file, it would give
    # every node the same name
    assert set(values) == set(PARAMETERS) - {"JJ_NODE"}
    assert "\n# JJ_NODE: " in (ROOT / "config.ini.example").read_text()


@pytest.mark.parametrize("name", ["JJ_PAUSE_TIME", "JJ_KILL_GRACE", "JJ_HEARTBEAT"])
def test_every_duration_setting_is_bounded_by_a_day(jar, name):
    for value in ("1e300", "86400.5", "1e999", "nan"):
        result = jar.run("submit_job", "true", env={name: value})
        assert result.returncode == 1 and name in result.stderr, (value, result.stderr)
        assert "from 0 to 86400" in result.stderr
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert jar.run("submit_job", "true", env={name: "86400"}).returncode == 0


def test_a_duration_setting_from_python_is_bounded_too(jar):
    import jobjar
    from jobjar.errors import ConfigError

    with pytest.raises(ConfigError, match="JJ_PAUSE_TIME"):
        jobjar.set_pause_time(1e300)
    jobjar.set_pause_time(86400)
    assert jobjar.get_pause_time() == 86400.0
    jobjar.set_pause_time(None)
