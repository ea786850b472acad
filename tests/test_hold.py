"""hold_category / release_category and daily windows, with real workers.

A worker claims its categories before uncategorized jobs, so "the
uncategorized job finished while the category's job is still queued" proves
the category was skipped, with no waiting for something not to happen.
"""

from __future__ import annotations

import json
import time

import pytest

from jobjar import hold
from jobjar.errors import JobJarError

from conftest import one_line_error, wait_for


def queued(jar, category: str) -> list[str]:
    try:
        return [p.name for p in jar.path("unclaimed", category).iterdir()]
    except FileNotFoundError:
        return []


def skipped_while(jar, category: str, job: str) -> None:
    """Submit an uncategorized job; when it has finished, ``job`` of ``category`` is queued."""
    done = len(jar.completed()) + 1
    other = jar.submit("true")
    wait_for(lambda: other in jar.completed() and len(jar.completed()) >= done,
             message="the uncategorized job")
    assert job in queued(jar, category), f"{job} of held category {category} was claimed"


def window_around(now_offset: int, length: int) -> str:
    """A window starting ``now_offset`` minutes from now, ``length`` minutes long."""
    start = (hold.minute_now() + now_offset) % 1440
    end = (start + length) % 1440
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def test_held_category_is_not_claimed_and_a_released_one_is(jar):
    # held before the category has a job, and before any worker starts
    result = jar.run("hold_category", "night", check=True)
    assert result.stdout.strip() == "hold: night"
    night = jar.submit("-c", "night", "true")
    jar.start_worker("night")
    skipped_while(jar, "night", night)
    status = json.loads(jar.run("system_status", "--json", check=True).stdout)
    assert status["holds"] == {"night": {"window": None, "held": True, "problem": None}}
    assert "HELD: category night" in jar.run("system_status", check=True).stdout
    assert jar.run("release_category", "night", check=True).stdout.strip() == "release: night"
    wait_for(lambda: night in jar.completed(), message="the released job")
    assert json.loads(jar.run("system_status", "--json", check=True).stdout)["holds"] == {}
    # releasing what is not held is no error
    assert jar.run("release_category", "night").returncode == 0


def test_a_window_opens_and_closes(jar):
    closed = window_around(-10, 9)  # ended a minute ago
    jar.run("hold_category", "night", "--window", closed, check=True)
    first = jar.submit("-c", "night", "true")
    worker = jar.start_worker("night")
    skipped_while(jar, "night", first)
    status = json.loads(jar.run("system_status", "--json", check=True).stdout)
    assert status["holds"]["night"] == {"window": closed, "held": True, "problem": None}
    # the window now includes the present: the job is claimed
    opened = window_around(-1, 10)
    jar.run("hold_category", "night", "--window", opened, check=True)
    wait_for(lambda: first in jar.completed(), message="the job inside its window")
    text = jar.run("system_status", check=True).stdout
    assert f"hold: category night open now (window {opened})" in text
    # and closes again: once the worker's reading of held/ has expired, nothing more is taken
    jar.run("hold_category", "night", "--window", closed, check=True)
    time.sleep(hold.TTL + 0.2)  # a bound of the worker's cache, not a hope
    second = jar.submit("-c", "night", "true")
    skipped_while(jar, "night", second)
    log = (jar.workers_dir / worker / "log").read_text()
    assert f"claim {second}" not in log
    assert log.count("category night held") == 2 and log.count("category night released") == 1


def test_windows_wrap_midnight():
    night = hold.parse_window("18:00-08:00")
    assert night == (18 * 60, 8 * 60)
    assert hold.in_window(night, 23 * 60) and hold.in_window(night, 0)
    assert hold.in_window(night, 18 * 60) and not hold.in_window(night, 8 * 60)
    assert not hold.in_window(night, 12 * 60)
    day = hold.parse_window(" 08:30-17:00 ")
    assert hold.in_window(day, 9 * 60) and not hold.in_window(day, 17 * 60)
    assert not hold.in_window(day, 8 * 60 + 29)


def test_malformed_hold_files_hold_and_never_crash_the_worker(jar):
    held = jar.workers_dir / "held"
    held.mkdir(parents=True)
    (held / "night").write_text("after dinner\n")
    (held / "linked").symlink_to("/etc/passwd")  # never read through
    (held / "dir").mkdir()
    night = jar.submit("-c", "night", "true")
    linked = jar.submit("-c", "linked", "true")
    inside = jar.submit("-c", "dir", "true")
    worker = jar.start_worker("night", "linked", "dir")
    for category, job in (("night", night), ("linked", linked), ("dir", inside)):
        skipped_while(jar, category, job)
    log = (jar.workers_dir / worker / "log").read_text()
    assert "hold file of category night is malformed" in log
    assert "hold file of category linked is malformed" in log
    assert "root:" not in log
    status = json.loads(jar.run("system_status", "--json", check=True).stdout)
    assert {name: h["held"] for name, h in status["holds"].items()} == \
        {"night": True, "linked": True, "dir": True}
    assert "malformed hold file" in jar.run("system_status", check=True).stdout
    assert jar.run("release_category", "night", "linked", "dir", check=True).returncode == 0
    for job in (night, linked, inside):
        wait_for(lambda job=job: job in jar.completed(), message=f"{job} once released")
    assert "/etc/passwd" not in str(list(held.iterdir()))


@pytest.mark.parametrize("window", ["8-18", "18:00", "24:00-08:00", "18:60-08:00",
                                    "18:00-08:00x", "10:00-10:00", ""])
def test_bad_windows_change_nothing(jar, window):
    result = jar.run("hold_category", "night", "--window", window)
    one_line_error(result, "window", status=1)
    assert not (jar.workers_dir / "held").exists()
    with pytest.raises(JobJarError, match="window"):
        hold.hold_category("night", window=window)
    assert not (jar.workers_dir / "held").exists()


def test_bad_categories_change_nothing(jar):
    one_line_error(jar.run("hold_category", "good", "../evil"), "category", status=1)
    one_line_error(jar.run("hold_category"), status=2)
    one_line_error(jar.run("release_category", ".hidden"), "category", status=1)
    assert not (jar.workers_dir / "held").exists()


def test_python_api_matches_the_commands(jar):
    import jobjar

    assert jobjar.hold_category("night", "weekend", window="18:00-08:00") == ["night", "weekend"]
    assert (jar.workers_dir / "held" / "night").read_text() == "18:00-08:00\n"
    assert jobjar.hold_category("night") == ["night"]
    assert (jar.workers_dir / "held" / "night").read_text() == ""
    assert jobjar.release_category("night", "weekend") == ["night", "weekend"]
    assert list((jar.workers_dir / "held").iterdir()) == []
