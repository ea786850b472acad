"""Dependencies without a daemon: chains, fan-in with racing workers,
failures that propagate, and the guide's multi-stage example."""

from __future__ import annotations

import os

from conftest import ROOT, wait_for


def status(jar, name):
    record = jar.record(name)
    return record and record.get("status")


def test_dependency_chain_and_transitive_failure(jar):
    log = jar.root / "chain"
    first = jar.submit(f"echo 1 >> {log}")
    second = jar.submit("--after", first, f"echo 2 >> {log}")
    third = jar.submit("--after-any", second, f"echo 3 >> {log}")
    assert jar.path("waiting", second).exists() and jar.path("waiting", third).exists()
    broken = jar.submit("exit 1")
    child = jar.submit("-c", "DEEP", "--after", broken, "true")
    grandchild = jar.submit("--after", child, "true")
    great = jar.submit("--after", f"{first},{grandchild}", "true")
    anyway = jar.submit("--after-any", broken, f"echo anyway >> {log}")
    assert jar.path("waiting", "DEEP", child).exists()
    jar.start_worker()
    wait_for(lambda: len(jar.completed()) == 8, message="everything settled")
    lines = log.read_text().split()
    assert lines.index("1") < lines.index("2") < lines.index("3") and "anyway" in lines
    assert status(jar, child) == "dependency-failed"
    assert jar.record(child)["category"] == "DEEP" and broken in jar.record(child)["reason"]
    assert status(jar, grandchild) == "dependency-failed" and child in jar.record(
        grandchild)["reason"]
    assert status(jar, great) == "dependency-failed"
    assert status(jar, third) == "succeeded" and status(jar, anyway) == "succeeded"
    assert os.listdir(jar.path("waiting")) == ["DEEP"] and not os.listdir(jar.path("waiting",
                                                                                     "DEEP"))


def test_unknown_dependency_is_an_error_at_submission(jar):
    bad = jar.run("submit_job", "--after", "nonexistent-job", "true")
    assert bad.returncode == 1 and "unknown dependency" in bad.stderr and bad.stdout == ""
    bad = jar.run("submit_job", "--after-any", "a/b", "true")
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1
    assert not jar.path("waiting").exists() or os.listdir(jar.path("waiting")) == []


def test_a_retried_dependency_is_waited_for_not_failed(jar):
    flag = jar.root / "second-try"
    dep = jar.submit("--retries", "1", f"[ -e {flag} ] || {{ touch {flag}; exit 1; }}")
    after = jar.submit("--after", dep, f"echo after >> {jar.root}/log")
    jar.start_worker()
    wait_for(lambda: status(jar, after) == "succeeded", message="dependent ran")
    assert [a["status"] for a in jar.record(dep)["attempts"]] == ["failed", "succeeded"]


def test_cancelled_dependency(jar):
    dep = jar.submit("-c", "NOBODY", "true")
    strict = jar.submit("--after", dep, "true")
    lenient = jar.submit("--after-any", dep, f"touch {jar.root}/ran")
    jar.run("cancel_job", dep, check=True)
    jar.start_worker()
    wait_for(lambda: status(jar, strict) == "dependency-failed")
    assert "cancelled" in jar.record(strict)["reason"]
    wait_for(lambda: status(jar, lenient) == "succeeded")


def test_a_job_moved_to_unclaimed_by_hand_still_waits(jar):
    """Directives travel with the file: a dependent put straight into unclaimed/ waits."""
    gate = jar.root / "gate"
    dep = jar.submit(f"while [ ! -e {gate} ]; do sleep 0.05; done")
    jar.submit_by_hand("dependent.0", f"#!/bin/sh\n#JJ --after {dep}\n"
                       f"echo after >> {jar.root}/log\n")
    jar.start_worker()
    jar.start_worker()
    wait_for(lambda: jar.path("waiting", "dependent.0").exists(), message="moved to waiting/")
    gate.touch()
    wait_for(lambda: status(jar, "dependent.0") == "succeeded")
    assert (jar.root / "log").read_text() == "after\n"


def test_fan_in_of_100_released_exactly_once_with_4_workers(jar):
    import jobjar

    names = jobjar.submit_job(f"echo $JJ_ARRAY_INDEX >> {jar.root}/parts.log", array="1-100")
    merge = jobjar.submit_job(f"echo merged >> {jar.root}/merge.log", after=names)
    lenient = jobjar.submit_job(f"echo any >> {jar.root}/merge.log", after_any=names,
                                category="ANY")
    for _ in range(4):
        jar.start_worker("ANY")
    wait_for(lambda: status(jar, merge) == "succeeded" and status(jar, lenient) == "succeeded",
             timeout=120, message="the fan-in jobs ran")
    assert sorted((jar.root / "merge.log").read_text().split()) == ["any", "merged"]
    assert sorted(map(int, (jar.root / "parts.log").read_text().split())) == list(range(1, 101))
    jar.wait_completed(102)
    workers = {jar.record(n)["worker"] for n in names}
    assert len(workers) > 1  # they did race


def test_the_guides_multi_stage_example(jar, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    out = tmp_path / "parts"
    out.mkdir()
    (tools / "run_sr").write_text(f'#!/bin/sh\necho "$1 $2 $3" > {out}/part.$2\n')
    (tools / "merge_sr").write_text(
        f'#!/bin/sh\nn=$(ls {out} | wc -l)\ncat {out}/part.* | sort -n -k2 > {tmp_path}/merged\n'
        f'echo "merged $n parts of $1" >> {tmp_path}/merge.log\n')
    for tool in ("run_sr", "merge_sr"):
        (tools / tool).chmod(0o755)
    path = {"PATH": f"{tools}:{os.environ['PATH']}"}
    script = ROOT / "docs" / "examples" / "multistage.sh"
    seed = jar.submit(f"sh {script} /data/sr_input 1 100 10", env=path)
    jar.start_worker(env=path)
    jar.start_worker(env=path)
    wait_for(lambda: (tmp_path / "merge.log").exists() and len(jar.completed()) == 12,
             message="seed, 10 run_sr and merge_sr done")
    assert (tmp_path / "merge.log").read_text() == "merged 10 parts of /data/sr_input\n"
    merged = (tmp_path / "merged").read_text().splitlines()
    assert merged[0] == "/data/sr_input 1 10" and merged[-1] == "/data/sr_input 91 100"
    assert len(merged) == 10
    merge_name = jar.path("output", f"{seed}.out").read_text().strip()
    assert status(jar, merge_name) == "succeeded"
    assert all(status(jar, n) == "succeeded" for n in jar.completed())


def test_fix_a_failed_part_then_resubmit_it_and_the_merge(jar):
    import jobjar

    fixed = jar.root / "fixed"
    part = jar.submit(f"[ -e {fixed} ]")
    merge = jar.submit("--after", part, f"echo merged >> {jar.root}/merge.log")
    jar.start_worker()
    wait_for(lambda: status(jar, merge) == "dependency-failed", message="merge failed")
    fixed.touch()
    assert jobjar.resubmit_job(part, merge) == [part, merge]
    wait_for(lambda: status(jar, merge) == "succeeded", message="merge ran after the fix")
    assert (jar.root / "merge.log").read_text() == "merged\n"
    assert [a["status"] for a in jar.record(part)["attempts"]] == ["failed", "succeeded"]
