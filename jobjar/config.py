"""Configuration: INI files, the environment and Python setters, in that order.

Sources, later ones winning:

1. the global ``config.ini`` of the installation (the checkout's top directory,
   or ``<prefix>/etc/jobjar/config.ini`` for an installed package);
2. the personal file, ``$JJ_CONFIG_FILE`` or ``~/.jobjar/config.ini``;
3. ``JJ_*`` environment variables;
4. values set from Python with the ``set_*`` functions.

The loaded configuration is cached and re-read whenever a relevant
environment variable or a Python setting changes, so long-lived programs and
tests that change the environment always see the current values.
"""

from __future__ import annotations

import os
import sys

from .errors import ConfigError, JobJarError
from .naming import check_word, default_node

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pathlib import Path

SECTION = "[Job Jar]"

#: name -> (kind, default).  ``None`` defaults are derived at load time.
PARAMETERS: dict[str, tuple[str, object]] = {
    "JJ_HOME": ("path", None),
    "JJ_WORKER_HOME": ("path", None),
    "JJ_PAUSE_TIME": ("seconds", 60.0),
    "JJ_MAX_WORKERS": ("count", 4),
    "JJ_CATEGORIES": ("list", ()),
    "JJ_NODE": ("word", None),
    "JJ_MAX_RECOVERIES": ("count", 3),
    "JJ_KILL_GRACE": ("seconds", 10.0),
    "JJ_HEARTBEAT": ("seconds", 30.0),
    "JJ_ALLOW_ROOT": ("bool", False),
    "JJ_MAX_LOAD": ("load", None),
    "JJ_MIN_FREE_MEMORY": ("size", None),
    "JJ_PROJECT": ("project", None),
    "JJ_PYTHON": ("path", None),
    "JJ_FAIR_SHARE": ("bool", False),
    "JJ_USER_LIMIT": ("count", 0),
}
#: Parameters that cannot be set from Python (the guide says so for this one).
NOT_FROM_PYTHON = {"JJ_MAX_WORKERS"}

#: Upper bound of every duration setting (``JJ_PAUSE_TIME``, ``JJ_KILL_GRACE``,
#: ``JJ_HEARTBEAT``): one day.  Longer is a typo, and a huge value overflows
#: the clock arithmetic of the worker (a cancel once raised OverflowError).
MAX_SETTING_SECONDS = 86400.0
#: The longest duration a command option or a job's ``--timeout`` takes: a year.
MAX_OPTION_SECONDS = 365 * 86400.0

_overrides: dict[str, object] = {}
_cache: tuple[tuple, Config] | None = None


class Config:
    """The resolved configuration of one program run (immutable).

    A small hand-written class rather than a dataclass: ``dataclasses``
    imports ``inspect``, which would cost every ``submit_job`` process
    several milliseconds of start-up.
    """

    __slots__ = ("root", "worker_root", "pause_time", "max_workers", "categories", "node",
                 "max_recoveries", "kill_grace", "heartbeat", "allow_root", "sources",
                 "max_load", "min_free_memory", "project",
                 "fair_share", "user_limit", "_python")
    root: str  # JJ_HOME as a string (``home`` is the same as a Path, made when asked)
    worker_root: str
    pause_time: float
    max_workers: int
    categories: tuple[str, ...]
    node: str
    max_recoveries: int
    kill_grace: float
    heartbeat: float
    allow_root: bool
    sources: tuple[str, ...]
    max_load: float | None  # JJ_MAX_LOAD: 1-minute load per CPU above which nothing is claimed
    min_free_memory: int | None  # JJ_MIN_FREE_MEMORY in KiB
    project: str | None  # JJ_PROJECT: ``home`` is then ``<the jar>/projects/NAME``
    fair_share: bool  # JJ_FAIR_SHARE: among equal priorities, the user running fewest first
    user_limit: int  # JJ_USER_LIMIT: jobs one user runs at once across the jar (0: no cap)
    _python: str | None  # JJ_PYTHON: this node's interpreter for Python calls (jobjar.Executor)

    def __init__(self, home: Path, worker_home: Path, pause_time: float, max_workers: int,
                 categories: tuple[str, ...], node: str, max_recoveries: int,
                 kill_grace: float, heartbeat: float, allow_root: bool,
                 sources: tuple[str, ...] = (), max_load: float | None = None,
                 min_free_memory: int | None = None, project: str | None = None,
                 fair_share: bool = False, user_limit: int = 0,
                 python: Path | None = None) -> None:
        from .layout import tidy

        home, worker_home = tidy(home), tidy(worker_home)
        python = None if python is None else tidy(python)
        values = (home, worker_home, pause_time, max_workers, categories, node,
                  max_recoveries, kill_grace, heartbeat, allow_root, sources, max_load,
                  min_free_memory, project, fair_share, user_limit, python)
        for name, value in zip(self.__slots__, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: Config is immutable")

    @property
    def home(self) -> Path:
        """``JJ_HOME``: the jar (``root`` as a Path).

        The paths are kept as strings and made Paths when asked: the plain
        ``submit_job CMD`` never asks, and never imports ``pathlib``.
        """
        from pathlib import Path

        return Path(self.root)

    @property
    def worker_home(self) -> Path:
        """``JJ_WORKER_HOME``: where the workers' directories are."""
        from pathlib import Path

        return Path(self.worker_root)

    @property
    def python(self) -> Path | None:
        """``JJ_PYTHON``: this node's interpreter for Python calls (``None``: the worker's)."""
        from pathlib import Path

        return None if self._python is None else Path(self._python)

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{n.lstrip('_')}={getattr(self, n)!r}" for n in self.__slots__)
        return f"Config({fields})"


def install_dir() -> str:
    """The installation directory whose ``config.ini`` is the global file."""
    from .layout import checkout_dir

    return checkout_dir() or os.path.join(sys.prefix, "etc", "jobjar")


def default_home() -> str:
    """Where the jar lives when nothing says otherwise: ``~/jobjar``.

    Never inside the installed package, which may be read-only or replaced
    by an upgrade.
    """
    return os.path.join(os.path.expanduser("~"), "jobjar")


def personal_file() -> str:
    """``$JJ_CONFIG_FILE`` if set, else ``~/.jobjar/config.ini``."""
    env = os.environ.get("JJ_CONFIG_FILE")
    if env:
        path = os.path.expanduser(env)
        if not os.path.isabs(path):
            raise ConfigError(f"JJ_CONFIG_FILE must be an absolute path, not {env!r}")
        return path
    return os.path.join(os.path.expanduser("~"), ".jobjar", "config.ini")


def text_of(data: bytes, path: object, error: type[Exception]) -> str:
    """The text of a small INI file (a configuration, a hosts or an fjd job file), or ``error``.

    UTF-8 without NUL bytes, so that what a person wrote is what is parsed.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (invalid UTF-8)") from None
    if "\x00" in text:
        raise error(f"{path}: not a text file (contains NUL bytes)")
    return text


def parse_ini(path: str | os.PathLike) -> dict[str, str]:
    """Read one Job Jar INI file into raw ``name -> value`` strings.

    A missing file is empty; an unreadable or malformed one is an error that
    names the file and the line.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    text = text_of(data, path, ConfigError)
    values: dict[str, str] = {}
    seen_section = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if not seen_section:
            if line != SECTION:
                raise ConfigError(
                    f"{path}:{number}: the first line must be {SECTION}, not {line!r}")
            seen_section = True
            continue
        cut = min((i for i in (line.find(":"), line.find("=")) if i > 0), default=-1)
        if cut < 0:
            raise ConfigError(f"{path}:{number}: expected 'name: value', got {line!r}")
        name, value = line[:cut].strip(), line[cut + 1 :].strip()
        if name not in PARAMETERS:
            print(f"jobjar: warning: {path}:{number}: unknown parameter {name!r} ignored",
                  file=sys.stderr)
            continue
        values[name] = value
    if not seen_section:
        raise ConfigError(f"{path}: empty configuration file (no {SECTION} line)")
    return values


def convert(name: str, value: object) -> object:
    """Check and convert one parameter value; errors name the parameter."""
    kind = PARAMETERS[name][0]
    text = str(value).strip() if not isinstance(value, (list, tuple)) else value
    try:
        if kind == "path":
            path = os.path.expanduser(str(text))
            if not str(text) or not os.path.isabs(path):
                raise ValueError("must be an absolute path")
            return path
        if kind == "seconds":
            return seconds(text, MAX_SETTING_SECONDS)
        if kind == "count":
            if isinstance(value, bool) or not str(text).lstrip("+").isdigit():
                raise ValueError("must be a non-negative integer")
            return int(text)
        if kind == "bool":
            lowered = str(text).lower()
            if lowered in ("1", "yes", "true", "on"):
                return True
            if lowered in ("0", "no", "false", "off", ""):
                return False
            raise ValueError("must be yes or no")
        if kind == "load":
            from .placement import parse_load

            return parse_load(text)
        if kind == "size":
            from .placement import parse_size

            return parse_size(text, allow_zero=True)
        if kind == "list":
            words = text if isinstance(text, (list, tuple)) else text.replace(",", " ").split()
            return tuple(check_word("category", w) for w in words)
        if kind == "project":  # "": no project, whatever a file says (a job's, a cron line's)
            return check_word("project name", str(text)) if str(text) else None
        return check_word("node name", str(text))
    except (ValueError, JobJarError) as exc:
        raise ConfigError(f"{name}: bad value {value!r}: {exc}") from None


#: One part of a duration: a number and an optional unit (``1d12h`` has two).
#: (Compiled when first used: ``re`` is not imported by a plain ``submit_job``.)
_DURATION_PART = r"((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?)([smhd]?)"
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: object) -> float:
    """A duration's seconds, or ValueError: ``90``, ``90s``, ``15m``, ``12h``, ``7d``, ``1d12h``.

    The one spelling of a duration everywhere (settings, command options,
    ``#JJ`` lines): a bare number is seconds; parts with units add up, each
    unit at most once and largest first, so ``1d12h`` is 36 hours and
    ``12h1d`` is refused rather than guessed at.
    """
    spelled = str(text).strip()
    if isinstance(text, bool) or not spelled:
        raise ValueError("is empty")
    unit = spelled[-1] if spelled[-1] in "smhd" else ""
    number = spelled[:len(spelled) - len(unit)]
    if number.isascii() and number.replace(".", "", 1).isdigit():  # one part, no exponent:
        return float(number) * _UNIT[unit]  # the usual case, without ``re``
    import re

    part_at = re.compile(_DURATION_PART, re.ASCII).match  # (re keeps it compiled)
    total, position, units = 0.0, 0, ""
    while position < len(spelled):
        part = part_at(spelled, position)
        if part is None or (part.group(2) == "" and (position or part.end() < len(spelled))):
            raise ValueError("is not a duration")
        unit = part.group(2)
        if units and (unit == "" or "smhd".index(unit) >= "smhd".index(units[-1])):
            raise ValueError("is not a duration")
        units += unit
        total += float(part.group(1)) * _UNIT[unit]
        position = part.end()
    return total


def seconds(text: object, maximum: float) -> float:
    """A duration in seconds from 0 to ``maximum`` (see ``duration``), or ValueError.

    No ``nan``, no ``inf``, nothing larger than ``maximum``.
    """
    try:
        number = duration(text)
    except ValueError:
        number = -1.0
    if not 0 <= number <= maximum:  # also false for nan
        raise ValueError(f"must be a duration (90, 90s, 15m, 12h, 7d, 1d12h) from 0 to "
                         f"{maximum:.0f} s")
    return number


def _env_key() -> tuple:
    keys = ("HOME", "JJ_CONFIG_FILE", *PARAMETERS)
    return tuple(os.environ.get(k) for k in keys) + (tuple(sorted(_overrides.items())),)


def load() -> Config:
    """Return the current configuration, re-reading it only when needed."""
    global _cache
    key = _env_key()
    if _cache is not None and _cache[0] == key:
        return _cache[1]
    values: dict[str, object] = {}
    sources = []
    for path in (os.path.join(install_dir(), "config.ini"), personal_file()):
        found = parse_ini(path)
        if found:
            sources.append(str(path))
        for name, value in found.items():  # every value is checked, even if overridden
            try:
                values[name] = convert(name, value)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from None
    for name in PARAMETERS:
        if os.environ.get(name, "") != "" or (name in os.environ
                                               and PARAMETERS[name][0] == "project"):
            values[name] = convert(name, os.environ[name])
    values.update({name: convert(name, v) for name, v in _overrides.items()})
    home = values.get("JJ_HOME") or default_home()
    worker_home = values.get("JJ_WORKER_HOME") or os.path.join(home, "workers")
    project = values.get("JJ_PROJECT")
    if project:  # a jar of its own inside the jar the settings select (layout.project_home)
        from .layout import project_home

        explicit = values.get("JJ_WORKER_HOME")
        home = project_home(home, project)
        worker_home = project_home(explicit, project) if explicit else os.path.join(home,
                                                                                    "workers")
    config = Config(
        home=home,
        worker_home=worker_home,
        pause_time=values.get("JJ_PAUSE_TIME", PARAMETERS["JJ_PAUSE_TIME"][1]),
        max_workers=values.get("JJ_MAX_WORKERS", PARAMETERS["JJ_MAX_WORKERS"][1]),
        categories=values.get("JJ_CATEGORIES", ()),
        node=values.get("JJ_NODE") or check_word("node name", default_node()),
        max_recoveries=values.get("JJ_MAX_RECOVERIES", PARAMETERS["JJ_MAX_RECOVERIES"][1]),
        kill_grace=values.get("JJ_KILL_GRACE", PARAMETERS["JJ_KILL_GRACE"][1]),
        heartbeat=values.get("JJ_HEARTBEAT", PARAMETERS["JJ_HEARTBEAT"][1]),
        allow_root=values.get("JJ_ALLOW_ROOT", False),
        sources=tuple(sources),
        max_load=values.get("JJ_MAX_LOAD"),
        min_free_memory=values.get("JJ_MIN_FREE_MEMORY"),
        project=project or None,
        fair_share=values.get("JJ_FAIR_SHARE", False),
        user_limit=values.get("JJ_USER_LIMIT", 0),
        python=values.get("JJ_PYTHON"),
    )
    _cache = (key, config)
    return config


def set_parameter(name: str, value: object) -> None:
    """Set a parameter from Python; it wins over files and the environment."""
    if name not in PARAMETERS or name in NOT_FROM_PYTHON:
        raise JobJarError(f"{name} cannot be set from Python")
    if value is None:
        _overrides.pop(name, None)
        return
    convert(name, value)  # validate now, so the mistake is reported here
    _overrides[name] = value


def overrides_as_env() -> dict[str, str]:
    """Python settings as environment variables, for programs we start."""
    out = {}
    for name, value in _overrides.items():
        out[name] = " ".join(value) if isinstance(value, (list, tuple)) else str(value)
    return out


def set_home(path: str | os.PathLike) -> None:
    """Set ``JJ_HOME``, the parent of the job directories."""
    set_parameter("JJ_HOME", str(path))


def get_home() -> Path:
    """Return ``JJ_HOME``."""
    return load().home


def set_worker_home(path: str | os.PathLike) -> None:
    """Set ``JJ_WORKER_HOME``, the parent of the worker directories."""
    set_parameter("JJ_WORKER_HOME", str(path))


def get_worker_home() -> Path:
    """Return ``JJ_WORKER_HOME``."""
    return load().worker_home


def set_pause_time(seconds: float) -> None:
    """Set ``JJ_PAUSE_TIME``, the base sleep of idle or paused workers."""
    set_parameter("JJ_PAUSE_TIME", seconds)


def get_pause_time() -> float:
    """Return ``JJ_PAUSE_TIME`` in seconds."""
    return load().pause_time


def set_categories(categories: list[str] | tuple[str, ...] | str) -> None:
    """Set ``JJ_CATEGORIES``, the ordered categories workers check."""
    set_parameter("JJ_CATEGORIES", categories)


def get_categories() -> tuple[str, ...]:
    """Return ``JJ_CATEGORIES`` as a tuple."""
    return load().categories


def set_project(name: str | None) -> None:
    """Set ``JJ_PROJECT``: use the jar ``projects/NAME`` inside the jar.

    ``""``: no project, whatever a file or the environment says; ``None``:
    forget the Python setting.
    """
    set_parameter("JJ_PROJECT", name)


def get_project() -> str | None:
    """Return ``JJ_PROJECT`` (``None``: the jar itself, no project)."""
    return load().project
