"""Named crash points for tests: ``JJ_FAULT=point`` kills the process there.

The crash tests set ``JJ_FAULT`` to one point name (or ``point@N`` to crash at
the N-th time the point is reached) and check that ``recover_jobs`` repairs
whatever the crash left.  Without the variable, ``hit`` is one comparison.
"""

from __future__ import annotations

import os

_spec = os.environ.get("JJ_FAULT", "")
_point, _, _nth = _spec.partition("@")
_remaining = int(_nth) if _nth.isdigit() else 1


def hit(point: str) -> None:
    """Die by SIGKILL if this is the fault point the environment names."""
    global _remaining
    if point != _point:
        return
    _remaining -= 1
    if _remaining <= 0:
        import signal  # only here: every submit_job process imports this module

        os.kill(os.getpid(), signal.SIGKILL)
