"""``list_jobs`` with real workers: every state, the claim order, every filter and format."""

from __future__ import annotations

import json
import os
import pwd

import pytest

from conftest import one_line_error, wait_for

#: The login that owns the files this test submits.
ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def gate(jar):
    """The file gated jobs wait for; created at the end whatever happens, so no job lingers."""
    path = jar.root / "gate"
    yield path
    path.touch()


def rows(jar, *args: str) -> list[dict]:
    return json.loads(jar.run("list_jobs", "--json", *args, check=True).stdout)


def test_the_listing_is_the_order_in_which_a_worker_claims(jar):
    log = jar.root / "ran"
    names = []
    for priority, word in ((0, "a"), (5, "b"), (-2, "c"), (5, "d"), (9, "e"), (0, "f")):
        names.append(jar.submit("-c", "order", "-p", str(priority), f"echo {word} >> {log}"))
        os.utime(jar.path("unclaimed", "order", names[-1]), ns=(0, len(names) * 10**9))
    listed = rows(jar, "-c", "order")
    assert [r["state"] for r in listed] == ["unclaimed"] * 6
    assert [r["priority"] for r in listed] == [9, 5, 5, 0, 0, -2]
    assert [r["command"] for r in listed] == [f"echo {w} >> {log}" for w in "ebdafc"]
    jar.start_worker("order")
    wait_for(lambda: len(jar.completed()) == 6, 60)
    assert log.read_text().split() == list("ebdafc")  # the listing said so beforehand
    assert rows(jar) == []
    assert jar.run("list_jobs", check=True).stdout.split() == \
        ["STATE", "NAME", "CATEGORY", "PRIORITY", "OWNER", "WORKER", "AGE", "COMMAND"]


def test_every_state_and_every_column(jar, gate):
    running = jar.submit("-c", "run", f"while [ ! -e {gate} ]; do sleep 0.05; done")
    waiting = jar.submit("-c", "run", "--after", running, "echo after")
    queued = jar.submit("-p", "3", "-c", "idle", "echo 'queued' && true")
    worker = jar.start_worker("run")
    wait_for(lambda: [r["name"] for r in rows(jar, "--state", "running")] == [running], 60)
    wait_for(lambda: [r["name"] for r in rows(jar, "--state", "waiting")] == [waiting], 60)
    listed = {r["name"]: r for r in rows(jar)}
    assert [r["state"] for r in rows(jar)] == ["running", "unclaimed", "waiting"]
    run = listed[running]
    assert run["worker"] == worker and run["node"] == worker.rsplit(".", 1)[0]
    assert run["category"] == "run" and run["age"] >= 0 and run["owner"] == ME
    assert run["command"].startswith("while [ ! -e ")
    assert listed[queued] | {"age": 0} == {
        "state": "unclaimed", "name": queued, "category": "idle", "priority": 3,
        "owner": ME, "node": None, "worker": None, "age": 0,
        "command": "echo 'queued' && true", "batch": None}
    assert listed[waiting]["command"] == "echo after"
    # --format chooses the columns, in its order, for text and JSON
    text = jar.run("list_jobs", "--format", "name,state", check=True).stdout.splitlines()
    assert text[0].split() == ["NAME", "STATE"]
    assert sorted(line.split()[0] for line in text[1:]) == sorted([running, waiting, queued])
    assert rows(jar, "--format", "name,age", "--state", "unclaimed")[0].keys() == {"name", "age"}
    # the text shows everything, printable, one line each
    text = jar.run("list_jobs", check=True).stdout
    assert worker in text and "echo after" in text and len(text.splitlines()) == 4
    gate.touch()
    wait_for(lambda: len(jar.completed()) == 2, 60)
    assert [(r["state"], r["name"]) for r in rows(jar)] == [("unclaimed", queued)]


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a file to another user (root)")
def test_filters(jar):
    mine = jar.submit("-c", "A", "true")
    other = jar.submit("-c", "B", "true")
    plain = jar.submit("true")
    by_hand = jar.submit_by_hand("hand.0", "#!/bin/sh\n#JJ --batch bat7\necho in a batch\n",
                                 "A")
    jar.path("batches").mkdir(exist_ok=True)
    jar.path("batches", "bat7").write_text("hand.0\n")  # its manifest, as submit_job writes it
    os.chown(jar.path("unclaimed", "B", other), 65534, 65534)  # nobody's file
    names = lambda *args: sorted(r["name"] for r in rows(jar, *args))  # noqa: E731
    assert names() == sorted([mine, other, plain, by_hand.name])
    assert names("--mine") == sorted([mine, plain, by_hand.name])
    assert names("-u", ME) == names("--mine")
    assert names("-u", "65534") == [other]
    assert names("-c", "A") == sorted([mine, by_hand.name])
    assert names("-c", "") == [plain]
    assert names("-c", "A", "--mine", "--state", "unclaimed") == sorted([mine, by_hand.name])
    assert names("--state", "waiting") == names("--state", "running") == []
    assert names("--batch", "bat7") == ["hand.0"]
    one_line_error(jar.run("list_jobs", "--batch", "nosuch8"), "no batch", status=1)
    outside = jar.root / "outside"  # a category that is a link: never listed through
    outside.mkdir()
    (outside / "x.0").write_text("#!/bin/sh\ntrue\n")
    os.symlink(outside, jar.path("unclaimed", "L"))
    assert names("-c", "L") == [] and "x.0" not in names()
    assert rows(jar, "--batch", "bat7")[0]["batch"] == "bat7"


def test_bad_input_is_one_line(jar):
    jar.submit("true")
    one_line_error(jar.run("list_jobs", "--state", "finished"), "unknown state 'finished'",
                   status=1)
    one_line_error(jar.run("list_jobs", "--format", "name,colour"), "unknown column 'colour'",
                   status=1)
    one_line_error(jar.run("list_jobs", "-u", "no-such-user-here"), "no such user", status=1)
    one_line_error(jar.run("list_jobs", "-c", "../x"), "category", status=1)
    one_line_error(jar.run("list_jobs", "--json", "--bogus"), status=2)
    for command in ("list_jobs", "job_history"):
        one_line_error(jar.run(command, env={"JJ_HOME": str(jar.root / "typo")}), "no jar at",
                       status=1)


def test_python_api(jar):
    import jobjar

    name = jobjar.submit_job("echo hi", priority=4, category="py")
    [row] = jobjar.list_jobs(category="py")
    assert (row.name, row.priority, row.command, row.state) == (name, 4, "echo hi", "unclaimed")
    with pytest.raises(jobjar.JobJarError, match="unknown state"):
        jobjar.list_jobs(state="done")


def test_names_and_commands_are_printable_and_odd_entries_skipped(jar):
    jar.submit_by_hand("evil\x1b[2J.0", "#!/bin/sh\necho \x1b[31mred\n", category="odd")
    os.symlink("/etc/passwd", jar.path("unclaimed", "odd", "link.0"))
    (jar.path("unclaimed", "odd") / ".partial").write_text("")
    os.mkfifo(jar.path("unclaimed", "odd", "fifo.0"))
    text = jar.run("list_jobs", "-c", "odd", check=True, timeout=30).stdout
    assert "\x1b" not in text and "evil\\x1b[2J.0" in text and "echo \\x1b[31mred" in text
    listed = {r["name"]: r["command"] for r in rows(jar, "-c", "odd")}
    assert listed == {"evil\x1b[2J.0": "echo \x1b[31mred", "link.0": None, "fifo.0": None}


#: Job files whose first command line is found in odd places: the listing's own pass
#: (``commands=True``, as the command reads them) must say what ``records.command_line`` says.
ODD_HEADS = {
    "plain.0": b"#!/bin/sh\n#JJ --priority 0\necho plain\n",
    "blanks.0": b"#!/bin/sh\n\n   \n\t# indented comment\n  \t echo indented  \n",
    "crlf.0": b"#!/bin/sh\r\n# c\r\necho crlf\r\n",
    "long.0": b"#!/bin/sh\necho " + b"x" * 300 + b"\n",
    "utf8.0": "#!/bin/sh\necho caf\u00e9 \u2603\n".encode(),
    "latin1.0": b"#!/bin/sh\necho caf\xe9\n",
    "binary.0": b"\x7fELF\x02\x01\x01\x00\x00\x00rest",
    "wrapped.0": b'#!/bin/sh\n#JJ --priority 0\nprog="$JJ_SCRATCH_DIR/.jj-binary"\ntail\n',
    "late.0": b"#!/bin/sh\n" + b"#JJ --after nothing\n" * 200 + b"echo after the directives\n",
    "boundary.0": b"#!/bin/sh\n" + b"#" * 2020 + b"\necho cut at the first read\n",
    "empty.0": b"",
    "comments.0": b"#!/bin/sh\n# nothing to run\n",
    "noshebang.0": b"echo no shebang\n",
    "exec.0": b"#!/bin/sh\nexec touch out/3\n",  # shown as typed, without the exec
    "lateexec.0": b"#!/bin/sh\n" + b"#JJ --after nothing\n" * 200 + b"exec touch out/4\n",
    "noeol.0": b"#!/bin/sh\nexec touch out/5",
}


def test_commands_read_in_the_listing_pass_are_the_records_commands(jar):
    from jobjar import records
    from jobjar.listing import list_jobs

    for name, head in ODD_HEADS.items():
        jar.submit_by_hand(name, "", category="odd").write_bytes(head)
    expected = {name: records.command_line(head[:16384]) for name, head in ODD_HEADS.items()}
    assert expected["late.0"] == "echo after the directives"  # (beyond the first read)
    eager = {r.name: r.command for r in list_jobs(category="odd", commands=True)}
    lazy = {r.name: r.command for r in list_jobs(category="odd")}
    assert eager == lazy == expected
    text = jar.run("list_jobs", "-c", "odd", check=True).stdout
    assert "echo caf\\xe9" in text and "echo plain" in text and "(binary)" in text


def test_a_job_is_running_from_its_claim_before_its_worker_links_it(jar):
    """A worker renames the job into its ``job/`` first and makes its ``claimed/`` link
    next: between the two (here held still, as a crash would) the job is running."""
    from jobjar.listing import list_jobs

    name = jar.submit("-c", "cat", "echo claimed")
    held = jar.workers_dir / "nodeA.4242" / "job" / "cat"
    held.mkdir(parents=True)
    os.rename(jar.path("unclaimed", "cat", name), held / name)  # the claim's rename
    [row] = list_jobs()
    assert (row.state, row.name, row.category, row.worker, row.node, row.command) == \
        ("running", name, "cat", "nodeA.4242", "nodeA", "echo claimed")
    assert 0 <= row.age < 600  # since the rename (the file's ctime), not since submission
    jar.path("claimed").mkdir(exist_ok=True)
    link = jar.path("claimed", "nodeA.4242")
    os.symlink(f"../workers/nodeA.4242/job/cat/{name}", link)
    os.utime(link, (0, 1000), follow_symlinks=False)  # the link says when it started
    [row] = list_jobs(state="running")
    assert row.age > 10**9 and rows(jar)[0]["worker"] == "nodeA.4242"
    # a link there is shown as a queued one is, never followed; a dot-file is no job
    os.symlink("/etc/passwd", held / "planted.0")
    (held / ".partial").write_text("")
    assert {r["name"]: r["command"] for r in rows(jar)} == {name: "echo claimed",
                                                             "planted.0": None}


def test_a_job_file_swapped_after_the_listing_is_never_followed_nor_waited_on(jar):
    """Commands are read after the listing (piece by piece): a file replaced meanwhile by a
    link or a fifo gives no command; it is never read through, never blocks."""
    from jobjar.listing import list_jobs

    for name in ("link.0", "fifo.0", "gone.0", "kept.0"):
        jar.submit_by_hand(name, f"#!/bin/sh\necho {name}\n", category="swap")
    listed = list_jobs(category="swap")
    where = jar.path("unclaimed", "swap")
    os.unlink(where / "link.0")
    os.symlink("/etc/passwd", where / "link.0")
    os.unlink(where / "fifo.0")
    os.mkfifo(where / "fifo.0")
    os.unlink(where / "gone.0")
    assert {r.name: r.command for r in listed} == {"link.0": None, "fifo.0": None,
                                                   "gone.0": None, "kept.0": "echo kept.0"}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs two real users (root)")
def test_a_worker_whose_job_directory_others_cannot_list_is_seen_through_its_link(team):
    """Running jobs are listed from workers' ``job/``; where a colleague may not list it
    (searchable, not readable), the worker's ``claimed/`` link still shows the job."""
    gate = team.root / "gate"
    try:
        submitted = team.run("ann", "submit_job", "-c", "priv",
                             f"while [ ! -e {gate} ]; do sleep 0.05; done")
        assert submitted.returncode == 0, submitted.stderr
        name = submitted.stdout.strip()
        worker = team.start_worker("ann", "priv")

        def running(who: str) -> list:
            out = team.run(who, "list_jobs", "--json", "--state", "running")
            assert out.returncode == 0, out.stderr
            return [(r["name"], r["worker"], r["owner"]) for r in json.loads(out.stdout)]

        wait_for(lambda: running("bob") == [(name, worker, team.names["ann"])], 60)
        held = team.home / "workers" / worker / "job"
        held.chmod(0o711)  # bob may pass through, not list
        assert running("bob") == [(name, worker, team.names["ann"])]
    finally:
        gate.touch()
