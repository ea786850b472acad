"""``run_now`` (also ``jr``): run one command at once on the least-loaded idle node."""

from __future__ import annotations

import argparse
import signal
import sys

from .common import Parser, run, seconds

#: Exit status when no worker was idle (or took the job) within --max-wait, as timeout(1)'s.
GAVE_UP = 124


def main(argv: list[str] | None = None, command: str = "run_now") -> int:
    """Entry point of ``run_now`` and ``jr``."""
    p = Parser(command, "Run a command at once on the node with the lowest load that has an "
               "idle worker, at the top\npriority, in this directory and with this "
               "environment, showing its output as it is\nwritten. Exit status: the "
               "command's (128+N if killed by signal N), 130 after Ctrl-C\n(which cancels "
               f"the job), {GAVE_UP} if no worker was idle within --max-wait.",
               f"{command} --max-wait 5m make -j4 test")
    p.add_argument("--max-wait", metavar="DURATION",
                   help=f"give up (exit {GAVE_UP}) if no worker is idle within this long")
    p.add_argument("--timeout", metavar="DURATION", help="the job's own --timeout")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")
    args = p.parse_args(argv)
    if not args.command:
        p.error("no command given")

    def body() -> int:
        from ..immediate import NoIdleWorker, run_now
        from ..jobs import exit_status
        from ..naming import printable

        def say(message: str) -> None:
            sys.stderr.write(f"{command}: {printable(message)}\n")
            sys.stderr.flush()

        max_wait = seconds("--max-wait", args.max_wait)
        timeout = seconds("--timeout", args.timeout)
        for signum in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal cancels it too
            signal.signal(signum, signal.default_int_handler)
        try:
            record = run_now(" ".join(args.command), max_wait=max_wait, timeout=timeout,
                             say=say)
        except NoIdleWorker as exc:
            say(f"error: {exc}")
            return GAVE_UP
        return exit_status(record)

    return run(command, body)


main.by_name = True  # type: ignore[attr-defined]  # one entry point, two names
