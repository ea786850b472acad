"""Placement with real workers: the node table, the load and memory gates, --mem, --cpus, --node."""

from __future__ import annotations

import json
import os
import time

from jobjar import machine
from jobjar.layout import Jar

from conftest import one_line_error, wait_for

GIB = 1024 * 1024  # KiB


def meminfo(total_kb: int, available_kb: int) -> str:
    return f"MemTotal: {total_kb} kB\nMemFree: 1000 kB\nMemAvailable: {available_kb} kB\n"


def figures(jar, tmp_path, load: str = "0.00 0.00 0.00 1/1 1",
            total_kb: int = 8 * GIB, available_kb: int = 7 * GIB) -> dict:
    """Files standing in for the kernel's, and the environment pointing at them."""
    load_file, mem_file = tmp_path / "loadavg", tmp_path / "meminfo"
    load_file.write_text(load + "\n")
    mem_file.write_text(meminfo(total_kb, available_kb))
    return {"JJ_TEST_LOADAVG": str(load_file), "JJ_TEST_MEMINFO": str(mem_file)}


def status_json(jar) -> dict:
    return json.loads(jar.run("system_status", "--json", check=True).stdout)


def node_row(jar, node: str) -> dict | None:
    return next((row for row in status_json(jar)["nodes"] if row["node"] == node), None)


# -- the node table -------------------------------------------------------------------------


def test_node_table_shows_workers_running_jobs_load_and_memory(jar, tmp_path):
    env = {**figures(jar, tmp_path, "1.00 0.50 0.25 1/1 1", 8 * GIB, 6 * GIB), "JJ_NODE": "n1"}
    jar.start_worker(env=env)
    jar.start_worker(env=env)
    name = jar.submit("sleep 30")
    row = wait_for(lambda: (r := node_row(jar, "n1")) and r["known"] and r["workers"] == 2
                   and r["running"] == 1 and r, 60, message="the node row")
    assert (row["load1"], row["load5"], row["load15"]) == (1.0, 0.5, 0.25)
    assert (row["mem_total_kb"], row["mem_available_kb"]) == (8 * GIB, 6 * GIB)
    assert row["cpus"] >= 1 and row["load_per_cpu"] == round(1.0 / row["cpus"], 2)
    text = jar.run("system_status", check=True).stdout
    line = next(li for li in text.splitlines() if li.strip().startswith("n1 "))
    assert line.split()[1:3] == ["2", "1"] and "1.00 0.50 0.25" in line and "6G/8G" in line
    jar.run("cancel_job", name, check=True)


def test_missing_stale_and_malformed_node_files_show_as_unknown(jar, tmp_path):
    jar.start_worker(env={**figures(jar, tmp_path), "JJ_NODE": "good"})
    nodes = jar.path("nodes")
    wait_for(lambda: (nodes / "good.yaml").exists(), 30, message="the good node's file")
    (nodes / "bad.yaml").write_text("node: [\n\x00")
    (nodes / "huge.yaml").write_bytes(b"node: x\n" * 300000)
    os.mkfifo(nodes / "fifo.yaml")
    os.symlink("/etc/passwd", nodes / "link.yaml")
    stale = machine.Machine("old", time.time() - 7200, 2, 0.1, 0.1, 0.1, 1000, 900)
    machine.publish(Jar(jar.home), stale)
    rows = {row["node"]: row for row in status_json(jar)["nodes"]}
    assert rows["good"]["known"]
    for node in ("bad", "huge", "fifo", "link", "old"):
        assert rows[node]["known"] is False and rows[node]["load1"] is None, node
    text = jar.run("system_status", check=True).stdout
    assert text.count("unknown (no fresh node file)") == 5
    elsewhere = jar.submit("--node", "bad", "--mem", "1G", "true")
    held = json.loads(jar.run("job_info", "--json", elsewhere, check=True).stdout)["held_back"]
    assert held.startswith("it is for node bad, which publishes no fresh figures"), held
    # and the worker, which reads none of them for its own gates, still runs jobs
    jar.submit("true")
    jar.wait_completed(1)


# -- the job's asks: --mem, --cpus, --node ---------------------------------------------------


def worker_log(jar, worker: str) -> str:
    return (jar.workers_dir / worker / "log").read_text()


def test_a_job_asking_more_memory_than_the_node_has_is_not_claimed_while_a_small_one_is(
        jar, tmp_path):
    big = jar.submit("--mem", "16G", "true")  # the older one: tried first
    small = jar.submit("--mem", "1G", "true")
    path = jar.path("unclaimed", big)
    before = os.lstat(path).st_mtime_ns
    worker = jar.start_worker(env={**figures(jar, tmp_path, total_kb=8 * GIB), "JJ_NODE": "n1"})
    jar.wait_completed(1)
    assert jar.completed() == [small]
    wait_for(lambda: f"leave {big}: it asks for 16G of memory; this node has 8G" in
             worker_log(jar, worker), 30, message="the worker's reason in its log")
    # given back by one rename: same name, same mtime (same place in the queue), no record
    assert os.lstat(path).st_mtime_ns == before and jar.record(big) is None
    info = json.loads(jar.run("job_info", "--json", big, check=True).stdout)
    assert info["state"] == "unclaimed"
    assert info["held_back"].startswith("too big: it asks for 16G of memory, more than any node")
    assert "held back: too big" in jar.run("job_info", big, check=True).stdout


def test_cpus_beyond_the_node_are_too_big_and_a_job_that_fits_runs(jar, tmp_path):
    huge = jar.submit("--cpus", "100000", "true")
    fits = jar.submit("--cpus", "1", "true")
    worker = jar.start_worker(env={**figures(jar, tmp_path), "JJ_NODE": "n1"})
    jar.wait_completed(1)
    assert jar.completed() == [fits]
    wait_for(lambda: f"leave {huge}: it asks for 100000 CPUs" in worker_log(jar, worker), 30)
    assert "too big" in jar.run("job_info", huge, check=True).stdout


def test_memory_taken_by_a_running_job_is_counted_until_it_ends(jar, tmp_path):
    """Two workers of one node: the second 5G job waits for the first (8G node), then runs."""
    gate = tmp_path / "go"
    env = {**figures(jar, tmp_path, total_kb=8 * GIB, available_kb=8 * GIB), "JJ_NODE": "n1"}
    first = jar.submit("--mem", "5G", f"while [ ! -e {gate} ]; do sleep 0.05; done")
    second = jar.submit("--mem", "5G", "true")
    small = jar.submit("--mem", "2G", "true")
    one, two = jar.start_worker(env=env), jar.start_worker(env=env)
    jar.wait_completed(1)
    assert jar.completed() == [small]
    wait_for(lambda: "free on this node: 3G of memory" in worker_log(jar, one)
             + worker_log(jar, two), 30, message="the second job left for want of memory")
    assert second in os.listdir(jar.path("unclaimed"))
    held = json.loads(jar.run("job_info", "--json", second, check=True).stdout)["held_back"]
    assert held.startswith("waiting for room: n1:"), held
    gate.write_text("")
    jar.wait_completed(3)
    assert jar.record(first)["status"] == jar.record(second)["status"] == "succeeded"


def test_node_runs_a_job_only_on_that_node(jar, tmp_path):
    env = figures(jar, tmp_path)
    jar.start_worker(env={**env, "JJ_NODE": "here"})
    jar.start_worker(env={**env, "JJ_NODE": "there"})
    names = [jar.submit("--node", "there", "true") for _ in range(4)]
    elsewhere = jar.submit("--node", "nowhere", "true")
    jar.wait_completed(4, timeout=90)
    assert sorted(jar.completed()) == sorted(names)
    assert {jar.record(n)["node"] for n in names} == {"there"}
    info = json.loads(jar.run("job_info", "--json", elsewhere, check=True).stdout)
    assert info["held_back"].startswith("it is for node nowhere, which publishes no fresh")


def test_node_and_sizes_are_directives_and_python_keywords(jar, tmp_path):
    import jobjar

    name = jobjar.submit_job("true", mem="1.5G", cpus=2, node="n1")
    text = jar.path("unclaimed", name).read_text()
    assert "#JJ --mem 1536M\n#JJ --cpus 2\n#JJ --node n1\n" in text
    jar.submit_by_hand("by-hand", "#!/bin/sh\n#JJ --mem 4096 --node n1\ntrue\n")
    from jobjar import directives
    opts = directives.parse(jar.path("unclaimed", "by-hand").read_bytes())
    assert (opts.mem, opts.node) == (4 * GIB, "n1")  # a bare number is megabytes
    jar.start_worker(env={**figures(jar, tmp_path), "JJ_NODE": "n1"})
    jar.wait_completed(2)


# -- the node's gates: JJ_MAX_LOAD, JJ_MIN_FREE_MEMORY ---------------------------------------


def test_the_load_gate_holds_claims_while_the_node_is_loaded(jar, tmp_path):
    env = {**figures(jar, tmp_path, load=f"{64 * os.cpu_count()}.00 1.00 1.00 1/1 1"),
           "JJ_NODE": "n1", "JJ_MAX_LOAD": "1.5"}
    worker = jar.start_worker(env=env)
    name = jar.submit("true")
    wait_for(lambda: "claiming nothing: load" in worker_log(jar, worker), 30,
             message="the gate in the worker's log")
    wait_for(lambda: (r := node_row(jar, "n1")) and r["max_load"] == 1.5, 30)
    assert jar.completed() == [] and name in os.listdir(jar.path("unclaimed"))
    held = json.loads(jar.run("job_info", "--json", name, check=True).stdout)["held_back"]
    assert held.startswith("every node that could run it holds claims: n1: load"), held
    assert "HOLDING: load above JJ_MAX_LOAD 1.5" in jar.run("system_status", check=True).stdout
    (tmp_path / "loadavg").write_text("0.00 1.00 1.00 1/1 1\n")
    jar.wait_completed(1)
    assert "claiming again" in worker_log(jar, worker)


def test_the_memory_gate_holds_claims_while_memory_is_short(jar, tmp_path):
    env = {**figures(jar, tmp_path, total_kb=8 * GIB, available_kb=GIB), "JJ_NODE": "n1",
           "JJ_MIN_FREE_MEMORY": "2G"}
    worker = jar.start_worker(env=env)
    jar.submit("true")
    wait_for(lambda: "claiming nothing: available memory 1G is below JJ_MIN_FREE_MEMORY 2G"
             in worker_log(jar, worker), 30, message="the gate in the worker's log")
    assert jar.completed() == []
    (tmp_path / "meminfo").write_text(meminfo(8 * GIB, 3 * GIB))
    jar.wait_completed(1)


# -- bad input -------------------------------------------------------------------------------


def test_bad_sizes_counts_nodes_and_settings_are_one_line_and_submit_nothing(jar):
    for args, words in ((("--mem", "10Q"), ("--mem", "10Q")), (("--mem=-1G",), ("--mem",)),
                        (("--mem", "0"), ("--mem",)), (("--mem", "2P"), ("--mem",)),
                        (("--cpus", "0"), ("--cpus", "'0'")), (("--cpus", "two"), ("--cpus",)),
                        (("--node", "a/b"), ("--node",)), (("--node", ".x"), ("--node",))):
        one_line_error(jar.run("submit_job", *args, "true"), *words, status=1)
    for name, value in (("JJ_MAX_LOAD", "-1"), ("JJ_MAX_LOAD", "0"), ("JJ_MAX_LOAD", "nan"),
                        ("JJ_MAX_LOAD", "lots"), ("JJ_MIN_FREE_MEMORY", "3X"),
                        ("JJ_MIN_FREE_MEMORY", "-2G")):
        one_line_error(jar.run("submit_job", "true", env={name: value}), name, status=1)
        one_line_error(jar.run("start_worker", env={name: value}), name)
    assert not any(jar.path("unclaimed").glob("*")) if jar.path("unclaimed").exists() else True
    assert not any(jar.path("limbo").glob("*")) if jar.path("limbo").exists() else True
    import pytest

    import jobjar

    with pytest.raises(jobjar.JobJarError, match="--mem"):
        jobjar.submit_job("true", mem="10Q")


def test_a_bad_placement_directive_fails_that_job_not_the_worker(jar, tmp_path):
    jar.submit_by_hand("bad-mem", "#!/bin/sh\n#JJ --mem 10Q\ntrue\n")
    jar.submit_by_hand("bad-cpus", "#!/bin/sh\n#JJ --cpus 0\ntrue\n")
    jar.start_worker(env={**figures(jar, tmp_path), "JJ_NODE": "n1"})
    jar.wait_completed(2)
    assert "--mem" in jar.record("bad-mem")["reason"]
    assert "--cpus" in jar.record("bad-cpus")["reason"]
    jar.submit("true")
    jar.wait_completed(3)


def test_system_status_names_a_job_too_big_for_every_node(jar, tmp_path):
    big = jar.submit("-c", "LINUX", "--mem", "1T", "true")
    jar.start_worker("LINUX", env={**figures(jar, tmp_path), "JJ_NODE": "n1"})
    row = wait_for(lambda: (s := status_json(jar)) and s["too_big"] and s, 30,
                   message="the too-big job in the status")
    assert [(j["name"], j["category"]) for j in row["too_big"]] == [(big, "LINUX")]
    assert row["too_big"][0]["reason"].startswith("too big: it asks for 1T of memory")
    assert f"TOO BIG: {big}: too big" in jar.run("system_status", check=True).stdout
    # a forged entry naming a path outside the queue is not followed, nor listed
    forged = machine.Machine("forger", time.time(), 1, 0, 0, 0, 1000, 1000,
                             too_big=("../../etc/passwd", "../results/x", big))
    machine.publish(Jar(jar.home), forged)
    assert [j["name"] for j in status_json(jar)["too_big"]] == [big]
    jar.run("cancel_job", big, check=True)
    wait_for(lambda: status_json(jar)["too_big"] == [], 30, message="the cancelled job gone")


def test_two_workers_never_run_together_jobs_that_do_not_fit_together(jar, tmp_path):
    """Four 5G jobs, an 8G node, three idle workers woken at once: one at a time, all run."""
    env = {**figures(jar, tmp_path, total_kb=8 * GIB, available_kb=8 * GIB), "JJ_NODE": "n1"}
    for _ in range(3):
        jar.start_worker(env=env)
    names = jar.run("submit_job", "--array", "1-4", "--mem", "5G", "sleep 0.3",
                    check=True).stdout.split()
    jar.wait_completed(4, timeout=120)
    spans = sorted((jar.record(n)["started"], jar.record(n)["finished"]) for n in names)
    assert all(jar.record(n)["status"] == "succeeded" for n in names)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start, spans  # ISO times in UTC compare as text
