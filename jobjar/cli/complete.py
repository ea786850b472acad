"""Shell completion (bash, zsh) through argcomplete, for every command.

Only imported when a shell asks for completions (``_ARGCOMPLETE`` in the
environment, ``parser.Parser.parse_args``): a command run normally never
loads argcomplete.  Completers are attached by argument name, so a new
command that names jobs ``names``, categories ``category`` or workers
``targets`` completes them with no edit here.  Values come from the jar by
directory listings only, and a jar that cannot be read completes nothing.
"""

from __future__ import annotations

import argparse
import os


def _jar():
    from ..layout import Jar

    return Jar.from_config()


def job_names(prefix: str = "", **_: object) -> list[str]:
    """Names of the jobs the jar knows (in it and finished), as ``find.known_names``."""
    from ..find import known_names

    return sorted(n for n in known_names(_jar()) if n.startswith(prefix))


def categories(prefix: str = "", **_: object) -> list[str]:
    """Categories of the queue and of the waiting jobs."""
    from ..layout import subdirs

    jar = _jar()
    return sorted({*jar.categories(), *subdirs(jar.waiting)})


def workers(prefix: str = "", **_: object) -> list[str]:
    """``all``, every node and every worker directory (what ``stop_worker`` takes)."""
    names = _jar().workers()
    return ["all", *sorted({w.rpartition(".")[0] for w in names}), *names]


def batches(prefix: str = "", **_: object) -> list[str]:
    """Batch ids that have a manifest."""
    from ..layout import BATCHES

    try:
        return sorted(n for n in os.listdir(_jar().home / BATCHES) if not n.startswith("."))
    except OSError:
        return []


#: argument name -> its completer (every other argument: argcomplete's own, files).
COMPLETERS = {"names": job_names, "after": job_names, "after_any": job_names,
              "category": categories, "categories": categories, "targets": workers,
              "batch": batches}


def complete(parser: argparse.ArgumentParser) -> None:
    """Print the completions the shell asked for and exit (argcomplete's protocol)."""
    import argcomplete

    for action in parser._actions:
        completer = COMPLETERS.get(action.dest)
        if completer is not None:
            action.completer = _quiet(completer)  # type: ignore[attr-defined]
    argcomplete.autocomplete(parser)


def _quiet(completer):
    """A completer that completes nothing rather than fail (no jar, a bad setting)."""
    def safe(**kwargs: object) -> list[str]:
        try:
            return completer(**kwargs)
        except Exception:
            return []
    return safe


def dispatcher(commands: dict[str, str]) -> str:
    """Completion for ``jobjar COMMAND ...``: the command's own, else the command names.

    Returns the command named on the line, after telling argcomplete to
    skip two words (``_ARGCOMPLETE=2``); completes the command names and
    exits when there is none yet.
    """
    line = os.environ.get("COMP_LINE", "")[: int(os.environ.get("COMP_POINT", "0") or 0)]
    words = line.split()
    if len(words) >= 2 and words[1] in commands and (len(words) > 2 or line.endswith(" ")):
        os.environ["_ARGCOMPLETE"] = "2"
        return words[1]
    import argcomplete

    parser = argparse.ArgumentParser(prog="jobjar")
    parser.add_argument("command", choices=sorted(commands))
    argcomplete.autocomplete(parser)
    raise SystemExit(0)  # (autocomplete exits; not reached)
