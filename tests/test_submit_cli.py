"""``submit_job``'s start-up: the plain form skips argparse and means the same.

``submit_job COMMAND ARGS...`` is parsed without ``argparse`` (``cli/submit.py:
_plain``), and the modules a plain submission does not use are imported only
when needed.  These tests hold the fast path to the parser's meaning and the
process to its short list of imports; speed itself is bench/run.py's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from jobjar.cli import parser as cli_parser
from jobjar.cli import submit as cli_submit

from conftest import ROOT

PLAIN = [
    ["true"],
    ["echo", "hello", "world"],
    ["echo", "-p", "3", "--wait", "-c", "X"],  # options after the command are the command's
    ["ls", "--", "-l"],
    ["echo", "--help"],
    ["echo", "--version"],
    ["a b", "c'd"],
    ["", "x"],
    ["/usr/bin/env", "--project", "p"],
]


@pytest.mark.parametrize("argv", PLAIN)
def test_the_plain_form_means_what_the_parser_says(argv):
    fast = cli_submit._plain(argv)
    assert fast is not None
    assert vars(fast) == vars(cli_submit._parser().parse_args(argv))


@pytest.mark.parametrize("argv", [[], ["-p", "3", "true"], ["--wait", "true"], ["--help"],
                                  ["-"], ["--", "true"], ["--project", "p", "true"]])
def test_an_option_first_goes_through_the_parser(argv):
    assert cli_submit._plain(argv) is None


def test_completion_always_goes_through_the_parser(monkeypatch):
    monkeypatch.setenv("_ARGCOMPLETE", "1")
    assert cli_submit._plain(["true"]) is None


IMPORTS = """
import sys
before = set(sys.modules)  # what the interpreter's start-up (site, .pth files) loaded
from jobjar.cli.submit import submit_main
code = submit_main(sys.argv[1:])
heavy = ("argparse", "typing", "shutil", "shlex", "signal", "locale", "gettext", "importlib",
         "json", "datetime", "pathlib", "urllib.parse", "ipaddress", "fnmatch", "re", "enum",
         "collections", "functools",
         "subprocess", "socket", "secrets", "yaml", "argcomplete", "jobjar.cli.parser")
sys.stdout.write(repr(sorted(m for m in heavy if m in set(sys.modules) - before)) + "\\n")
sys.exit(code)
"""


def _imports(jar, *argv: str) -> tuple[str, list[str]]:
    """``submit_job ARGV`` in a fresh interpreter without ``site`` (which may load some of them)."""
    result = subprocess.run([sys.executable, "-S", "-c", IMPORTS, *argv], capture_output=True,
                            text=True, env={**jar.env, "PYTHONPATH": str(ROOT)}, check=True)
    name, loaded = result.stdout.strip().splitlines()
    return name, eval(loaded)  # noqa: S307 - our own repr of a list of names


def test_a_plain_submission_imports_neither_argparse_nor_the_rest(jar):
    from jobjar.layout import Jar

    Jar(jar.home).ensure()  # (the first submission makes the jar: that one may use pathlib)
    name, loaded = _imports(jar, "echo", "hi")
    assert loaded == []
    assert (jar.home / "unclaimed" / name).read_text().endswith("\necho hi\n")


def test_paths_as_strings_name_what_the_paths_name(tmp_path):
    """``Jar.state_path`` and ``Config.root`` (no pathlib) agree with the Path attributes."""
    from jobjar.config import Config
    from jobjar.layout import Jar, tidy

    jar = Jar(f"{tmp_path}//jar/./", None)
    assert jar.root == str(jar.home) == str(tmp_path / "jar")
    assert jar.worker_root == str(jar.worker_home) == str(tmp_path / "jar" / "workers")
    assert jar.state_path("unclaimed") == str(jar.unclaimed)
    assert jar.state_path("waiting", "GPU") == str(jar.waiting_dir("GPU"))
    assert jar.state_path("limbo", None, "x.0") == str(jar.limbo / "x.0")
    assert tidy("/a/../b//c/.") == "/a/../b/c" and tidy("/") == "/"
    config = Config(home=tmp_path, worker_home=f"{tmp_path}/w/", pause_time=1, max_workers=1,
                    categories=(), node="n", max_recoveries=1, kill_grace=1, heartbeat=1,
                    allow_root=False, python="/usr/bin/python3")
    assert (config.home, config.worker_home) == (tmp_path, tmp_path / "w")
    assert str(config.python) == "/usr/bin/python3" and "python='/usr/bin/python3'" in repr(config)


def test_with_options_the_parser_is_loaded_and_the_job_has_them(jar):
    name, loaded = _imports(jar, "-p", "7", "--timeout", "5m", "echo", "hi")
    assert "argparse" in loaded and "shutil" not in loaded
    assert name.endswith(".7")
    assert "#JJ --timeout 300" in (jar.home / "unclaimed" / name).read_text()


def test_help_version_and_usage_errors_still_come_from_the_parser(jar):
    helped = jar.run("submit_job", "--help")
    assert helped.returncode == 0 and "example:" in helped.stdout and "--after" in helped.stdout
    version = jar.run("submit_job", "--version")
    assert version.returncode == 0 and version.stdout.startswith("submit_job (Job Jar) ")
    bad = jar.run("submit_job", "--no-such-option", "true")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_no_command_is_still_one_line_and_status_1(jar):
    result = jar.run("submit_job")
    assert result.returncode == 1 and "give exactly one of" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("columns", [None, "57", "0", "wide"])
def test_the_help_width_is_shutils(monkeypatch, columns):
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli_parser.terminal_columns() == shutil.get_terminal_size().columns


def test_help_wraps_at_columns(jar):
    narrow = jar.run("submit_job", "--help", env={"COLUMNS": "50"}).stdout
    wide = jar.run("submit_job", "--help", env={"COLUMNS": "200"}).stdout
    assert max(map(len, narrow.splitlines()[:6])) <= 50 < max(map(len, wide.splitlines()[:6]))


def test_the_module_names_the_parser_lazily():
    from jobjar.cli import common

    assert common.Parser is cli_parser.Parser and common.add_handles is cli_parser.add_handles
    with pytest.raises(AttributeError):
        common.no_such_name  # noqa: B018


def test_unique_job_name_still_parses(jar):
    result = jar.run("unique_job_name", "-p", "4", "-i", "x")
    assert result.returncode == 0, result.stderr
    assert os.path.basename(result.stdout.strip()).endswith("-x.4")


def test_the_collector_is_on_again_after_the_command(jar, capsys):
    import gc

    assert gc.isenabled()
    assert cli_submit.submit_main(["true"]) == 0
    assert gc.isenabled()
    with pytest.raises(SystemExit):
        cli_submit.submit_main(["--no-such-option"])
    assert gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        assert cli_submit.submit_main(["true"]) == 0
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert len(capsys.readouterr().out.split()) == 2


def test_wait_runs_with_the_collector_on(jar):
    jar.start_worker()
    code = ("import gc, sys; from jobjar.cli.submit import submit_main; "
            "import jobjar.jobs as j; real = j.wait; "
            "j.wait = lambda names: (print('collecting', gc.isenabled()), real(names))[1]; "
            "sys.exit(submit_main(['--wait', 'true']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**jar.env, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "collecting True" in out.stdout
