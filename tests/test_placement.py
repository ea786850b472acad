"""Placement with real workers: the node table, the load and memory gates, --mem, --cpus, --node."""

from __future__ import annotations

import json
import os
import time

from jobjar import machine
from jobjar.layout import Jar

from conftest import wait_for

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
    assert line.split()[1:3] == ["2", "1"] and "1.00 0.50 0.25" in line and "6.0G/8.0G" in line
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
    # and the worker, which reads none of them for its own gates, still runs jobs
    jar.submit("true")
    jar.wait_completed(1)
