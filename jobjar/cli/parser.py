"""The commands' argument parser: errors in one line, ``--version``, ``--project``.

Imported through ``cli.common`` on first use (``common.Parser``), never by a
command's fast path: ``argparse`` with the parser's construction is a fifth
of a ``submit_job`` process.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import JobJarError
from ..naming import printable


class _Version(argparse.Action):
    """``--version``: ``jobjar.__version__``, which the package metadata is made from.

    (``pyproject.toml`` takes its version from it: one number, and no
    ``importlib.metadata`` import, some 80 ms, for a command to print it.)
    """

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from .. import __version__

        sys.stdout.write(f"{parser.prog} (Job Jar) {__version__}\n")
        parser.exit(0)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2.

    Every command takes ``--project NAME`` here, in one place: it sets
    ``JJ_PROJECT`` for this run (and for the workers it starts), so the
    command works on the jar ``projects/NAME`` inside the usual one.
    """

    def __init__(self, prog: str, description: str, example: str) -> None:
        super().__init__(prog=prog, description=description, epilog="example:\n  " + example,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
        self.add_argument("--version", action=_Version, nargs=0,
                          help="print the version of Job Jar and exit")

        self.add_argument("--project", metavar="NAME",
                          help="use the project's own jar, projects/NAME (else JJ_PROJECT)")


    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse API
        if "_ARGCOMPLETE" in os.environ:  # a shell asks for completions: only then load them
            from .complete import complete

            complete(self)
        parsed = super().parse_args(args, namespace)
        if parsed.project is not None:
            from ..config import set_parameter

            if not parsed.project:  # the environment's JJ_PROJECT= is "none"; a flag names one
                self.error("--project: project name must not be empty")
            try:
                set_parameter("JJ_PROJECT", parsed.project)
            except JobJarError as exc:
                self.error(f"--project: {printable(exc)}")
        return parsed

    def _get_formatter(self) -> argparse.HelpFormatter:
        """argparse's own formatter, told the width rather than asking ``shutil``.

        ``HelpFormatter`` imports ``shutil`` (and with it zlib, bz2 and lzma,
        some 2 ms) for the terminal width, and ``add_argument`` makes one
        for every option; ``terminal_columns`` is the same rule without them.
        """
        return self.formatter_class(prog=self.prog, width=terminal_columns() - 2)

    def error(self, message: str) -> None:  # noqa: D102 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (try --help)\n")
        sys.exit(2)


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: ``$COLUMNS``, else the terminal's, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def add_handles(p: Parser) -> None:
    """The ways every command names jobs: names or unique prefixes, ``-i ID``, ``--batch ID``."""
    p.add_argument("-i", "--id", metavar="ID", help="the jobs submitted with this identifier")
    p.add_argument("--batch", metavar="ID", help="the jobs of this batch (--array, --from-file)")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="job names, or unique prefixes of them")


