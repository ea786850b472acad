"""``job_info``, ``cancel_job``, ``resubmit_job`` and ``wait_jobs``."""

from __future__ import annotations

import sys

from .common import Parser, add_handles, run, seconds


def info_main(argv: list[str] | None = None) -> int:
    """Entry point of ``job_info``."""
    p = Parser("job_info", "Show where jobs are now (limbo, waiting, unclaimed, running, "
               "completed, rejected)\nand their result records; a running job's live output. "
               "With --follow, print a job's\noutput as it is written (standard error to "
               "standard error) until it leaves the jar:\nexit status 0 if it succeeded, "
               "1 otherwise.", "job_info --json NAME; job_info --follow NAME")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print JSON")
    shown.add_argument("-f", "--follow", action="store_true",
                       help="print the job's output as it is written, until it ends")
    add_handles(p)
    args = p.parse_args(argv)
    if not (args.names or args.batch or args.id):
        p.error("name the jobs (NAME, -i ID or --batch ID)")
    if args.follow and (len(args.names) != 1 or args.batch or args.id):
        p.error("--follow takes one job name")

    def body() -> int:
        from ..find import select

        if args.follow:
            return _follow(select(args.names)[0])
        from ..jobs import job_info

        infos = [job_info(name) for name in select(args.names, batch=args.batch, ident=args.id)]
        if args.json:
            import json

            sys.stdout.write(json.dumps(infos if len(infos) > 1 else infos[0], indent=2) + "\n")
            return 0
        for info in infos:
            print("\n".join(_describe(info)))
        return 0

    return run("job_info", body)


def _follow(name: str) -> int:
    """``job_info --follow``: the job's output as it comes; 0 if it succeeded, else 1."""
    from ..live import follow
    from ..naming import printable
    from ..states import SUCCEEDED

    def problem(message: str) -> None:
        sys.stderr.write(f"job_info: {printable(message)}\n")

    record = follow(name, problem=problem)
    return 0 if record.get("status") == SUCCEEDED else 1


def _describe(info: dict) -> list[str]:
    """``job_info``'s text: where the job is, then its record without the empty fields.

    Names, reasons and every other value come from files anyone may have
    written: control characters are escaped (``naming.printable``).
    """
    from ..naming import printable

    where = info["state"]
    if info["worker"]:
        where += f" on {info['worker']}"
    if info["running_for"] is not None:
        where += f" for {info['running_for']:.0f} s"
    if info["path"] is None:
        where += " (its job file is gone; the record stays)"
    lines = [f"{info['name']}: {where}"]
    if info.get("batch") and not (info["record"] or {}).get("batch"):
        lines.append(f"  batch: {info['batch']}")
    if info["cancel_requested"]:
        lines.append("  cancel requested")
    if info.get("held_back"):
        lines.append(f"  held back: {info['held_back']}")
    live = info.get("live_output")
    if live is not None:  # running: where its output is now (job_info --follow shows it)
        lines += [f"  live {key}: {path or '(not started yet)'}" for key, path in live.items()]
    record = info["record"] or {}
    lines += [f"  {key}: {value}" for key, value in record.items()
              if key != "attempts" and value is not None]
    if record.get("started"):  # it ran: say so when a stream stayed empty (no file kept)
        lines += [f"  {key}: (nothing printed)" for key in ("stdout", "stderr")
                  if key in record and record[key] is None]
    attempts = record.get("attempts")
    for attempt in attempts if isinstance(attempts, list) else []:
        if isinstance(attempt, dict):
            lines.append(_attempt_line(attempt))
    return [printable(line) for line in lines]


def _attempt_line(attempt: dict) -> str:
    """One attempt of a record: how it ended, or, for a lost one, who lost it and why."""
    if attempt.get("status") == "lost":  # records.lost: its worker died running it
        return (f"  attempt lost: its worker {attempt.get('worker')} died "
                f"({attempt.get('reason') or 'no reason given'}), recovered "
                f"{attempt.get('recovered') or 'at an unknown time'}")
    how = f"exit {attempt.get('exit_code')}" if attempt.get("signal") is None \
        else f"signal {attempt.get('signal')}"
    return (f"  attempt {attempt.get('attempt')}: {attempt.get('status')}, {how}, "
            f"on {attempt.get('worker')}, {attempt.get('started')} to {attempt.get('finished')}")


def cancel_main(argv: list[str] | None = None) -> int:
    """Entry point of ``cancel_job``."""
    p = Parser("cancel_job", "Cancel jobs: queued and waiting ones leave the jar at once; "
               "running ones are killed\nby their worker within about a second.",
               "cancel_job NAME; cancel_job -c LINUX; cancel_job --mine; cancel_job --batch ID")
    p.add_argument("-c", "--category", help="every job of this category")
    p.add_argument("--mine", action="store_true", help="every job you submitted")
    add_handles(p)
    args = p.parse_args(argv)

    def body() -> int:
        from ..jobs import cancel_job
        from ..naming import printable

        done = cancel_job(*args.names, category=args.category, mine=args.mine, batch=args.batch,
                          id=args.id)
        for name, outcome in done:
            print(printable(f"{name}: {outcome}"))
        if args.category is not None and not done:  # a typo must not look like success
            print(f"cancel_job: no job of category {args.category!r} in the jar",
                  file=sys.stderr)
            return 1
        return 0

    return run("cancel_job", body)


def resubmit_main(argv: list[str] | None = None) -> int:
    """Entry point of ``resubmit_job``."""
    p = Parser("resubmit_job", "Put finished jobs back into their jar as a new attempt.",
               "resubmit_job NAME; resubmit_job --batch ID --failed")
    p.add_argument("--failed", action="store_true",
                   help="only those that failed, timed out, were poisoned or lost a dependency")
    add_handles(p)
    args = p.parse_args(argv)
    if not (args.names or args.batch or args.id):
        p.error("name the jobs (NAME, -i ID or --batch ID)")

    def body() -> int:
        from ..jobs import resubmit_job
        from ..naming import printable

        done = resubmit_job(*args.names, batch=args.batch, id=args.id, failed=args.failed)
        for name in done:
            print(printable(name))
        if args.failed and not done:
            sys.stderr.write("resubmit_job: none of these jobs failed: nothing resubmitted\n")
        return 0

    return run("resubmit_job", body)


def wait_main(argv: list[str] | None = None) -> int:
    """Entry point of ``wait_jobs``."""
    p = Parser("wait_jobs", "Wait until the named jobs (default: every job queued, waiting or "
               "running now)\nhave left the jar. Exit status 0 when all succeeded, 1 when any "
               "did not,\n2 on --timeout.", "wait_jobs --timeout 3600 $(cat my_jobs.txt); "
               "wait_jobs --batch ID")
    p.add_argument("--timeout", metavar="SECONDS", help="give up after this long (exit 2)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true", default=None,
                     help="show a progress bar (default on a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    add_handles(p)
    args = p.parse_args(argv)

    def body() -> int:
        from ..jobs import UNKNOWN, WaitTimeout, wait
        from ..naming import printable
        from ..states import SUCCEEDED

        timeout = seconds("--timeout", args.timeout)
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        try:
            found = wait(args.names or None, timeout=timeout, progress=progress, batch=args.batch,
                         id=args.id)
        except WaitTimeout as exc:
            sys.stderr.write(f"wait_jobs: {exc}\n")
            return 2
        bad = [r for r in found if r.get("status") != SUCCEEDED]
        for record in bad:
            name = record.get("name")
            if record.get("reason") == UNKNOWN and record.get("status") is None:
                sys.stderr.write(printable(f"wait_jobs: error: no job named {name!r} in the "
                                           "jar (not waited for)") + "\n")
            elif record.get("status") is None:
                print(printable(f"{name}: left the jar without a record"))
            else:
                print(printable(f"{name}: {record.get('status')}"))
        return 1 if bad else 0

    return run("wait_jobs", body)
