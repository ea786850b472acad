"""What every command shares: a parser that errs in one line, durations, error handling."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

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


def seconds(option: str, text: str | None) -> float | None:
    """Parse a duration option: seconds as a plain number, 0 to a year (``None`` stays).

    (The bound is ``config.MAX_OPTION_SECONDS``, which a job's ``--timeout``
    shares; settings are bounded by ``config.MAX_SETTING_SECONDS``.)

    Every command spells durations this one way; a bad value is a
    ``JobJarError`` that names the option, so it becomes one line and exit 1.
    """
    if text is None:
        return None
    from ..config import MAX_OPTION_SECONDS
    from ..config import seconds as parse

    try:
        return parse(text, MAX_OPTION_SECONDS)
    except ValueError as exc:
        raise JobJarError(f"{option} {exc}, not {text!r}") from None


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

    def error(self, message: str) -> None:  # noqa: D102 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (try --help)\n")
        sys.exit(2)


def add_handles(p: Parser) -> None:
    """The ways every command names jobs: names or unique prefixes, ``-i ID``, ``--batch ID``."""
    p.add_argument("-i", "--id", metavar="ID", help="the jobs submitted with this identifier")
    p.add_argument("--batch", metavar="ID", help="the jobs of this batch (--array, --from-file)")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="job names, or unique prefixes of them")


def run(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command body; a user error becomes one line and status 1."""
    try:
        code = body() or 0
        sys.stdout.flush()  # a reader that went away (| head) shows up here, not at exit
        return code
    except BrokenPipeError:  # before OSError, which it is: not worth an error line
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except JobJarError as exc:
        sys.stderr.write(f"{prog}: error: {printable(exc)}\n")
        return 1
    except OSError as exc:  # an unwritable or vanished jar, a full disk
        where = f"{printable(exc.filename)}: " if exc.filename else ""
        sys.stderr.write(f"{prog}: error: {where}{printable(exc.strerror or exc)}\n")
        return 1
    except KeyboardInterrupt:
        return 130
