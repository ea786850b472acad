"""Placement: which node may claim which job, decided by the claiming worker alone.

The rules, in the order a worker applies them (``docs/placement.md``):

1. **the node's gates**, before it claims anything: while the node's
   1-minute load per CPU is above ``JJ_MAX_LOAD``, or its available memory
   below ``JJ_MIN_FREE_MEMORY``, the worker claims nothing (``node_gate``);
2. **the job's asks**, after the claim (a rename, as always) and before the
   job's record is touched: a job whose ``--node`` names another node, or
   whose ``--mem``/``--cpus`` the node does not have free, is given back by
   one rename to where it came from (its name and modification time, hence
   its place in the queue, unchanged), and this worker leaves it alone for
   a while (``refusal``, ``DEFER``).

What is "free" counts what the jobs held by the node's other workers
asked for (``taken``): their job files are in their ``job/`` directories,
read like any job file.  Other people's processes are seen only through
the load and the available memory.  Nothing here is a daemon or a ledger:
everything is read from the jar and the kernel when needed.
"""

from __future__ import annotations

import math
import os
import random
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .directives import Directives
    from .layout import Jar
    from .machine import Machine

#: Kinds of refusal of a claimed job, and how long (seconds) the worker then
#: leaves that job alone: another node's job or one too big for this node
#: will not change soon; a job waiting for others to finish may fit shortly.
WRONG_NODE, TOO_BIG, BUSY = "wrong-node", "too-big", "busy"
DEFER = {WRONG_NODE: 60.0, TOO_BIG: 60.0, BUSY: 2.0}

#: The largest size accepted (``--mem``, ``JJ_MIN_FREE_MEMORY``): 1 PiB, in KiB.
MAX_SIZE_KB = 1 << 40
#: The largest ``JJ_MAX_LOAD`` (load per CPU) accepted.
MAX_LOAD = 1000.0
#: The largest ``--cpus`` accepted.
MAX_CPUS = 1 << 20

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([KMGT]?)(?:i?B)?", re.ASCII | re.IGNORECASE)
_POWER = {"K": 0, "M": 1, "G": 2, "T": 3, "": 1}  # KiB are the unit; a bare number is MB


class KiB(int):
    """A size in KiB that writes itself with its unit (``4194304K``).

    A ``#JJ --mem`` line reads a bare number as megabytes, so a size is
    never rendered as a bare number of KiB.
    """

    def __str__(self) -> str:
        for power, unit in ((3, "T"), (2, "G"), (1, "M")):
            if self and not self % 1024 ** power:
                return f"{int(self) // 1024 ** power}{unit}"
        return f"{int(self)}K"


def parse_size(text: object, allow_zero: bool = False) -> KiB:
    """``4G``, ``512M``, ``100K``, ``1.5T``, ``2048`` (megabytes) in KiB, or ValueError.

    Suffixes are powers of 1024, as Slurm's ``--mem``; ``GB`` and ``GiB``
    are taken for ``G``.  At most ``MAX_SIZE_KB``; zero only where
    ``allow_zero`` (a setting that turns its gate off).
    """
    if isinstance(text, bool):
        raise ValueError("must be a size such as 4G, 512M or 2048 (megabytes)")
    if isinstance(text, int):
        text = str(text)
    match = _SIZE.fullmatch(str(text).strip())
    if match is None:
        raise ValueError("must be a size such as 4G, 512M or 2048 (megabytes)")
    kb = float(match.group(1)) * 1024 ** _POWER[match.group(2).upper()]
    if not (0 if allow_zero else 1) <= kb <= MAX_SIZE_KB:
        raise ValueError(f"must be a size from {'0' if allow_zero else '1K'} to 1P")
    return KiB(math.ceil(kb))


def parse_load(text: object) -> float:
    """A positive load per CPU (``0.9``, ``2``), at most ``MAX_LOAD``, or ValueError."""
    try:
        value = float(str(text).strip()) if not isinstance(text, bool) else -1.0
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_LOAD:  # also false for nan
        raise ValueError(f"must be a positive load per CPU, at most {MAX_LOAD:g} "
                         "(1.0: every CPU busy)")
    return value


def size_text(kb: int) -> str:
    """KiB as a short size in powers of 1024 for people: ``512M``, ``7.8G``."""
    value, unit = float(kb), "K"
    for bigger in "MGT":
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    if value < 10 and unit != "K" and not value.is_integer():
        return f"{value:.1f}{unit}"
    return f"{value:.0f}{unit}"


# -- the worker's rules --------------------------------------------------------------------


def node_gate(m: Machine, max_load: float | None, min_free_kb: int | None) -> str | None:
    """Why this node claims nothing now (rule 1), or ``None``.

    A figure the node cannot measure (no ``/proc``, a broken test file) does
    not hold claims: an unknown load is not a high one.
    """
    if max_load is not None and m.load_per_cpu > max_load:  # false for nan
        return (f"load {m.load1:.2f} on {m.cpus} CPUs ({m.load_per_cpu:.2f} per CPU) "
                f"is above JJ_MAX_LOAD {max_load:g}")
    if min_free_kb is not None and m.mem_total_kb and m.mem_available_kb < min_free_kb:
        return (f"available memory {size_text(m.mem_available_kb)} is below "
                f"JJ_MIN_FREE_MEMORY {size_text(min_free_kb)}")
    return None


def asks(opts: Directives) -> tuple[int, int]:
    """``(KiB, CPUs)`` a job asked for; a job that asks nothing counts as asking nothing."""
    return int(opts.mem or 0), int(opts.cpus or 0)


def asks_anything(opts: Directives) -> bool:
    """Does the job carry any placement option (``--mem``, ``--cpus``, ``--node``)?"""
    return bool(opts.mem or opts.cpus or opts.node)


def taken(jar: Jar, node: str, but: str | None = None) -> tuple[int, int]:
    """``(KiB, CPUs)`` asked by the jobs that the workers of ``node`` hold (but ``but``'s).

    Counted from the workers' ``job/`` directories, not their ``claimed/``
    links: a job claimed a moment ago, not linked yet, counts too, so two
    workers of a node that claim big jobs at once both see the other's and
    neither overcommits (both give theirs back, and try again later, at
    random moments).  A dead worker's job counts until it is recovered: its
    process may still run.  A job file that cannot be read asks nothing.
    """
    from .depend import read_head
    from .directives import parse
    from .layout import held_job

    mem = cpus = 0
    prefix = f"{node}."
    try:
        with os.scandir(jar.worker_home) as entries:
            mine = [e.name for e in entries if e.name.startswith(prefix) and e.name != but
                    and e.name[len(prefix):].isdigit() and e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0, 0
    for worker in mine:
        held = held_job(jar.worker_dir(worker))
        if held is None:
            continue
        try:
            job_mem, job_cpus = asks(parse(read_head(held[1])))
        except Exception:  # someone's file, gone, unreadable, malformed: asks nothing
            continue
        mem, cpus = mem + job_mem, cpus + job_cpus
    return mem, cpus


def refusal(opts: Directives, node: str, m: Machine,
            taken_now: tuple[int, int] | None = None,
            jar: Jar | None = None, worker: str | None = None) -> tuple[str, str] | None:
    """``(kind, reason)`` if this node must not run the job now (rule 2), else ``None``.

    ``taken_now`` (else counted from ``jar``, except ``worker``'s own) is
    only worked out when the job asks for memory or CPUs.  Memory the node
    cannot measure is not refused on.
    """
    if opts.node and opts.node != node:
        return WRONG_NODE, f"it is for node {opts.node}"
    mem, cpus = asks(opts)
    if not (mem or cpus):
        return None
    if cpus > m.cpus or (mem and m.mem_total_kb and mem > m.mem_total_kb):
        return TOO_BIG, (f"it asks for {_asked(mem, cpus)}; this node has "
                         f"{_had(m.mem_total_kb, m.cpus)}")
    if taken_now is None:
        taken_now = taken(jar, node, worker) if jar is not None else (0, 0)
    other_mem, other_cpus = taken_now
    free_cpus = m.cpus - other_cpus
    free_mem = min(m.mem_total_kb - other_mem, m.mem_available_kb) if m.mem_total_kb else None
    if cpus > free_cpus or (mem and free_mem is not None and mem > free_mem):
        return BUSY, (f"it asks for {_asked(mem, cpus)}; free on this node: "
                      f"{_had(free_mem, free_cpus)} (jobs running here asked for "
                      f"{_asked(other_mem, other_cpus) or 'nothing'})")
    return None


def defer_for(kind: str) -> float:
    """Seconds to leave a refused job alone, with a random part so workers do not act in step."""
    return DEFER[kind] * random.uniform(0.75, 1.25)


def _asked(mem: int, cpus: int) -> str:
    parts = ([f"{size_text(mem)} of memory"] if mem else []) + \
        ([f"{cpus} CPU{'s' if cpus != 1 else ''}"] if cpus else [])
    return " and ".join(parts)


def _had(mem: int | None, cpus: int) -> str:
    memory = f"{size_text(max(0, mem))} of memory" if mem is not None else "memory unknown"
    return f"{memory} and {max(0, cpus)} CPU{'s' if cpus != 1 else ''}"


# -- explaining: which rule holds an unclaimed job back --------------------------------------


def held_back(jar: Jar, opts: Directives, now: float | None = None) -> str | None:
    """Which placement rule keeps an unclaimed job from every node, or ``None``.

    Judged from the node files (``machine.read_all``) and each node's own
    published settings, so it is as fresh as the nodes' heartbeats; a node
    that is unknown cannot be judged and is left out.
    """
    from .machine import read_all

    known = {node: m for node, m in read_all(jar, now).items() if m is not None}
    if opts.node:
        if opts.node not in known:
            return (f"it is for node {opts.node}, which publishes no fresh figures "
                    "(no worker running there?)")
        known = {opts.node: known[opts.node]}
    elif not known:
        return "no node publishes fresh figures (no worker running?)" \
            if asks_anything(opts) else None
    mem, cpus = asks(opts)
    fitting = {node: m for node, m in known.items()
               if cpus <= m.cpus and not (mem and m.mem_total_kb and mem > m.mem_total_kb)}
    if not fitting:
        biggest = max(known.values(), key=lambda m: (m.mem_total_kb, m.cpus))
        where = f"node {opts.node}" if opts.node else "any node"
        return (f"too big: it asks for {_asked(mem, cpus)}, more than {where} has "
                f"(largest: {biggest.node}, {_had(biggest.mem_total_kb, biggest.cpus)}); "
                "it waits until such a node publishes")
    gated = {node: node_gate(m, m.max_load, m.min_free_memory_kb) for node, m in fitting.items()}
    if all(gated.values()):
        return "every node that could run it holds claims: " + "; ".join(
            f"{node}: {why}" for node, why in sorted(gated.items()))
    if mem or cpus:
        busy = {}
        for node, m in fitting.items():
            found = refusal(opts, node, m, taken(jar, node))
            if found:
                busy[node] = found[1]
        if len(busy) == len(fitting):
            return "waiting for room: " + "; ".join(
                f"{node}: {why}" for node, why in sorted(busy.items()))
    return None
