"""Security (``docs/security.md``): root, world-writable jars, paths that try to escape.

A worker runs whatever lands in ``unclaimed/`` with its own rights, so it
refuses to be root unless told, warns when everyone can write the jar, and no
name (job, category, identifier, dependency, cancel target) can make it, or a
command, write outside the jar.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import one_line_error, pid_alive, wait_for


def outside_the_jar(jar) -> set[str]:
    """Everything in the test's directory that is not under the jar."""
    found = {os.path.join(d, n) for d, dirs, files in os.walk(jar.root) for n in dirs + files}
    return {p for p in found if p != str(jar.home) and not p.startswith(f"{jar.home}/")}


@pytest.mark.parametrize("value", ["", "no", "0", "false"])
def test_worker_refuses_root_unless_allowed(jar, value):
    if os.geteuid() != 0:
        pytest.skip("not running as root")
    env = {"JJ_ALLOW_ROOT": value}
    jar.submit("touch", str(jar.root / "ran"))
    for args in ([], ["--foreground"]):
        one_line_error(jar.run("start_worker", *args, env=env), "root", "JJ_ALLOW_ROOT")
    one_line_error(jar.run("check_workers", env=env), "root")
    assert not (jar.root / "ran").exists()
    assert os.listdir(jar.path("claimed")) == []
    assert len(os.listdir(jar.path("unclaimed"))) == 1
    assert [w for w in os.listdir(jar.workers_dir) if "." in w and not w.startswith(".")] == []


def test_world_writable_jar_or_queue_is_warned_about(jar):
    jar.run("check_workers", "--dry-run", check=True)
    (jar.path("unclaimed", "shared")).mkdir()
    quiet = jar.start_worker()
    jar.path("unclaimed").chmod(0o777)
    jar.path("unclaimed", "shared").chmod(0o1777)
    loud = jar.start_worker("shared")
    jar.home.chmod(0o777)
    louder = jar.start_worker()
    jar.path("waiting").chmod(0o777)
    waiting = jar.start_worker()

    def log(worker: str) -> str:
        return (jar.workers_dir / worker / "log").read_text()

    wait_for(lambda: "start" in log(waiting), message="workers logged their start")
    assert f"{jar.path('waiting')} is writable by everyone" in log(waiting)
    assert "writable by everyone" not in log(quiet)
    warned = [line for line in log(loud).splitlines() if "writable by everyone" in line]
    assert len(warned) == 2 and any(line.rstrip().count("/shared ") for line in warned)
    assert f"{jar.home} is writable by everyone" in log(louder)
    assert pid_alive(int(loud.rsplit(".", 1)[1]))  # a warning, not a refusal


ESCAPES = ["..", "../escape", "../../escape", "/tmp", "a/../../escape", ".", ".escape"]


def test_no_name_escapes_the_jar(jar):
    import jobjar

    outside_before = outside_the_jar(jar)
    for word in ESCAPES:
        one_line_error(jar.run("submit_job", "-c", word, "true"))
        one_line_error(jar.run("submit_job", "-i", word, "true"))
        one_line_error(jar.run("submit_job", "--after", word, "true"))
        one_line_error(jar.run("start_worker", word))
        one_line_error(jar.run("check_workers", "--dry-run", env={"JJ_CATEGORIES": word}))
        one_line_error(jar.run("start_worker", env={"JJ_NODE": word}))
        result = jar.run("cancel_job", word)
        assert "Traceback" not in result.stderr
        with pytest.raises(jobjar.JobJarError):
            jobjar.submit_job("true", category=word)
        with pytest.raises(jobjar.JobJarError):
            jobjar.set_categories([word])
    outside_after = outside_the_jar(jar)
    assert outside_after == outside_before, outside_after - outside_before
    assert not Path("/escape").exists() and not Path("/tmp/escape").exists()
    assert not jar.path("cancel").exists() or os.listdir(jar.path("cancel")) == []


def test_worker_writes_only_inside_the_jar_and_its_scratch(jar):
    """Jobs with hostile names and directives: the worker's own writes stay in the jar.

    A relative ``#JJ --output`` path is taken in ``output/`` and may not
    climb out of it (``../x`` fails the job with the reason); an absolute
    one is opened by the job's own process, with the job's rights, so it is
    the job's write, not the worker's (the job could write there anyway).
    """
    body = "#!/bin/sh\n#JJ --output out.txt --error err.txt\necho hello; echo oops >&2\n"
    jar.submit_by_hand("..job", body)  # a dot-file: never claimed
    jar.submit_by_hand("job..", body, category="cat")
    jar.submit_by_hand("job .. x", "#!/bin/sh\n#JJ --after ../../results/x\ntrue\n")
    jar.submit_by_hand("plain.1", "#!/bin/sh\necho in scratch > relative_file\n")
    climbers = {"up.1": "--output ../../escape.out", "deep.1": "--error sub/../../../escape",
                "mixed.1": "-o ok.out -e ../escape.err"}
    for name, option in climbers.items():
        jar.submit_by_hand(name, f"#!/bin/sh\n#JJ {option}\necho no\n")
    before = outside_the_jar(jar)
    jar.start_worker("cat")
    jar.wait_completed(6)
    assert sorted(jar.completed()) == sorted(["job .. x", "job..", "plain.1", *climbers])
    assert jar.record("job..")["status"] == "succeeded"
    assert jar.path("output", "out.txt").read_text() == "hello\n"
    assert jar.record("job .. x")["status"] == "failed"  # a bad directive, never a path
    assert "not a job name" in jar.record("job .. x")["reason"]
    for name in climbers:
        assert jar.record(name)["status"] == "failed"
        assert "leaves output/" in jar.record(name)["reason"]
    assert not jar.path("output", "ok.out").exists()  # failed before anything ran
    assert not (jar.home.parent / "escape.out").exists()
    assert jar.path("unclaimed", "..job").exists()
    after = outside_the_jar(jar)
    assert after == before, after - before
