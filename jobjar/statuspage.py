"""``system_status --html FILE``: the jar on one static page, with plots, and no server.

The page is one self-contained HTML file: no script, no style sheet or image
fetched from anywhere (inline CSS, inline SVG plots), and a Content Security
Policy that forbids scripts outright, so a job name such as
``<img src=x onerror=alert(1)>`` (names and reasons come from other users'
files) is shown as text even if an escape were ever missed.  It is written
to a temporary name beside FILE and renamed over it, so a web server or a
browser never shows half a page.

Its cost is bounded: the summary is ``system_status()``'s; the plots read
the records of a recent window only (at most ``MAX_RECORDS`` of them, the
newest), found by one listing of ``results/`` and a ``stat`` per entry, never
by reading the whole history.  The page says which window it shows.
"""

from __future__ import annotations

import html
import os
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from . import records, states
from .errors import JobJarError
from .layout import Jar
from .naming import printable

#: The plots' window: the last hours of finished jobs.
WINDOW_HOURS = 6
#: At most this many records are read for the plots (the newest of the window).
MAX_RECORDS = 2000
#: At most this many batches (the newest manifests) are looked at for progress.
MAX_BATCHES = 20
#: Columns of the time plots (one per minute bucket group).
BUCKETS = 72

CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;padding:1em;max-width:1400px;color:#222}
h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1em}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em .8em;overflow-x:auto}
table{border-collapse:collapse;width:100%}td,th{padding:.15em .5em;text-align:left;
border-bottom:1px solid #eee;white-space:nowrap}td.n,th.n{text-align:right}
.big{font-size:1.6em;font-weight:600}.muted{color:#777;font-size:.9em}
.bad{color:#b00020}.warn{color:#a60}svg{width:100%;height:auto;display:block}
.wide{grid-column:1/-1}.counts{grid-template-columns:repeat(auto-fit,minmax(110px,1fr))}
h1 span{word-break:break-all}
.bar{fill:#4a78b5}.line{fill:none;stroke:#4a78b5;stroke-width:2}.axis{stroke:#999}
svg text{font:11px system-ui,sans-serif;fill:#555}
"""


def esc(value: object) -> str:
    """Text from anyone's files, made safe for HTML: printable, then escaped (quotes too)."""
    return html.escape(printable(str(value)), quote=True)


def _parse_time(value: object) -> float | None:
    """A record's ISO time (``records.utc_iso``) as epoch seconds, or ``None``."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def recent_records(jar: Jar, now: float, hours: float = WINDOW_HOURS,
                   limit: int = MAX_RECORDS) -> list[dict]:
    """The newest records written in the last ``hours`` (at most ``limit``), newest first.

    One listing of ``results/`` and an ``lstat`` per entry: the mtime of a
    record is when its job finished (records are renamed into place).  Links
    and anything that is not a regular file are skipped; ``records.read``
    opens without following links, and a malformed record is skipped.
    """
    since = now - hours * 3600
    found: list[tuple[float, str]] = []
    try:
        with os.scandir(jar.results) as entries:
            for entry in entries:
                if not entry.name.endswith(".yaml") or entry.name.startswith("."):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if info.st_mtime >= since and (info.st_mode & 0o170000) == 0o100000:
                    found.append((info.st_mtime, entry.path))
    except OSError:
        return []
    found.sort(reverse=True)
    result = []
    for _, path in found[:limit]:
        record = records.read(Path(path))
        if isinstance(record, dict):
            result.append(record)
    return result


# -- plots: inline SVG, no script ------------------------------------------------


def bar_chart(values: list[float], labels: list[str], title: str, width: int = 600,
              height: int = 180) -> str:
    """Bars for ``values`` with a label under every few bars; one SVG element."""
    top = max(values, default=0) or 1
    n = max(len(values), 1)
    step = min((width - 40) / n, 40.0)  # a few bars stay bars, not slabs
    parts = [f'<svg viewBox="0 0 {width} {height + 30}" role="img" aria-label="{esc(title)}">',
             f'<title>{esc(title)}</title>',
             f'<line class="axis" x1="35" y1="{height}" x2="{width}" y2="{height}"/>',
             f'<text x="0" y="12">{_number(top)}</text>',
             f'<text x="0" y="{height}">0</text>']
    every = max(1, n // 8)
    for i, value in enumerate(values):
        bar = value / top * (height - 10)
        x = 38 + i * step
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{height - bar:.1f}" '
                     f'width="{max(step - 1, 1):.1f}" height="{bar:.1f}">'
                     f'<title>{esc(labels[i])}: {_number(value)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x:.1f}" y="{height + 14}">{esc(labels[i])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(values: list[float], labels: list[str], title: str, width: int = 600,
               height: int = 180) -> str:
    """A line through ``values`` (queue depth over time); one SVG element."""
    top = max(values, default=0) or 1
    n = max(len(values) - 1, 1)
    points = " ".join(f"{38 + i * (width - 40) / n:.1f},{height - v / top * (height - 10):.1f}"
                      for i, v in enumerate(values))
    every = max(1, len(values) // 8)
    ticks = "".join(f'<text x="{38 + i * (width - 40) / n:.1f}" y="{height + 14}">'
                    f'{esc(labels[i])}</text>' for i in range(0, len(values), every))
    return (f'<svg viewBox="0 0 {width} {height + 30}" role="img" aria-label="{esc(title)}">'
            f'<title>{esc(title)}</title>'
            f'<line class="axis" x1="35" y1="{height}" x2="{width}" y2="{height}"/>'
            f'<text x="0" y="12">{_number(top)}</text><text x="0" y="{height}">0</text>'
            f'<polyline class="line" points="{points}"/>{ticks}</svg>')


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def throughput(finished: list[float], now: float, hours: float) -> tuple[list[float], list[str]]:
    """Jobs finished per minute, in ``BUCKETS`` columns over the window."""
    span = hours * 3600 / BUCKETS
    start = now - hours * 3600
    counts = [0.0] * BUCKETS
    for moment in finished:
        index = int((moment - start) // span)
        if 0 <= index < BUCKETS:
            counts[index] += 1
    return [c / (span / 60) for c in counts], [_clock(start + i * span) for i in range(BUCKETS)]


def queue_depth(spans: list[tuple[float, float | None]], queued_since: list[float], now: float,
                hours: float) -> tuple[list[float], list[str]]:
    """Jobs waiting to start at each column's time: from the window's records
    (submitted, started) and the jobs still queued (their submission time)."""
    start = now - hours * 3600
    times = [start + (i + 1) * hours * 3600 / BUCKETS for i in range(BUCKETS)]
    depth = []
    for moment in times:
        waiting = sum(1 for sub, began in spans if sub <= moment and (began is None
                                                                     or began > moment))
        waiting += sum(1 for sub in queued_since if sub <= moment)
        depth.append(float(waiting))
    return depth, [_clock(t) for t in times]


def _clock(moment: float) -> str:
    return time.strftime("%H:%M", time.localtime(moment))


def run_times(recent: list[dict]) -> dict[str, list[float]]:
    """Run times (seconds) of the window's finished jobs, per category."""
    found: dict[str, list[float]] = defaultdict(list)
    for record in recent:
        duration = record.get("duration")
        if isinstance(duration, (int, float)) and not isinstance(duration, bool) \
                and 0 <= duration < 1e9:
            found[str(record.get("category") or "(uncategorized)")].append(float(duration))
    return found


def distribution_rows(found: dict[str, list[float]]) -> str:
    """One table row per category: count, min, quartiles, max, with a little box plot."""
    rows = []
    overall = max((max(v) for v in found.values() if v), default=0) or 1
    for category in sorted(found):
        values = sorted(found[category])
        q = [values[int(p * (len(values) - 1))] for p in (0, .25, .5, .75, 1)]
        scale = 200 / overall
        box = (f'<svg viewBox="0 0 210 16" style="width:210px"><line class="axis" '
               f'x1="{q[0] * scale + 5:.1f}" y1="8" x2="{q[4] * scale + 5:.1f}" y2="8"/>'
               f'<rect class="bar" x="{q[1] * scale + 5:.1f}" y="3" '
               f'width="{max((q[3] - q[1]) * scale, 1):.1f}" height="10"/>'
               f'<line x1="{q[2] * scale + 5:.1f}" y1="1" x2="{q[2] * scale + 5:.1f}" y2="15" '
               f'stroke="#000"/></svg>')
        rows.append(f"<tr><td>{esc(category)}</td><td class=n>{len(values)}</td>"
                    + "".join(f"<td class=n>{_seconds(v)}</td>" for v in q)
                    + f"<td>{box}</td></tr>")
    return "".join(rows)


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


# -- the page ---------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[object]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th{' class=n' if i in numeric else ''}>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>"
                                    f"{'-' if v is None else esc(v)}</td>"
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _counts_section(status: dict) -> str:
    jobs = status.get("jobs", {})
    cards = []
    for state in states.SHOWN:
        value = jobs.get(state)
        number = value.get("count", value.get("total")) if isinstance(value, dict) else (
            len(value) if isinstance(value, list) else value)
        cards.append(f'<div class="card"><div class="muted">{esc(state)}</div>'
                     f'<div class="big" id="count-{esc(state)}">{esc(number)}</div></div>')
    completed = jobs.get(states.COMPLETED)
    detail = ""
    if isinstance(completed, dict):
        detail = (f'<p class="muted">completed: <span id="succeeded">'
                  f'{esc(completed.get("succeeded"))}</span> succeeded, '
                  f'<span id="failed">{esc(completed.get("failed"))}</span> failed</p>')
    queued = jobs.get(states.UNCLAIMED, {})
    rows = [[name or "(uncategorized)", s.get("count"), s.get("min_priority"),
             s.get("max_priority")]
            for name, s in sorted((queued.get("categories") or {}).items()) if s.get("count")]
    table = _table(["category", "unclaimed", "lowest priority", "highest priority"], rows,
                   {1, 2, 3}) if rows else ""
    return (f'<h2>Jobs</h2><div class="grid counts">{"".join(cards)}</div>{detail}'
            f'<div class="card">{table or "no queued jobs"}</div>')


def _workers_section(status: dict) -> str:
    rows = []
    for worker in status.get("workers", []):
        job = worker.get("job")
        rows.append([worker.get("name"), worker.get("node"), worker.get("state"),
                     job if job else "(idle)", worker.get("heartbeat_age")])
    out = ['<h2>Workers</h2><div class="card">',
           _table(["worker", "node", "state", "job", "heartbeat age (s)"], rows, {4})
           if rows else "no workers", "</div>"]
    nodes = status.get("nodes")
    if isinstance(nodes, (list, dict)) and nodes:
        items = nodes.values() if isinstance(nodes, dict) else nodes
        node_rows = [[n.get("node"), n.get("workers"), n.get("running"), n.get("load1"),
                      n.get("cpus"), n.get("mem_available_kb"), n.get("mem_total_kb")]
                     for n in items if isinstance(n, dict)]
        out += ['<h2>Nodes</h2><div class="card">',
                _table(["node", "workers", "running", "load (1 min)", "CPUs",
                        "available memory (kB)", "memory (kB)"], node_rows, {1, 2, 3, 4, 5, 6}),
                "</div>"]
    for job in status.get("stranded", []):
        out.append(f'<p class="warn">STRANDED: {esc(job.get("job"))} (worker '
                   f'{esc(job.get("worker"))}; run recover_jobs)</p>')
    return "".join(out)


def _failures_section(status: dict) -> str:
    rows = [[f.get("name"), f.get("status"), f.get("finished"), f.get("reason") or ""]
            for f in status.get("recent_failures", []) if isinstance(f, dict)]
    rejected = [[r.get("name"), "rejected", "", r.get("reason") or ""]
                for r in (status.get("jobs", {}).get("rejected") or []) if isinstance(r, dict)]
    rows += rejected
    return ('<h2>Recent failures</h2><div class="card" id="failures">'
            + (_table(["job", "status", "finished", "reason"], rows) if rows else "none")
            + "</div>")


def batches_in_progress(jar: Jar, status: dict, recent: list[dict], now: float,
                        limit: int = MAX_BATCHES) -> list[dict]:
    """The newest batches (at most ``limit`` manifests, by mtime) with jobs still in the jar.

    Progress comes from the batch's jobs still in the jar (one listing of
    ``waiting/`` and ``unclaimed/``, and the workers' jobs): the rest have
    left it.  The estimated end extrapolates the batch's finishing rate over
    the window's records; ``None`` until two of its jobs have finished there.
    A manifest is anyone's file: it can only make the page show a wrong
    batch (its names are checked and escaped like any other).
    """
    from .directives import DirectiveError, check_job_name
    from .find import read_manifest
    from .layout import BATCHES, jobs_in

    try:
        with os.scandir(jar.home / BATCHES) as entries:
            manifests = sorted(((e.stat(follow_symlinks=False).st_mtime, e.name, e.path)
                                for e in entries if e.is_file(follow_symlinks=False)
                                and not e.name.startswith(".")), reverse=True)[:limit]
    except OSError:
        return []
    in_jar = {path.name for state in (states.WAITING, states.UNCLAIMED)
              for _, path in jobs_in(jar.state_dir(state))}
    in_jar |= {str(w.get("job")).rsplit("/", 1)[-1] for w in status.get("workers", [])
               if w.get("job")}
    finished: dict[str, list[float]] = defaultdict(list)
    for record in recent:
        moment = _parse_time(record.get("finished"))
        if isinstance(record.get("batch"), str) and moment:
            finished[record["batch"]].append(moment)
    found = []
    for _, batch, path in manifests:
        text = read_manifest(Path(path)) or ""
        names = []
        for line in dict.fromkeys(text.split("\n")):
            try:
                names.append(check_job_name(line))
            except DirectiveError:
                continue
        left = sum(1 for name in names if name in in_jar)
        if not names or not left:
            continue
        times = sorted(finished.get(batch, []))
        eta = None
        if len(times) >= 2 and times[-1] > times[0]:
            rate = (len(times) - 1) / (times[-1] - times[0])
            eta = records.utc_iso(max(now, times[-1]) + left / rate)
        found.append({"batch": batch, "total": len(names), "done": len(names) - left,
                      "left": left, "eta": eta})
    return found


def _batches_section(batches: list[dict]) -> str:
    if not batches:
        return ""
    rows = []
    for batch in batches:
        share = batch["done"] / batch["total"]
        bar = (f'<svg viewBox="0 0 100 10" style="width:120px"><rect x="0" y="1" width="100" '
               f'height="8" fill="#eee"/><rect class="bar" x="0" y="1" width="{share * 100:.1f}" '
               f'height="8"/></svg>')
        rows.append(f"<tr><td>{esc(batch['batch'])}</td><td class=n>{batch['done']}</td>"
                    f"<td class=n>{batch['total']}</td><td>{bar} {share:.0%}</td>"
                    f"<td>{esc(batch['eta'] or 'not yet known')}</td></tr>")
    return ('<h2>Batches in progress</h2><div class="card" id="batches"><table><thead><tr>'
            "<th>batch</th><th class=n>finished</th><th class=n>jobs</th><th>progress</th>"
            "<th>estimated end (UTC)</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></div>")


def _plots_section(jar: Jar, status: dict, recent: list[dict], now: float,
                   hours: float) -> str:
    finished = [t for t in (_parse_time(r.get("finished")) for r in recent) if t]
    per_minute, labels = throughput(finished, now, hours)
    spans = [(sub, _parse_time(r.get("started")) or _parse_time(r.get("finished")))
             for r in recent if (sub := _parse_time(r.get("submitted")))]
    depth, depth_labels = queue_depth(spans, _queued_since(jar, status), now, hours)
    per_node = Counter(str(r.get("node") or "(unknown)") for r in recent)
    nodes = sorted(per_node)
    note = (f'<p class="muted">Plots: the {len(recent)} newest records of the last {hours:g} '
            f'hours (at most {MAX_RECORDS}), read at {esc(_clock(now))}.</p>')
    return ("<h2>Activity</h2>" + note + '<div class="grid">'
            f'<div class="card"><b>Jobs finished per minute</b>'
            f'{bar_chart(per_minute, labels, "jobs finished per minute")}</div>'
            f'<div class="card"><b>Queue depth</b>'
            f'{line_chart(depth, depth_labels, "jobs waiting to start")}</div>'
            f'<div class="card"><b>Jobs per node</b>'
            f'{bar_chart([float(per_node[n]) for n in nodes], nodes, "jobs per node")}</div>'
            '<div class="card wide"><b>Run time per category</b><table><thead><tr><th>category</th>'
            '<th class=n>jobs</th><th class=n>min</th><th class=n>25%</th><th class=n>median'
            '</th><th class=n>75%</th><th class=n>max</th><th></th></tr></thead><tbody>'
            f'{distribution_rows(run_times(recent))}</tbody></table></div></div>')


def _queued_since(jar: Jar, status: dict) -> list[float]:
    """Submission times of the jobs still queued: their files' mtimes (one listing each)."""
    found = []
    for top, dirs, names in os.walk(jar.unclaimed):
        for name in names:
            if name.startswith("."):
                continue
            try:
                found.append(os.lstat(os.path.join(top, name)).st_mtime)
            except OSError:
                continue
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and not os.path.islink(os.path.join(top, d))]
    return found


def render(jar: Jar, status: dict, now: float | None = None,
           hours: float = WINDOW_HOURS) -> str:
    """The whole page as a string."""
    now = time.time() if now is None else now
    recent = recent_records(jar, now, hours)
    control = [name.upper() for name, on in (status.get("control") or {}).items() if on]
    banner = (f'<p class="bad">IN FORCE: {esc(", ".join(control))}</p>' if control else "")
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width,initial-scale=1">'
            "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">"
            f"<title>Job Jar: {esc(status.get('jar'))}</title><style>{CSS}</style></head><body>"
            f"<h1>Job Jar <span class=muted>{esc(status.get('jar'))}</span></h1>"
            f'<p class="muted">seen from node {esc(status.get("node"))} at '
            f'{esc(status.get("time"))}</p>{banner}'
            + _counts_section(status)
            + _batches_section(batches_in_progress(jar, status, recent, now))
            + _workers_section(status) + _failures_section(status)
            + _plots_section(jar, status, recent, now, hours) + "</body></html>\n")


def write_page(path: str | os.PathLike, hours: float = WINDOW_HOURS) -> Path:
    """Build the page for the configured jar and put it at ``path`` atomically."""
    from .files import token
    from .status import system_status

    status = system_status()
    jar = Jar.from_config()
    page = render(jar, status, hours=hours).encode("utf-8")
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{token()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(page)
        os.replace(temporary, target)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise JobJarError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target
