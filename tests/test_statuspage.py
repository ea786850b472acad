"""``system_status --html``: the static status page, checked in a real headless browser.

The browser test renders the page of a busy jar in Chromium (the
distribution's package, installed by ``.ci/run``), keeps a screenshot as a
test artefact (``tests/artefacts/``, not committed), and reads the DOM
Chromium built: the counts match ``system_status --json``, and a job whose
name is markup is text, not an element.  It skips loudly without Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, one_line_error

MARKUP = "<img src=x onerror=alert(1)>"
ARTEFACTS = ROOT / "tests" / "artefacts"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def browse(page: Path, *what: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``page`` (``--dump-dom`` or ``--screenshot=FILE``)."""
    profile = tempfile.mkdtemp(prefix="jj-chromium-")
    try:
        return subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", *what, page.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def busy_jar(jar) -> None:
    """Finished jobs (succeeded and failed, one named with markup), queued jobs left over."""
    for i in range(12):
        jar.submit("-c", "fast", f"exit {1 if i % 4 == 0 else 0}")
    jar.submit_by_hand(MARKUP, "#!/bin/sh\necho '<script>alert(2)</script>' >&2\nexit 3\n",
                       category="fast")
    jar.start_worker("fast")
    jar.wait_completed(13)
    jar.stop_all_workers()
    for _ in range(5):
        jar.submit("-c", "later", "true")
    jar.run("submit_job", "-c", "later", "--array", "1-8", "true", check=True)


def test_the_page_counts_match_the_json_and_markup_stays_text(jar):
    if chromium() is None:
        pytest.skip("BROWSER TEST SKIPPED: no Chromium here (apt-get install chromium)")
    busy_jar(jar)
    page = jar.root / "status.html"
    jar.run("system_status", "--html", str(page), check=True)
    status = json.loads(jar.run("system_status", "--json", check=True).stdout)

    ARTEFACTS.mkdir(exist_ok=True)
    shot = ARTEFACTS / "status-page.png"
    taken = browse(page, "--window-size=1280,1600", f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    phone = ARTEFACTS / "status-page-phone.png"
    browse(page, "--window-size=390,1600", f"--screenshot={phone}")

    dom = browse(page, "--dump-dom").stdout
    assert "</html>" in dom
    for state in ("unclaimed", "waiting", "running", "completed", "rejected"):
        value = status["jobs"][state]
        number = value.get("count", value.get("total")) if isinstance(value, dict) else (
            len(value) if isinstance(value, list) else value)
        shown = re.search(rf'id="count-{state}">([^<]*)<', dom)
        assert shown and shown.group(1) == str(number), (state, number)
    completed = status["jobs"]["completed"]
    assert re.search(rf'id="succeeded">{completed["succeeded"]}<', dom)
    assert re.search(rf'id="failed">{completed["failed"]}<', dom)
    batches = re.search(r'id="batches">(.*?)</div>', dom, re.S)
    assert batches and ">0</td><td class=\"n\">8</td>" in batches.group(1), batches
    # the markup is text in a cell, never an element; no script in the page at all
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert "<img" not in dom and "<script" not in dom.lower()


def test_the_page_is_written_atomically_and_says_its_window(jar):
    busy_jar(jar)
    page = jar.root / "status.html"
    page.write_text("old page")
    jar.run("system_status", "--html", str(page), check=True)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert re.search(r"the \d+ newest records of the last 6 hours", text)
    assert "http://" not in text and "https://" not in text  # nothing fetched
    assert not [n for n in os.listdir(jar.root) if n.startswith(".status.html")]
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and MARKUP not in text


def test_malformed_records_do_not_stop_the_page(jar):
    busy_jar(jar)
    results = jar.path("results")
    (results / "broken.yaml").write_text("status: [unclosed\n")
    (results / "list.yaml").write_text("- 1\n- 2\n")
    (results / "odd.yaml").write_text("name: odd\nduration: lots\nfinished: yesterday\n"
                                      "category: [1]\nnode: {a: 1}\n")
    os.mkfifo(results / "fifo.yaml")
    os.symlink("/etc/passwd", results / "link.yaml")
    page = jar.root / "status.html"
    jar.run("system_status", "--html", str(page), check=True)
    assert "</html>" in page.read_text()


def test_an_unwritable_page_is_one_line(jar):
    jar.submit("true")
    missing = jar.root / "no" / "such" / "dir" / "status.html"
    one_line_error(jar.run("system_status", "--html", str(missing)), "cannot write", status=1)


def test_install_cron_html_adds_its_own_line_which_writes_the_page(jar, tmp_path):
    jar.submit("true")
    tab, page = tmp_path / "tab", tmp_path / "www" / "status.html"
    page.parent.mkdir()
    tab.write_text("0 3 * * * /usr/bin/backup\n")

    def lines() -> list[str]:
        return [x for x in tab.read_text().splitlines() if x and not x.startswith("#")]

    jar.run("install_cron", "--file", str(tab), "--purge", "30d", check=True)
    jar.run("install_cron", "--file", str(tab), "--html", str(page), check=True)
    html = [x for x in lines() if "system_status" in x]
    assert len(html) == 1 and html[0].startswith("*/5 * * * * ") and "jobjar:html" in html[0]
    assert f"--html {page}" in html[0] and any("purge_jobs" in x for x in lines())
    jar.run("install_cron", "--file", str(tab), "--html", str(page), "--html-schedule",
            "*/10 * * * *", check=True)
    html = [x for x in lines() if "system_status" in x]
    assert len(html) == 1 and html[0].startswith("*/10 * * * * ")
    jar.run("install_cron", "--file", str(tab), check=True)  # without --html: the line stays
    assert [x for x in lines() if "system_status" in x] == html
    assert len(lines()) == 5  # backup, worker, recover, purge, html
    # the line as cron would run it (its own PATH and settings) writes the page
    command = html[0].split(" ", 5)[5].rsplit(" #", 1)[0]
    subprocess.run(["sh", "-c", command], env={"HOME": str(jar.root / "home")}, check=True,
                   timeout=120)
    assert page.read_text().rstrip().endswith("</html>")
    one_line_error(jar.run("install_cron", "--file", str(tab), "--html-schedule", "@daily"),
                   "--html", status=2)
    jar.run("install_cron", "--file", str(tab), "--remove", check=True)
    assert lines() == ["0 3 * * * /usr/bin/backup"]
