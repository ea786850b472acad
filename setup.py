"""The commands' scripts, derived from ``jobjar.cli.COMMANDS`` (``pyproject.toml`` has the rest).

``COMMANDS`` is the one list of commands; this file installs one script per
command, plus ``jobjar`` (the dispatcher).  ``COMMANDS`` is read from the
source with ``ast``, never imported: the package need not be importable
(nor its dependencies installed) while it is being built.

Each script is a few lines written here (``launcher``), not a console-script
entry point: the script pip generates for an entry point imports ``re`` (and
with it ``enum``, ``functools`` and ``collections``) before any of our code,
about 5 ms of every command's start, for one ``re.sub`` on ``argv[0]``.
Ours imports the command's module and calls it; the build points its
``#!`` line at the installing interpreter, as it does for every script.
"""

from __future__ import annotations

import ast
from pathlib import Path

TOP = Path(__file__).resolve().parent
CLI = TOP / "jobjar" / "cli" / "__init__.py"
#: Where the scripts are written before setuptools copies them (``build/`` is ignored by git).
SCRIPTS = Path("build") / "jobjar-scripts"


def commands(source: Path = CLI) -> dict[str, str]:
    """``COMMANDS`` as written in ``jobjar/cli/__init__.py``: command -> ``module:function``."""
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "COMMANDS" for t in targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"setup.py: no COMMANDS in {source}")


def entry_points(source: Path = CLI) -> dict[str, str]:
    """Every script and what it runs: ``NAME -> jobjar.cli.MODULE:FUNCTION``, and ``jobjar``."""
    found = {name: f"jobjar.cli.{entry}" for name, entry in commands(source).items()}
    found["jobjar"] = "jobjar.cli:dispatch"
    return found


def launcher(name: str, entry: str) -> str:
    """The text of script ``name``: import the entry point's module, call it, exit with its status.

    An entry point marked ``by_name`` serves several commands and is told
    which one (as ``jobjar.cli.dispatch`` tells it); the dispatcher reads
    its own name from ``argv[0]``.
    """
    module, _, function = entry.partition(":")
    if entry == "jobjar.cli:dispatch":
        call = "sys.exit(main())\n"
    else:
        call = ("if getattr(main, 'by_name', False):  # one entry point for several commands\n"
                f"    sys.exit(main(sys.argv[1:], command={name!r}))\n"
                "sys.exit(main(sys.argv[1:]))\n")
    return (f"#!/usr/bin/env python3\n"
            f'"""Job Jar\'s {name} command (written by the package\'s setup.py)."""\n'
            f"import sys\n\n"
            f"from {module} import {function} as main\n\n" + call)


def write_launchers(where: Path = SCRIPTS, source: Path = CLI) -> list[str]:
    """Write every script into ``where`` (relative to this file); return their paths."""
    directory = TOP / where
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, entry in entry_points(source).items():
        (directory / name).write_text(launcher(name, entry), encoding="utf-8")
        (directory / name).chmod(0o755)
        paths.append(str(where / name))
    return sorted(paths)


if __name__ == "__main__":  # as setuptools runs it; the tests import it
    from setuptools import setup

    setup(scripts=write_launchers())
