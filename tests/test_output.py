"""Captured output: default files in the jar, -o/-e paths, and a worker whose
memory stays flat however much a job prints."""

from __future__ import annotations

import os
import shutil
import time

import psutil

from conftest import wait_for


def test_output_of_a_huge_printer_keeps_the_worker_flat(jar):
    name = jar.submit("head -c 100000000 /dev/zero | tr '\\0' x; echo err >&2")
    worker = jar.start_worker()
    proc = psutil.Process(int(worker.rsplit(".", 1)[1]))
    out, err = jar.path("output", f"{name}.out"), jar.path("output", f"{name}.err")
    # where it prints until it ends: output/.W.TOKEN.out, a new file of this job alone
    fresh = wait_for(lambda: [p for p in jar.path("output").glob(f".{worker}.*.out")],
                     message="the job's own hidden output file")[0]
    peak, samples_while_printing = 0, 0
    while not jar.completed():
        peak = max(peak, proc.memory_info().rss)
        try:
            if 0 < fresh.stat().st_size < 100_000_000:
                samples_while_printing += 1
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    assert out.stat().st_size == 100_000_000 and err.read_text() == "err\n"
    assert samples_while_printing > 0  # we did watch the worker while the job printed
    assert peak < 60 * 1024 * 1024, peak
    assert jar.record(name)["stdout"] == str(out) and jar.record(name)["stderr"] == str(err)


def test_output_and_error_paths(jar, tmp_path):
    (tmp_path / "sub").mkdir()
    name = jar.submit("-o", str(tmp_path / "o.txt"), "-e", str(tmp_path / "sub" / "e.txt"),
                      "echo out; echo err >&2")
    jar.start_worker()
    jar.wait_completed(1)
    assert (tmp_path / "o.txt").read_text() == "out\n"
    assert (tmp_path / "sub" / "e.txt").read_text() == "err\n"
    record = jar.record(name)
    assert record["stdout"] == str(tmp_path / "o.txt")
    assert record["stderr"] == str(tmp_path / "sub" / "e.txt")
    assert not jar.path("output", f"{name}.out").exists()


def test_relative_output_path_is_relative_to_the_submitter(jar, tmp_path):
    result = jar.run("submit_job", "-o", "rel.txt", "echo here", check=True)
    name = result.stdout.strip()
    jar.start_worker()
    jar.wait_completed(1)
    expected = os.path.join(os.getcwd(), "rel.txt")
    try:
        assert jar.record(name)["stdout"] == expected
        assert open(expected).read() == "here\n"
    finally:
        if os.path.exists(expected):
            os.unlink(expected)


def test_unwritable_output_path_fails_the_job_not_the_worker(jar, tmp_path):
    name = jar.submit("-o", str(tmp_path / "missing-dir" / "o.txt"), "echo out")
    jar.start_worker()
    wait_for(lambda: jar.record(name) and jar.record(name)["status"] == "failed")
    assert "cannot start the job" in jar.record(name)["reason"]
    follow = jar.submit("echo next")
    wait_for(lambda: jar.record(follow) and jar.record(follow)["status"] == "succeeded")


def test_relative_paths_in_a_hand_made_file_go_to_the_output_directory(jar):
    jar.submit_by_hand("hand.0", "#!/bin/sh\n#JJ -o mine.out --error=sub/mine.err\n"
                       "echo out\n")
    jar.path("output").mkdir(exist_ok=True)
    jar.path("output", "sub").mkdir()
    jar.start_worker()
    wait_for(lambda: jar.record("hand.0") and jar.record("hand.0")["status"] == "succeeded")
    assert jar.path("output", "mine.out").read_text() == "out\n"
    assert jar.record("hand.0")["stderr"] == str(jar.path("output", "sub", "mine.err"))
    assert jar.path("output", "sub", "mine.err").exists()


def test_a_binary_with_options_is_wrapped(jar, tmp_path):
    binary = tmp_path / "echo-binary"
    shutil.copy(shutil.which("echo") or "/bin/echo", binary)
    binary.chmod(0o755)
    name = jar.submit("-f", str(binary), "--timeout", "30", "-e", str(tmp_path / "e.txt"))
    text = jar.path("unclaimed", name).read_bytes()
    assert text.startswith(b"#!/bin/sh\n#JJ --timeout 30\n")
    jar.start_worker()
    jar.wait_completed(1)
    record = jar.record(name)
    assert record["status"] == "succeeded", record
    assert jar.path("output", f"{name}.out").read_text() == "\n"  # echo with no arguments


def test_silent_streams_leave_no_files(jar):
    """Output that stays empty is not kept: the record says null, output/ gets no file."""
    quiet = jar.submit("true")
    loud = jar.submit("echo only-err >&2")
    worker = jar.start_worker()
    jar.wait_completed(2)
    assert jar.record(quiet)["stdout"] is None and jar.record(quiet)["stderr"] is None
    assert jar.record(loud)["stdout"] is None
    assert jar.record(loud)["stderr"] == str(jar.path("output", f"{loud}.err"))
    assert jar.path("output", f"{loud}.err").read_text() == "only-err\n"
    visible = sorted(n for n in os.listdir(jar.path("output")) if not n.startswith("."))
    assert visible == [f"{loud}.err"]
    # each job's hidden output files are renamed to its name, or kept empty for the
    # worker's next job (at most one per stream), and removed when the worker stops
    hidden = [n for n in os.listdir(jar.path("output")) if n.startswith(f".{worker}.")]
    assert len(hidden) <= 2 and all(jar.path("output", n).stat().st_size == 0 for n in hidden)
    jar.stop_all_workers()
    assert not [n for n in os.listdir(jar.path("output")) if n.startswith(f".{worker}.")]


def test_late_output_of_a_lingering_child_stays_with_its_job(jar, tmp_path):
    """A job's background child that prints after the job ended writes under the job's name."""
    go = tmp_path / "go"
    first = jar.submit(f"(while [ ! -e {go} ]; do sleep 0.05; done; echo late) &")
    second = jar.submit("echo second")
    jar.start_worker()
    jar.wait_completed(2)
    go.touch()
    out = jar.path("output", f"{first}.out")
    wait_for(lambda: out.exists() and out.read_text() == "late\n", 10,
             message="the child's late output")
    assert jar.record(first)["stdout"] == str(out)
    assert jar.path("output", f"{second}.out").read_text() == "second\n"


def test_output_and_error_in_one_file(jar, tmp_path):
    """``-o F -e F``: one file, opened once, both streams in the order they were written."""
    both = tmp_path / "both.txt"
    name = jar.submit("-o", str(both), "-e", str(both),
                      "echo AAAAAAAAAA; echo b >&2; echo CCC; echo d >&2")
    jar.start_worker()
    jar.wait_completed(1)
    assert both.read_text() == "AAAAAAAAAA\nb\nCCC\nd\n"
    assert jar.record(name)["stdout"] == jar.record(name)["stderr"] == str(both)
