"""``submit_job`` and ``unique_job_name``."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from .common import run

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (2 ms)
if TYPE_CHECKING:
    import argparse

    from .parser import Parser


def _parser() -> Parser:
    import argparse

    from ..directives import OPTIONS
    from .parser import Parser

    p = Parser("submit_job", "Submit a command line (or, with -f, a copy of an executable "
               "file) to the Job Jar.\nPrints the new job's name. With --wait, waits for "
               "it and exits with its exit status.",
               "submit_job -p 10 -c LINUX /usr/local/bin/big_computation /data/in 104.1 30")
    p.add_argument("-p", "--priority", default="0", help="integer priority (default 0)")
    p.add_argument("-c", "--category", help="category (default: uncategorized)")
    p.add_argument("-i", "--id", help="identifier to put in the job's name")
    p.add_argument("-f", "--file", help="submit a copy of this executable file")
    p.add_argument("--ini", metavar="FILE", help="submit an fjd job file: an INI file whose "
                   "[control] executable is run with its copy's path")
    p.add_argument("--from-file", metavar="FILE",
                   help="one job per non-empty line of FILE (- for stdin)")
    p.add_argument("--array", metavar="SPEC",
                   help="one job per index, with JJ_ARRAY_INDEX set: 1-5,7,10-20:2; "
                   "a %%N suffix runs at most N at once")
    for option in OPTIONS:  # the per-job options: one table, in directives.py
        if option.help is not None:
            p.add_argument(*sorted(option.flags, key=len), dest=option.name,
                           metavar=option.metavar, help=option.help,
                           action="append" if option.adds_up else "store")
    p.add_argument("--wait", action="store_true",
                   help="wait for the job(s) to end and exit with the job's own exit status "
                   "(128+N for signal N; the highest of an array's)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")
    return p


def _plain(argv: list[str]) -> SimpleNamespace | None:
    """``submit_job COMMAND [ARGS...]``, no option first: what ``_parser`` would return.

    The common form, parsed without ``argparse``: its import and the
    parser's construction were a fifth of a ``submit_job`` process.  The
    parser takes everything from the first positional on as the command
    (``argparse.REMAINDER``), so every other option keeps its default.
    Anything else (an option first, completion, ``--help``) goes through
    the parser; ``tests/test_submit_cli.py`` checks that both agree.
    """
    if not argv or argv[0].startswith("-") or "_ARGCOMPLETE" in os.environ:
        return None
    from ..directives import OPTIONS

    args = SimpleNamespace(version=None, project=None, priority="0", category=None, id=None,
                           file=None, ini=None, from_file=None, array=None, wait=False,
                           command=list(argv))
    for option in OPTIONS:
        if option.help is not None:
            setattr(args, option.name, None)
    return args


def _options(args: argparse.Namespace) -> dict:
    """The per-job options given (lists given several times are joined)."""
    from ..directives import OPTIONS

    found = {}
    for option in OPTIONS:
        if option.help is None:
            continue
        value = getattr(args, option.name)
        if option.adds_up and value:  # given, perhaps empty ("--after ''"): checked later
            value = [n for v in value for n in v.split(",") if n]
        found[option.name] = value
    return found


def _print_names(names: list[str] | str) -> None:
    from ..naming import printable

    out = "\n".join(printable(n) for n in ([names] if isinstance(names, str) else names))
    if out:
        sys.stdout.write(out + "\n")


def submit_main(argv: list[str] | None = None) -> int:
    """Entry point of ``submit_job``.

    The garbage collector is off until the jobs are queued: the imports
    make tens of thousands of objects and no garbage cycles, and their
    collections were some 1 ms of the process.  It is on again for
    ``--wait`` and when the command returns (a caller in-process keeps it).
    """
    import gc

    collecting = gc.isenabled()
    gc.disable()
    try:
        return _submit_main(argv, collecting)
    finally:
        if collecting:
            gc.enable()


def _submit_main(argv: list[str] | None, collecting: bool) -> int:
    import gc

    argv = sys.argv[1:] if argv is None else argv
    args = _plain(argv) or _parser().parse_args(argv)

    def body() -> int:
        from .. import submit
        from ..errors import JobJarError

        options = _options(args)
        common = dict(priority=args.priority, id=args.id, category=args.category)
        sources = sum(bool(x) for x in (args.file, args.ini, args.from_file, args.command))
        if sources != 1:
            raise JobJarError("give exactly one of: a command, -f FILE, --ini FILE, or "
                              "--from-file FILE")
        try:
            if args.from_file:
                if args.array:
                    raise JobJarError("--array and --from-file cannot be combined")
                names = submit.submit_from_file(args.from_file, **common, **options)
            elif args.file:
                names = submit.submit_job_file(args.file, **common, array=args.array, **options)
            elif args.ini:
                names = submit.submit_ini_file(args.ini, **common, array=args.array, **options)
            else:
                names = submit.submit_job(" ".join(args.command), **common, array=args.array,
                                          **options)
        except submit.PartialSubmitError as exc:  # the ones that are queued: never twice
            _print_names(exc.submitted)
            raise
        _print_names(names)
        batch = getattr(names, "batch", None)
        if batch:  # on stderr: stdout stays the list of names
            sys.stderr.write(f"submit_job: {len(names)} jobs in batch {batch}\n")
        if not args.wait:
            return 0
        if collecting:  # waiting may take hours
            gc.enable()
        return _wait(names)

    return run("submit_job", body)


def _wait(names: list[str] | str) -> int:
    """``submit_job --wait``: silent on success; a line per job that did not succeed."""
    from ..jobs import exit_status, wait
    from ..naming import printable

    sys.stdout.flush()  # the names first, for whoever reads them while we wait
    found = wait(names)
    for record in found:
        if record.get("status") != "succeeded":
            how = record.get("status") or "left the jar without a record"
            sys.stderr.write(printable(f"submit_job: {record.get('name')}: {how} "
                                       f"(exit status {exit_status(record)})") + "\n")
    return exit_status(*found)


def unique_main(argv: list[str] | None = None) -> int:
    """Entry point of ``unique_job_name``."""
    from .parser import Parser

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
