"""The layout of a jar on disk: every directory and file name in one place.

``docs/protocol.md`` describes the same tree for people; keep them in step.
"""

from __future__ import annotations

import os
import stat

from .states import DIRECTORIES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (2 ms a command)
if TYPE_CHECKING:  # config imports layout (the install location): no import cycle at run time
    from pathlib import Path

    from .config import Config

#: Directories under ``$JJ_HOME``: one per job state kept as a directory
#: (``states.DIRECTORIES``), and the jar's bookkeeping: ``claimed/`` (a link per
#: busy worker), ``cancel/`` (requests), ``results/`` (records), ``output/``,
#: ``nodes/`` (each node's figures: ``machine.py``).
STATE_DIRS = (*DIRECTORIES, "claimed", "cancel", "results", "output", "nodes")

#: Control files: in one worker's directory (``WORKER_CONTROLS``) or, as
#: ``NAME_ALL``, in the workers' home for every worker (``GLOBAL_CONTROLS``).
#: A new one is a name here, its functions in ``control.py`` (which give
#: ``jobjar`` its API and, with an entry in ``cli.COMMANDS``, its command),
#: and what the worker does about it (``WorkerControls.on(NAME)``).
STOP, PAUSE = "STOP", "PAUSE"
WORKER_CONTROLS = (STOP, PAUSE)


def global_control(name: str) -> str:
    """The control file that does for every worker what ``name`` does for one: ``NAME_ALL``."""
    return f"{name}_ALL"


STOP_ALL, PAUSE_ALL = global_control(STOP), global_control(PAUSE)
GLOBAL_CONTROLS = tuple(global_control(name) for name in WORKER_CONTROLS)
CONTROL_FILES = WORKER_CONTROLS + GLOBAL_CONTROLS

#: Batch manifests: ``batches/ID`` lists the jobs of one ``--array`` or
#: ``--from-file`` submission, one name a line (``submit.new_batch``).
BATCHES = "batches"

#: The directory of a jar that holds its projects: ``projects/NAME`` is a jar of its own
#: (``JJ_PROJECT``, ``--project``), with its workers in ``projects/NAME/workers``.
PROJECTS = "projects"

#: Copies of fjd-style INI job files (``submit_job --ini``): ``ini/NAME.ini``, kept as
#: long as job NAME's file; its job runs ``EXECUTABLE "$JJ_HOME/ini/$JJ_JOB_NAME.ini"``.
INI_COPIES = "ini"

#: Category holds (``hold_category``): ``$JJ_WORKER_HOME/held/CATEGORY``, one file per
#: held category, empty (held) or holding one daily window ``HH:MM-HH:MM`` (claimed only
#: inside it).  Beside ``STOP_ALL`` because whoever may stop the workers may hold a queue.
HOLDS = "held"

#: Files and directories inside one worker directory.
WORKER_INFO = "info.yaml"
WORKER_HEARTBEAT = "heartbeat"
WORKER_LOG = "log"
WORKER_JOB = "job"
WORKER_SCRATCH = "scratch"
WORKER_EXITED = "exited"
#: Where earlier versions kept the last job's empty scratch directory (removed at start).
SPARE_SCRATCH = ".scratch-spare"
#: Files a worker writes next to its job (the job itself is under ``WORKER_JOB``).
WORKER_FILES = (WORKER_INFO, WORKER_HEARTBEAT, WORKER_LOG, WORKER_EXITED)

#: Python calls of ``jobjar.Executor`` (``calls.py``): ``calls/CALLER/`` per executor,
#: CALLER = NODE.PID.TOKEN, holding ``ID.call``, ``ID.fn`` (a map's function, written
#: once) and ``ID.result`` (written by the job).
CALLS = "calls"
CALL_FILE, FUNCTION_FILE, RESULT_FILE = ".call", ".fn", ".result"


def tidy(path: str | os.PathLike) -> str:
    """A path as ``pathlib`` would print it: no empty or ``.`` parts, no trailing slash.

    ``..`` is kept (behind a link it is not the parent): only the spelling
    changes, never which file is meant.
    """
    text = os.fspath(path)
    parts = [part for part in text.split("/") if part not in ("", ".")]
    return ("/" if text.startswith("/") else "") + "/".join(parts) or "."


class Jar:
    """Paths of one jar: ``home`` holds the jobs, ``worker_home`` the workers.

    ``root`` and ``worker_root`` are the same two directories as strings,
    and every ``pathlib.Path`` here (``home``, ``worker_home``, ``limbo``,
    ...) is made on first use: the plain ``submit_job CMD`` needs strings
    only (``state_path``), and importing ``pathlib`` (with ``re``, ``enum``,
    ``urllib.parse`` and ``ipaddress`` behind it) was a fifth of that
    command's time beyond the interpreter's own start.
    """

    def __init__(self, home: str | os.PathLike, worker_home: str | os.PathLike | None = None
                 ) -> None:
        self.root = tidy(home)
        self.worker_root = tidy(worker_home) if worker_home else self.root + "/workers"

    def __getattr__(self, name: str) -> Path:
        """``jar.home``, ``jar.limbo``, ``jar.unclaimed``, ...: made on first use, then kept."""
        if name == "home" or name == "worker_home" or name in STATE_DIRS:
            from pathlib import Path

            root = self.__dict__.get("worker_root" if name == "worker_home" else "root")
            if root is None:  # (being unpickled: nothing set yet)
                raise AttributeError(name)
            path = Path(root) if name in ("home", "worker_home") else Path(root, name)
            setattr(self, name, path)
            return path
        raise AttributeError(name)

    home: Path
    worker_home: Path

    def state_path(self, state: str, category: str | None = None, name: str | None = None
                   ) -> str:
        """``STATE[/CATEGORY][/NAME]`` under ``root``, as a string (no ``pathlib``)."""
        path = f"{self.root}/{state}"
        if category:
            path += "/" + category
        return path + "/" + name if name else path

    limbo: Path
    unclaimed: Path
    claimed: Path
    completed: Path
    waiting: Path
    cancel: Path
    results: Path
    output: Path
    rejected: Path
    nodes: Path

    @classmethod
    def from_config(cls, config: Config | None = None) -> Jar:
        """The jar named by the current configuration."""
        if config is None:
            from .config import load

            config = load()
        return cls(config.root, config.worker_root)

    def ensure(self) -> None:
        """Create the jar's directories if they are missing (idempotent).

        The jar itself is made with the creator's umask (copying the mode of
        its parent would make a jar in ``/tmp`` writable by everyone); the
        directories inside it take the jar's own permission bits, so a team
        jar set up group-writable stays so whoever fills it in.
        """
        from .files import make_dir

        if self.home.parent.name == PROJECTS and os.path.isdir(self.home.parent.parent):
            make_dir(self.home)  # a project: projects/ and NAME take the jar's bits
        os.makedirs(self.home, exist_ok=True)
        for name in STATE_DIRS:
            make_dir(getattr(self, name))
        if self.worker_home.parent == self.home:
            make_dir(self.worker_home)
        else:  # elsewhere (JJ_WORKER_HOME): like the jar itself, with the umask
            os.makedirs(self.worker_home, exist_ok=True)

    def queue_dir(self, category: str | None) -> Path:
        """The unclaimed jar of a category (``None``: uncategorized)."""
        return self.unclaimed / category if category else self.unclaimed

    def waiting_dir(self, category: str | None) -> Path:
        """Where a job of this category waits for its dependencies."""
        return self.waiting / category if category else self.waiting

    def state_dir(self, state: str, category: str | None = None) -> Path:
        """The directory of a job state (``unclaimed``, ``waiting``, ...), per category."""
        base = self.home / state
        return base / category if category else base

    def cancel_request(self, name: str) -> Path:
        """The file whose presence asks for job ``name`` to be cancelled."""
        return self.cancel / name

    def batch_file(self, batch: str) -> Path:
        """The manifest of batch ``batch``: the names of its jobs (made on first use)."""
        return self.home / BATCHES / batch

    def ini_copy(self, name: str) -> Path:
        """The copy of job ``name``'s INI job file (``submit_job --ini``)."""
        return self.home / INI_COPIES / f"{name}.ini"

    def record(self, name: str) -> Path:
        """The result record of a job."""
        return self.results / f"{name}.yaml"

    def default_output(self, name: str) -> tuple[Path, Path]:
        """Default standard output and error files of a job."""
        return self.output / f"{name}.out", self.output / f"{name}.err"

    def hidden_output(self, worker: str, token: str, stream: str) -> Path:
        """A new hidden file for one job's output: ``output/.W.TOKEN.out`` (or ``.err``).

        A new, unpredictable name per job (``files.token``), created with
        ``O_EXCL``: nothing an earlier job left running can write into it.
        The worker renames it to ``NAME.out``/``.err`` when the job printed
        something, and removes it otherwise.
        """
        return self.output / f".{worker}.{token}.{stream}"

    def hidden_stream(self, worker: str, name: str) -> str | None:
        """``out`` or ``err`` if ``name`` is a hidden output file of ``worker``, else ``None``.

        A name read from a file (a worker's log) is used only if it has this
        exact form: ``.W.TOKEN.out`` with an alphanumeric token, so it can
        only ever name a file directly in ``output/``.
        """
        prefix = f".{worker}."
        if not name.startswith(prefix):
            return None
        token, _, stream = name[len(prefix):].partition(".")
        return stream if token.isascii() and token.isalnum() and stream in ("out", "err") \
            else None

    def hidden_outputs(self, worker: str) -> list[Path]:
        """The hidden output files a worker left (a dead worker's lost attempt).

        Includes ``output/.spare.W.out``/``.err`` of workers of an older version.
        """
        from pathlib import Path

        mine, old = f".{worker}.", f".spare.{worker}."
        found = []
        try:
            with os.scandir(self.output) as entries:
                for entry in entries:
                    if entry.name.startswith(old):
                        rest = entry.name[len(old):]
                    elif entry.name.startswith(mine):  # TOKEN.out: one more dot, no more
                        rest = entry.name[len(mine):].partition(".")[2]
                        if not entry.name[len(mine):].partition(".")[0].isalnum():
                            continue
                    else:
                        continue
                    if rest in ("out", "err"):
                        found.append(Path(entry.path))
        except OSError:
            pass
        return found

    def check_lock(self, node: str) -> Path:
        """The file ``check_workers`` locks while it counts and starts a node's workers."""
        return self.worker_home / f".check.{node}.lock"

    def node_file(self, node: str) -> Path:
        """``nodes/NODE.yaml``: what node ``node`` last published of itself (``machine.py``)."""
        return self.nodes / f"{node}.yaml"

    def holds(self) -> Path:
        """The directory of category holds: ``$JJ_WORKER_HOME/held/`` (not a worker: no dot)."""
        return self.worker_home / HOLDS

    def hold_file(self, category: str) -> Path:
        """The file whose presence holds ``category``: ``held/CATEGORY``."""
        return self.worker_home / HOLDS / category

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
        # NODE.PID: anything else there (notes.old/) is not a worker, nor is a link
        with entries:  # (workers/NODE.PID -> /home/alice must not be entered)
            return sorted(e.name for e in entries
                          if not e.name.startswith(".") and e.name.rpartition(".")[2].isdigit()
                          and e.is_dir(follow_symlinks=False))

    def categories(self) -> list[str]:
        """Category directories that exist in the unclaimed jar."""
        return subdirs(self.unclaimed)

    def held_path(self, worker: str, category: str | None, name: str) -> Path:
        """Where worker ``worker`` holds a claimed job: ``job/[CATEGORY/]NAME``."""
        return held_path(self.worker_dir(worker), category, name)

    @property
    def calls(self) -> Path:
        """``calls/``: the pickled calls and results of ``jobjar.Executor``."""
        return self.home / CALLS

    def caller_dir(self, caller: str) -> Path:
        """``calls/CALLER/``: one executor's call, function and result files."""
        return self.home / CALLS / caller


def project_home(base: Path, name: str) -> Path:
    """``base/projects/NAME``, the jar of project ``name`` inside the jar ``base``.

    Whoever may write ``base`` may put a link at ``projects`` or at
    ``projects/NAME``: it is refused, never followed, or a project's jobs
    would go to (and its workers take jobs from) a jar of their choosing.
    """
    from pathlib import Path

    from .errors import ConfigError

    home = Path(base) / PROJECTS / name
    for path in (home.parent, home):
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            break  # made on first use
        except OSError as exc:
            raise ConfigError(f"project {name}: cannot use {path}: {exc.strerror}") from None
        if not stat.S_ISDIR(mode):
            raise ConfigError(f"project {name}: {path} is not a directory (a link or a file "
                              "someone put there is never followed): remove it")
    return home


def projects(base: Path) -> list[str]:
    """The projects of the jar ``base``: the real directories of ``projects/``."""
    where = os.path.join(base, PROJECTS)
    if not os.path.isdir(where) or os.path.islink(where):
        return []
    return subdirs(where)


def subdirs(path: Path | str) -> list[str]:
    """Names of the real subdirectories of ``path`` (no dot-names, no links), sorted."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries
                          if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def jobs_in(directory: Path | str) -> list[tuple[str | None, Path]]:
    """Every job in a state directory and its category subdirectories: ``(category, path)``.

    The one walker of the package (``waiting/``, ``unclaimed/``, a worker's
    ``job/``): jobs at the top are uncategorized, real subdirectories are
    categories, dot-names are never jobs.  A directory that cannot be listed
    (gone, or made unreadable by someone) contributes nothing.
    """
    from pathlib import Path

    found: list[tuple[str | None, Path]] = []
    try:
        with os.scandir(directory) as entries:
            top = list(entries)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return found
    for entry in top:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            try:
                with os.scandir(entry.path) as inner:
                    found.extend((entry.name, Path(e.path)) for e in inner
                                 if not e.name.startswith("."))
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue
        else:
            found.append((None, Path(entry.path)))
    return found


def held_path(worker_dir: Path, category: str | None, name: str) -> Path:
    """``worker_dir/job/[CATEGORY/]NAME``: where a claimed job sits in its worker."""
    base = worker_dir / WORKER_JOB
    return base / category / name if category else base / name


def held_category(worker_dir: Path, path: Path | str) -> str | None:
    """The category of a job held at ``path`` (``job/C/N``: C; ``job/N``: ``None``).

    Read from the path below the worker's ``job/``, never from the parent's
    name alone: a category may itself be called ``job``.
    """
    base = os.path.normpath(worker_dir / WORKER_JOB)
    parts = os.path.relpath(os.path.normpath(path), base).split(os.sep)
    return parts[0] if len(parts) == 2 else None


def checkout() -> Path | None:
    """The top of the source checkout this package runs from, or ``None`` when installed.

    A checkout has ``bin/jobjar`` beside the package; commands, the global
    ``config.ini`` and the ``PYTHONPATH`` given to workers and jobs are
    found from here.
    """
    top = checkout_dir()
    if top is None:
        return None
    from pathlib import Path

    return Path(top)


def checkout_dir() -> str | None:
    """``checkout()`` as a string (what ``config.load`` needs, without ``pathlib``)."""
    top = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    return top if os.path.exists(os.path.join(top, "bin", "jobjar")) else None


def held_job(worker_dir: Path) -> tuple[str | None, Path] | None:
    """The job a worker holds: ``(category, path)``, or ``None``.

    The claimed file sits in ``job/`` exactly where it sat under
    ``unclaimed/``: ``job/NAME`` for an uncategorized job, ``job/CAT/NAME``
    for one of category CAT.  That is what lets recovery put it back.
    """
    base = worker_dir / WORKER_JOB
    try:  # someone else's link at job/ must not make us hold (and move) their files
        if not stat.S_ISDIR(os.lstat(base).st_mode):
            return None
    except OSError:
        return None
    held = jobs_in(base)
    return held[0] if held else None


def relative_target(target: Path, link_dir: Path) -> str:
    """The relative path from ``link_dir`` to ``target``, for a symbolic link there.

    Relative, because nodes may mount the shared jar at different paths.
    """
    return os.path.relpath(target, link_dir)
