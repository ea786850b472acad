"""``check_workers``, ``recover_jobs`` and ``install_cron``."""

from __future__ import annotations

from ..naming import printable
from .common import Parser, run, seconds


def check_main(argv: list[str] | None = None) -> int:
    """Entry point of ``check_workers``."""
    p = Parser("check_workers", "Start workers until this node runs JJ_MAX_WORKERS of them "
               "(cron runs this).", "check_workers --prune 604800")
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON object (hire_workers reads it)")
    p.add_argument("--prune", metavar="SECONDS",
                   help="also remove directories of dead workers idle for this long")
    p.add_argument("--dry-run", action="store_true", help="report, start nothing")
    p.add_argument("--exit-when-empty", action="store_true",
                   help="start pilots that end when no work is left (start_worker's option)")
    p.add_argument("--max-jobs", metavar="N", help="start pilots that end after N jobs")
    p.add_argument("--max-time", metavar="DURATION", help="start pilots that claim no job "
                   "that would run past this time")
    args = p.parse_args(argv)

    def body() -> int:
        from ..launch import check_workers

        prune = seconds("--prune", args.prune)
        report = check_workers(prune, start=not args.dry_run,
                               exit_when_empty=args.exit_when_empty, max_jobs=args.max_jobs,
                               max_time=args.max_time)
        if args.json:  # the names as the jar has them; a reader escapes them to show them
            import json

            print(json.dumps(report, ensure_ascii=True))
            return 0
        for worker in report["pruned"]:
            print(f"pruned {printable(worker)}")
        alive = len(report["alive"])
        print(f"{printable(report['node'])}: {alive} of {report['max_workers']} workers alive")
        if report["stop_all"]:
            print("STOP_ALL is present: starting no workers (remove it to resume)")
        for worker in report["started"]:
            print(f"started {printable(worker)}")
        for worker in report.get("stopped", []):
            print(f"stopped {printable(worker)} (over JJ_MAX_WORKERS)")
        return 0

    return run("check_workers", body)


def recover_main(argv: list[str] | None = None) -> int:
    """Entry point of ``recover_jobs``."""
    p = Parser("recover_jobs", "Put back jobs stranded by dead workers on this node, and repair "
               "half-finished moves.\nWith --stale, also recover the jobs of workers on any node "
               "whose heartbeat is that old\n(at-least-once: a cut-off but living worker may "
               "still be running its job).", "recover_jobs --stale 600")
    p.add_argument("--stale", metavar="SECONDS", help="heartbeat age that counts as dead")
    args = p.parse_args(argv)

    def body() -> int:
        from ..recovery import recover_jobs

        stale = seconds("--stale", args.stale)
        for repair in recover_jobs(stale):
            what = printable(repair.get("job") or repair.get("path"))
            where = f" (worker {printable(repair['worker'])})" if repair.get("worker") else ""
            print(f"{what}{where}: {printable(repair['action'])}")
        return 0

    return run("recover_jobs", body)


def cron_main(argv: list[str] | None = None) -> int:
    """Entry point of ``install_cron``."""
    p = Parser("install_cron", "Install this jar's cron lines (check_workers, recover_jobs) into "
               "your crontab,\nor remove them. Run it on every node.",
               "install_cron --dry-run; install_cron; install_cron --remove")
    p.add_argument("--remove", action="store_true", help="remove this jar's lines")
    p.add_argument("--dry-run", action="store_true", help="print the crontab, write nothing")
    p.add_argument("--file", metavar="PATH", help="a crontab file instead of your crontab")
    p.add_argument("--worker-schedule", metavar="CRON", help="default: */5 * * * *")
    p.add_argument("--recover-schedule", metavar="CRON", help="default: */15 * * * *")
    p.add_argument("--stale", metavar="SECONDS", help="pass --stale to recover_jobs")
    p.add_argument("--hosts", metavar="FILE",
                   help="do it on every host of this hosts file, over ssh (see hire_workers)")
    p.add_argument("--purge", metavar="DURATION", help="also a daily purge_jobs --older-than "
                   "DURATION (kept when install_cron runs again without it)")
    p.add_argument("--purge-schedule", metavar="CRON", help="default: 17 3 * * *")
    p.add_argument("--html", metavar="FILE", help="also refresh the status page FILE "
                   "(system_status --html; kept when install_cron runs again without it)")
    p.add_argument("--html-schedule", metavar="CRON", help="default: */5 * * * *")
    args = p.parse_args(argv)

    def body() -> int:
        from .. import cron

        if args.hosts:
            from .fleet import cron_on_hosts

            return cron_on_hosts(args)
        if args.remove:
            text = cron.remove(args.file, dry_run=args.dry_run)
        else:
            stale = seconds("--stale", args.stale)
            purge = seconds("--purge", args.purge)
            if args.purge_schedule and purge is None:
                p.error("--purge-schedule needs --purge DURATION")
            if args.html_schedule and not args.html:
                p.error("--html-schedule needs --html FILE")
            text = cron.install(args.file, {"worker": args.worker_schedule,
                                            "recover": args.recover_schedule,
                                            "purge": args.purge_schedule,
                                            "html": args.html_schedule},
                                stale, dry_run=args.dry_run, purge=purge, html=args.html)
        if args.dry_run:
            print(text.strip())
        return 0

    return run("install_cron", body)
