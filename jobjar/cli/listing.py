"""``list_jobs``, ``job_history`` and ``purge_jobs``: tables of jobs, for people and scripts."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from .common import Parser, run, seconds


def age(value: float | None) -> str:
    """Seconds as people read an age: ``45s``, ``12m05s``, ``3h04m``, ``2d03h``."""
    if value is None:
        return "-"
    value = int(value)
    if value < 60:
        return f"{value}s"
    if value < 3600:
        return f"{value // 60}m{value % 60:02d}s"
    if value < 86400:
        return f"{value // 3600}h{value % 3600 // 60:02d}m"
    return f"{value // 86400}d{value % 86400 // 3600:02d}h"


def _cell(column: str, value: object) -> str:
    """A value as text (``printable`` is applied to the whole line, once)."""
    if value is None:
        return "-"
    if column == "duration" and isinstance(value, (int, float)) and value < 60:
        return f"{value:.2f}s"  # most jobs take less than a minute: show how much less
    if column in ("age", "duration"):
        return age(value)  # type: ignore[arg-type]
    return value if type(value) is str else str(value)


def _column(column: str, values: list) -> list[str]:
    """``_cell`` of a whole column: one comprehension, not a call per cell."""
    if column in ("age", "duration"):
        return [_cell(column, v) for v in values]
    return ["-" if v is None else v if type(v) is str else str(v) for v in values]


def print_table(columns: tuple[str, ...], rows: Iterable, get) -> None:
    """Rows as aligned columns under upper-case headings.

    ``get(row, column)`` gives a value.  The columns read from job files
    (``command``, ``batch``) are neither measured nor padded: they are read
    row by row as the row is printed, so ``| head`` stops the reading too.
    Every line goes through ``naming.printable`` (names and commands are
    anybody's text: no escape sequence reaches the terminal).
    """
    from ..naming import printable

    rows = list(rows)
    lazy = ("command", "batch")
    cells = {c: _column(c, [get(r, c) for r in rows]) for c in columns if c not in lazy}
    headings = {c: c.upper() for c in columns}
    for column, texts in cells.items():  # padded column by column (100,000 rows: fast)
        width = max(len(column), *map(len, texts)) if texts else len(column)
        cells[column] = [t.ljust(width) for t in texts]
        headings[column] = column.upper().ljust(width)
    out = sys.stdout
    out.write("  ".join(headings.values()).rstrip() + "\n")
    if not any(c in lazy for c in columns):
        for parts in zip(*(cells[c] for c in columns)):
            out.write(printable("  ".join(parts).rstrip()) + "\n")
        return
    for i, row in enumerate(rows):
        text = "  ".join(cells[c][i] if c in cells else _cell(c, get(row, c)) for c in columns)
        out.write(printable(text.rstrip()) + "\n")


def _filters(p: Parser, what: str):  # noqa: ANN202 - argparse's group
    p.add_argument("--mine", action="store_true", help=f"only your {what}")
    p.add_argument("-u", "--user", metavar="USER", help=f"only the {what} of USER")
    p.add_argument("--batch", metavar="ID", help=f"only the {what} of batch ID")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON (a list of objects)")
    p.add_argument("--format", metavar="COLUMNS", help="comma-separated columns to show")
    return form


def list_main(argv: list[str] | None = None) -> int:
    """Entry point of ``list_jobs``."""
    from ..listing import COLUMNS, DEFAULT_COLUMNS

    p = Parser("list_jobs", "One line per job still in the jar (running, unclaimed, waiting): "
               "unclaimed jobs\nper category in the order workers will claim them.\n"
               f"columns: {', '.join(COLUMNS)}", "list_jobs --mine --state unclaimed -c GPU")
    _filters(p, "jobs")
    p.add_argument("-c", "--category", metavar="CATEGORY", help="only this category "
                   "('' for uncategorized)")
    p.add_argument("--state", metavar="STATE", help="running, unclaimed or waiting")
    args = p.parse_args(argv)

    def body() -> int:
        from ..listing import check_columns, list_jobs

        default = COLUMNS if args.json else DEFAULT_COLUMNS
        columns = check_columns(args.format, COLUMNS, default)
        rows = list_jobs(mine=args.mine, user=args.user, category=args.category,
                         state=args.state, batch=args.batch)
        if args.json:
            import json

            json.dump([row.as_dict(columns) for row in rows], sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            print_table(columns, rows, getattr)
        return 0

    return run("list_jobs", body)


def history_main(argv: list[str] | None = None) -> int:
    """Entry point of ``job_history``."""
    from ..history import COLUMNS, DEFAULT_COLUMNS

    p = Parser("job_history", "Finished jobs (completed and rejected), newest first, from their "
               f"records.\ncolumns: {', '.join(COLUMNS)}",
               "job_history --since 1d --status failed --csv > failed.csv")
    form = _filters(p, "jobs")
    form.add_argument("--csv", action="store_true", help="print CSV with a heading line")
    p.add_argument("--since", metavar="DURATION", help="only jobs finished this long ago or "
                   "less (90s, 15m, 12h, 7d, 1d12h)")
    p.add_argument("--status", metavar="STATUS", help="only jobs that ended so (succeeded, "
                   "failed, cancelled, ...)")
    args = p.parse_args(argv)

    def body() -> int:
        from ..history import job_history
        from ..listing import check_columns

        columns = check_columns(args.format, COLUMNS,
                                COLUMNS if args.json or args.csv else DEFAULT_COLUMNS)
        rows = job_history(since=seconds("--since", args.since), mine=args.mine,
                           user=args.user, status=args.status, batch=args.batch)
        if args.json:
            import json

            json.dump([{c: row.get(c) for c in columns} for row in rows], sys.stdout, indent=1)
            sys.stdout.write("\n")
        elif args.csv:
            import csv

            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([row.get(c) for c in columns] for row in rows)
        else:
            print_table(columns, rows, lambda row, c: row.get(c))
        return 0

    return run("job_history", body)


def purge_main(argv: list[str] | None = None) -> int:
    """Entry point of ``purge_jobs``."""
    p = Parser("purge_jobs", "Remove finished jobs older than a duration: their files in "
               "completed/ and rejected/,\ntheir records and their output in output/, and "
               "the manifests of batches with no job left.\nNever a job still in the jar, "
               "never a record a waiting job's dependency still needs.",
               "purge_jobs --older-than 30d --dry-run")
    p.add_argument("--older-than", metavar="DURATION", required=True,
                   help="finished at least this long ago (90s, 15m, 12h, 7d, 1d12h)")
    p.add_argument("--status", metavar="STATUS", help="only jobs that ended so")
    p.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    p.add_argument("-v", "--verbose", action="store_true", help="name every job removed")
    args = p.parse_args(argv)

    def body() -> int:
        from ..naming import printable
        from ..purge import purge_jobs

        older = seconds("--older-than", args.older_than)
        report = purge_jobs(older, status=args.status, dry_run=args.dry_run)
        if args.verbose or args.dry_run:
            for name in report["purged"]:
                print(printable(name))
        for name, why in report["kept"]:
            print(f"kept {printable(name)}: {printable(why)}", file=sys.stderr)
        verb = "would purge" if args.dry_run else "purged"
        if args.verbose or args.dry_run:  # on stderr: stdout stays a list of job names
            for batch in report["batches"]:
                print(f"{verb} batch {batch}", file=sys.stderr)
        batches = len(report["batches"])
        also = f" and {batches} batch manifest{'s' * (batches != 1)}" if batches else ""
        print(f"{verb} {len(report['purged'])} finished jobs "
              f"({len(report['kept'])} kept for waiting jobs){also}", file=sys.stderr)
        return 0

    return run("purge_jobs", body)
