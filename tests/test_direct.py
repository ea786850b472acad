"""A simple command: written with ``exec``, started by the worker without a shell."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobjar import direct, execute


@pytest.mark.parametrize("command, words", [
    ("touch out/f1", ["touch", "out/f1"]),
    ("  ./sim --seed=7 -n 3\t", ["./sim", "--seed=7", "-n", "3"]),
    ("/usr/bin/env A=1 prog", ["/usr/bin/env", "A=1", "prog"]),
    ("echo $HOME", None), ("ls *.txt", None), ("cat ~/x", None), ("a; b", None),
    ("a > f", None), ("a 'b c'", None), ('a "b"', None), ("a\nb", None), ("a\\ b", None),
    ("cd /tmp", None), ("exit 3", None), ("true", None), ("if", None), ("A=1 prog", None),
    ("exec prog", None), ("-x prog", None), ("a | b", None), ("a && b", None), ("a &", None),
    ("", None),
])
def test_which_command_lines_are_simple(command, words):
    assert direct.words_of(command) == words
    assert direct.script_line(command) == ("exec " + " ".join(words) if words else command)


@pytest.mark.parametrize("content, argv", [
    (b"#!/bin/sh\nexec touch x\n", ["touch", "x"]),
    (b"#!/bin/sh\n#JJ --timeout 10\n#JJ --retries 2\nexec a b\n\n", ["a", "b"]),
    (b"#!/bin/sh\ntouch x\n", None),                  # no exec: a user's own script
    (b"#!/bin/sh\nexec a\nexec b\n", None),           # two commands
    (b"#!/bin/sh\nexec a\n# a comment after\n", None),
    (b"#!/bin/bash\nexec a\n", None),                 # another interpreter
    (b"#!/bin/sh\nexec a $X\n", None),                # expansion
    (b"#!/bin/sh\nexec cd /\n", None),                # a builtin
    (b"#!/bin/sh\nexec \xff\n", None),
    (b"exec a\n", None),
])
def test_which_job_files_run_without_the_shell(content, argv):
    assert direct.argv_of(content) == argv


def test_a_program_is_found_as_the_shell_finds_it(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "prog").write_text("not executable")  # skipped, as by the shell
    (second / "prog").write_text("#!/bin/sh\n")
    (second / "prog").chmod(0o755)
    (first / "dir").mkdir()
    path = f"{first}:{second}"
    assert direct.program("prog", path) == f"{second}/prog"
    assert direct.program("dir", path) is None
    assert direct.program("missing", path) is None
    assert direct.program("./rel/prog", path) == "./rel/prog"
    assert direct.program("prog", f":{second}") is None  # "." first: left to the shell
    assert direct.program("prog", None) is None
    # Remembered, as by a shell's hash table; searched for again once it is gone.
    (first / "prog").chmod(0o755)
    assert direct.program("prog", path) == f"{second}/prog"
    (second / "prog").unlink()
    assert direct.program("prog", path) == f"{first}/prog"


def _spawn(tmp_path: Path, job_text: str, argv: list[str] | None) -> str:
    job = tmp_path / "job"
    job.write_text(job_text)
    job.chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    out, err = tmp_path / "out", tmp_path / "err"
    for stale in (out, err):
        stale.unlink(missing_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = execute.spawn(job, scratch, env, execute.Stream(str(out), True, False),
                         execute.Stream(str(err), True, False), direct=argv)
    assert proc.wait(30) == 0
    return out.read_text()


def test_the_worker_starts_the_program_itself_and_falls_back_to_the_file(tmp_path):
    """The program, not the file, runs when it can be found; else the file, exactly once."""
    job = "#!/bin/sh\necho from-the-file >> count\necho from-the-file\n"
    assert _spawn(tmp_path, job, ["echo", "from", "the", "program"]) == "from the program\n"
    assert not (tmp_path / "scratch" / "count").exists()
    assert _spawn(tmp_path, job, ["no-such-program-anywhere"]) == "from-the-file\n"
    assert _spawn(tmp_path, job, [str(tmp_path)]) == "from-the-file\n"  # a directory: EACCES
    assert (tmp_path / "scratch" / "count").read_text() == "from-the-file\n" * 2


def test_submitted_simple_commands_run_and_record_as_typed(jar):
    out = jar.root / "touched"
    names = [jar.submit("touch", str(out)),
             jar.submit("/bin/echo", "a", "b"),
             jar.submit("no-such-program-xyz", "arg"),
             jar.submit("exit", "3"),
             jar.submit("echo", "$JJ_JOB_NAME", ">", str(jar.root / "redirected"))]
    assert jar.path("unclaimed", names[0]).read_text().splitlines()[-1] == f"exec touch {out}"
    assert jar.path("unclaimed", names[3]).read_text().splitlines()[-1] == "exit 3"
    jar.start_worker()
    jar.wait_completed(len(names))
    assert out.exists()
    touched, echoed, missing, exited, redirected = (jar.record(n) for n in names)
    assert touched["status"] == "succeeded" and touched["command"] == f"touch {out}"
    assert jar.path("output", f"{names[1]}.out").read_text() == "a b\n"
    assert missing["status"] == "failed" and missing["exit_code"] == 127
    assert "not found" in jar.path("output", f"{names[2]}.err").read_text()
    assert exited["status"] == "failed" and exited["exit_code"] == 3
    assert redirected["status"] == "succeeded"
    assert (jar.root / "redirected").read_text() == f"{names[4]}\n"


@pytest.mark.parametrize("line, shown", [
    (b"exec touch x", b"touch x"), (b"exec ./a -n 3", b"./a -n 3"),
    (b"exec\ttouch  x", b"touch  x"),
    (b"exec cd /", b"exec cd /"), (b"exec A=1 b", b"exec A=1 b"), (b"exec -x a", b"exec -x a"),
    (b"exec a $B", b"exec a $B"), (b"execute x", b"execute x"), (b"touch x", b"touch x"),
])
def test_records_and_listings_show_a_simple_command_as_typed(line, shown):
    """What ``records.command_line`` and ``list_jobs``'s fast path show: one function."""
    from jobjar import records

    assert direct.as_typed(line) == shown
    assert records.command_line(b"#!/bin/sh\n#JJ --batch b1\n" + line + b"\n") == shown.decode()


def test_list_jobs_shows_a_queued_simple_command_as_typed(jar):
    name = jar.submit("touch", str(jar.root / "x"))
    assert jar.path("unclaimed", name).read_text().endswith(f"exec touch {jar.root / 'x'}\n")
    listed = jar.run("list_jobs", "--format", "name,command", check=True).stdout
    assert f"touch {jar.root / 'x'}" in listed and "exec" not in listed
