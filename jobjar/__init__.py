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
running one job                             ``execute.py``
claiming a job                              ``claim.py``
dependencies                                ``depend.py``
submission                                  ``submit.py``
``#JJ`` directives                          ``directives.py``
finding, cancelling, waiting for jobs       ``jobs.py``, ``find.py``
``system_status``                           ``status.py``
control files (STOP, PAUSE, ...)            ``control.py``
is a worker alive                           ``liveness.py``
configuration                               ``config.py``
cron lines                                  ``cron.py``
the commands (parsing and printing only)    ``cli/`` (list: ``cli.COMMANDS``)
==========================================  =====================================
"""

from __future__ import annotations

import importlib

__version__ = "1.0.0"

#: public name -> module that defines it
_API = {
    "submit_job": "submit", "submit_job_file": "submit", "submit_from_file": "submit",
    "unique_job_name": "submit",
    "set_home": "config", "get_home": "config", "set_worker_home": "config",
    "get_worker_home": "config", "set_pause_time": "config", "get_pause_time": "config",
    "set_categories": "config", "get_categories": "config",
    "stop_workers": "control", "pause_workers": "control", "unpause_workers": "control",
    "stop_all": "control", "pause_all": "control", "unpause_all": "control",
    "unstop_all": "control",
    "start_worker": "launch",
    "check_workers": "launch", "recover_jobs": "recovery",
    "system_status": "status", "PartialSubmitError": "submit",
    "job_info": "jobs", "cancel_job": "jobs", "resubmit_job": "jobs", "wait": "jobs",
    "JobJarError": "errors",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        try:  # a submodule, e.g. jobjar.config
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'jobjar' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
