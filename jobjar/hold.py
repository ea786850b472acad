"""Holding a category: ``hold_category``, ``release_category`` and daily windows.

A hold stops every worker claiming from one category without touching the
workers (they go on with their other categories and uncategorized jobs);
its release lets them claim again.  A hold is one file,
``$JJ_WORKER_HOME/held/CATEGORY`` (``layout.Jar.hold_file``), so ``touch``
and ``rm`` do what the commands do:

* empty: the category is held;
* one line ``HH:MM-HH:MM``: it is held *outside* that daily window, in the
  claiming node's local time (``18:00-08:00`` wraps midnight: a night queue,
  as the Beowulf Job Manager had); the start is inside the window, the end
  is not;
* anything else (a typo, garbage, a link, a directory): held, with one line
  in the worker's log.  A mistyped night window must not open the queue in
  the day.

Workers read the directory at most once a second (``Holds``): one failed
``open`` when nothing is held.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from pathlib import Path
from typing import Callable

from . import files
from .errors import JobJarError
from .layout import Jar
from .naming import check_word

#: The public API of holds (``jobjar.hold_category``, ``jobjar.release_category``).
__all__ = ["hold_category", "release_category"]

#: ``HH:MM-HH:MM``, 24-hour clock.
WINDOW = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)
#: Seconds a worker trusts what it read of ``held/``.
TTL = 1.0
#: The most a hold file is read (a window is 11 bytes; anything longer is malformed).
MAX_READ = 64
#: Why a hold file's content is malformed (the content is never echoed: it may be anything).
MALFORMED = "neither empty nor HH:MM-HH:MM"


def parse_window(text: str) -> tuple[int, int]:
    """``HH:MM-HH:MM`` as minutes of the day ``(start, end)``, or ``JobJarError``.

    Start and end must differ: an empty window (never claimed) is a hold, and
    a full one is no hold at all; say which you mean.
    """
    found = WINDOW.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise JobJarError(f"window must be HH:MM-HH:MM (24-hour clock, e.g. 18:00-08:00), "
                          f"not {text!r}")
    hour, minute, end_hour, end_minute = (int(g) for g in found.groups())
    start, end = hour * 60 + minute, end_hour * 60 + end_minute
    if start == end:
        raise JobJarError(f"window {text.strip()!r} is empty: start and end must differ")
    return start, end


def in_window(window: tuple[int, int], minute: int) -> bool:
    """Is ``minute`` (of the day) inside ``window``?  A window may wrap midnight."""
    start, end = window
    return start <= minute < end if start < end else minute >= start or minute < end


def minute_now() -> int:
    """This node's local time as minutes of the day (the real clock, never a test's)."""
    now = time.localtime()
    return now.tm_hour * 60 + now.tm_min


def hold_category(*categories: str, window: str | None = None,
                  jar: Jar | None = None) -> list[str]:
    """Hold each category (``window``: outside that daily window only); return them.

    Every name and the window are checked before anything is written.  A
    category need not exist yet: it may be held before its first job.
    """
    content = _validated(categories, window)
    jar = jar or Jar.from_config()
    files.make_dir(jar.holds())
    for category in categories:
        files.write_new(jar.hold_file(category), content)
    return list(categories)


def release_category(*categories: str, jar: Jar | None = None) -> list[str]:
    """Release each category (a category that was not held stays so); return them."""
    _validated(categories, None)
    jar = jar or Jar.from_config()
    for category in categories:
        hold = jar.hold_file(category)
        try:
            files.unlink(hold)
        except IsADirectoryError:  # someone's directory there: it holds, remove it
            files.remove_tree(hold)
    return list(categories)


def _validated(categories: tuple[str, ...], window: str | None) -> bytes:
    """The hold file's content, once every category and the window are known good."""
    if not categories:
        raise JobJarError("name at least one category")
    for category in categories:
        check_word("category", category)
    if window is None:
        return b""
    return f"{window_text(parse_window(window))}\n".encode()


def read_hold(directory_fd: int, category: str) -> tuple[bool, tuple[int, int] | None, str | None]:
    """One hold file, never followed if it is a link: ``(exists, window, problem)``.

    ``problem`` is set when the file is malformed (the category is then held
    whatever the time).  A file that vanished as we read it is no hold.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(category, flags, dir_fd=directory_fd)
    except FileNotFoundError:
        return False, None, None
    except OSError as exc:  # ELOOP: a link; EACCES: unreadable
        why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        return True, None, why
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return True, None, "not a regular file"
        data = os.read(fd, MAX_READ + 1)
    except OSError as exc:
        return True, None, exc.strerror
    finally:
        os.close(fd)
    text = data.decode("ascii", "replace").strip()
    if not text:
        return True, None, None
    try:
        return True, parse_window(text), None
    except JobJarError:
        return True, None, MALFORMED


def _open_dir(path: Path, home_fd: int | None = None) -> int | None:
    """An descriptor of ``held/`` if it is a real directory (never a link), else ``None``.

    ``home_fd``, an open ``$JJ_WORKER_HOME``: ``held`` is looked up in it, one
    lookup for the file server instead of one per component of the path.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    if home_fd is not None:
        try:
            return os.open(path.name, flags, dir_fd=home_fd)
        except FileNotFoundError:
            return None
        except OSError:  # ESTALE, a link (ELOOP), ...: as by the path
            pass
    try:
        return os.open(path, flags)
    except OSError:
        return None


def window_text(window: tuple[int, int] | None) -> str | None:
    """``(start, end)`` minutes back to ``HH:MM-HH:MM``."""
    if window is None:
        return None
    start, end = window
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def holds(jar: Jar, minute: int | None = None) -> dict[str, dict]:
    """Every hold, for ``system_status``: category -> ``{window, held, problem}``.

    ``held`` is judged at ``minute`` (default: now, in this node's local time);
    each worker judges by its own node's clock.
    """
    found: dict[str, dict] = {}
    fd = _open_dir(jar.holds())
    if fd is None:
        return found
    minute = minute_now() if minute is None else minute
    try:
        names = sorted(e.name for e in os.scandir(fd) if not e.name.startswith("."))
        for name in names:
            exists, window, problem = read_hold(fd, name)
            if exists:
                held = window is None or not in_window(window, minute)
                found[name] = {"window": window_text(window), "held": held, "problem": problem}
    except OSError:
        pass
    finally:
        os.close(fd)
    return found


class Holds:
    """What one worker knows of the holds on its categories, re-read at most every ``TTL`` s.

    ``current()`` is asked before every claim; between two readings it costs
    a clock read.  The worker's log says when one of its categories becomes
    held or released, and, once, when a hold file is malformed.
    """

    def __init__(self, jar: Jar, categories: list[str],
                 log: Callable[[str], None] | None = None) -> None:
        self.path = jar.holds()
        self.categories = frozenset(categories)
        self.log = log
        self.held: frozenset[str] = frozenset()
        self.next_read = float("-inf")
        self.problems: dict[str, str] = {}
        self.home_fd: int | None = None  # $JJ_WORKER_HOME, open (set by the worker)

    def current(self) -> frozenset[str]:
        """The categories of this worker that are held now."""
        now = time.monotonic()
        if now >= self.next_read:
            self.next_read = now + TTL
            held = self._read()
            if held != self.held and self.log:  # twice a day for a window: worth a line
                for name in sorted(held - self.held):
                    self.log(f"category {name} held: not claimed")
                for name in sorted(self.held - held):
                    self.log(f"category {name} released")
            self.held = held
        return self.held

    def _read(self) -> frozenset[str]:
        fd = _open_dir(self.path, self.home_fd)
        if fd is None:  # nothing held (or held/ is not a real directory: not ours to enter)
            return frozenset()
        held, problems = set(), {}
        try:
            names = [e.name for e in os.scandir(fd) if e.name in self.categories]
            minute = minute_now() if names else 0
            for name in names:
                exists, window, problem = read_hold(fd, name)
                if problem:
                    problems[name] = problem
                if exists and (window is None or not in_window(window, minute)):
                    held.add(name)
        except OSError:
            held, problems = set(self.held), dict(self.problems)  # nothing learnt: keep it
        finally:
            os.close(fd)
        self._report(problems)
        return frozenset(held)

    def _report(self, problems: dict[str, str]) -> None:
        """Log each new problem with a hold file once (and once when it is gone)."""
        if self.log:
            for name, problem in problems.items():
                if self.problems.get(name) != problem:
                    self.log(f"hold file of category {name} is malformed ({problem}): "
                             "the category is held")
            for name in self.problems.keys() - problems.keys():
                self.log(f"hold file of category {name} is no longer malformed")
        self.problems = problems
