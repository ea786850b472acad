"""``hire_workers``, and ``install_cron --hosts`` (called from ``operate.cron_main``)."""

from __future__ import annotations

import sys

from ..naming import printable
from .common import Parser, run, seconds


def hire_main(argv: list[str] | None = None) -> int:
    """Entry point of ``hire_workers``."""
    p = Parser("hire_workers", "Start or top up the workers of every host of the hosts file "
               "(or of the HOSTs named),\nover ssh ($JJ_SSH, default: ssh -o BatchMode=yes), "
               "in parallel: check_workers runs\nthere with the host's settings. One line per "
               "host; exit status 1 if any host failed.\nStop them with stop_worker NODE.",
               "hire_workers; hire_workers --hosts lab-hosts.ini rain flower")
    p.add_argument("--hosts", metavar="FILE", help="the hosts file (default: "
                   "~/.jobjar/hosts.ini, beside your configuration file)")
    p.add_argument("--timeout", metavar="DURATION",
                   help="give up on a host after this long (default: 3m)")
    p.add_argument("hosts_named", nargs="*", metavar="HOST", help="only these hosts of the file")
    args = p.parse_args(argv)

    def body() -> int:
        from ..fleet import DEFAULT_TIMEOUT, hire_workers
        from ..hosts import HostsFileError

        timeout = seconds("--timeout", args.timeout)
        try:
            results = hire_workers(args.hosts, args.hosts_named,
                                   DEFAULT_TIMEOUT if timeout is None else timeout)
        except HostsFileError as exc:
            return _usage("hire_workers", exc)
        for result in results:
            if not result.ok:
                print(f"{printable(result.host)}: failed: {printable(result.reason)}")
                continue
            line = f"running {result.running}, started {len(result.started)}"
            if result.stopped:
                line += f", stopping {len(result.stopped)} over {result.max_workers}"
            if result.stop_all:
                line += " (STOP_ALL is present: none started)"
            if result.node and result.node != result.host:
                line += f" (node {printable(result.node)})"
            print(f"{printable(result.host)}: {line}")
        return 1 if any(not r.ok for r in results) else 0

    return run("hire_workers", body)


def cron_on_hosts(args) -> int:
    """``install_cron --hosts FILE``: the same ``install_cron`` on every host of the file."""
    from ..fleet import install_cron_on_hosts
    from ..hosts import HostsFileError

    stale = seconds("--stale", args.stale)
    purge = seconds("--purge", args.purge)
    try:
        results = install_cron_on_hosts(
            args.hosts, remove=args.remove, tabfile=args.file, stale=stale,
            schedules={"worker": args.worker_schedule, "recover": args.recover_schedule,
                       "purge": args.purge_schedule, "html": args.html_schedule},
            dry_run=args.dry_run, purge=purge, html=args.html)
    except HostsFileError as exc:
        return _usage("install_cron", exc)
    done = "would change the crontab" if args.dry_run else (
        "cron lines removed" if args.remove else "cron lines installed")
    for result in results:
        host = printable(result.host)
        if not result.ok:
            print(f"{host}: failed: {printable(result.reason)}")
            continue
        print(f"{host}: {done}")
        for line in result.output.strip().splitlines() if args.dry_run else ():
            print(f"{host}:   {printable(line)}")
    return 1 if any(not r.ok for r in results) else 0


def remote_main(argv: list[str]) -> int:
    """The host's side of ``hire_workers``: ``workers: auto`` counted here, then the command.

    ``fleet.REMOTE_CODE`` calls it there; its status is never ``fleet.NO_JOBJAR``.
    """
    import os

    from ..hosts import auto_workers
    from . import dispatch

    if os.environ.get("JJ_MAX_WORKERS", "").lower() == "auto":
        os.environ["JJ_MAX_WORKERS"] = str(auto_workers())
    status = dispatch(["jobjar", *argv])
    return status if status in (0, 1, 2) else 1


def _usage(prog: str, exc: Exception) -> int:
    """A bad hosts file or an unknown host: one line, exit status 2 (nothing was run)."""
    sys.stderr.write(f"{prog}: error: {printable(exc)}\n")
    return 2
