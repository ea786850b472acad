"""``list_jobs`` reading every job file in the listing's pass, and sharing it with a child.

When the command (or batch) column is wanted, each job file is opened and read
in the listing's own pass (its ``fstat`` giving the claim order's times), and
from ``listing.FORK_AT`` files on a forked child reads half of them.  These
tests lower that threshold in-process, so a few dozen files take the forked
path, and check that its rows are the serial path's and the lazy path's, that
planted links and fifos are never followed or waited on, and that a child
that fails in any way costs nothing but time (and is always reaped).
"""

from __future__ import annotations

import contextlib
import io
import marshal
import os
import signal

import pytest
from test_list import ODD_HEADS

#: How many plain jobs each test writes (besides the odd ones).
MANY = 60


def fill(jar, category: str = "many") -> None:
    """MANY plain jobs, the odd heads, and entries no listing may read through."""
    for i in range(MANY):
        jar.submit_by_hand(f"job{i:03d}.{i % 3}", f"#!/bin/sh\n#JJ --batch b{i % 2}\necho {i}\n",
                           category=category)
    for name, head in ODD_HEADS.items():
        jar.submit_by_hand(name, "", category=category).write_bytes(head)
    where = jar.path("unclaimed", category)
    os.symlink("/etc/passwd", where / "link.0")
    os.mkfifo(where / "fifo.0")
    (where / ".partial").write_text("#!/bin/sh\necho hidden\n")
    os.mkdir(where / "subdir.0")  # (a directory inside a category is no job)


def snapshot(rows) -> list[tuple]:
    return [(r.state, r.name, r.category, r.priority, r.uid, r.mtime_ns, r.command, r.batch)
            for r in rows]


@pytest.fixture
def forked(jar, monkeypatch, tmp_path):
    """The forked reader for anything over 4 files; yields where each child notes its pid."""
    from jobjar import listing

    marks = tmp_path / "children"
    marks.mkdir()
    real = listing._child

    def noting(fd, names, priorities, out):  # runs in the child
        (marks / str(os.getpid())).write_text(str(len(names)))
        real(fd, names, priorities, out)

    monkeypatch.setattr(listing, "FORK_AT", 4)
    monkeypatch.setattr(listing, "_child", noting)
    monkeypatch.setattr(listing, "_may_fork", lambda: True)  # (even on one CPU)
    yield marks


def reaped(marks) -> list[int]:
    """The pids of the children that ran, each checked to be gone (waited for)."""
    pids = [int(p.name) for p in marks.iterdir()]
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return pids


def test_the_forked_reader_gives_the_serial_rows_and_the_lazy_ones(jar, forked, monkeypatch):
    from jobjar import listing
    from jobjar.listing import list_jobs

    fill(jar)
    shared = snapshot(list_jobs(commands=True))
    assert len(reaped(forked)) == 1  # (one directory over the threshold: one child)
    total = MANY + len(ODD_HEADS)  # (the regular files: the link and the fifo are not read)
    assert [p.read_text() for p in forked.iterdir()] == [str(total - total * listing.SHARE // 100)]
    monkeypatch.setattr(listing, "FORK_AT", 10**9)
    serial = snapshot(list_jobs(commands=True))
    lazy = snapshot(list_jobs())
    assert shared == serial == lazy
    listed = {row[1]: row for row in shared}
    assert listed["link.0"][6] is None and listed["fifo.0"][6] is None
    assert ".partial" not in listed and "subdir.0" not in listed
    assert listed["job007.1"][6:] == ("echo 7", "b1") and listed["job007.1"][3] == 1
    assert len(shared) == MANY + len(ODD_HEADS) + 2
    assert [n for n in listed if n.startswith("job")][:3] == ["job002.2", "job005.2", "job008.2"]


def test_the_command_table_is_the_same_either_way(jar, forked):
    """``bin/list_jobs`` (serial here: its threshold is far above) prints what the forked
    reader's rows give, column for column."""
    from jobjar.cli.listing import print_table
    from jobjar.listing import DEFAULT_COLUMNS, column_values, list_jobs

    fill(jar)
    text = jar.run("list_jobs", "--format", "name,priority,command,batch", check=True).stdout
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_table(("name", "priority", "command", "batch"), list_jobs(commands=True),
                    column_values)
    assert out.getvalue() == text and "echo 59" in text
    assert "command" in DEFAULT_COLUMNS and reaped(forked)


def _raises(fd, names, priorities, out):
    try:
        raise RuntimeError("the child fails")
    finally:
        os._exit(1)


def _killed(fd, names, priorities, out):
    os.kill(os.getpid(), signal.SIGKILL)


def _silent(fd, names, priorities, out):
    os._exit(0)  # exits "well" having written nothing


def _garbled(fd, names, priorities, out):
    os.write(out, marshal.dumps((len(names), [("not", "a", "row")]))[:-3])
    os._exit(0)


def _miscounted(fd, names, priorities, out):
    os.write(out, marshal.dumps((1, [])))
    os._exit(0)


@pytest.mark.parametrize("failure", [_raises, _killed, _silent, _garbled, _miscounted])
def test_a_child_that_fails_costs_time_only(jar, monkeypatch, tmp_path, failure):
    from jobjar import listing
    from jobjar.listing import list_jobs

    fill(jar)
    serial = snapshot(list_jobs(commands=True))
    marks = tmp_path / "failed"
    marks.mkdir()

    def failing(fd, names, priorities, out):
        (marks / str(os.getpid())).write_text("")
        failure(fd, names, priorities, out)

    monkeypatch.setattr(listing, "FORK_AT", 4)
    monkeypatch.setattr(listing, "_may_fork", lambda: True)
    monkeypatch.setattr(listing, "_child", failing)
    assert snapshot(list_jobs(commands=True)) == serial
    assert len(reaped(marks)) == 1


def test_the_reader_never_follows_a_link_nor_waits_on_a_fifo_it_was_told_is_a_job(jar, forked):
    """Between the listing and the ``open`` an entry may be swapped: the reader is handed
    such names as regular files, and still gives them no command, opens nothing through
    a link, never blocks on the fifo (one with no writer, one whose writer holds it open)."""
    from jobjar import listing

    fill(jar, "swap")
    where = jar.path("unclaimed", "swap")
    os.mkfifo(where / "held.0")
    writer = os.open(where / "held.0", os.O_RDWR)  # a writer that never writes
    fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = sorted(n for n in os.listdir(where) if n[0] != "." and n != "subdir.0")
        found = {t[2]: t for t in listing._shared_read(fd, names, {})}
    finally:
        os.close(fd)
        os.close(writer)
    assert reaped(forked)
    for name in ("link.0", "fifo.0", "held.0"):
        negative, _ns, _name, uid, _m, _c, command, head = found[name]
        assert (command, head, uid) == (None, None, os.lstat(where / name).st_uid)
    assert found["job003.0"][6:] == ("echo 3", b"#!/bin/sh\n#JJ --batch b1\necho 3\n")
    os.unlink(where / "job004.1")  # gone before the read: left out, no error
    fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert "job004.1" not in {t[2] for t in listing._shared_read(fd, names, {})}
    finally:
        os.close(fd)


def test_reading_a_job_for_the_listing_leaves_its_access_time(jar):
    """``O_NOATIME``: a listing is no access (and the first read of a fresh file would
    otherwise write its inode back)."""
    from jobjar.listing import list_jobs

    path = jar.submit_by_hand("fresh.0", "#!/bin/sh\necho fresh\n", category="t")
    before = os.stat(path)
    os.utime(path, ns=(before.st_mtime_ns - 10**9, before.st_mtime_ns))  # atime < mtime
    [row] = list_jobs(category="t", commands=True)
    assert row.command == "echo fresh"
    assert os.stat(path).st_atime_ns == before.st_mtime_ns - 10**9


@pytest.mark.skipif(os.geteuid() != 0, reason="needs two real users (root)")
def test_a_colleagues_jobs_are_read_without_noatime_and_unreadable_ones_listed(team):
    """``O_NOATIME`` is refused on another user's file (EPERM): the reader drops it and
    reads on; a file the reader may not read is listed, with no command; both paths."""
    ann_jobs = []
    for i in range(6):
        done = team.run("ann", "submit_job", "-c", "mix", f"echo ann{i}")
        assert done.returncode == 0, done.stderr
        ann_jobs.append(done.stdout.strip())
    secret = team.run("ann", "submit_job", "-c", "mix", "echo secret")
    assert secret.returncode == 0, secret.stderr
    os.chmod(team.home / "unclaimed" / "mix" / secret.stdout.strip(), 0o700)
    for i in range(6):
        assert team.run("bob", "submit_job", "-c", "mix", f"echo bob{i}").returncode == 0
    read, write = os.pipe()  # (what bob saw, told through a pipe: bob may write nowhere)

    def as_bob(threshold: int) -> None:
        from jobjar import listing
        from jobjar.layout import Jar

        listing.FORK_AT = threshold
        listing._may_fork = lambda: True
        rows = listing.list_jobs(category="mix", commands=True, jar=Jar(team.home))
        os.write(write, repr(sorted((r.command or "-") for r in rows)).encode())

    expected = repr(sorted([f"echo ann{i}" for i in range(6)] + ["-"]
                           + [f"echo bob{i}" for i in range(6)]))
    try:
        for threshold in (10**9, 4):
            team.as_user("bob", as_bob, threshold)
            assert os.read(read, 65536).decode() == expected
    finally:
        os.close(read)
        os.close(write)


def test_a_column_of_one_value_is_padded_as_any_other(jar):
    """The table makes a column holding one value (the usual state, owner, worker) once:
    its cells still line up under their heading, and stay printable."""
    for i in range(3):
        jar.submit_by_hand(f"j{i}.0", f"#!/bin/sh\necho {i}\n", category="a-long-category\x1b")
    lines = jar.run("list_jobs", "--format", "state,category,worker,name,command",
                    check=True).stdout.splitlines()
    assert lines[0].split() == ["STATE", "CATEGORY", "WORKER", "NAME", "COMMAND"]
    at = lines[0].index("NAME")
    assert lines[0].index("WORKER") == len("unclaimed  a-long-category\\x1b  ")
    for i, line in enumerate(lines[1:]):
        assert line == f"unclaimed  a-long-category\\x1b  -       j{i}.0  echo {i}"
        assert line.index(f"j{i}.0") == at


def test_a_program_that_ignores_sigchld_still_gets_every_row(jar, forked):
    """With ``SIGCHLD`` ignored the system reaps the child itself and ``waitpid`` finds
    none: its share is read again, not lost, and nothing fails."""
    from jobjar import listing
    from jobjar.listing import list_jobs

    fill(jar)
    before = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        shared = snapshot(list_jobs(commands=True))
    finally:
        signal.signal(signal.SIGCHLD, before)
    assert reaped(forked)
    listing.FORK_AT = 10**9  # (the fixture puts it back)
    assert shared == snapshot(list_jobs(commands=True))
    assert len(shared) == MANY + len(ODD_HEADS) + 2
