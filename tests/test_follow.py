"""Live output: ``job_info`` says where a running job writes, ``job_info --follow`` shows it
as it is written (and nothing of another job's), ``submit_job --wait`` returns the job's status."""

from __future__ import annotations

import io
import os
import select
import subprocess
import time

import pytest

from conftest import BIN, one_line_error, wait_for


class Watched:
    """A command started in the background, its output read as it comes."""

    def __init__(self, jar, *argv: str, env: dict | None = None, cwd: str | None = None,
                 proc: subprocess.Popen | None = None) -> None:
        """``BIN/argv[0] argv[1:]`` in ``jar``'s environment (or ``proc``, started already)."""
        self.proc = proc or subprocess.Popen([str(BIN / argv[0]), *argv[1:]],
                                             env={**jar.env, **(env or {})},
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             cwd=cwd)
        self.out = b""
        self.err = b""

    def pump(self, timeout: float) -> None:
        """Read what is there (waiting at most ``timeout`` for something)."""
        streams = [s for s in (self.proc.stdout, self.proc.stderr) if not s.closed]
        ready, _, _ = select.select(streams, [], [], timeout)
        for stream in ready:
            data = os.read(stream.fileno(), 65536)
            if stream is self.proc.stdout:
                self.out += data
            else:
                self.err += data

    def until(self, condition, timeout: float = 60, message: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"timed out waiting for {message}: {self.out!r} {self.err!r}")
            self.pump(0.1)

    def finish(self, timeout: float = 60) -> int:
        out, err = self.proc.communicate(timeout=timeout)
        self.out += out
        self.err += err
        return self.proc.returncode


def gated(tmp_path, before: str, after: str, status: int = 0) -> str:
    """A command that prints ``before``, waits for the file ``go``, then prints ``after``."""
    go = tmp_path / "go"
    return (f"echo {before}; echo {before}-err >&2; while [ ! -e {go} ]; do sleep 0.05; done; "
            f"echo {after}; echo {after}-err >&2; exit {status}")


def test_follow_shows_lines_before_the_job_ends(jar, tmp_path):
    name = jar.submit(gated(tmp_path, "first", "second"))
    jar.start_worker()
    wait_for(lambda: jar.run("job_info", name).stdout.split(":")[1].startswith(" running"))
    follower = Watched(jar, "job_info", "--follow", name)
    follower.until(lambda w: b"first\n" in w.out and b"first-err\n" in w.err,
                   message="the first lines while the job still runs")
    assert not (tmp_path / "go").exists() and jar.completed() == []  # it runs yet
    (tmp_path / "go").touch()
    assert follower.finish() == 0
    assert follower.out == b"first\nsecond\n"
    assert follower.err == b"first-err\nsecond-err\n"


def test_job_info_says_where_the_live_output_is(jar, tmp_path):
    name = jar.submit(gated(tmp_path, "early", "late"))
    worker = jar.start_worker()
    wait_for(lambda: jar.path("output").is_dir() and
             any(p.read_bytes() for p in jar.path("output").glob(f".{worker}.*.out")))
    info = jar.run("job_info", "--json", name, check=True)
    import json

    live = json.loads(info.stdout)["live_output"]
    assert open(live["stdout"]).read() == "early\n"
    assert open(live["stderr"]).read() == "early-err\n"
    text = jar.run("job_info", name, check=True).stdout
    assert f"live stdout: {live['stdout']}" in text
    (tmp_path / "go").touch()
    jar.wait_completed(1)
    assert jar.path("output", f"{name}.out").read_text() == "early\nlate\n"
    assert json.loads(jar.run("job_info", "--json", name).stdout)["live_output"] is None


def test_follow_exits_1_for_a_failed_job_and_shows_everything_once(jar):
    # Many lines, fast: whatever the moment of the rename at the end, no line lost or twice.
    name = jar.submit("seq 1 20000; seq 1 3000 >&2; exit 3")
    jar.start_worker()
    follower = Watched(jar, "job_info", "--follow", name)
    assert follower.finish() == 1
    assert follower.out.decode().split() == [str(i) for i in range(1, 20001)]
    assert follower.err.decode().split() == [str(i) for i in range(1, 3001)]
    assert jar.run("job_info", "--follow", name).returncode == 1  # after the end: the same
    done = jar.run("job_info", "--follow", name)
    assert done.stdout.split() == [str(i) for i in range(1, 20001)]


def test_follow_a_job_still_queued(jar):
    name = jar.submit("echo queued-then-ran")
    follower = Watched(jar, "job_info", "--follow", name)
    follower.pump(0.5)
    assert follower.proc.poll() is None and follower.out == b""  # it waits for the job
    jar.start_worker()
    assert follower.finish() == 0
    assert follower.out == b"queued-then-ran\n" and follower.err == b""


def test_follow_across_a_retry_shows_each_attempt_once(jar):
    name = jar.submit("--retries", "1", 'echo "attempt $JJ_ATTEMPT"; sleep 0.3; '
                      '[ "$JJ_ATTEMPT" = 2 ]')
    follower = Watched(jar, "job_info", "--follow", name)
    jar.start_worker()
    assert follower.finish() == 0
    assert follower.out == b"attempt 1\nattempt 2\n"


def test_follow_never_shows_the_next_jobs_output(jar):
    # The first job prints nothing: its empty output file is handed to the next job.
    quiet = jar.submit("-p", "5", "sleep 1")
    loud = jar.submit("-p", "1", "for i in $(seq 1 200); do echo next-job-$i; sleep 0.01; done")
    follower = Watched(jar, "job_info", "--follow", quiet)
    jar.start_worker()
    assert follower.finish() == 0
    jar.wait_completed(2)
    assert jar.path("output", f"{loud}.out").read_text().count("next-job") == 200
    assert follower.out == b"" and follower.err == b""


def test_a_followed_jobs_own_output_file(jar, tmp_path):
    target = tmp_path / "own.txt"
    name = jar.submit("-o", str(target), gated(tmp_path, "mine", "done"))
    jar.start_worker()
    follower = Watched(jar, "job_info", "--follow", name)
    follower.until(lambda w: b"mine\n" in w.out, message="the job's own file, live")
    (tmp_path / "go").touch()
    assert follower.finish() == 0
    assert follower.out == b"mine\ndone\n" and follower.err == b"mine-err\ndone-err\n"


def test_follow_from_python(jar):
    import jobjar

    name = jobjar.submit_job("printf 'caf\\303\\251\\n'; echo oops >&2")
    jar.start_worker()
    out, err = io.BytesIO(), io.StringIO()
    record = jobjar.follow(name, out=out, err=err)
    assert record["status"] == "succeeded" and record["name"] == name
    assert out.getvalue() == "café\n".encode() and err.getvalue() == "oops\n"


def test_follow_bad_input(jar):
    one_line_error(jar.run("job_info", "--follow", "no-such-job"), "no job named", status=1)
    one_line_error(jar.run("job_info", "--follow", "a", "b"), "one job name", status=2)
    one_line_error(jar.run("job_info", "--follow", "--json", "a"), "not allowed", status=2)


def forge_start(jar, tmp_path, plant) -> tuple[str, str, Watched]:
    """A running job whose worker's log gets a forged start line naming a planted file."""
    name = jar.submit(gated(tmp_path, "real", "end"))
    worker = jar.start_worker()
    wait_for(lambda: b"start " + name.encode() in jar.path("workers", worker, "log").read_bytes())
    fake = jar.path("output", f".{worker}.0badc0de.out")
    plant(fake)
    with open(jar.path("workers", worker, "log"), "a") as log:
        log.write(f"2026-11-30T00:00:00.000000Z start {name} pid=1 stdout={fake.name}\n")
    follower = Watched(jar, "job_info", "--follow", name)
    return name, worker, follower


def test_follow_never_follows_a_planted_link(jar, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("SECRET\n")
    name, _, follower = forge_start(jar, tmp_path, lambda fake: fake.symlink_to(secret))
    follower.until(lambda w: b"not following" in w.err, message="the planted link refused")
    (tmp_path / "go").touch()
    assert follower.finish() == 0
    assert b"SECRET" not in follower.out + follower.err
    assert follower.out == b"real\nend\n"  # the real output, from its final file


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make another user's file")
def test_follow_never_follows_another_users_file(jar, tmp_path):
    def plant(fake):
        fake.write_text("NOT-THE-WORKERS\n")
        os.chown(fake, 65534, 65534)

    name, _, follower = forge_start(jar, tmp_path, plant)
    follower.until(lambda w: b"not the worker's own file" in w.err,
                   message="another user's file refused")
    (tmp_path / "go").touch()
    assert follower.finish() == 0
    assert b"NOT-THE-WORKERS" not in follower.out and follower.out == b"real\nend\n"


# -- submit_job --wait --------------------------------------------------------------


def test_submit_wait_exits_with_the_jobs_own_status(jar):
    jar.start_worker()
    ok = jar.run("submit_job", "--wait", "echo fine")
    assert ok.returncode == 0 and ok.stderr == "" and len(ok.stdout.split()) == 1
    assert jar.path("output", f"{ok.stdout.strip()}.out").read_text() == "fine\n"
    three = jar.run("submit_job", "--wait", "exit 3")
    assert three.returncode == 3
    assert three.stderr.strip().endswith("failed (exit status 3)"), three.stderr
    assert jar.run("submit_job", "--wait", "kill -USR1 $$").returncode == 128 + 10
    timed = jar.run("submit_job", "--wait", "--timeout", "1", "sleep 60")
    assert timed.returncode == 128 + 15 and "timed-out" in timed.stderr  # its SIGTERM


def test_submit_wait_for_an_array_gives_the_highest_status(jar):
    jar.start_worker()
    result = jar.run("submit_job", "--wait", "--array", "1-4", 'exit $((JJ_ARRAY_INDEX % 3))')
    assert result.returncode == 2 and len(result.stdout.split()) == 4
    lines = result.stderr.splitlines()  # the batch's line, then the three that did not succeed
    assert "jobs in batch" in lines[0] and len(lines) == 4
    assert all(": failed (exit status" in line for line in lines[1:])


def test_submit_wait_for_a_job_that_never_ran_is_1(jar):
    waiting = Watched(jar, "submit_job", "--wait", "true")
    waiting.until(lambda w: w.out.strip(), message="the name, before the wait")
    name = waiting.out.decode().strip()
    assert waiting.proc.poll() is None
    jar.run("cancel_job", name, check=True)
    assert waiting.finish() == 1
    assert b"cancelled (exit status 1)" in waiting.err


def test_exit_status_from_python(jar):
    import jobjar

    jar.start_worker()
    records = jobjar.wait(jobjar.submit_job("exit $JJ_ARRAY_INDEX", array="0-1"))
    assert [jobjar.exit_status(r) for r in records] == [0, 1]
    assert jobjar.exit_status(*records) == 1 and jobjar.exit_status() == 0
    assert jobjar.exit_status({"status": "failed", "exit_code": "9"}) == 1  # not a number
    assert jobjar.exit_status({"status": "failed", "signal": 2}) == 130
    assert jobjar.exit_status({"status": "cancelled", "exit_code": 0}) == 1


# -- two real users ------------------------------------------------------------------


def test_bob_follows_a_job_on_anns_worker_and_cannot_plant_what_he_reads(team):
    worker = team.start_worker("ann")
    go = team.root / "go"
    name = team.run("bob", "submit_job", f"echo live; while [ ! -e {go} ]; do sleep 0.05; "
                    "done; echo done").stdout.strip()
    log = team.home / "workers" / worker / "log"
    wait_for(lambda: f" start {name} pid=".encode() in log.read_bytes(), message="its start")
    fake = team.home / "output" / f".{worker}.0badc0de.out"

    def plant() -> None:  # bob's own file at a hidden name, and a line naming it
        fake.write_text("PLANTED BY BOB\n")
        with open(log, "a") as forged:
            forged.write(f"2026-11-30T00:00:00.000000Z start {name} pid=1 stdout={fake.name}\n")

    team.as_user("bob", plant)
    watched = Watched(None, proc=subprocess.Popen(
        [team.python, str(team.code / "bin" / "job_info"), "--follow", name],
        env=team.env("bob"), user=team.uid["bob"], group=team.gid, extra_groups=[team.gid],
        umask=0o002, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(team.root)))
    watched.until(lambda w: b"not the worker's own file" in w.err, message="bob's file refused")
    go.touch()
    assert watched.finish() == 0
    assert watched.out == b"live\ndone\n" and b"PLANTED" not in watched.out
    assert len(watched.err.splitlines()) == 1 and b"Traceback" not in watched.err
