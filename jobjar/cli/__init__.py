"""Command-line front ends: argument parsing and printing only.

``COMMANDS`` maps each command to its entry point: it is THE list of
commands.  ``bin/jobjar`` (and the links to it named after each command)
dispatches through it, and ``pyproject.toml`` installs the same entry points
as console scripts; ``tests/test_commands.py`` checks that ``pyproject.toml``,
the links in ``bin/`` and the README's list agree with it, and runs every
command's ``--help``.  A new command: an entry here, then what that test asks.
"""

from __future__ import annotations

import importlib
import os
import sys

COMMANDS = {
    "start_worker": "workers:start_main",
    "stop_worker": "workers:stop_main",
    "pause_worker": "workers:pause_main",
    "unpause_worker": "workers:unpause_main",
    "check_workers": "operate:check_main",
    "recover_jobs": "operate:recover_main",
    "install_cron": "operate:cron_main",
    "system_status": "status:status_main",
    "submit_job": "submit:submit_main",
    "unique_job_name": "submit:unique_main",
    "job_info": "jobs:info_main",
    "cancel_job": "jobs:cancel_main",
    "resubmit_job": "jobs:resubmit_main",
    "wait_jobs": "jobs:wait_main",
}


def dispatch(argv: list[str] | None = None) -> int:
    """Run the command named by ``argv[0]`` (or by ``argv[1]`` after ``jobjar``)."""
    argv = list(sys.argv if argv is None else argv)
    name = os.path.basename(argv[0])
    if name not in COMMANDS and len(argv) > 1 and argv[1] in COMMANDS:
        name, argv = argv[1], argv[1:]
    if name not in COMMANDS:
        usage = ("usage: jobjar COMMAND [ARGS...]  (each command also runs by its own name)\n"
                 "commands: " + ", ".join(sorted(COMMANDS)) + "\n"
                 "example: jobjar submit_job -p 10 -c LINUX big_computation in.dat\n")
        asked = len(argv) > 1 and argv[1] in ("-h", "--help")
        (sys.stdout if asked else sys.stderr).write(usage)
        return 0 if asked else 2
    module, _, function = COMMANDS[name].partition(":")
    entry = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return entry(argv[1:])
