"""Jobs that are one simple command: written with ``exec``, run without a shell.

Most command lines are one program and its words (``touch out/3``,
``./simulate --seed 7``).  For those, a shell costs more than the job: on a
small machine starting ``sh`` takes about as long as starting the program,
and the shell forks once more to run it.  Two savings, neither of which
changes what the job does:

* ``submit_job`` writes such a line as ``exec WORDS`` (``script_line``), so
  a shell that runs the file replaces itself with the program: one process
  less, and the program is the job's process (its pid, its signals).
* A worker that finds a job file of exactly that form (``argv_of``: the
  ``#!/bin/sh`` line, comment lines, one ``exec`` line of plain words)
  starts the program itself, with the same arguments, environment,
  directory and descriptors the shell would have given it.  Anything else,
  or a program it cannot start, runs through the file as before: the shell
  then reports the error (``not found``, exit 127) as it always did.

A word is plain when the shell would pass it through unchanged: only
letters, digits and ``_@%+=:,./-`` (no quotes, ``$``, globs, ``~``,
redirections or separators).  The first word must not be a shell builtin
or reserved word (``cd``, ``exit``, ``if``...), which have no program to
start, nor an assignment (``A=1 cmd``), nor start with ``-`` (an option
to ``exec`` itself).
"""

from __future__ import annotations

import os
import stat

#: The characters of a word the shell passes through unchanged, and of a first
#: word (no ``=``: that would be an assignment): the one list ``words_of`` checks
#: with string methods and ``as_typed``'s pattern is made of.  (No ``re`` at
#: import: the plain ``submit_job CMD`` never needs it.)
PLAIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-"
FIRST = PLAIN.replace("=", "")

#: Builtins and reserved words of POSIX sh, dash and bash: a first word among
#: these stays with the shell, since ``exec`` would look for a program.
SHELL_WORDS = frozenset("""
    ! . : [ [[ ]] { } alias bg bind break builtin caller case cd chdir command compgen
    complete compopt continue declare dirs disown do done echo elif else enable esac
    eval exec exit export false fc fg fi for function getopts hash help history if in
    jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly
    return select set shift shopt source suspend test then time times trap true type
    typeset ulimit umask unalias unset until wait while
""".split())

#: The first line of every file ``submit_job`` writes.
SHEBANG = b"#!/bin/sh"


def words_of(command: str) -> list[str] | None:
    """The words of a command line that is one simple command, else ``None``."""
    words = [word for word in command.replace("\t", " ").split(" ") if word]  # blanks: " ", tab
    if not words or any(word.strip(PLAIN) for word in words):  # (all plain: nothing left)
        return None
    first = words[0]
    if first in SHELL_WORDS or "=" in first or first.startswith("-"):
        return None
    return words


def script_line(command: str) -> str:
    """The line ``submit_job`` writes for ``command``: ``exec WORDS`` when it is simple."""
    words = words_of(command)
    return "exec " + " ".join(words) if words else command


#: ``exec`` and a simple command's words, as ``script_line`` writes them (bytes):
#: made from ``PLAIN`` and ``FIRST`` on first use (``_exec_line``).
_EXEC_LINE = None


def _exec_line():  # noqa: ANN202 - a re.Pattern, without importing re to say so
    global _EXEC_LINE
    import re

    plain, first = (f"[{re.escape(chars)}]" for chars in (PLAIN, FIRST))
    start = f"[{re.escape(FIRST.replace('-', ''))}]"  # (no option to exec itself)
    _EXEC_LINE = re.compile(f"exec[ \t]+({start}{first}*)((?:[ \t]+{plain}+)*)[ \t]*\\Z"
                            .encode())
    return _EXEC_LINE


def as_typed(line: bytes) -> bytes:
    """A command line as it was typed: without the ``exec`` ``script_line`` put before it.

    For records and listings (``records.command_line``, ``list_jobs``): one
    regular expression and a set lookup, cheap enough for 100,000 rows.
    Any other line is returned as it is.
    """
    if not line.startswith(b"exec"):
        return line
    found = (_EXEC_LINE or _exec_line()).match(line)
    if found is None or found.group(1).decode() in SHELL_WORDS:
        return line
    return found.group(1) + found.group(2)


def argv_of(content: bytes) -> list[str] | None:
    """The program and arguments of a whole job file of the direct form, else ``None``.

    ``content`` must be the whole file.  The form: ``#!/bin/sh``, then
    comment lines (``#JJ`` directives) or blank lines, then one line
    ``exec WORDS`` of plain words, then nothing but blank lines.
    """
    if not content.startswith(SHEBANG + b"\n"):
        return None
    found = None
    for line in content[len(SHEBANG) + 1:].split(b"\n"):
        if not line.strip() or (line.startswith(b"#") and found is None):
            continue
        if found is not None or not line.startswith(b"exec "):
            return None
        try:
            found = words_of(line[5:].decode("ascii"))
        except UnicodeDecodeError:
            return None
        if found is None:
            return None
    return found


def program(word: str, search_path: str | None) -> str | None:
    """Where the shell would find ``word``: itself if it has a ``/``, else on PATH.

    ``None`` when nothing executable is found (the shell then says so).
    An empty ``PATH`` entry means the working directory, which for a job
    is its scratch directory: it is left to the shell.  Like a shell's
    hash table, a worker remembers where it found a program and looks
    there first (one ``stat`` instead of one per ``PATH`` entry before it);
    a program removed from there is searched for again.  One installed
    later in an earlier ``PATH`` directory is found by workers started
    after it (``stop_worker``, then ``check_workers``), as by a new shell.
    """
    if "/" in word:
        return word
    if not search_path:
        return None
    key = (word, search_path)
    known = _FOUND.get(key)
    if known is not None and _runnable(known):
        return known
    for directory in search_path.split(":"):
        if not directory:
            return None
        candidate = directory.rstrip("/") + "/" + word
        if _runnable(candidate):
            if len(_FOUND) >= _MAX_FOUND:
                _FOUND.clear()
            _FOUND[key] = candidate
            return candidate
    return None


def _runnable(path: str) -> bool:
    """A regular file we may execute (what ``execve`` needs of a program)."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and os.access(path, os.X_OK)


#: Where programs were found: (word, PATH) -> path (``program``).
_FOUND: dict[tuple[str, str], str] = {}
_MAX_FOUND = 1024
