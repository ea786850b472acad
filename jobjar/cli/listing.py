"""``list_jobs``, ``job_history`` and ``purge_jobs``: tables of jobs, for people and scripts."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from itertools import repeat

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
    """A value as text (``printable`` is applied to whole columns, once)."""
    if value is None:
        return "-"
    if column == "duration" and isinstance(value, (int, float)) and value < 60:
        return f"{value:.2f}s"  # most jobs take less than a minute: show how much less
    if column in ("age", "duration"):
        return age(value)  # type: ignore[arg-type]
    return value if type(value) is str else str(value)


def _column(column: str, values: list) -> list[str]:
    """``_cell`` of a whole column, each distinct value made text once.

    100,000 queued jobs have a handful of owners, priorities and ages (in
    whole seconds): a dictionary of the texts made so far beats a call per cell.
    """
    if column not in ("age", "duration"):
        try:
            "".join(values)  # (C's own check that every value is a string already)
            return values
        except TypeError:
            made = {v: _cell(column, v) for v in set(values)}
            return list(map(made.__getitem__, values))
    made: dict = {}
    texts = []
    append, get, duration = texts.append, made.get, column == "duration"
    for value in values:
        key = value if value is None or (duration and value < 60) else int(value)
        text = get(key)
        if text is None:
            text = made[key] = _cell(column, value)
        append(text)
    return texts


def _printable(texts: list[str]) -> list[str]:
    """``naming.printable`` of every cell, checked for the whole column at once first."""
    from ..naming import printable

    joined = "".join(texts)
    if printable(joined) == joined:  # (nothing in the column to escape: the usual case)
        return texts
    return [printable(t) for t in texts]


#: Columns neither measured nor padded: free text of any length, best shown last.
UNPADDED = ("command", "batch")


def print_table(columns: tuple[str, ...], rows: Iterable, values) -> None:
    """Rows as aligned columns under upper-case headings.

    ``values(rows, column)`` gives a column's values, in the rows' order.
    The free-text columns (``command``, ``batch``: read from job files) are
    not padded, and are asked for piece by piece, each piece just before it
    is written (``list_jobs`` has them read already: one pass is cheapest).  Every cell is
    printable (``naming.printable``: names and commands are anybody's text,
    no escape sequence reaches the terminal).  Built column by column and
    written in large pieces: 100,000 rows in a fraction of a second.
    """
    rows = list(rows)
    cells: dict[str, list[str]] = {}
    headings = []
    for column in columns:
        if column in UNPADDED:
            headings.append(column.upper())
            continue
        texts = _column(column, values(rows, column))
        one = len(texts) > 1 and len(set(texts)) == 1  # (one state, owner...: done once)
        texts = _printable(texts[:1]) * len(texts) if one else _printable(texts)
        if column != columns[-1]:  # (the last: nothing to align after it)
            width = max(len(column), max(map(len, texts[:1] if one else texts), default=0))
            texts = [texts[0].ljust(width)] * len(texts) if one else \
                list(map(str.ljust, texts, repeat(width)))
            headings.append(column.upper().ljust(width))
        else:
            headings.append(column.upper())
        cells[column] = texts
    out = sys.stdout
    out.write("  ".join(headings).rstrip() + "\n")
    step = 5000  # rows per piece
    for start in range(0, len(rows), step):
        piece = [cells[c][start:start + step] if c in cells else
                 _printable(_column(c, values(rows[start:start + step], c))) for c in columns]
        out.write("\n".join(map(str.rstrip, map("  ".join, zip(*piece)))) + "\n")


def print_json(objects: list[dict]) -> None:
    """A JSON list, one object a line: each made by the C encoder (``indent`` would use
    the pure-Python one, several times slower over 100,000 rows)."""
    import json

    encode = json.JSONEncoder(ensure_ascii=True).encode
    sys.stdout.write("[\n" + ",\n".join(map(encode, objects)) + "\n]\n" if objects else "[]\n")


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
        import gc

        from ..listing import check_columns, column_values, list_jobs

        gc.disable()  # a short process making 100,000s of rows and no garbage: no collections

        default = COLUMNS if args.json else DEFAULT_COLUMNS
        columns = check_columns(args.format, COLUMNS, default)
        rows = list_jobs(mine=args.mine, user=args.user, category=args.category,
                         state=args.state, batch=args.batch,  # (read with the listing:
                         commands="command" in columns or "batch" in columns)  # cheapest)
        if args.json:
            print_json([row.as_dict(columns) for row in rows])
        else:
            print_table(columns, rows, column_values)
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
            print_json([{c: row.get(c) for c in columns} for row in rows])
        elif args.csv:
            import csv

            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([row.get(c) for c in columns] for row in rows)
        else:
            print_table(columns, rows, lambda rows, c: [row.get(c) for row in rows])
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
