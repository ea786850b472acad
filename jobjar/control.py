"""Control files: STOP, PAUSE (per worker) and STOP_ALL, PAUSE_ALL (everyone).

Workers look for these files between jobs; commands and the Python API only
create and remove them, so ``touch`` and ``rm`` do exactly the same.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import files
from .errors import JobJarError
from .layout import PAUSE, STOP, WORKER_CONTROLS, Jar, global_control
from .naming import split_worker_name

#: The public API of control files, filled in by ``@_public``: ``jobjar`` exports
#: exactly these (``jobjar._PUBLIC``), and each ``ACTION_workers`` among them is the
#: command ``ACTION_worker`` once that is in ``cli.COMMANDS`` (``workers:control_main``).
__all__: list[str] = []


def _public(function):
    """Declare ``function`` part of the API (``__all__``), where it is defined."""
    __all__.append(function.__name__)
    return function


def _touch(path: Path) -> None:
    """Create a control file, never through a link someone planted at its name.

    ``O_NOFOLLOW`` makes a link there fail (ELOOP) instead of creating the
    link's target; the link itself is then replaced by a real, empty file.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        os.close(os.open(path, flags, 0o666))
        return
    except OSError as exc:
        if not os.path.islink(path):
            raise JobJarError(f"cannot create {path}: {exc.strerror}") from None
    files.unlink(path)
    try:
        os.close(os.open(path, files.CREATE, 0o666))
    except FileExistsError:
        pass  # someone else made it first: the control is there either way
    except OSError as exc:
        raise JobJarError(f"cannot create {path}: {exc.strerror}") from None


def _remove(path: Path) -> None:
    files.unlink(path)


def resolve_targets(jar: Jar, targets: tuple[str, ...] | list[str]) -> tuple[list[str], list[str]]:
    """Expand ``all``, node names and ``node.pid`` names into worker directories.

    Returns ``(workers, unmatched)``: every worker directory named, and the
    targets that matched none.  A name is a worker directory if one exists
    with that name; otherwise it is a node name (node names may contain dots,
    which is why a directory name is split at its last dot).
    """
    existing = jar.workers()
    chosen: list[str] = []
    unmatched: list[str] = []
    for target in targets:
        if target == "all":
            found = existing
        elif target in existing:
            found = [target]
        else:
            found = [w for w in existing if split_worker_name(w)[0] == target]
        if not found:
            unmatched.append(target)
        chosen.extend(w for w in found if w not in chosen)
    return chosen, unmatched


def _apply(step, name: str, targets: tuple[str, ...], jar: Jar | None) -> list[str]:
    """``step`` (``_touch`` or ``_remove``) control file ``name`` of each targeted worker."""
    jar = jar or Jar.from_config()
    if not targets:
        raise JobJarError("name at least one target: all, a node, or a worker (node.pid)")
    workers, unmatched = resolve_targets(jar, targets)
    failed: list[str] = []
    for worker in workers:
        wdir = jar.worker_dir(worker)
        if not files.is_real_dir(wdir):  # replaced by a link since it was listed
            continue
        try:
            step(wdir / name)
        except (JobJarError, OSError) as exc:  # one bad directory must not spare the others
            failed.append(str(exc))
    if failed:
        raise JobJarError("; ".join(failed))
    if unmatched:
        raise NoSuchTarget(unmatched, workers)
    return workers


class NoSuchTarget(JobJarError):
    """Some targets matched no worker; the others were handled."""

    def __init__(self, unmatched: list[str], handled: list[str]) -> None:
        self.unmatched, self.handled = unmatched, handled
        super().__init__("no worker matches: " + ", ".join(unmatched))


@_public
def stop_workers(*targets: str, jar: Jar | None = None) -> list[str]:
    """Write STOP into each targeted worker's directory; return the workers."""
    return _apply(_touch, STOP, targets, jar)


@_public
def pause_workers(*targets: str, jar: Jar | None = None) -> list[str]:
    """Write PAUSE into each targeted worker's directory; return the workers."""
    return _apply(_touch, PAUSE, targets, jar)


@_public
def unpause_workers(*targets: str, jar: Jar | None = None) -> list[str]:
    """Remove PAUSE from each targeted worker's directory; return the workers."""
    return _apply(_remove, PAUSE, targets, jar)


def _global(name: str, present: bool, jar: Jar | None) -> None:
    """Create (``present``) or remove ``NAME_ALL``, worker control ``name`` for everyone."""
    jar = jar or Jar.from_config()
    files.make_dir(jar.worker_home)
    (_touch if present else _remove)(jar.worker_home / global_control(name))


@_public
def stop_all(jar: Jar | None = None) -> None:
    """Create STOP_ALL: every worker, old or new, exits between jobs."""
    _global(STOP, True, jar)


@_public
def pause_all(jar: Jar | None = None) -> None:
    """Create PAUSE_ALL: every worker, old or new, pauses between jobs."""
    _global(PAUSE, True, jar)


@_public
def unpause_all(jar: Jar | None = None) -> None:
    """Remove PAUSE_ALL."""
    _global(PAUSE, False, jar)


@_public
def unstop_all(jar: Jar | None = None) -> None:
    """Remove STOP_ALL, so that new workers run again."""
    _global(STOP, False, jar)


def is_stopped(jar: Jar, worker_dir: Path) -> bool:
    """Should this worker exit?"""
    return WorkerControls(jar, worker_dir).stopped()


def is_paused(jar: Jar, worker_dir: Path) -> bool:
    """Should this worker pause?"""
    return WorkerControls(jar, worker_dir).paused()


class WorkerControls:
    """The control files one worker obeys, with their paths worked out once.

    A busy worker keeps one and asks before every claim; building the paths
    each time cost more than the ``stat`` calls.  A new control needs no
    change here: the worker asks ``on(NAME)``.
    """

    def __init__(self, jar: Jar, worker_dir: Path) -> None:
        self._paths = {name: (os.fspath(worker_dir / name),
                              os.fspath(jar.worker_home / global_control(name)))
                       for name in WORKER_CONTROLS}
        self._fds: tuple[int | None, int | None] = (None, None)

    def use_descriptors(self, worker_fd: int | None, home_fd: int | None) -> None:
        """Look the files up in these open directories (the worker's, ``$JJ_WORKER_HOME``).

        One lookup per file for the file server instead of one per component
        of its path.  The caller keeps the descriptors open, and closes them
        after ``use_descriptors(None, None)``.
        """
        self._fds = (worker_fd, home_fd)

    def on(self, name: str) -> bool:
        """Is worker control ``name`` (one of ``WORKER_CONTROLS``) here, or ``NAME_ALL``?"""
        mine, everyone = self._paths[name]
        return _exists(mine, self._fds[0]) or _exists(everyone, self._fds[1])

    def stopped(self) -> bool:
        """Should the worker exit (``STOP`` or ``STOP_ALL``)?"""
        return self.on(STOP)

    def paused(self) -> bool:
        """Should the worker pause (``PAUSE`` or ``PAUSE_ALL``)?"""
        return self.on(PAUSE)


def _exists(path: str, directory_fd: int | None) -> bool:
    """``os.path.exists(path)``, by its last component in ``directory_fd`` when given.

    An error other than "no such file" on the descriptor (``ESTALE`` on NFS,
    a directory removed and made again) falls back to the path.
    """
    if directory_fd is not None:
        try:
            os.stat(os.path.basename(path), dir_fd=directory_fd)
            return True
        except FileNotFoundError:
            return False
        except OSError:
            pass
    return os.path.exists(path)
