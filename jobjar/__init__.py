"""Job Jar: a daemonless batch queue for Unix.

Workers on any number of nodes share one directory tree and claim
executable job files from it by atomic rename.  This package is the whole
system; the commands in ``bin/`` only parse arguments and call it.

The public functions are imported lazily, so that ``import jobjar`` (and the
``submit_job`` command) stay fast::

    import jobjar
    jobjar.submit_job('/usr/local/bin/big_computation /data/infile.tmp 104.1 30')
    jobjar.submit_job_file('/opt/local/bin/standalone_job', -3, id='test_run')

Where each concept lives (one module per concept; nothing imports upwards):

==========================================  =====================================
concept                                     module
==========================================  =====================================
records (every field, every constructor)    ``records.py``
job states and statuses                     ``states.py``
names and paths of the jar, the walker      ``layout.py``
link-safe file steps: write, remove, mkdir  ``files.py``
who may submit where (the owner rule)       ``access.py``
job names, priorities, printable text       ``naming.py``
recovery: recover_worker, recover_jobs      ``recovery.py``
workers: start_worker, check_workers        ``launch.py``
the worker loop                             ``worker.py``
pilot workers (ending by themselves)        ``pilot.py``
running one job                             ``execute.py``
claiming a job                              ``claim.py``
dependencies                                ``depend.py``
submission                                  ``submit.py``
fjd's INI job files (``submit_job --ini``)  ``inijob.py``
``#JJ`` directives                          ``directives.py``
finding, cancelling, waiting for jobs       ``jobs.py``, ``find.py``
live output: where, and following it        ``live.py``
run_now: one command now, idle node         ``immediate.py``
Python calls: ``Executor``, ``map``         ``executor.py``
their files; the job's command              ``calls.py``, ``runner.py``
what comes back: values, JobFailed          ``outcomes.py``
``system_status``                           ``status.py``
``list_jobs`` (the jobs in the jar)        ``listing.py``
``job_history`` (the jobs that left it)    ``history.py``
``purge_jobs`` (removing old history)      ``purge.py``
control files (STOP, PAUSE, ...)            ``control.py``
holding a category, daily windows           ``hold.py``
is a worker alive                           ``liveness.py``
configuration                               ``config.py``
cron lines                                  ``cron.py``
the hosts file                              ``hosts.py``
hiring workers over ssh, cron on every host ``fleet.py``
the commands (parsing and printing only)    ``cli/`` (list: ``cli.COMMANDS``)
==========================================  =====================================
"""

from __future__ import annotations

__version__ = "1.0.0"

#: module -> the public names it defines.  ``None``: the module's own ``__all__``,
#: read when first needed, so that a function added to it (and to its ``__all__``)
#: is ``jobjar.NAME`` with no edit here.  Nothing is imported before it is used.
_PUBLIC: dict[str, tuple[str, ...] | None] = {
    "submit": ("submit_job", "submit_job_file", "submit_ini_file", "submit_from_file",
               "unique_job_name", "PartialSubmitError"),
    "config": ("set_home", "get_home", "set_worker_home", "get_worker_home", "set_pause_time",
               "get_pause_time", "set_categories", "get_categories", "set_project", "get_project"),
    "control": None,
    "hold": None,
    "launch": ("start_worker", "check_workers"),
    "fleet": ("hire_workers", "install_cron_on_hosts"),
    "recovery": ("recover_jobs",),
    "status": ("system_status",),
    "jobs": ("job_info", "cancel_job", "resubmit_job", "wait", "exit_status"),
    "live": None,
    "immediate": None,
    "errors": ("JobJarError",),
    "executor": ("Executor", "map", "JobFailed"),
    "listing": ("list_jobs",),
    "history": ("job_history",),
    "purge": ("purge_jobs",),
}

#: public name -> module that defines it (the ``None`` entries above added by ``_api``)
_API = {name: module for module, names in _PUBLIC.items() for name in names or ()}


def _api() -> dict[str, str]:
    """Every public name -> its module, reading the ``__all__`` of the ``None`` modules."""
    for module, names in _PUBLIC.items():
        if names is None:
            names = _PUBLIC[module] = tuple(_module(module).__all__)
            _API.update(dict.fromkeys(names, module))
    return _API


def _module(name: str):
    """The submodule ``jobjar.NAME``, imported if need be.

    ``__import__`` rather than ``importlib.import_module``: a command pays
    for no ``importlib`` package (this runs for every ``from .. import X``).
    """
    return __import__(f"{__name__}.{name}", fromlist=("__name__",))


def __getattr__(name: str):
    if name == "__all__":  # ``from jobjar import *``: every public name
        value = globals()["__all__"] = sorted(_api())
        return value
    module = _API.get(name)
    if module is None:
        try:  # a submodule, e.g. jobjar.config
            return _module(name)
        except ModuleNotFoundError:
            module = _api().get(name)
            if module is None:
                raise AttributeError(f"module 'jobjar' has no attribute {name!r}") from None
    value = getattr(_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_api()))
