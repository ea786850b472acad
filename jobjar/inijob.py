"""fjd's job files: an INI file handed to the program its ``[control]`` section names.

fjd users describe each job as an INI file::

    [control]
    executable: python example/ajob.py
    logfile: logfiles/job0.dat

    [params]
    param1: value0

and fjd runs ``python example/ajob.py <path of the job file>``.  Job Jar
keeps the protocol as it is: ``submit_job --ini FILE`` copies the file into
the jar (``ini/NAME.ini``, beside nothing a worker claims) and submits a
plain ``#!/bin/sh`` job that runs ``EXECUTABLE "$JJ_HOME/ini/NAME.ini"``.
Only ``[control]``'s ``executable`` is required; the other sections are the
executable's business.  One key of ours: ``workdir``, where the executable
runs: ``submit`` (the directory ``submit_job`` ran in, where fjd's relative
paths point) or an absolute path; without it, the job's scratch directory,
as for every job.

The copy is kept as long as the job's file is (``resubmit_job`` runs it
again with the same copy).  Whoever may write ``ini/`` could swap a copy
before its job runs: the job runs the executable only on a regular file
owned by the submitter (``find -user``), and says why otherwise.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from .errors import SubmitError
from .layout import INI_COPIES

#: The section and key fjd requires, and the key of ours.
CONTROL, EXECUTABLE, WORKDIR = "control", "executable", "workdir"
#: ``workdir: submit``: the directory submit_job was run in.
SUBMIT_DIR = "submit"
#: An INI job file is small; anything larger is a mistake (a data file named by accident).
MAX_BYTES = 1 << 20


class IniJob:
    """A checked INI job file: its bytes, the executable and the directory to run in."""

    def __init__(self, data: bytes, executable: str, workdir: str | None) -> None:
        self.data = data
        self.executable = executable
        self.workdir = workdir

    def script(self, directives: list[str], owner: int) -> bytes:
        """The job file: ``#JJ`` lines, the owner check of the copy, then the executable."""
        lines = ["#!/bin/sh", *directives,
                 "# an fjd job file: the executable gets the copy of the INI file kept in the jar",
                 f'ini="$JJ_HOME/{INI_COPIES}/$JJ_JOB_NAME.ini"',
                 f'[ -n "$(find "$ini" -prune -type f -user {owner} 2>/dev/null)" ] || '
                 '{ echo "jobjar: $ini is missing or not the submitter\'s file" >&2; exit 1; }']
        if self.workdir:
            lines.append(f"cd {shlex.quote(self.workdir)} || exit 1")
        lines.append(f'{self.executable} "$ini"')
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def read(path: str | os.PathLike) -> IniJob:
    """Read and check an INI job file; a file fjd could not run is a one-line SubmitError."""
    import configparser

    try:
        with open(path, "rb") as src:
            data = src.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SubmitError(f"{path}: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise SubmitError(f"{path}: larger than {MAX_BYTES} bytes: not an INI job file")
    from .config import text_of

    text = text_of(data, path, SubmitError)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SubmitError(f"{path}: not an INI file: {first}") from None
    if not parser.has_section(CONTROL):
        raise SubmitError(f"{path}: no [{CONTROL}] section (it names the executable)")
    executable = parser.get(CONTROL, EXECUTABLE, fallback="").strip()
    if not executable:
        raise SubmitError(f"{path}: no '{EXECUTABLE}' in [{CONTROL}] (the program to run)")
    if "\n" in executable or "\r" in executable:
        raise SubmitError(f"{path}: '{EXECUTABLE}' must be one line")
    return IniJob(data, executable, _workdir(path, parser.get(CONTROL, WORKDIR, fallback=None)))


def _workdir(path: str | os.PathLike, value: str | None) -> str | None:
    """``workdir``: ``submit`` (this directory) or an absolute directory; ``None``: scratch."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value == SUBMIT_DIR:
        return os.getcwd()
    if not os.path.isabs(value) or "\n" in value:
        raise SubmitError(f"{path}: '{WORKDIR}' must be '{SUBMIT_DIR}' or an absolute path, "
                          f"not {value!r}")
    if not os.path.isdir(value):
        raise SubmitError(f"{path}: '{WORKDIR}' {value}: no such directory")
    return value


def attach(data: bytes, copy: Path) -> None:
    """Write the copy of the INI file for one job (atomically, read-only, never via a link)."""
    from . import files

    try:
        files.write_new(copy, data, 0o444)
    except FileNotFoundError:  # the jar's ini/ is made on first use, with the jar's bits
        files.make_dir(copy.parent)
        files.write_new(copy, data, 0o444)
