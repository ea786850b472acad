"""Node files: measuring a node, publishing it, and reading every node back safely."""

from __future__ import annotations

import os
import time

import pytest

from jobjar import machine
from jobjar.layout import Jar

from conftest import wait_for

MEMINFO = "MemTotal:        8000000 kB\nMemFree:          100000 kB\n" \
          "MemAvailable:    6000000 kB\nCached:          2000000 kB\n"


@pytest.fixture
def figures(tmp_path, monkeypatch):
    """Point the kernel's figures at files of the test's own."""
    load, mem = tmp_path / "loadavg", tmp_path / "meminfo"
    load.write_text("3.00 2.00 1.00 2/345 6789\n")
    mem.write_text(MEMINFO)
    monkeypatch.setenv("JJ_TEST_LOADAVG", str(load))
    monkeypatch.setenv("JJ_TEST_MEMINFO", str(mem))
    return load, mem


def test_measure_reads_the_files_tests_point_at(figures):
    m = machine.measure("n1")
    assert (m.node, m.load1, m.load5, m.load15) == ("n1", 3.0, 2.0, 1.0)
    assert (m.mem_total_kb, m.mem_available_kb) == (8000000, 6000000)
    assert m.cpus >= 1 and m.load_per_cpu == pytest.approx(3.0 / m.cpus)
    assert abs(m.time - time.time()) < 60


def test_measure_without_mem_available_uses_free_buffers_and_cached(figures):
    figures[1].write_text("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\n")
    assert machine.measure("n").mem_available_kb == 350


def test_measure_of_broken_files_says_unknown_never_raises(figures):
    figures[0].write_text("lots\n")
    figures[1].write_text("\x00garbage")
    m = machine.measure("n")
    assert m.load1 != m.load1  # nan: unknown
    assert (m.mem_total_kb, m.mem_available_kb) == (0, 0)


def test_measure_of_the_real_kernel(monkeypatch):
    monkeypatch.delenv("JJ_TEST_LOADAVG", raising=False)
    monkeypatch.delenv("JJ_TEST_MEMINFO", raising=False)
    m = machine.measure("real")
    assert m.load1 >= 0 and m.mem_total_kb > 0 and 0 < m.mem_available_kb <= m.mem_total_kb


def test_publish_then_read_all_gives_it_back(tmp_path, figures):
    jar = Jar(tmp_path / "jar")
    jar.ensure()
    m = machine.measure("n1")
    machine.publish(jar, m)
    assert jar.node_file("n1") == jar.home / "nodes" / "n1.yaml"
    back = machine.read_all(jar)
    expected = {**m.as_record(), "time": round(m.time, 3), "too_big": ()}
    assert back == {"n1": machine.Machine(**expected)}
    assert [p for p in os.listdir(jar.nodes) if p.startswith(".")] == []  # no temporary left


def test_read_all_of_a_jar_without_nodes_is_empty(tmp_path):
    assert machine.read_all(Jar(tmp_path / "nothing")) == {}


@pytest.mark.parametrize("text", [
    "",
    "node: \"n\"\n",
    "not yaml: [\n",
    "- a list\n",
    "node: \"other\"\ntime: 1\ncpus: 1\nload1: 0\nload5: 0\nload15: 0\n"
    "mem_total_kb: 1\nmem_available_kb: 1\n",
])
def test_malformed_node_files_are_unknown(tmp_path, text):
    jar = Jar(tmp_path / "jar")
    jar.ensure()
    jar.node_file("n").write_text(text)
    assert machine.read_all(jar) == {"n": None}


@pytest.mark.parametrize("field, value", [
    ("cpus", 0), ("cpus", "4"), ("cpus", True), ("load1", -1), ("load1", "NaN"),
    ("mem_total_kb", -5), ("mem_available_kb", 1.5), ("time", "yesterday"),
])
def test_bad_fields_make_a_node_unknown(field, value):
    good = machine.Machine("n", time.time(), 2, 0.5, 0.5, 0.5, 1000, 500).as_record()
    assert machine.from_record("n", good) is not None
    assert machine.from_record("n", {**good, field: value}) is None


def test_stale_and_future_node_files_are_unknown():
    record = machine.Machine("n", time.time() - 3600, 2, 0.5, 0.5, 0.5, 1000, 500).as_record()
    assert machine.from_record("n", record) is None
    record["time"] = time.time() + 3600
    assert machine.from_record("n", record) is None


def test_links_fifos_and_directories_in_nodes_are_unknown_and_never_followed(tmp_path, figures):
    jar = Jar(tmp_path / "jar")
    jar.ensure()
    real = tmp_path / "elsewhere.yaml"
    machine.publish(jar, machine.measure("elsewhere"))
    os.rename(jar.node_file("elsewhere"), real)
    os.symlink(real, jar.node_file("linked"))
    os.mkfifo(jar.node_file("fifo"))
    os.mkdir(jar.node_file("dir"))
    (jar.nodes / ".n.123.tmp").write_text("half")
    assert machine.read_all(jar) == {"linked": None, "fifo": None, "dir": None}


def test_a_worker_publishes_its_node(jar, tmp_path):
    """A real worker writes nodes/NODE.yaml with its heartbeat, and keeps it fresh."""
    load = tmp_path / "loadavg"
    load.write_text("0.25 0.50 0.75 1/1 1\n")
    env = {"JJ_NODE": "pubnode", "JJ_TEST_LOADAVG": str(load)}
    jar.start_worker(env=env)
    node_jar = Jar(jar.home)
    first = wait_for(lambda: machine.read_all(node_jar).get("pubnode"), 30,
                     message="the node file")
    assert (first.load1, first.load5, first.load15) == (0.25, 0.5, 0.75)
    load.write_text("1.50 0.50 0.75 1/1 1\n")
    wait_for(lambda: (machine.read_all(node_jar).get("pubnode") or first).load1 == 1.5, 30,
             message="the new load in the node file")
