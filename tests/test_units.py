"""Unit tests of the pure parts, beside the process-level tests.

No worker processes: each test calls one module directly on a temporary
directory and takes a few milliseconds.  They pin down rules the other
tests only reach through processes (the claim order, priorities in names,
directives written and read back, array specifications, the shape of every
kind of record, the link-safe file helpers, the one walker of a state
directory), and one check of the documentation: every crash point in the
package is described in ``docs/protocol.md`` and exercised by
``tests/test_crash.py``.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import pytest

from jobjar import directives, files, layout, naming, records, states, submit
from jobjar.claim import QueueView
from jobjar.errors import JobJarError

from conftest import ROOT

# -- claim order -----------------------------------------------------------------------------


def _queue(tmp_path: Path, jobs: dict[str, float]) -> tuple[QueueView, Path]:
    """A queue directory holding ``jobs`` (name -> mtime), and where claims go."""
    queue, dest = tmp_path / "unclaimed", tmp_path / "job"
    queue.mkdir()
    dest.mkdir()
    for name, mtime in jobs.items():
        (queue / name).write_text("#!/bin/sh\n")
        os.utime(queue / name, (mtime, mtime))
    return QueueView(queue), dest


def _claim_all(view: QueueView, dest: Path) -> list[str]:
    order = []
    while (got := view.claim(dest)) is not None:
        assert got.parent == dest and got.exists()
        order.append(got.name)
    return order


def test_queue_claims_highest_priority_then_oldest_then_lowest_name(tmp_path):
    base = time.time() - 1000
    view, dest = _queue(tmp_path, {
        "low.-5": base, "plain": base + 1, "zeta.0": base + 2, "alpha.0": base + 2,
        "old.3": base + 10, "new.3": base + 20, "top.100": base + 30, "sh.sh": base - 1})
    assert _claim_all(view, dest) == ["top.100", "old.3", "new.3", "sh.sh", "plain",
                                      "alpha.0", "zeta.0", "low.-5"]
    assert os.listdir(tmp_path / "unclaimed") == []


def test_queue_orders_by_mtime_not_by_name_within_a_priority(tmp_path):
    base = time.time() - 1000
    names = [f"j{i:02d}.1" for i in range(12)]
    mtimes = {name: base + (len(names) - i) for i, name in enumerate(names)}  # newest first
    view, dest = _queue(tmp_path, mtimes)
    assert _claim_all(view, dest) == list(reversed(names))


def test_queue_never_claims_dot_files_or_category_directories(tmp_path):
    view, dest = _queue(tmp_path, {".partial.9": 1.0, "job.0": 2.0})
    (tmp_path / "unclaimed" / "CAT").mkdir()
    view.skip_dirs = True
    assert _claim_all(view, dest) == ["job.0"]
    assert sorted(os.listdir(tmp_path / "unclaimed")) == [".partial.9", "CAT"]


def test_queue_sees_jobs_added_after_the_first_listing(tmp_path):
    view, dest = _queue(tmp_path, {"first.0": 1.0})
    assert view.claim(dest).name == "first.0"
    (tmp_path / "unclaimed" / "later.0").write_text("#!/bin/sh\n")
    view.add("later.0")
    assert view.claim(dest).name == "later.0"
    assert view.claim(dest) is None


def test_queue_skips_a_job_someone_else_took(tmp_path):
    view, dest = _queue(tmp_path, {"a.9": 1.0, "b.1": 2.0})
    view.refresh(force=True)
    os.unlink(tmp_path / "unclaimed" / "a.9")  # another worker won the rename
    assert _claim_all(view, dest) == ["b.1"]


def test_queue_that_is_a_link_yields_nothing(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.0").write_text("#!/bin/sh\n")
    (tmp_path / "dest").mkdir()
    (tmp_path / "linked").symlink_to(outside)
    view = QueueView(tmp_path / "linked")
    assert view.claim(tmp_path / "dest") is None
    assert os.listdir(outside) == ["victim.0"]


# -- priorities in names ---------------------------------------------------------------------


@pytest.mark.parametrize("name,priority", [
    ("standalone_job.15", 15), ("job.-3", -3), ("job.0", 0), ("job.-0", 0), ("job", 0),
    ("job.sh", 0), ("job.", 0), ("job.-", 0), ("job.+3", 0), ("job.1e3", 0), ("job.1.5", 5),
    ("job. 3", 0), ("job.3 ", 0), ("job.\u0663", 0), ("job.\u00b2", 0), (".15", 0), ("", 0),
    ("job.1000000000", 10**9), ("job.1000000001", 10**9), ("job.-1000000001", -10**9),
    ("job.99999999999", 10**9), ("job.-99999999999", -10**9), ("job." + "9" * 5000, 10**9),
    ("job.-" + "9" * 5000, -10**9), ("job.007", 7),
])
def test_priority_of(name, priority):
    assert naming.priority_of(name) == priority
    assert type(naming.priority_of(name)) is int


# -- directives --------------------------------------------------------------------------------


def _script(options: directives.Directives) -> bytes:
    return ("#!/bin/sh\n" + "".join(line + "\n" for line in directives.render(options))
            + "echo hi\n#JJ --retries 99\n").encode()


@pytest.mark.parametrize("options", [
    directives.Directives(),
    directives.Directives(timeout=3600.0),
    directives.Directives(timeout=0.25, retries=3),
    directives.Directives(timeout=1e-3),
    directives.Directives(timeout=12345.678, retries=10**9),
    directives.Directives(after=["a.0"], after_any=["b.1", "c.-2"]),
    directives.Directives(after=[f"dep{i}.{i}" for i in range(50)]),
    directives.Directives(output="/tmp/with space/it's \"quoted\".out", error="rel/err $HOME"),
    directives.Directives(output="--looks-like-a-flag", error="=x"),
    directives.Directives(output="caf\u00e9/\u00fcber.out", array_index=0),
    directives.Directives(array_index=41, retries=1, timeout=7.0,
                          after=["20261123T101500_000000Z-ann-rain-4242-1.0"]),
])
def test_directives_render_then_parse_gives_the_same_options(options):
    assert directives.parse(_script(options)) == options


def test_directives_later_lines_win_and_dependency_lists_add_up():
    head = (b"#!/bin/sh\n#JJ --retries 1 --after a.0\n# a comment\n\n"
            b"#JJ --retries=2 --after b.0,c.0 --after-any d.0\ntrue\n#JJ --timeout 5\n")
    parsed = directives.parse(head)
    assert parsed == directives.Directives(retries=2, after=["a.0", "b.0", "c.0"],
                                           after_any=["d.0"])


def test_directives_need_a_shebang():
    assert directives.parse(b"#JJ --retries x\n") == directives.Directives()


@pytest.mark.parametrize("line", [
    "--retries --5", "--retries \u00b2", "--retries \u0663", "--retries -1", "--retries x",
    "--retries 1.5", "--retries ''", "--retries 1000000001", "--array-index -2",
    "--array-index --0", "--timeout 0", "--timeout -1", "--timeout nan", "--timeout inf",
    "--timeout 1e300", "--timeout x", "--timeout ''", "--after .hidden", "--after a/b",
    "--after ,", "--output ../escape", "--error a/../../escape", "--output ''", "--bogus 1",
    "--timeout", "--output 'unbalanced", "-x 1",
])
def test_directives_reject_bad_values_with_a_directive_error(line):
    with pytest.raises(directives.DirectiveError):
        directives.parse(f"#!/bin/sh\n#JJ {line}\ntrue\n".encode())


@pytest.mark.parametrize("name,value", [
    ("retries", "--5"), ("retries", "\u00b2"), ("retries", True), ("retries", -1),
    ("retries", 2.5), ("retries", None), ("array_index", "-0-"), ("timeout", True),
    ("timeout", "nan"), ("timeout", float("inf")), ("timeout", None), ("after", []),
    ("after", ["a\nb"]), ("output", ""), ("output", "a\x00b"), ("nonsense", 1),
])
def test_directive_check_refuses_bad_values_from_the_api(name, value):
    with pytest.raises(directives.DirectiveError):
        directives.check(name, value)


# -- array specifications ------------------------------------------------------------------


@pytest.mark.parametrize("spec,expected", [
    ("1-100", range(1, 101)), ("0-10:5", range(0, 11, 5)), ("7", range(7, 8)),
    ("3-3", range(3, 4)), (" 1-4:2 ", range(1, 5, 2)), ("0-0", range(0, 1)),
    ("0-999999", range(0, 1_000_000)), ("1-2000000:2", range(1, 2_000_001, 2)),
])
def test_parse_array(spec, expected):
    assert submit.parse_array(spec) == expected


@pytest.mark.parametrize("spec", [
    "", "-", "a-b", "1-", "-1", "5-1", "1-10:0", "1-10:-1", "1-10:x", "1.5-3", "1-3-5",
    "0-1000000", "0-" + "9" * 30, "1-2000001:2", "1:2:3",
])
def test_parse_array_refuses_bad_specs(spec):
    with pytest.raises(JobJarError):
        submit.parse_array(spec)


# -- records -------------------------------------------------------------------------------

_TEXT = (str, type(None))
#: The type every record field may have, whatever built the record.
FIELD_TYPES = {
    "name": (str,), "category": _TEXT, "priority": (int,), "submitter": _TEXT, "node": _TEXT,
    "worker": _TEXT, "submitted": _TEXT, "claimed": _TEXT, "started": _TEXT,
    "finished": _TEXT, "duration": (int, float, type(None)), "exit_code": (int, type(None)),
    "signal": (int, type(None)), "status": _TEXT, "reason": _TEXT, "attempt": (int,),
    "retries": (int,), "recoveries": (int,), "stdout": _TEXT, "stderr": _TEXT,
    "attempts": (list,), "max_rss_kb": (int, type(None)),
    "cpu_user_s": (int, float, type(None)), "cpu_system_s": (int, float, type(None)),
    "command": _TEXT,
}
FIELD_TYPES["batch"] = _TEXT  # the batch of an --array or --from-file job


def _check_shape(record: dict) -> None:
    assert tuple(record) == records.FIELDS
    for field, value in record.items():
        assert isinstance(value, FIELD_TYPES[field]) and not isinstance(value, bool), \
            (field, value)
    for field in ("attempt", "retries", "recoveries"):
        assert record[field] >= 0, (field, record[field])
    assert all(isinstance(entry, dict) for entry in record["attempts"])


@pytest.fixture
def job_file(tmp_path) -> Path:
    path = tmp_path / "job.5"
    path.write_text("#!/bin/sh\n")
    return path


#: What a forger may leave in a record that a constructor reads back.
FORGED = {"name": ["x"], "submitted": 5, "submitter": {"a": 1}, "attempt": "x",
          "recoveries": "x", "retries": -3, "attempts": "nope", "node": 7, "worker": None,
          "claimed": 1.5, "started": [], "stdout": 3, "stderr": True, "status": "retrying"}


def test_blank_has_every_field():
    record = records.blank("n.0", None, 0)
    _check_shape(record)
    assert record["status"] is None and record["attempts"] == []


def test_attempt_and_finish_attempt_have_every_field(job_file):
    record = records.attempt("job.5", "cat", 5, job_file, "node.1", "node", time.time(), {},
                             "output/job.5.out", None)
    _check_shape(record)
    assert record["attempt"] == 1 and record["submitter"] and record["submitted"]
    started = time.time()
    done = records.finish_attempt(record, states.SUCCEEDED, None, started, started + 1.5, 0,
                                  None, retry=False, usage=(2048, 0.25, 0.125))
    _check_shape(done)
    assert done["status"] == states.SUCCEEDED and done["duration"] == 1.5
    assert (done["max_rss_kb"], done["cpu_user_s"], done["cpu_system_s"]) == (2048, 0.25, 0.125)
    assert [a["status"] for a in done["attempts"]] == [states.SUCCEEDED]


def test_finish_attempt_of_a_retry_and_of_a_job_that_never_started(job_file):
    record = records.attempt("job.5", None, 5, job_file, "n.1", "n", time.time(), {}, None, None)
    now = time.time()
    retry = records.finish_attempt(record, states.FAILED, None, now, now, 3, None, retry=True)
    _check_shape(retry)
    assert retry["status"] == states.PENDING and retry["attempts"][-1]["status"] == "failed"
    record = records.attempt("job.5", None, 5, job_file, "n.1", "n", now, {}, None, None)
    unstarted = records.finish_attempt(record, states.CANCELLED, "cancelled", None, now, None,
                                       None, retry=False)
    _check_shape(unstarted)
    assert unstarted["attempts"] == [] and unstarted["finished"]


def test_attempt_carries_over_only_well_typed_values_of_a_retrying_record(job_file, tmp_path):
    path = tmp_path / "job.5.yaml"
    records.write(path, FORGED)
    prior = records.carried_over(path)
    record = records.attempt("job.5", None, 5, job_file, "n.1", "n", time.time(), prior,
                             None, None)
    _check_shape(record)
    assert record["attempt"] == 1 and record["recoveries"] == 0
    records.write(path, {**FORGED, "status": states.SUCCEEDED})
    assert records.carried_over(path) == {}


@pytest.mark.parametrize("prior", [None, {}, FORGED, {"attempts": [1, "x", {"ok": 1}]},
                                   {"recoveries": 2, "attempt": 1, "submitted": "yesterday"}])
def test_lost_has_every_field_whatever_the_old_record_says(job_file, prior):
    record = records.lost(job_file, "cat", 5, "node.42", "its worker died", prior, time.time())
    _check_shape(record)
    assert record["status"] == states.PENDING and record["worker"] == "node.42"
    assert record["attempts"][-1]["status"] == "lost"
    assert record["recoveries"] == records.count((prior or {}).get("recoveries")) + 1


@pytest.mark.parametrize("prior", [None, {}, records.carried_over(Path("/nonexistent"))])
def test_never_ran_has_every_field(job_file, prior):
    record = records.never_ran(job_file, None, 5, states.DEPENDENCY_FAILED, "a.0 failed",
                               time.time(), prior)
    _check_shape(record)
    assert record["status"] == states.DEPENDENCY_FAILED and record["finished"]


def test_never_ran_of_a_vanished_file_still_has_every_field(tmp_path):
    record = records.never_ran(tmp_path / "gone.0", None, 0, states.REJECTED, "gone", 0.0)
    _check_shape(record)



def test_lost_and_never_ran_records_name_the_command_as_a_workers_do(tmp_path):
    job = tmp_path / "job.0"
    job.write_text("#!/bin/sh\n#JJ --priority 0\n\n  make -j4 all  \nexit 0\n")
    never = records.never_ran(job, None, 0, states.CANCELLED, "cancelled", time.time())
    assert never["command"] == "make -j4 all"
    lost = records.lost(job, None, 0, "node.42", "its worker died", None, time.time())
    assert lost["command"] == "make -j4 all"  # no earlier record: from the file
    prior = {"command": "what the worker recorded", "status": states.PENDING}
    assert records.lost(job, None, 0, "n.1", "died", prior, 0.0)["command"] == \
        "what the worker recorded"
    assert records.lost(job, None, 0, "n.1", "died", {"command": ["x"]}, 0.0)["command"] == \
        "make -j4 all"  # a forged value is not trusted
    gone, link = tmp_path / "gone.0", tmp_path / "link.0"
    link.symlink_to(job)  # never read through a link
    for path in (gone, link):
        assert records.never_ran(path, None, 0, states.REJECTED, "x", 0.0)["command"] is None
        assert records.lost(path, None, 0, "n.1", "died", None, 0.0)["command"] is None

@pytest.mark.parametrize("value,expected", [
    (0, 0), (7, 7), ("7", 7), ("0007", 7), (10**9 - 1, 10**9 - 1), (10**9, 0), (-5, 0),
    ("-5", 0), ("x", 0), ("", 0), (None, 0), (True, 0), (False, 0), (3.0, 0), (1e300, 0),
    (float("nan"), 0), ("\u00b2", 0), ("\u0663", 0), ("9" * 5000, 0), ([1], 0), ({"a": 1}, 0),
    (" 7", 0),
])
def test_count_of_forged_values(value, expected):
    assert records.count(value) == expected
    assert type(records.count(value)) is int


@pytest.mark.parametrize("name", [
    "plain.0", "caf\u00e9.0", b"caf\xe9-\xff.0".decode("utf-8", "surrogateescape"),
    "new\nline.0", 'quote"and\\back.0', "esc\x1b[2J.0", "tab\tx.0", "\u2028sep.0", "nel\x85.0",
    "key: value.0", "- dash.0", "null", "true", "123",
])
def test_record_write_then_read_gives_it_back(tmp_path, name):
    record = records.blank(name, "c\u00e4t", -3)
    record.update(status="failed", reason=f"line one\nline two: {name}", duration=0.125,
                  exit_code=3, attempts=[{"attempt": 1, "status": "failed", "note": name}])
    path = tmp_path / "r.yaml"
    records.write(path, record)
    assert records.read(path) == record
    assert [p.name for p in tmp_path.iterdir()] == ["r.yaml"]  # no temporary left behind


def test_read_of_a_hand_edited_record_uses_yaml(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: x.0\nstatus: succeeded\nrecoveries: 2\n")
    assert records.read(path) == {"name": "x.0", "status": "succeeded", "recoveries": 2}
    for garbage in ("- a\n- b\n", ": : :\n", "\xff\xfe", "[unclosed\n"):
        path.write_text(garbage, encoding="latin-1")
        assert records.read(path) is None or isinstance(records.read(path), dict)


# -- link-safe file helpers ------------------------------------------------------------------


def test_write_new_replaces_a_planted_link_and_leaves_its_target(tmp_path):
    target = tmp_path / "victim"
    target.write_bytes(b"precious\n")
    planted = tmp_path / "dir" / "record.yaml"
    planted.parent.mkdir()
    planted.symlink_to(target)
    files.write_new(planted, b"new data\n")
    assert not planted.is_symlink() and planted.read_bytes() == b"new data\n"
    assert target.read_bytes() == b"precious\n"
    assert os.listdir(planted.parent) == ["record.yaml"]


def test_write_new_through_a_dangling_link_creates_nothing_at_its_target(tmp_path):
    planted = tmp_path / "out"
    planted.symlink_to(tmp_path / "elsewhere")
    files.write_new(planted, b"x")
    assert not (tmp_path / "elsewhere").exists() and planted.read_bytes() == b"x"


def test_write_new_uses_a_fresh_unpredictable_temporary_name(tmp_path, monkeypatch):
    seen = []
    real_open = os.open

    def spy(path, flags, mode=0o777, **kwargs):
        seen.append((os.path.basename(path), flags))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    files.write_new(tmp_path / "a", b"1")
    files.write_new(tmp_path / "a", b"2")
    (first, flags), (second, _) = seen
    assert first != second and first.startswith(".") and flags & os.O_EXCL
    assert flags & os.O_NOFOLLOW


def test_remove_tree_of_a_link_to_a_directory_removes_only_the_link(tmp_path):
    home = tmp_path / "home"
    (home / "scratch").mkdir(parents=True)
    (home / "scratch" / "thesis.tex").write_text("years of work")
    link = tmp_path / "workers" / "node.1"
    link.parent.mkdir()
    link.symlink_to(home)
    assert files.remove_tree(link)
    assert not os.path.lexists(link)
    assert (home / "scratch" / "thesis.tex").read_text() == "years of work"


def test_remove_tree_does_not_follow_links_inside_the_tree(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "out").symlink_to(outside)
    (tree / "file").write_text("x")
    assert files.remove_tree(tree)
    assert not tree.exists() and (outside / "keep").read_text() == "keep"
    assert not files.remove_tree(tree)  # nothing there: nothing removed


@pytest.mark.parametrize("parent_mode", [0o2770, 0o2775, 0o755, 0o700, 0o777])
@pytest.mark.parametrize("umask", [0o077, 0o022, 0o002, 0o000])
def test_make_dir_copies_the_parents_mode_whatever_the_umask(tmp_path, parent_mode, umask):
    parent = tmp_path / "unclaimed"
    parent.mkdir()
    parent.chmod(parent_mode)
    old = os.umask(umask)
    try:
        files.make_dir(parent / "CAT" / "SUB")
    finally:
        os.umask(old)
    for made in (parent / "CAT", parent / "CAT" / "SUB"):
        assert files.is_real_dir(made)
        mode = stat.S_IMODE(os.lstat(made).st_mode)
        assert mode == parent_mode, (oct(mode), oct(parent_mode), oct(umask))


def test_make_dir_leaves_an_existing_directory_and_refuses_a_link_or_file(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o700)
    existing.chmod(0o700)
    files.make_dir(existing)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o700
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "file").write_text("")
    for bad in ("link", "file"):
        with pytest.raises(FileExistsError):
            files.make_dir(tmp_path / bad)
    assert os.listdir(tmp_path / "elsewhere") == []


def test_unlink_and_is_real_dir(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to(tmp_path / "d")
    assert files.is_real_dir(tmp_path / "d") and not files.is_real_dir(tmp_path / "l")
    assert not files.is_real_dir(tmp_path / "missing")
    assert files.unlink(tmp_path / "l") and not files.unlink(tmp_path / "l")
    assert files.is_real_dir(tmp_path / "d")
    assert files.token() != files.token()


# -- the jar's names -------------------------------------------------------------------------


def test_jobs_in_walks_one_level_of_categories(tmp_path):
    top = tmp_path / "waiting"
    (top / "CAT" / "nested").mkdir(parents=True)
    (top / "EMPTY").mkdir()
    for path in ("a.0", ".partial", "CAT/b.1", "CAT/.tmp", "CAT/nested/deep.0"):
        (top / path).write_text("")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "theirs.0").write_text("")
    (top / "LINKED").symlink_to(outside)
    found = sorted((cat or "", str(path.relative_to(top))) for cat, path in layout.jobs_in(top))
    assert found == [("", "LINKED"), ("", "a.0"), ("CAT", "CAT/b.1"), ("CAT", "CAT/nested")]


def test_jobs_in_a_missing_or_unreadable_directory_is_empty(tmp_path):
    assert layout.jobs_in(tmp_path / "missing") == []
    (tmp_path / "file").write_text("")
    assert layout.jobs_in(tmp_path / "file") == []


def test_held_category_of_a_category_named_job(tmp_path):
    worker = tmp_path / "workers" / "job.12"
    assert layout.held_category(worker, worker / "job" / "job" / "x.0") == "job"
    assert layout.held_category(worker, worker / "job" / "x.0") is None
    assert layout.held_category(worker, worker / "job" / "CAT" / "x.0") == "CAT"
    for category in (None, "job", "CAT"):
        held = layout.held_path(worker, category, "n.0")
        assert layout.held_category(worker, held) == category


def test_held_job_ignores_a_link_at_job(tmp_path):
    worker = tmp_path / "node.1"
    worker.mkdir()
    outside = tmp_path / "outside"
    (outside / "A").mkdir(parents=True)
    (outside / "A" / "x.0").write_text("")
    (worker / "job").symlink_to(outside)
    assert layout.held_job(worker) is None
    (worker / "job").unlink()
    (worker / "job" / "A").mkdir(parents=True)
    (worker / "job" / "A" / "x.0").write_text("")
    assert layout.held_job(worker) == ("A", worker / "job" / "A" / "x.0")


def test_workers_lists_only_real_worker_directories(tmp_path):
    home = tmp_path / "workers"
    home.mkdir()
    for name in ("node.1", "notes.old", ".hidden.3", "n.o.d.e.22"):
        (home / name).mkdir()
    (home / "file.5").write_text("")
    (home / "link.6").symlink_to(tmp_path)
    jar = layout.Jar(tmp_path / "jar", home)
    assert jar.workers() == ["n.o.d.e.22", "node.1"]


@pytest.mark.parametrize("text,shown", [
    ("plain name.0", "plain name.0"), ("caf\u00e9", "caf\u00e9"), ("a\nb", "a\\nb"),
    ("\x1b[2J", "\\x1b[2J"), ("tab\there", "tab\\there"), ("cr\r", "cr\\r"),
    ("nul\x00", "nul\\x00"), ("del\x7f", "del\\x7f"), ("c1\x85\x9b", "c1\\x85\\x9b"),
    (b"caf\xe9".decode("utf-8", "surrogateescape"), "caf\\xe9"), (None, "None"), (42, "42"),
])
def test_printable_escapes_control_characters(text, shown):
    assert naming.printable(text) == shown
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", naming.printable(text))
    naming.printable(text).encode("utf-8")


def test_states_and_final_directories():
    assert states.final_state(states.REJECTED) == states.REJECTED
    for status in states.FINAL:
        if status != states.REJECTED:
            assert states.final_state(status) == states.COMPLETED
    assert states.PENDING not in states.FINAL
    assert set(states.IN_JAR) | set(states.LEFT) <= set(states.STATES)


def test_every_state_is_shown_found_and_made():
    """``SHOWN``, the state directories and the status take their states from ``STATES``."""
    assert sorted(states.SHOWN) == sorted(states.STATES)
    assert states.SHOWN[0] == states.UNCLAIMED and states.SHOWN[-1] == states.LIMBO
    assert set(states.DIRECTORIES) == set(states.STATES) - {states.RUNNING}
    assert set(states.DIRECTORIES) <= set(layout.STATE_DIRS)
    assert set(layout.STATE_DIRS) - set(states.DIRECTORIES) == {"claimed", "cancel", "results",
                                                               "output", "nodes"}


# -- crash points: documented and tested -----------------------------------------------------

_HIT = re.compile(r"faults\.hit\(\s*(.*?)\s*\)")


def crash_points() -> dict[str, str]:
    """Every ``faults.hit("NAME")`` in the package: NAME -> the file it is in."""
    points = {}
    for path in sorted((ROOT / "jobjar").rglob("*.py")):
        for argument in _HIT.findall(path.read_text(encoding="utf-8")):
            literal = re.fullmatch(r"""(["'])([a-z0-9-]+)\1""", argument)
            assert literal, f"{path.name}: faults.hit({argument}) must name its point literally"
            points[literal.group(2)] = path.name
    return points


def test_every_crash_point_is_documented_and_tested():
    points = crash_points()
    assert len(points) >= 13, points  # the worker's, submit's and recovery's
    protocol = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    crash_tests = (ROOT / "tests" / "test_crash.py").read_text(encoding="utf-8")
    undocumented = [p for p in points if f"[{p}]" not in protocol and f"`{p}`" not in protocol]
    untested = [p for p in points if f'"{p}"' not in crash_tests]
    assert not undocumented, f"crash points missing from docs/protocol.md: {undocumented}"
    assert not untested, f"crash points without a test in tests/test_crash.py: {untested}"


def test_command_line_of_a_job_file():
    line = records.command_line
    assert line(b"#!/bin/sh\n#JJ --retries 2\nsimulate --seed 3\nmore\n") == "simulate --seed 3"
    assert line(b"#!/bin/bash\n\n  # note\n  run  \n") == "run"
    assert line(b"#!/bin/sh\n# only comments\n") is None and line(b"") is None
    assert line(b"\x7fELF\x02\x01\x00\x00") == "(binary)"
    assert line(b'#!/bin/sh\nprog="$JJ_SCRATCH_DIR/.jj-binary"\ntail\n') == "(binary)"
    assert line(b"#!/bin/sh\necho \xff\n") == "echo \\xff"
    long = line(b"#!/bin/sh\n" + b"x" * 500 + b"\n")
    assert len(long) == records.COMMAND_CHARS and long.endswith("...")


def test_status_of_reads_only_the_status_line(tmp_path):
    path = tmp_path / "r.yaml"
    for text, status in (('name: "a"\nstatus: "failed"\nreason: null\n', "failed"),
                         ('status: "retrying"\nstatus: "succeeded"\n', "succeeded"),
                         ("status: failed\nname: [1\n", None), ("name: 1\n", None),
                         ("status: succeeded\n", "succeeded"), ('status: [1, 2]\n', [1, 2])):
        path.write_text(text)
        assert records.status_of(path) == status, text
        whole = records.read(path)
        assert (whole or {}).get("status") == status, text
