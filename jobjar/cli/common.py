"""What every command shares: a parser that errs in one line, durations, error handling."""

from __future__ import annotations

import sys

from ..errors import JobJarError
from ..naming import printable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable


def __getattr__(name: str):
    """``Parser`` and ``add_handles`` live in ``cli/parser.py``, imported on first use.

    So a command that can do without ``argparse`` (``submit_job COMMAND``,
    see ``cli/submit.py``) does not pay its import and the parser's
    construction, some 7 ms of a process that should take 25.
    """
    if name in ("Parser", "add_handles"):
        from . import parser

        return getattr(parser, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def run(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command body; a user error becomes one line and status 1."""
    _freeze_at_exit()
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


def _freeze_at_exit() -> None:
    """At the interpreter's exit, move every object out of the garbage collector's sight.

    The exit's last collections look through everything the imports made
    (some 3 ms of a 25 ms ``submit_job``) to find cycles that the process's
    end frees anyway.  Frozen objects are still released by reference
    counting as modules are cleared, and the standard streams are still
    flushed; only a finalizer of cyclic garbage is skipped, which Python
    does not promise at exit in any case.  Registered through ``atexit``, so
    a program that calls a command's entry point in-process (a test) keeps
    its collector until it ends too.
    """
    global _FREEZING
    if not _FREEZING:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _FREEZING = True


_FREEZING = False
