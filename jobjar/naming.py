"""Job names, priorities, categories and node names.

A job's priority travels in its file name (the extension, when it is an
integer), so every rule about names lives here, next to the checks that keep a
category or identifier from ever naming a path outside the jar.
"""

from __future__ import annotations

import itertools
import os
import time

from .errors import JobJarError

#: Submitted priorities must lie in this range (hand-named files are clamped).
MAX_PRIORITY = 10**9

#: Longest job name that still leaves room for ``results/NAME.yaml`` in 255 bytes.
MAX_NAME_BYTES = 250

#: Longest category, identifier or node name we accept: with the rest of a
#: unique name it must stay below the 255-byte limit of most filesystems.
MAX_WORD = 100

#: What a word may not contain (control characters, white space, ``/`` and ``,``),
#: each mapped to ``_`` for ``str.translate``.  String methods rather than ``re``
#: here and in ``direct.py``: the plain ``submit_job CMD`` imports no ``re``.
_BAD_CHARS = dict.fromkeys([*range(0x21), 0x7F, ord("/"), ord(",")], "_")
_counter = itertools.count(1)


def _is_int(text: str) -> bool:
    """Is ``text`` an optional ``-`` and ASCII digits, nothing else (``-?[0-9]+``)?"""
    digits = text[1:] if text[:1] == "-" else text
    return digits.isascii() and digits.isdigit()


def priority_of(name: str) -> int:
    """Return the priority encoded in a job file name (0 when there is none).

    ``standalone_job.15`` has priority 15, ``job.-3`` has -3, ``job.sh`` has 0.
    Absurd hand-made values are clamped so that sorting stays cheap.
    """
    dot = name.rfind(".")
    if dot <= 0:
        return 0
    ext = name[dot + 1 :]
    if not _is_int(ext):
        return 0
    if len(ext) > 12:  # do not parse a thousand-digit "priority"
        return -MAX_PRIORITY if ext[0] == "-" else MAX_PRIORITY
    return max(-MAX_PRIORITY, min(MAX_PRIORITY, int(ext)))


def check_word(kind: str, value: str) -> str:
    """Validate a category, identifier or node name; return it unchanged.

    These words become directory or file names, so they must never contain a
    ``/``, start with a dot, or carry control characters or white space.
    """
    if not isinstance(value, str) or value == "":
        raise JobJarError(f"{kind} must not be empty")
    if value.startswith("."):
        raise JobJarError(f"{kind} {value!r} must not start with '.'")
    if value.translate(_BAD_CHARS) != value:
        raise JobJarError(
            f"{kind} {value!r} must not contain '/', ',', white space or control characters"
        )
    if len(value.encode("utf-8", "surrogateescape")) > MAX_WORD:
        raise JobJarError(f"{kind} is longer than {MAX_WORD} bytes")
    return value


def check_category(category: str | None) -> str | None:
    """Validate a category name (``None`` means uncategorized; ``""`` is a mistake)."""
    if category is None:
        return None
    return check_word("category", category)


def check_priority(priority: object) -> int:
    """Turn a user-given priority into an int, or raise a clear error."""
    if isinstance(priority, bool):
        raise JobJarError(f"priority must be an integer, not {priority!r}")
    if isinstance(priority, int):
        value = priority
    elif isinstance(priority, str) and _is_int(priority.strip()):
        value = int(priority.strip())
    else:
        raise JobJarError(f"priority must be an integer, not {priority!r}")
    if abs(value) > MAX_PRIORITY:
        raise JobJarError(f"priority {value} is out of range (-{MAX_PRIORITY}..{MAX_PRIORITY})")
    return value


_passwd_names: dict[int, str] = {}


def login() -> str:
    """The submitter's login name, made safe for a file name.

    The same rule as ``getpass.getuser`` (the environment, then the password
    database), without importing it and with the password lookup cached:
    ``submit_job`` calls this once per job.
    """
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        name = os.environ.get(variable)
        if name:
            break
    else:
        uid = os.getuid()
        name = _passwd_names.get(uid)
        if name is None:
            try:
                import pwd

                name = pwd.getpwuid(uid).pw_name
            except (ImportError, KeyError):  # no passwd entry (containers): use the uid
                name = f"uid{uid}"
            _passwd_names[uid] = name
    return name.translate(_BAD_CHARS).lstrip(".") or "user"


def default_node() -> str:
    """The short host name of this machine (``uname`` is what gethostname reads)."""
    return os.uname().nodename.split(".")[0] or "localhost"


def unique_name(node: str, priority: int = 0, ident: str | None = None) -> str:
    """Build a job name no other submitter can produce.

    UTC time to the microsecond, login, node, process id and a per-process
    counter make it unique across nodes; the identifier helps people find
    their jobs, and the priority is the extension.
    """
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f"_{micros:06d}Z"
    parts = [stamp, login(), node, str(os.getpid()), str(next(_counter))]
    if ident is not None:  # "" is a mistake, not "no identifier"
        parts.append(check_word("identifier", ident))
    return "-".join(parts) + f".{priority}"


def split_worker_name(worker: str) -> tuple[str, int]:
    """Split a worker directory name ``node.pid`` at its last dot."""
    node, _, pid = worker.rpartition(".")
    if not node or not pid.isdigit():
        raise ValueError(f"not a worker directory name: {worker!r}")
    return node, int(pid)


#: Control characters (C0, DEL and C1): what ``printable`` escapes.
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"


def printable(text: object) -> str:
    """``text`` with control characters escaped, for a terminal or a log line.

    Job names, categories and reasons come from other people's files: an
    escape sequence in one must not drive the operator's terminal, and a new
    line must not forge a log line.  ``\\n`` becomes ``\\\\n``, ``ESC`` becomes
    ``\\\\x1b``; bytes that are not UTF-8 (surrogate escapes) become ``\\\\xNN``.
    """
    text = str(text)
    if text.isascii() and text.isprintable():  # (the usual case, and no ``re`` needed:
        return text  # in ASCII, what is not printable is exactly C0 and DEL)
    import re

    if re.search(_CONTROL, text):
        text = re.sub(_CONTROL, lambda m: repr(m.group())[1:-1] if m.group() not in "\t"
                      else "\\t", text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text
