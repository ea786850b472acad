"""What a node has: its CPUs, load averages and memory, measured and published.

Every worker measures its node with its heartbeat (``measure``) and writes
the figures to ``nodes/NODE.yaml`` (``publish``), so any node, and any
command, can see every node's state without asking a daemon
(``read_all``).  Several workers of one node all write the same file; each
write is a rename of a complete file, so a reader sees one of them whole.

The file is somebody's file like any other in a shared jar: ``read_all``
trusts nothing in it.  A node whose file is missing, malformed, or older
than ``STALE_AFTER`` seconds (its workers stopped, or it crashed) is
*unknown* (``None``), never an error.  A worker never trusts a node file
for its own gates either: it measures its own node (``docs/placement.md``).

Tests point ``JJ_TEST_LOADAVG`` and ``JJ_TEST_MEMINFO`` at files written
like ``/proc/loadavg`` and ``/proc/meminfo``; production reads the kernel's.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .layout import Jar

#: A node file older than this (seconds, by the reader's clock) is unknown: a
#: worker rewrites it at least every half of this (``worker.NODE_REFRESH``), at its
#: heartbeat (30 s by default), so two missed writes, with room for clock skew.
STALE_AFTER = 120.0
#: How many jobs a node names as too big for it (``Machine.too_big``).
MAX_TOO_BIG = 20
#: Largest plausible figures; anything beyond is a forged or broken file.
MAX_CPUS = 1 << 20
MAX_KB = 1 << 50
MAX_LOAD = 1e6


@dataclass
class Machine:
    """One node's figures at ``time`` (seconds since the epoch, the writer's clock).

    ``mem_total_kb`` and ``mem_available_kb`` are 0 where the system does
    not say (no ``/proc/meminfo``): memory is then unknown, not exhausted.
    ``max_load`` and ``min_free_memory_kb`` are the node's own placement
    settings (``None``: that gate is off there), published so that
    ``job_info`` on another node can say which rule holds a job back.
    ``too_big`` names (``NAME`` or ``CATEGORY/NAME``) up to ``MAX_TOO_BIG``
    queued jobs the node's worker found too big for it, so that
    ``system_status`` can name the jobs too big for every node without
    reading every queued job.
    """

    node: str
    time: float
    cpus: int
    load1: float
    load5: float
    load15: float
    mem_total_kb: int
    mem_available_kb: int
    max_load: float | None = None
    min_free_memory_kb: int | None = None
    too_big: tuple[str, ...] = ()

    @property
    def load_per_cpu(self) -> float:
        """The 1-minute load average per CPU: 1.0 is a fully busy node."""
        return self.load1 / max(1, self.cpus)

    def as_record(self) -> dict:
        """The fields written to the node file, in order."""
        return {"node": self.node, "time": round(self.time, 3), "cpus": self.cpus,
                "load1": self.load1, "load5": self.load5, "load15": self.load15,
                "mem_total_kb": self.mem_total_kb, "mem_available_kb": self.mem_available_kb,
                "max_load": self.max_load, "min_free_memory_kb": self.min_free_memory_kb,
                "too_big": list(self.too_big)}


def _read_small(path: str) -> str:
    """A small text file such as ``/proc/loadavg`` ('' if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(65536).decode("ascii", "replace")
    except OSError:
        return ""


def read_loadavg() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages (``JJ_TEST_LOADAVG``: a file instead)."""
    source = os.environ.get("JJ_TEST_LOADAVG") or "/proc/loadavg"
    words = _read_small(source).split()
    try:
        loads = tuple(float(w) for w in words[:3])
        if len(loads) == 3 and all(0 <= x < MAX_LOAD for x in loads):
            return loads  # type: ignore[return-value]
    except ValueError:
        pass
    if os.environ.get("JJ_TEST_LOADAVG"):  # a test's broken file: the load is unknown
        return (math.nan, math.nan, math.nan)
    try:
        return os.getloadavg()
    except OSError:
        return (math.nan, math.nan, math.nan)


def read_meminfo() -> tuple[int, int]:
    """``(total, available)`` memory in KiB (``JJ_TEST_MEMINFO``: a file instead); 0: unknown.

    ``MemAvailable`` is the kernel's estimate of what a new program can get
    without swapping; kernels before 3.14 lack it, and free + buffers +
    cached stands in.
    """
    source = os.environ.get("JJ_TEST_MEMINFO") or "/proc/meminfo"
    fields: dict[str, int] = {}
    for line in _read_small(source).splitlines():
        key, _, rest = line.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            fields[key.strip()] = int(words[0])
    total = fields.get("MemTotal", 0)
    if "MemAvailable" in fields:
        available = fields["MemAvailable"]
    else:
        available = sum(fields.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    if not 0 < total < MAX_KB:
        return 0, 0
    return total, min(max(available, 0), total)


def cpu_count() -> int:
    """The CPUs this process may use (its affinity mask where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def measure(node: str) -> Machine:
    """This node's figures now, from the kernel (or the test files)."""
    load1, load5, load15 = read_loadavg()
    total, available = read_meminfo()
    return Machine(node=node, time=time.time(), cpus=cpu_count(), load1=load1, load5=load5,
                   load15=load15, mem_total_kb=total, mem_available_kb=available)


def publish(jar: Jar, m: Machine) -> None:
    """Write ``nodes/NODE.yaml`` atomically (a complete file, then one rename).

    ``nodes/`` is made if it is missing (a jar of an older version).
    """
    from . import records

    records.write(jar.node_file(m.node), m.as_record())


def _number(value: object, low: float, high: float) -> float | None:
    """A finite number in ``[low, high]`` read from a file, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not (low <= value <= high):  # also refuses nan
        return None
    return float(value)


def _integer(value: object, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def from_record(node: str, record: object, now: float | None = None,
                stale_after: float = STALE_AFTER) -> Machine | None:
    """The ``Machine`` a node file describes, or ``None`` when it is malformed or stale.

    Every field is checked for its type and range, and the file must name
    the node it is named after: a file copied or forged under another
    node's name describes nothing.
    """
    if not isinstance(record, dict) or record.get("node") != node:
        return None
    now = time.time() if now is None else now
    when = _number(record.get("time"), 0, 1e12)
    cpus = _integer(record.get("cpus"), 1, MAX_CPUS)
    loads = [_number(record.get(k), 0, MAX_LOAD) for k in ("load1", "load5", "load15")]
    total = _integer(record.get("mem_total_kb"), 0, MAX_KB)
    available = _integer(record.get("mem_available_kb"), 0, MAX_KB)
    if when is None or cpus is None or None in loads or total is None or available is None:
        return None
    if abs(now - when) > stale_after:
        return None
    max_load = record.get("max_load")
    min_free = record.get("min_free_memory_kb")
    too_big = record.get("too_big")
    if not isinstance(too_big, list) or len(too_big) > MAX_TOO_BIG \
            or not all(isinstance(n, str) for n in too_big):
        too_big = []
    return Machine(node=node, time=when, cpus=cpus, load1=loads[0], load5=loads[1],
                   load15=loads[2], mem_total_kb=total, mem_available_kb=min(available, total),
                   max_load=_number(max_load, 0, MAX_LOAD) if max_load is not None else None,
                   min_free_memory_kb=_integer(min_free, 0, MAX_KB)
                   if min_free is not None else None, too_big=tuple(too_big))


def read_all(jar: Jar, now: float | None = None) -> dict[str, Machine | None]:
    """Every node that has a file in ``nodes/``: its figures, or ``None`` when unknown.

    Dot-files (a write in progress) and names not ending in ``.yaml`` are
    not node files.  A file that is a link, a fifo, too big, or not ours
    to read counts as unknown, like a malformed or stale one.
    """
    from . import records

    nodes: dict[str, Machine | None] = {}
    try:
        with os.scandir(jar.nodes) as entries:
            names = sorted(e.name for e in entries
                           if e.name.endswith(".yaml") and not e.name.startswith("."))
    except OSError:
        return nodes
    for name in names:
        node = name[:-len(".yaml")]
        if not node:
            continue
        try:
            record = records.read(Path(jar.nodes) / name)
        except Exception:  # someone's file: whatever it holds, the node is unknown
            record = None
        nodes[node] = from_record(node, record, now)
    return nodes
