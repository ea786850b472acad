"""Command-line front ends: argument parsing and printing only.

``COMMANDS`` maps each command to its entry point: it is THE list of
commands.  ``bin/jobjar`` (and the links to it named after each command)
dispatches through it, and ``setup.py`` reads it to install a script per
entry point (its own few lines, not pip's console-script wrapper, which
imports ``re``); ``tests/test_commands.py`` checks that those, the
links in ``bin/`` and the README's list agree with it, and runs every
command's ``--help``.  A new command: an entry here, then what that test asks
(a link in ``bin/``, a name in the README).

An entry point takes the command's arguments (``argv``, default
``sys.argv[1:]``).  One marked ``by_name`` serves several commands and is
also given the command's name (``command=``): ``workers:control_main`` is
every ``ACTION_worker`` of ``control.ACTION_workers``, so a new control
command is just its entry here.
"""

from __future__ import annotations

import os
import sys

COMMANDS = {
    "start_worker": "workers:start_main",
    "stop_worker": "workers:control_main",
    "pause_worker": "workers:control_main",
    "unpause_worker": "workers:control_main",
    "check_workers": "operate:check_main",
    "recover_jobs": "operate:recover_main",
    "install_cron": "operate:cron_main",
    "hire_workers": "fleet:hire_main",
    "system_status": "status:status_main",
    "submit_job": "submit:submit_main",
    "unique_job_name": "submit:unique_main",
    "job_info": "jobs:info_main",
    "cancel_job": "jobs:cancel_main",
    "resubmit_job": "jobs:resubmit_main",
    "wait_jobs": "jobs:wait_main",
    "run_now": "run_now:main",
    "jr": "run_now:main",
    "hold_category": "hold:hold_main",
    "release_category": "hold:release_main",
    "list_jobs": "listing:list_main",
    "job_history": "listing:history_main",
    "purge_jobs": "listing:purge_main",
}


def dispatch(argv: list[str] | None = None) -> int:
    """Run the command named by ``argv[0]`` (or by ``argv[1]`` after ``jobjar``)."""
    argv = list(sys.argv if argv is None else argv)
    name = os.path.basename(argv[0])
    if name not in COMMANDS and len(argv) > 1 and argv[1] in COMMANDS:
        name, argv = argv[1], argv[1:]
    elif name not in COMMANDS and "_ARGCOMPLETE" in os.environ:  # completing "jobjar ..."
        from .complete import dispatcher

        name, argv = dispatcher(COMMANDS), argv[:1]
    if name not in COMMANDS and argv[1:2] == ["--version"]:
        from .. import __version__

        sys.stdout.write(f"jobjar (Job Jar) {__version__}\n")
        return 0
    if name not in COMMANDS:
        usage = ("usage: jobjar COMMAND [ARGS...]  (each command also runs by its own name)\n"
                 "commands: " + ", ".join(sorted(COMMANDS)) + "\n"
                 "example: jobjar submit_job -p 10 -c LINUX big_computation in.dat\n")
        asked = len(argv) > 1 and argv[1] in ("-h", "--help")
        (sys.stdout if asked else sys.stderr).write(usage)
        return 0 if asked else 2
    import importlib

    module, _, function = COMMANDS[name].partition(":")
    entry = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    if getattr(entry, "by_name", False):  # one entry point for several commands
        return entry(argv[1:], command=name)
    return entry(argv[1:])
