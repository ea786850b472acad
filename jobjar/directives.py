"""Per-job options carried in the job file itself as ``#JJ`` comment lines.

Like ``#SBATCH`` lines, directives sit at the top of a script, after the
``#!`` line and before the first command::

    #!/bin/sh
    #JJ --timeout 3600 --retries 2
    #JJ --after 20261123T101500_000000Z-ann-rain-4242-1.0
    ./simulate

Because they travel with the file, a job submitted by hand with ``cp`` and
``mv`` carries its options too.  Only the first ``HEAD_BYTES`` of a file are
read, and a file that does not start with ``#!`` has no directives.

``OPTIONS`` is the one table of them: each row gives an option's name, its
flags, its check, its default and its ``submit_job`` help.  ``parse``,
``render``, ``check``, ``submit.OPTION_NAMES`` and ``submit_job``'s own
flags all come from it, so a new option is one row here (and whatever the
worker does with it).
"""

from __future__ import annotations

import os

from .errors import JobJarError
from .naming import MAX_NAME_BYTES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

PREFIX = "#JJ"
HEAD_BYTES = 16384

#: The largest count (``--retries``, ``--array-index``) and timeout accepted.
MAX_COUNT = 10**9

class DirectiveError(JobJarError):
    """A ``#JJ`` line that cannot be understood."""


# -- checks: every value comes from someone's file or command line ------------

_DIGITS, _LOWER = "0123456789", "abcdefghijklmnopqrstuvwxyz"  # (string methods, no ``re``)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _count(name: str, value: object) -> int:
    """A non-negative integer of ASCII digits (``--5``, ``²``, ``٣`` and ``True`` are not)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and 0 < len(value.strip()) <= 10 \
            and not value.strip().strip(_DIGITS):
        number = int(value.strip())
    else:
        number = -1
    if not 0 <= number <= MAX_COUNT:
        raise DirectiveError(f"{_flag(name)} must be a non-negative integer, not {value!r}")
    return number


def _seconds(name: str, value: object) -> float:
    """A positive duration (``config.duration``'s spelling), at most a year, as every option."""
    from .config import MAX_OPTION_SECONDS, duration

    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(
            value, bool) else duration(value if isinstance(value, str) else "?")
    except ValueError:
        raise DirectiveError(f"{_flag(name)} must be a duration (90, 90s, 15m, 12h, 7d, "
                             f"1d12h), not {value!r}") from None
    if not 0 < number <= MAX_OPTION_SECONDS:
        raise DirectiveError(f"{_flag(name)} must be a positive duration, at most "
                             f"{MAX_OPTION_SECONDS:.0f} s, not {value!r}")
    return number


def check_job_name(name: str) -> str:
    """A job name read from a file or typed: never a path, never a control character."""
    if (not name or "/" in name or name.startswith(".") or any(ord(c) < 32 or c == "\x7f"
                                                               for c in name)
            or len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES):
        raise DirectiveError(f"not a job name: {name!r}")
    return name


def _names(name: str, value: object) -> list[str]:
    """A comma-separated string or a list of job names."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise DirectiveError(f"{_flag(name)} needs job names, not {value!r}")
    names = [str(n).strip() for n in items if n and str(n).strip()]
    if not names:
        raise DirectiveError(f"{_flag(name)} needs at least one job name")
    return [check_job_name(n) for n in names]


#: A batch id: what ``submit.new_batch`` makes (8 of ``BATCH_ALPHABET``), or one typed by hand.
_BATCH_CHARS = _LOWER + _DIGITS


def check_batch(value: object) -> str:
    """A batch id from a file or a command line: a short lowercase word, never a path."""
    if not isinstance(value, str) or not 4 <= len(value) <= 32 or value.strip(_BATCH_CHARS):
        raise DirectiveError(f"not a batch id: {value!r} (4 to 32 lowercase letters and digits)")
    return value


def _batch(name: str, value: object) -> str:
    return check_batch(value.strip() if isinstance(value, str) else value)


def _path(name: str, value: object) -> str:
    text = str(value)
    if not text or "\x00" in text or "\n" in text:
        raise DirectiveError(f"{_flag(name)} needs a file name")
    # A relative path is taken in output/ and must stay there: "../x" would
    # let a directive place files anywhere the worker's user can write.
    if not os.path.isabs(text) and os.path.normpath(text).split(os.sep)[0] == "..":
        raise DirectiveError(f"{_flag(name)} {text!r} leaves output/: use a path inside it, "
                             "or an absolute path")
    return text


def _size(name: str, value: object) -> int:
    """A memory size (``placement.parse_size``: K, M, G, T; a bare number is megabytes)."""
    from .placement import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise DirectiveError(f"{_flag(name)} {exc}, not {value!r}") from None


def _cpus(name: str, value: object) -> int:
    """A CPU count from 1 to ``placement.MAX_CPUS``."""
    from .placement import MAX_CPUS

    try:
        number = _count(name, value)
    except DirectiveError:
        number = 0
    if not 1 <= number <= MAX_CPUS:
        raise DirectiveError(f"{_flag(name)} must be a whole number of CPUs from 1 to "
                             f"{MAX_CPUS}, not {value!r}")
    return number


def _node(name: str, value: object) -> str:
    """A node name, checked like ``JJ_NODE``."""
    from .naming import check_word

    try:
        return check_word("node name", value if isinstance(value, str) else "")
    except JobJarError:
        raise DirectiveError(f"{_flag(name)} needs a node name, not {value!r}") from None


# -- the table ------------------------------------------------------------------


class Option:
    """One per-job option: its name, ``#JJ`` flags, check, default and help."""

    __slots__ = ("name", "flags", "check", "default", "adds_up", "metavar", "help", "names_file")

    def __init__(self, name: str, flags: tuple[str, ...], check: Callable[[str, object], object],
                 default: object = None, adds_up: bool = False, metavar: str = "",
                 help: str | None = None) -> None:
        self.name = name
        self.flags = flags          # the first one is what ``render`` writes
        self.check = check
        self.default = default
        self.adds_up = adds_up      # ``--after`` lists add up; otherwise a later line wins
        self.metavar = metavar
        self.help = help            # ``None``: not a ``submit_job`` flag (set by ``--array``)
        self.names_file = check is _path  # ``submit_job`` makes a relative one absolute


OPTIONS = (
    Option("timeout", ("--timeout",), _seconds, None, metavar="SECONDS",
           help="kill the job after this long"),
    Option("retries", ("--retries",), _count, 0, metavar="N",
           help="run a failed or timed-out job again, up to N times"),
    Option("after", ("--after",), _names, [], adds_up=True, metavar="NAME[,NAME...]",
           help="run only after all of these jobs succeeded"),
    Option("after_any", ("--after-any",), _names, [], adds_up=True, metavar="NAME[,NAME...]",
           help="run after all of these jobs finished, however they ended"),
    Option("output", ("--output", "-o"), _path, None, metavar="FILE",
           help="standard output file"),
    Option("error", ("--error", "-e"), _path, None, metavar="FILE",
           help="standard error file"),
    Option("mem", ("--mem",), _size, None, metavar="SIZE",
           help="run only where this much memory is free (K, M, G, T; a bare number is MB)"),
    Option("cpus", ("--cpus",), _cpus, None, metavar="N",
           help="run only where N CPUs are not taken by other jobs"),
    Option("node", ("--node",), _node, None, metavar="NODE", help="run only on this node"),
    Option("array_index", ("--array-index",), _count, None),
    Option("batch", ("--batch",), _batch, None),  # set by --array and --from-file
)
BY_NAME = {option.name: option for option in OPTIONS}
_FLAGS = {flag: option for option in OPTIONS for flag in option.flags}


class Directives:
    """Options of one job (attributes named as in ``OPTIONS``); default means not given.

    A plain class rather than a dataclass: ``dataclasses`` imports
    ``inspect``, which would cost every ``submit_job`` process several
    milliseconds of start-up.
    """

    FIELDS = tuple(option.name for option in OPTIONS)

    def __init__(self, **values: object) -> None:
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        for option in OPTIONS:
            value = values.get(option.name)
            if option.adds_up:
                value = list(value) if value else []
            elif value is None:
                value = option.default
            setattr(self, option.name, value)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.FIELDS)

    __hash__ = None  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return "Directives(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.FIELDS) + ")"

    @property
    def dependencies(self) -> list[str]:
        """Every job this one waits for."""
        return self.after + self.after_any

    def set(self, name: str, value: object) -> None:
        """Check ``value`` and set option ``name`` (a list option adds up)."""
        option = BY_NAME.get(name)
        if option is None:
            raise DirectiveError(f"unknown option {name!r}")
        checked = option.check(name, value)
        if option.adds_up:
            getattr(self, name).extend(checked)
        else:
            setattr(self, name, checked)


def check(name: str, value: object) -> object:
    """Validate one option value the way submission and the worker both must."""
    option = BY_NAME.get(name)
    if option is None:
        raise DirectiveError(f"unknown option {name!r}")
    return option.check(name, value)


def parse(head: bytes) -> Directives:
    """Read the directives from the first bytes of a job file."""
    result = Directives()
    if not head.startswith(b"#!"):
        return result
    lines = head.decode("utf-8", "replace").splitlines()[1:]
    import shlex  # here, not at the top: a plain submit_job needs no shlex (0.3 ms)

    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        if stripped != PREFIX and not stripped.startswith(PREFIX + " "):
            continue
        try:
            words = shlex.split(stripped[len(PREFIX):])
        except ValueError as exc:
            raise DirectiveError(f"bad directive line {stripped!r}: {exc}") from None
        _apply(result, words, stripped)
    return result


def _apply(result: Directives, words: list[str], line: str) -> None:
    i = 0
    while i < len(words):
        flag, value = words[i], None
        if "=" in flag and flag.startswith("--"):
            flag, value = flag.split("=", 1)
        option = _FLAGS.get(flag)
        if option is None:
            raise DirectiveError(f"unknown directive {flag!r} in {line!r}")
        if value is None:
            if i + 1 >= len(words):
                raise DirectiveError(f"directive {flag} needs a value in {line!r}")
            i += 1
            value = words[i]
        result.set(option.name, value)
        i += 1


def render(options: Directives) -> list[str]:
    """The ``#JJ`` lines that carry ``options`` (none for the defaults)."""
    lines = []
    for option in OPTIONS:
        value = getattr(options, option.name)
        if value == option.default or (option.adds_up and not value):
            continue
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        import shlex  # only for a job with options (see parse)

        lines.append(f"{PREFIX} {option.flags[0]} {shlex.quote(str(value))}")
    return lines
