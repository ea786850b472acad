"""``start_worker``, and ``stop_worker``, ``pause_worker``, ``unpause_worker`` (one entry)."""

from __future__ import annotations

import os
import sys

from ..naming import printable
from .common import Parser, run


def start_main(argv: list[str] | None = None) -> int:
    """Entry point of ``start_worker``."""
    p = Parser("start_worker", "Start a worker that claims jobs of this node's category, the "
               "given categories\n(else JJ_CATEGORIES), then uncategorized jobs. Prints the "
               "worker's directory name.", "start_worker LINUX AMD_OPTERON")
    p.add_argument("--foreground", action="store_true",
                   help="run in this process (for systemd, a terminal or a pilot job)")
    p.add_argument("--exit-when-empty", action="store_true",
                   help="a pilot: end once nothing it may claim is left and no waiting job of "
                   "its categories can start")
    p.add_argument("--max-jobs", metavar="N", help="a pilot: end after N jobs")
    p.add_argument("--max-time", metavar="DURATION",
                   help="a pilot: claim no job that would run past this time (90s, 15m, 12h, "
                   "1d12h); a job without --timeout only while time is left")
    p.add_argument("categories", nargs="*", help="categories to claim, in order")
    args = p.parse_args(argv)

    def body() -> int:
        from ..launch import start_worker

        def ready(name: str) -> None:  # in the foreground: the name once it runs
            sys.stdout.write(f"{printable(name)}\n")
            sys.stdout.flush()

        name = start_worker(args.categories, foreground=args.foreground, ready=ready,
                            exit_when_empty=args.exit_when_empty, max_jobs=args.max_jobs,
                            max_time=args.max_time)
        if not args.foreground:
            print(printable(name))
        return 0

    return run("start_worker", body)


def control_main(argv: list[str] | None = None, command: str | None = None) -> int:
    """Entry point of every ``ACTION_worker TARGETS``: ``control.ACTION_workers``.

    One entry for ``stop_worker``, ``pause_worker``, ``unpause_worker`` (and
    any later ``ACTION_worker`` of ``cli.COMMANDS``): the action is the
    command's name, given by ``cli.dispatch`` or, as an installed console
    script, the name it was run by.  Its output is one line per worker.
    """
    prog = command or os.path.basename(sys.argv[0])
    action = prog[:-len("_worker")] if prog.endswith("_worker") else ""
    from .. import control

    if f"{action}_workers" not in control.__all__:
        sys.stderr.write(f"{prog}: not a control command (ACTION_worker, for "
                         "each ACTION_workers of control.__all__)\n")
        return 2
    verb = action.capitalize()  # no table to keep in step: the action names it all
    p = Parser(prog, f"{verb} workers between jobs. Targets: 'all' (every existing worker), "
               "node names,\nand worker directory names (node.pid), mixed freely.",
               f"{prog} rain flower.13764 meadow")
    p.add_argument("targets", nargs="+", help="all | NODE | NODE.PID")
    args = p.parse_args(argv)

    def body() -> int:
        try:
            workers = getattr(control, f"{action}_workers")(*args.targets)
        except control.NoSuchTarget as exc:
            for worker in exc.handled:
                print(f"{action}: {printable(worker)}")
            raise
        for worker in workers:
            print(f"{action}: {printable(worker)}")
        return 0

    return run(prog, body)


control_main.by_name = True  # cli.dispatch passes the command's name
