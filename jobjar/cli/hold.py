"""``hold_category`` and ``release_category``: stop and resume claiming from a category."""

from __future__ import annotations

from ..naming import printable
from .common import Parser, run


def hold_main(argv: list[str] | None = None) -> int:
    """Entry point of ``hold_category``."""
    p = Parser("hold_category", "Stop every worker claiming jobs of these categories (the "
               "workers go on with\ntheir other categories). With --window, hold them only "
               "outside that daily\nwindow, in each claiming node's local time (it may wrap "
               "midnight).", "hold_category night --window 18:00-08:00")
    p.add_argument("--window", metavar="HH:MM-HH:MM",
                   help="claim only inside this daily window (start included, end not)")
    p.add_argument("categories", nargs="+", metavar="CATEGORY", help="categories to hold")
    args = p.parse_args(argv)

    def body() -> int:
        from ..hold import hold_category

        for category in hold_category(*args.categories, window=args.window):
            print(f"hold: {printable(category)}"
                  + (f" outside {args.window.strip()}" if args.window else ""))
        return 0

    return run("hold_category", body)


def release_main(argv: list[str] | None = None) -> int:
    """Entry point of ``release_category``."""
    p = Parser("release_category", "Let workers claim jobs of these categories again "
               "(removes their hold, window or not).", "release_category night")
    p.add_argument("categories", nargs="+", metavar="CATEGORY", help="categories to release")
    args = p.parse_args(argv)

    def body() -> int:
        from ..hold import release_category

        for category in release_category(*args.categories):
            print(f"release: {printable(category)}")
        return 0

    return run("release_category", body)
