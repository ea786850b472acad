"""``system_status``: a summary for people, or JSON/YAML for scripts."""

from __future__ import annotations

import sys

from .. import states
from ..naming import printable
from .common import Parser, run


def render(status: dict) -> str:
    """The status as a few lines a person reads at a glance.

    Every name, category and reason comes from someone's files: each goes
    through ``printable``, so that an escape sequence in a job's name cannot
    drive the terminal and a new line cannot forge a line of the summary.
    """
    jobs = status["jobs"]
    queued = jobs["unclaimed"]
    lines = [f"Job Jar {printable(status['jar'])} (seen from node {status['node']}, "
             f"{status['time']})"]
    control = [name.upper() for name, on in status["control"].items() if on]
    if control:
        lines.append(f"  IN FORCE: {', '.join(control)}")
    lines.extend(_hold_line(category, hold) for category, hold in status.get("holds", {}).items())
    lines.append("jobs: " + ", ".join(_count(state, jobs[state], jobs)
                                      for state in states.SHOWN))
    for category, summary in sorted(queued["categories"].items()):
        if summary["count"]:
            label = printable(category) if category else "(uncategorized)"
            lines.append(f"  unclaimed {label}: {summary['count']} "
                         f"(priority {summary['min_priority']}..{summary['max_priority']})")
    lines.extend(f"  cannot read {printable(where)} (ask its owner)"
                 for where in status.get("unreadable", []))
    lines.append(f"workers: {len(status['workers'])}")
    lines.extend(_worker_line(worker) for worker in status["workers"])
    lines.extend(_node_lines(status.get("nodes") or []))
    for job in status.get("too_big") or []:
        lines.append(f"  TOO BIG: {printable(job['name'])}: {printable(job['reason'])}")
    for job in status["stranded"]:
        lines.append(f"  STRANDED: {printable(job['job'])} (worker {printable(job['worker'])} "
                     f"{job['worker_state']}; run recover_jobs)")
    for item in jobs["rejected"]:
        reason = printable(item["reason"]) if item["reason"] else "(no reason recorded)"
        lines.append(f"  rejected: {printable(item['name'])}: {reason}")
    more = jobs.get("rejected_total", 0) - len(jobs["rejected"])
    if more > 0:
        lines.append(f"  ... and {more} more rejected (job_history --status rejected)")
    for item in jobs["hidden"]:
        lines.append(f"  hidden: {printable(item['name'])} ({item['age']:.0f} s old; a name "
                     "starting with '.' is never claimed)")
    if status["recent_failures"]:
        lines.append("recent failures:")
        lines.extend(_failure_line(record) for record in status["recent_failures"])
    if "projects" in status:
        lines.append(f"projects: {len(status['projects'])}")
        for name, project in sorted(status["projects"].items()):
            counts = ", ".join(f"{n} {state}" for state, n in project["jobs"].items())
            lines.append(f"  {printable(name)}: {counts}")
    return "\n".join(lines)


def _count(state: str, summary, jobs: dict) -> str:
    """``N STATE`` for the summary line; the states summarised by more than a number first.

    The completed jobs' statuses are those of the recent ones only (``status.finished``).
    """
    if state == states.UNCLAIMED:
        return f"{summary['total']} unclaimed"
    if state == states.COMPLETED:
        other = ", ".join(f"{n} {printable(s)}" for s, n in sorted(summary["other"].items()))
        total = f"{summary['total']}{'+' if summary.get('total_capped') else ''}"
        return (f"{total} completed (last {summary['recent']}: "
                f"{summary['succeeded']} succeeded, "
                f"{summary['failed']} failed{', ' + other if other else ''})")
    if state == states.REJECTED:
        return f"{jobs.get('rejected_total', len(summary))} rejected"
    if state == states.LIMBO:
        return f"{summary} in limbo"
    return f"{summary} {state}"  # waiting, running, and any new state


def _hold_line(category: str, hold: dict) -> str:
    """``  HELD: CAT ...`` or ``  hold: CAT open now (window ...)``: ``hold_category``."""
    window = f"window {hold['window']}" if hold["window"] else "no window"
    why = f"; malformed hold file: {printable(hold['problem'])}" if hold["problem"] else ""
    if hold["held"]:
        return f"  HELD: category {printable(category)} ({window}{why})"
    return f"  hold: category {printable(category)} open now ({window})"


def _worker_line(worker: dict) -> str:
    """``  NAME  STATE on JOB for N s  [CATEGORIES]``."""
    doing = worker["state"]
    if worker["job"]:
        running = f" for {worker['running_for']:.0f} s" if worker["running_for"] else ""
        doing += f" on {printable(worker['job'])}{running}"
    cats = printable(",".join(worker["categories"] or []))
    return f"  {printable(worker['name']):<24} {doing}  [{cats}]"


def _node_lines(nodes: list[dict]) -> list[str]:
    """The node table: workers, running jobs, load (per CPU) and memory of every node."""
    if not nodes:
        return []
    lines = [f"nodes: {len(nodes)}",
             f"  {'NODE':<20} {'WORKERS':>7} {'RUNNING':>7} {'CPUS':>4} {'LOAD':>16} "
             f"{'PER CPU':>7} {'MEMORY FREE/TOTAL':>19}"]
    for row in nodes:
        head = f"  {printable(row['node']):<20} {row['workers']:>7} {row['running']:>7}"
        if not row["known"]:
            lines.append(f"{head} {'?':>4} {'unknown (no fresh node file)':>16}")
            continue
        load = f"{row['load1']:.2f} {row['load5']:.2f} {row['load15']:.2f}"
        memory = "?" if not row["mem_total_kb"] else \
            f"{_size(row['mem_available_kb'])}/{_size(row['mem_total_kb'])}"
        line = f"{head} {row['cpus']:>4} {load:>16} {row['load_per_cpu']:>7.2f} {memory:>19}"
        held = _held_line(row)
        lines.append(line + (f"  HOLDING: {held}" if held else ""))
    return lines


def _held_line(row: dict) -> str:
    """Why a node's workers claim nothing now, by the node's own settings ('' if they do)."""
    why = []
    if row["max_load"] is not None and row["load_per_cpu"] > row["max_load"]:
        why.append(f"load above JJ_MAX_LOAD {row['max_load']:g}")
    floor = row["min_free_memory_kb"]
    if floor is not None and row["mem_total_kb"] and row["mem_available_kb"] < floor:
        why.append(f"free memory below JJ_MIN_FREE_MEMORY {_size(floor)}")
    return "; ".join(why)


def _size(kb: int) -> str:
    from ..placement import size_text

    return size_text(kb)


def _failure_line(record: dict) -> str:
    """``  FINISHED NAME STATUS exit N: REASON``."""
    how = f"exit {record['exit_code']}" if record["exit_code"] is not None else (
        f"signal {record['signal']}" if record["signal"] else "")
    words = " ".join(printable(w) for w in (record["finished"], record["name"],
                                             record["status"], how) if w)
    return f"  {words}{': ' + printable(record['reason']) if record['reason'] else ''}"


def status_main(argv: list[str] | None = None) -> int:
    """Entry point of ``system_status``."""
    p = Parser("system_status", "Summarise the jar: jobs per state and category, workers, "
               "stranded jobs, failures.", "system_status --json | jq .jobs.completed")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON")
    form.add_argument("--yaml", action="store_true", help="print YAML")
    form.add_argument("--html", metavar="FILE",
                      help="write the status page (static HTML with plots) to FILE, atomically")
    p.add_argument("--all-projects", action="store_true",
                   help="also each project's counts (the jars projects/NAME)")
    args = p.parse_args(argv)

    def body() -> int:
        if args.html:
            from ..statuspage import write_page

            write_page(args.html)
            return 0
        from ..status import system_status

        status = system_status(all_projects=args.all_projects)
        if args.json:
            import json

            sys.stdout.write(json.dumps(status, indent=2) + "\n")
        elif args.yaml:
            import yaml

            sys.stdout.write(yaml.safe_dump(status, sort_keys=False))
        else:
            print(render(status))
        return 0

    return run("system_status", body)
