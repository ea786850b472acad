"""Cron lines that restart workers and recover stranded jobs, installed with python-crontab.

A cron job only acts on the node where it runs, so every node needs both
lines.  ``install`` is idempotent: every line it writes carries a comment tag
naming the jar, an existing tagged line is replaced rather than duplicated,
and ``remove`` deletes exactly the tagged lines of this jar.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from .config import load
from .errors import JobJarError
from .files import make_dir
from .layout import checkout

#: name -> (default schedule, command, extra arguments)
ENTRIES = {
    "worker": ("*/5 * * * *", "check_workers", ""),
    "recover": ("*/15 * * * *", "recover_jobs", ""),
    "purge": ("17 3 * * *", "purge_jobs", ""),
    "html": ("*/5 * * * *", "system_status", ""),
}
#: Entries every ``install`` writes; the others only when their option is given
#: (and a later ``install`` without it leaves their line as it is).
ALWAYS = ("worker", "recover")
TAG = "jobjar"


def command_dir() -> Path:
    """Where the Job Jar commands are: ``bin/`` of a checkout, else next to Python."""
    top = checkout()
    if top is not None and (top / "bin" / "check_workers").exists():
        return top / "bin"
    return Path(sys.executable).parent


#: Variables never carried into a cron line (test hooks; hire_workers's ssh command).
NOT_CARRIED = ("JJ_FAULT", "JJ_SSH")


def render(name: str, home: Path, extra: str = "", logs: Path | None = None) -> str:
    """The shell command of one cron line, with ``PATH`` and the jar's settings filled in.

    Cron runs with an almost empty environment, so the line carries
    ``JJ_HOME``, ``JJ_WORKER_HOME`` and every other ``JJ_*`` variable set
    where ``install_cron`` ran (``JJ_NODE``, ``JJ_MAX_WORKERS``,
    ``JJ_CONFIG_FILE``, ...): ``check_workers`` under cron must count the
    same workers, under the same node name, as it does by hand.
    """
    _schedule, command, default_extra = ENTRIES[name]
    path = os.pathsep.join(dict.fromkeys([str(Path(sys.executable).parent), str(command_dir()),
                                          "/usr/local/bin", "/usr/bin", "/bin"]))
    args = " ".join(filter(None, [default_extra, extra]))
    workers = logs or home / "workers"
    log = workers / f"cron-{name}.log"
    # JJ_HOME is the project's jar already (config.project): no project on top of it,
    # whatever a configuration file says ("" means none).
    settings = {"JJ_HOME": str(home), "JJ_WORKER_HOME": str(workers), "JJ_PROJECT": ""}
    for key in sorted(os.environ):
        if key.startswith("JJ_") and key not in settings and key not in NOT_CARRIED:
            settings[key] = os.environ[key]
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in settings.items())
    return (f"PATH={shlex.quote(path)} {assignments} "
            f"{shlex.quote(str(command_dir() / command))}{' ' + args if args else ''} "
            f">> {shlex.quote(str(log))} 2>&1")


def _tab(tabfile: str | None):
    try:
        from crontab import CronTab
    except ImportError:  # pragma: no cover - a declared dependency
        raise JobJarError("python-crontab is not installed (pip install python-crontab)") from None
    try:
        if tabfile and not os.path.exists(tabfile):
            return CronTab(tab="")
        return CronTab(tabfile=tabfile) if tabfile else CronTab(user=True)
    except (OSError, ValueError) as exc:
        raise JobJarError(f"cannot read the crontab: {exc}") from None


def _tag(name: str, home: Path) -> str:
    return f"{TAG}:{name} {home}"


def install(tabfile: str | None = None, schedules: dict | None = None,
            stale: float | None = None, dry_run: bool = False,
            purge: float | None = None, html: str | None = None) -> str:
    """Install (or update) the cron lines; return the crontab text as written.

    The ``ALWAYS`` lines every time; the ``purge_jobs --older-than PURGE``
    line only with ``purge`` (seconds), the ``system_status --html HTML``
    line only with ``html`` (a file; made absolute, as cron runs elsewhere).
    Each line has its own tag, and only the lines being written are
    replaced: installing again without ``purge`` keeps an earlier purge
    line, as it keeps every other option's line.
    """
    config = load()
    home = config.home
    cron = _tab(tabfile)
    optional = {  # the arguments of each optional line, or None: leave that line alone
        "purge": None if purge is None else
        f"--older-than {int(purge) if purge == int(purge) else purge}",  # not 2.6e+06
        "html": None if html is None else f"--html {shlex.quote(os.path.abspath(html))}",
    }
    for name, (schedule, _command, _extra) in ENTRIES.items():
        if name not in ALWAYS and optional.get(name) is None:
            continue
        schedule = (schedules or {}).get(name) or schedule
        extra = f"--stale {stale:g}" if name == "recover" and stale is not None else ""
        if name in optional:
            extra = optional[name]
        cron.remove_all(comment=_tag(name, home))
        job = cron.new(command=render(name, home, extra, config.worker_home),
                       comment=_tag(name, home))
        try:
            job.setall(schedule)
        except (KeyError, ValueError) as exc:
            raise JobJarError(f"bad schedule {schedule!r} for {name}: {exc}") from None
        if not job.is_valid():
            raise JobJarError(f"bad schedule {schedule!r} for {name}")
    if not dry_run:
        make_dir(config.worker_home)  # the lines log there
        _write(cron, tabfile)
    return cron.render()


def remove(tabfile: str | None = None, dry_run: bool = False) -> str:
    """Remove this jar's cron lines, and nothing else; return the resulting text."""
    home = load().home
    cron = _tab(tabfile)
    for name in ENTRIES:
        cron.remove_all(comment=_tag(name, home))
    if not dry_run:
        _write(cron, tabfile)
    return cron.render()


def _write(cron, tabfile: str | None) -> None:
    try:
        cron.write(tabfile) if tabfile else cron.write()
    except OSError as exc:
        raise JobJarError(f"cannot write the crontab: {exc}") from None
