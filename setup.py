"""The console scripts, derived from ``jobjar.cli.COMMANDS`` (``pyproject.toml`` has the rest).

``COMMANDS`` is the one list of commands; ``pyproject.toml`` declares its
scripts ``dynamic`` and this file installs one per command, plus ``jobjar``
(the dispatcher).  ``COMMANDS`` is read from the source with ``ast``, never
imported: the package need not be importable (nor its dependencies
installed) while it is being built.
"""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parent / "jobjar" / "cli" / "__init__.py"


def commands(source: Path = CLI) -> dict[str, str]:
    """``COMMANDS`` as written in ``jobjar/cli/__init__.py``: command -> ``module:function``."""
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "COMMANDS" for t in targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"setup.py: no COMMANDS in {source}")


def console_scripts(source: Path = CLI) -> list[str]:
    """``NAME = jobjar.cli.MODULE:FUNCTION`` for every command, and ``jobjar`` itself."""
    scripts = [f"{name} = jobjar.cli.{entry}" for name, entry in commands(source).items()]
    return [*scripts, "jobjar = jobjar.cli:dispatch"]


if __name__ == "__main__":  # as setuptools runs it; the tests import it
    from setuptools import setup

    setup(entry_points={"console_scripts": console_scripts()})
