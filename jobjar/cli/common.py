"""What every command shares: a parser that errs in one line, and error handling."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..errors import JobJarError


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2."""

    def __init__(self, prog: str, description: str, example: str) -> None:
        super().__init__(prog=prog, description=description, epilog="example:\n  " + example,
                         formatter_class=argparse.RawDescriptionHelpFormatter)

    def error(self, message: str) -> None:  # noqa: D102 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (try --help)\n")
        sys.exit(2)


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
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 1
    except OSError as exc:  # an unwritable or vanished jar, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"{prog}: error: {where}{exc.strerror or exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
