"""The layout of a jar on disk: every directory and file name in one place.

``docs/protocol.md`` describes the same tree for people; keep them in step.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import Config, load

#: Job state directories under ``$JJ_HOME``.
STATE_DIRS = ("limbo", "unclaimed", "claimed", "completed", "waiting", "cancel", "results",
              "output", "rejected")

#: Control files.
STOP, PAUSE, STOP_ALL, PAUSE_ALL = "STOP", "PAUSE", "STOP_ALL", "PAUSE_ALL"

#: Files and directories inside one worker directory.
WORKER_INFO = "info.yaml"
WORKER_HEARTBEAT = "heartbeat"
WORKER_LOG = "log"
WORKER_JOB = "job"
WORKER_SCRATCH = "scratch"
WORKER_EXITED = "exited"


class Jar:
    """Paths of one jar: ``home`` holds the jobs, ``worker_home`` the workers."""

    def __init__(self, home: Path, worker_home: Path | None = None) -> None:
        self.home = Path(home)
        self.worker_home = Path(worker_home) if worker_home else self.home / "workers"

    def __getattr__(self, name: str) -> Path:
        """``jar.limbo``, ``jar.unclaimed``, ...: made on first use, then kept.

        Lazily, because a submission touches two of the nine, and building
        all of them was a quarter of ``jobjar.submit_job``'s time.
        """
        if name in STATE_DIRS:
            path = self.home / name
            setattr(self, name, path)
            return path
        raise AttributeError(name)

    limbo: Path
    unclaimed: Path
    claimed: Path
    completed: Path
    waiting: Path
    cancel: Path
    results: Path
    output: Path
    rejected: Path

    @classmethod
    def from_config(cls, config: Config | None = None) -> Jar:
        """The jar named by the current configuration."""
        config = config or load()
        return cls(config.home, config.worker_home)

    def ensure(self) -> None:
        """Create the jar's directories if they are missing (idempotent)."""
        for name in STATE_DIRS:
            os.makedirs(getattr(self, name), exist_ok=True)
        os.makedirs(self.worker_home, exist_ok=True)

    def queue_dir(self, category: str | None) -> Path:
        """The unclaimed jar of a category (``None``: uncategorized)."""
        return self.unclaimed / category if category else self.unclaimed

    def waiting_dir(self, category: str | None) -> Path:
        """Where a job of this category waits for its dependencies."""
        return self.waiting / category if category else self.waiting

    def record(self, name: str) -> Path:
        """The result record of a job."""
        return self.results / f"{name}.yaml"

    def default_output(self, name: str) -> tuple[Path, Path]:
        """Default standard output and error files of a job."""
        return self.output / f"{name}.out", self.output / f"{name}.err"

    def spare_outputs(self, worker: str) -> tuple[Path, Path]:
        """A worker's reusable, hidden output files (``output/.spare.W.out``, ``.err``).

        A job writes into them; only output that is not empty is renamed to
        the job's own name, so a silent job creates no files for its output.
        """
        return (self.output / f".spare.{worker}.out", self.output / f".spare.{worker}.err")

    def worker_dir(self, worker: str) -> Path:
        """The directory of worker ``node.pid``."""
        return self.worker_home / worker

    def claimed_link(self, worker: str) -> Path:
        """The link in ``claimed/`` that shows which job a worker holds."""
        return self.claimed / worker

    def workers(self) -> list[str]:
        """Names of all worker directories (any node, alive or not)."""
        try:
            entries = os.scandir(self.worker_home)
        except FileNotFoundError:
            return []
        with entries:  # NODE.PID: anything else there (notes.old/) is not a worker
            return sorted(e.name for e in entries
                          if not e.name.startswith(".") and e.name.rpartition(".")[2].isdigit()
                          and e.is_dir())

    def categories(self) -> list[str]:
        """Category directories that exist in the unclaimed jar."""
        return _subdirs(self.unclaimed)


def _subdirs(path: Path) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries
                          if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []


def held_job(worker_dir: Path) -> tuple[str | None, Path] | None:
    """The job a worker holds: ``(category, path)``, or ``None``.

    The claimed file sits in ``job/`` exactly where it sat under
    ``unclaimed/``: ``job/NAME`` for an uncategorized job, ``job/CAT/NAME``
    for one of category CAT.  That is what lets recovery put it back.
    """
    base = worker_dir / WORKER_JOB
    try:
        entries = list(os.scandir(base))
    except (FileNotFoundError, NotADirectoryError):
        return None
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            try:
                inner = [e for e in os.scandir(entry.path)]
            except FileNotFoundError:
                continue
            for job in inner:
                return entry.name, Path(job.path)
        else:
            return None, Path(entry.path)
    return None


def relative_target(target: Path, link_dir: Path) -> str:
    """The relative path from ``link_dir`` to ``target``, for a symbolic link there.

    Relative, because nodes may mount the shared jar at different paths.
    """
    return os.path.relpath(target, link_dir)
