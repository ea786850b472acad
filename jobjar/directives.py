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
"""

from __future__ import annotations

import os
import shlex

from .errors import JobJarError

PREFIX = "#JJ"
HEAD_BYTES = 16384


class DirectiveError(JobJarError):
    """A ``#JJ`` line that cannot be understood."""


class Directives:
    """Options of one job; ``None`` or empty means not given.

    A plain class rather than a dataclass: ``dataclasses`` imports
    ``inspect``, which would cost every ``submit_job`` process several
    milliseconds of start-up.
    """

    FIELDS = ("timeout", "retries", "after", "after_any", "output", "error", "array_index")

    def __init__(self, timeout: float | None = None, retries: int = 0,
                 after: list[str] | None = None, after_any: list[str] | None = None,
                 output: str | None = None, error: str | None = None,
                 array_index: int | None = None) -> None:
        self.timeout = timeout
        self.retries = retries
        self.after: list[str] = list(after) if after else []
        self.after_any: list[str] = list(after_any) if after_any else []
        self.output = output
        self.error = error
        self.array_index = array_index

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


_FLAGS = {"--timeout": "timeout", "--retries": "retries", "--after": "after",
          "--after-any": "after_any", "--output": "output", "-o": "output",
          "--error": "error", "-e": "error", "--array-index": "array_index"}


def check(name: str, value: object) -> object:
    """Validate one option value the way submission and the worker both must."""
    if name == "timeout":
        try:
            if isinstance(value, bool):  # float(True) is 1.0: not what anyone meant
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise DirectiveError(f"--timeout must be a number of seconds, not {value!r}") from None
        if not 0 < number < 10**9:
            raise DirectiveError(f"--timeout must be positive, not {value!r}")
        return number
    if name in ("retries", "array_index"):
        text = str(value)
        if isinstance(value, bool) or not text.lstrip("-").isdigit() or int(text) < 0 \
                or int(text) > 10**9:
            flag = name.replace("_", "-")
            raise DirectiveError(f"--{flag} must be a non-negative integer, not {value!r}")
        return int(text)
    if name in ("after", "after_any"):
        names = value.split(",") if isinstance(value, str) else list(value)
        names = [n.strip() for n in names if n and n.strip()]
        if not names:
            raise DirectiveError(f"--{name.replace('_', '-')} needs at least one job name")
        for n in names:
            if "/" in n or n.startswith(".") or any(ord(c) < 32 for c in n):
                raise DirectiveError(f"not a job name: {n!r}")
        return names
    if name in ("output", "error"):
        text = str(value)
        if not text or "\x00" in text or "\n" in text:
            raise DirectiveError(f"--{name} needs a file name")
        # A relative path is taken in output/ and must stay there: "../x" would
        # let a directive place files anywhere the worker's user can write.
        if not os.path.isabs(text) and os.path.normpath(text).split(os.sep)[0] == "..":
            raise DirectiveError(f"--{name} {text!r} leaves output/: use a path inside it, "
                                 "or an absolute path")
        return text
    raise DirectiveError(f"unknown option {name!r}")


def parse(head: bytes) -> Directives:
    """Read the directives from the first bytes of a job file."""
    result = Directives()
    if not head.startswith(b"#!"):
        return result
    lines = head.decode("utf-8", "replace").splitlines()[1:]
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
        name = _FLAGS.get(flag)
        if name is None:
            raise DirectiveError(f"unknown directive {flag!r} in {line!r}")
        if value is None:
            if i + 1 >= len(words):
                raise DirectiveError(f"directive {flag} needs a value in {line!r}")
            i += 1
            value = words[i]
        checked = check(name, value)
        if name in ("after", "after_any"):
            getattr(result, name).extend(checked)
        else:
            setattr(result, name, checked)
        i += 1


def render(options: Directives) -> list[str]:
    """The ``#JJ`` lines that carry ``options`` (none for the defaults)."""
    lines = []
    default = Directives()
    for name in Directives.FIELDS:
        value = getattr(options, name)
        if value == getattr(default, name):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        lines.append(f"{PREFIX} {flag} {shlex.quote(str(value))}")
    return lines
