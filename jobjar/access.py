"""Who may submit where: the one permission rule behind every move into a queue.

A jar's only access control is its directories' permission bits
(``docs/security.md``): whoever may write ``unclaimed/A`` may run code as
A's workers.  Files can reach a queue by other ways than their owner's own
rename (recovery of a worker directory, release from ``waiting/``, a swap
between two steps), so every one of those ways, and the worker when it
claims, asks the same question of a job file that is not its own: could
the file's owner have put it there?  A file whose owner could not is set
aside in ``rejected/``, never run.
"""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from pathlib import Path


def may_write(uid: int, directory: Path) -> bool:
    """Could user ``uid`` create files in ``directory``, by its owner, group and mode bits?

    A missing directory is judged by the nearest existing parent (a
    submitter creates the category).  Root may write anywhere.  A user this
    node does not know has no groups here, so only the "other" bits count.
    """
    directory = Path(directory)
    while True:
        try:
            info = os.lstat(directory)
            break
        except FileNotFoundError:
            if directory.parent == directory:
                return False
            directory = directory.parent
        except OSError:
            return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    if uid == 0:
        return True
    if info.st_uid == uid:
        need = stat.S_IWUSR | stat.S_IXUSR
    elif info.st_gid in groups(uid):
        need = stat.S_IWGRP | stat.S_IXGRP
    else:
        need = stat.S_IWOTH | stat.S_IXOTH
    return info.st_mode & need == need


@lru_cache(maxsize=256)
def groups(uid: int) -> frozenset[int]:
    """The groups of user ``uid`` (primary and supplementary; empty if unknown).

    Cached: a worker asks for the owner of every job that is not its own,
    and a group lookup may be a network call (LDAP).  A worker that runs for
    months sees a membership change after its restart by cron.
    """
    import grp
    import pwd

    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return frozenset()
    try:
        return frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:
        return frozenset({entry.pw_gid} | {g.gr_gid for g in grp.getgrall()
                                            if entry.pw_name in g.gr_mem})


def may_submit(info: os.stat_result, queue: Path, category: str | None) -> str | None:
    """Why a job file (``info``: its ``lstat``) may not be in ``queue``, or ``None``.

    Our own files always may: a worker runs its own user's code anyway.
    """
    if info.st_uid == os.geteuid() or may_write(info.st_uid, queue):
        return None
    from .records import owner_name

    where = f"unclaimed/{category}" if category else "unclaimed/"
    return f"its owner ({owner_name(info.st_uid)}) may not submit to {where}"
