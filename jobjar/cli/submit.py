"""``submit_job`` and ``unique_job_name``."""

from __future__ import annotations

import argparse
import sys

from .common import Parser, run


def _parser() -> Parser:
    p = Parser("submit_job", "Submit a command line (or, with -f, a copy of an executable "
               "file) to the Job Jar.\nPrints the new job's name.",
               "submit_job -p 10 -c LINUX /usr/local/bin/big_computation /data/in 104.1 30")
    p.add_argument("-p", "--priority", default="0", help="integer priority (default 0)")
    p.add_argument("-c", "--category", help="category (default: uncategorized)")
    p.add_argument("-i", "--id", help="identifier to put in the job's name")
    p.add_argument("-f", "--file", help="submit a copy of this executable file")
    p.add_argument("--from-file", metavar="FILE",
                   help="one job per non-empty line of FILE (- for stdin)")
    p.add_argument("--array", metavar="FIRST-LAST[:STEP]",
                   help="one job per index, with JJ_ARRAY_INDEX set")
    p.add_argument("--timeout", metavar="SECONDS", help="kill the job after this long")
    p.add_argument("--retries", metavar="N",
                   help="run a failed or timed-out job again, up to N times")
    p.add_argument("--after", metavar="NAME[,NAME...]", action="append",
                   help="run only after all of these jobs succeeded")
    p.add_argument("--after-any", metavar="NAME[,NAME...]", action="append",
                   help="run after all of these jobs finished, however they ended")
    p.add_argument("-o", "--output", metavar="FILE", help="standard output file")
    p.add_argument("-e", "--error", metavar="FILE", help="standard error file")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")
    return p


def _names(value: list[str] | None) -> list[str] | None:
    return [n for v in value for n in v.split(",") if n] if value else None


def submit_main(argv: list[str] | None = None) -> int:
    """Entry point of ``submit_job``."""
    args = _parser().parse_args(argv)

    def body() -> int:
        from .. import submit
        from ..errors import JobJarError

        options = dict(timeout=args.timeout, retries=args.retries, after=_names(args.after),
                       after_any=_names(args.after_any), output=args.output, error=args.error)
        common = dict(priority=args.priority, id=args.id, category=args.category)
        sources = sum(bool(x) for x in (args.file, args.from_file, args.command))
        if sources != 1:
            raise JobJarError("give exactly one of: a command, -f FILE, or --from-file FILE")
        if args.from_file:
            if args.array:
                raise JobJarError("--array and --from-file cannot be combined")
            names = submit.submit_from_file(args.from_file, **common, **options)
        elif args.file:
            names = submit.submit_job_file(args.file, **common, array=args.array, **options)
        else:
            names = submit.submit_job(" ".join(args.command), **common, array=args.array, **options)
        out = "\n".join([names] if isinstance(names, str) else names)
        if out:
            sys.stdout.write(out + "\n")
        return 0

    return run("submit_job", body)


def unique_main(argv: list[str] | None = None) -> int:
    """Entry point of ``unique_job_name``."""
    p = Parser("unique_job_name", "Print a unique job file name (an absolute path in limbo/).",
               'name=$(unique_job_name -p 15); cp my_job "$name"; mv "$name" "$JJ_HOME/unclaimed"')
    p.add_argument("-p", "--priority", default="0", help="integer priority (default 0)")
    p.add_argument("-i", "--id", help="identifier to put in the name")
    args = p.parse_args(argv)

    def body() -> int:
        from ..submit import unique_job_name

        print(unique_job_name(args.priority, args.id))
        return 0

    return run("unique_job_name", body)
