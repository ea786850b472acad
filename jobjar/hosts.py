"""The hosts file: which machines run workers, how many, and as whom.

One INI section per host, the section name being what ``ssh`` connects to::

    [rain]
    workers: 8
    [flower.lab]
    workers: auto          # the CPUs of flower.lab less one, counted there
    categories: GPU
    node: flower           # its JJ_NODE, when it is not the short host name
    python: /opt/jobjar/bin/python3
    home: /scratch/jobjar  # the jar's path on that host
    user: batch
    port: 2222

Its default place is ``hosts.ini`` beside the personal configuration
(``~/.jobjar/hosts.ini``).  It says what runs where as whom, so a file
someone else could have written is refused: a link, a file not owned by the
reader (or root), a file or directory others may write.  Every mistake is
one line naming the file and the line, found before any ``ssh`` runs.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import stat
from pathlib import Path

from .errors import JobJarError

#: The keys a host's section may hold.
KEYS = ("workers", "categories", "node", "python", "home", "user", "port")

#: One label of a host name (letters, digits, ``-`` inside, ``_`` for ssh aliases).
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class HostsFileError(JobJarError):
    """The hosts file is missing, unsafe or malformed (commands exit with status 2)."""


class Host:
    """One section of the hosts file; ``None`` means "not given there"."""

    __slots__ = ("name", "workers", "categories", "node", "python", "home", "user", "port",
                 "line")

    def __init__(self, name: str, line: int) -> None:
        self.name = name
        self.line = line
        self.workers: int | str | None = None  # a count, or "auto"
        self.categories: tuple[str, ...] | None = None
        self.node: str | None = None
        self.python: tuple[str, ...] | None = None  # the command's words
        self.home: str | None = None
        self.user: str | None = None
        self.port: int | None = None

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"Host({fields})"


def default_file() -> Path:
    """``hosts.ini`` beside the personal configuration file (``~/.jobjar/hosts.ini``)."""
    from .config import personal_file

    return Path(personal_file()).parent / "hosts.ini"


def load(path: str | os.PathLike | None = None) -> list[Host]:
    """Read and check a hosts file (default ``default_file()``); return its hosts in order."""
    path = Path(os.path.expanduser(str(path))) if path is not None else default_file()
    return parse(path, read_safely(path))


def read_safely(path: Path) -> str:
    """The text of ``path``, if nobody but its reader (or root) could have written it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise HostsFileError(f"{path}: no hosts file (one [HOST] section per host; see "
                             "hosts.ini.example), or name one with --hosts FILE") from None
    except OSError as exc:
        if os.path.islink(path):
            raise HostsFileError(f"{path}: refusing a hosts file that is a symbolic link"
                                 ) from None
        raise HostsFileError(f"{path}: cannot read the hosts file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HostsFileError(f"{path}: the hosts file is not a regular file")
        _check_writers(path, info, "the hosts file")
        _check_writers(path.parent, os.stat(path.parent), "its directory")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(1 << 20)
    except OSError as exc:
        raise HostsFileError(f"{path}: cannot read the hosts file: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise HostsFileError(f"{path}: not a text file (invalid UTF-8)") from None


def _check_writers(path: Path, info: os.stat_result, what: str) -> None:
    """Refuse what someone other than its reader (or root) owns or may write.

    A sticky directory (``/tmp``) is fine: others may write there but not
    replace a file they do not own.
    """
    me = os.geteuid()
    if info.st_uid not in (me, 0):
        raise HostsFileError(f"{path}: refusing {what}: owned by uid {info.st_uid}, not by you")
    sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
        raise HostsFileError(f"{path}: refusing {what}: others may write it (mode "
                             f"{stat.S_IMODE(info.st_mode):04o}; chmod go-w)")


def parse(path: Path, text: str) -> list[Host]:
    """Parse the hosts file's text; every error names ``path`` and the line."""
    hosts: list[Host] = []
    seen: dict[str, int] = {}
    host: Host | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if "\x00" in line:
            raise HostsFileError(f"{where}: not a text file (contains NUL bytes)")
        if line.startswith("["):
            if not line.endswith("]"):
                raise HostsFileError(f"{where}: expected '[HOST]', got {line!r}")
            name = line[1:-1].strip()
            check_host_name(name, where)
            if name.lower() in seen:
                raise HostsFileError(f"{where}: duplicate host [{name}] (first on line "
                                     f"{seen[name.lower()]})")
            seen[name.lower()] = number
            host = Host(name, number)
            hosts.append(host)
            continue
        cut = min((i for i in (line.find(":"), line.find("=")) if i > 0), default=-1)
        if cut < 0:
            raise HostsFileError(f"{where}: expected 'key: value', got {line!r}")
        key, value = line[:cut].strip(), _uncomment(line[cut + 1:])
        if host is None:
            raise HostsFileError(f"{where}: {key!r} before the first [HOST] section")
        if key not in KEYS:
            raise HostsFileError(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
        if getattr(host, key) is not None:
            raise HostsFileError(f"{where}: {key!r} given twice for [{host.name}]")
        try:
            setattr(host, key, _VALUE[key](value))
        except (ValueError, JobJarError) as exc:
            raise HostsFileError(f"{where}: [{host.name}] {key}: {exc}") from None
    if not hosts:
        raise HostsFileError(f"{path}: no hosts (one [HOST] section per host)")
    return hosts


def _uncomment(value: str) -> str:
    """A value without a trailing `` # comment`` (a ``#`` after white space)."""
    return re.split(r"\s[#;]", value, maxsplit=1)[0].strip()


def check_host_name(name: str, where: str) -> str:
    """A name ssh can connect to: a host name, an ssh alias or an IP address.

    Never something ssh would read as an option (``-oProxyCommand=...``) or
    as ``user@host`` (the ``user`` key says that).
    """
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    if not name or len(name) > 253 or not _HOST.match(name):
        raise HostsFileError(f"{where}: {name!r} is not a host name")
    return name


def _workers(value: str) -> int | str:
    if value.lower() == "auto":
        return "auto"
    if not value.lstrip("+").isdigit():
        raise ValueError(f"must be a number of workers (0 or more) or auto, not {value!r}")
    return int(value)


def _categories(value: str) -> tuple[str, ...]:
    from .config import convert

    return convert("JJ_CATEGORIES", value)


def _node(value: str) -> str:
    from .naming import check_word

    return check_word("node name", value)


def _python(value: str) -> tuple[str, ...]:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    words = tuple(shlex.split(value))
    if not words:
        raise ValueError("is empty")
    return words


def _home(value: str) -> str:
    if _CONTROL.search(value) or not (value.startswith("/") or value.startswith("~/")):
        raise ValueError(f"must be an absolute path (or ~/...) on that host, not {value!r}")
    return value


def _user(value: str) -> str:
    if not _USER.match(value):
        raise ValueError(f"{value!r} is not a user name")
    return value


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"must be a port number from 1 to 65535, not {value!r}")
    return int(value)


_VALUE = {"workers": _workers, "categories": _categories, "node": _node, "python": _python,
          "home": _home, "user": _user, "port": _port}


def auto_workers() -> int:
    """``workers: auto`` on this machine: the CPUs it may use, less one (at least one)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 2
    return max(1, cpus - 1)
