"""Many machines from one terminal: the hosts file, ``hire_workers``, ``install_cron --hosts``.

The fleet test is real: three namespace nodes (``tests/nodes.py``) sharing a
jar, each running its own ``sshd`` inside it on its own loopback port, so
that "ssh to host X" really runs ``check_workers`` on X (X's host name, X's
pids).  Keys are made by the test; ``JJ_SSH`` adds an ``ssh_config`` that
maps the host names to 127.0.0.1, and the hosts file gives each port.  The
other tests put a stand-in in ``JJ_SSH`` that runs the remote command on
this machine in a fresh environment, as ssh's remote shell would, in a
directory of its own per host.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from conftest import BIN, ROOT, one_line_error, pid_alive, wait_for
from nodes import SSHD, SshServer, free_port, missing_support

#: The ``python`` of a host that runs this checkout's Job Jar.
PYTHON = f"env PYTHONPATH={shlex.quote(str(ROOT))} {shlex.quote(sys.executable)}"

#: ssh's stand-in: logs its arguments (one JSON list a line), then runs the command
#: with ``sh -c`` in ``$STANDIN_HOSTS/HOST`` with an environment as bare as an ssh
#: session's (the directory is also its ``HOME``).
STANDIN = """#!{python}
import json, os, sys
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
host, command = sys.argv[-2], sys.argv[-1]
where = os.path.join(os.environ["STANDIN_HOSTS"], host)
os.makedirs(where, exist_ok=True)
os.chdir(where)
os.execve("/bin/sh", ["sh", "-c", command], {{"PATH": "/usr/bin:/bin", "HOME": where}})
"""


# -- the stand-in ---------------------------------------------------------------


@pytest.fixture
def standin(jar, tmp_path):
    """``JJ_SSH`` is the stand-in (with an option of two words); returns its log's path."""
    script = tmp_path / "ssh-standin"
    script.write_text(STANDIN.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "standin.log"
    jar.env.update(JJ_SSH=f"{script} -o 'SendEnv=NOTHING AT ALL'", STANDIN_LOG=str(log),
                   STANDIN_HOSTS=str(tmp_path / "hosts"))
    os.environ.update(jar.env)  # for the Python API
    return log


def calls(log: Path) -> dict[str, list[str]]:
    """The stand-in's arguments by host (the last call to each)."""
    if not log.exists():
        return {}
    return {args[-2]: args for args in map(json.loads, log.read_text().splitlines())}


def write_hosts(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_hire_workers_through_the_standin(jar, standin):
    """Settings reach each host; failures are named; hiring again tops up; node by node."""
    hosts = write_hosts(jar.root / "home" / ".jobjar" / "hosts.ini", f"""
# the default place: beside the personal configuration
[here]
workers: 2
node: standin-a
categories: EXTRA
python: {PYTHON}
port: 2222
user: ann   # a comment after a value

[there]
workers: 1
home: {jar.home}
python: {PYTHON}

[nojobjar]
python: {sys.executable} -I -S

[nopython]
python: /nonexistent/python3
""")
    env = {"JJ_NODE": "invoker", "JJ_MAX_WORKERS": "7"}  # never sent / overridden
    result = jar.run("hire_workers", env=env)
    lines = result.stdout.splitlines()
    assert result.returncode == 1, (result.stdout, result.stderr)
    from jobjar.naming import default_node

    assert lines[0] == "here: running 0, started 2 (node standin-a)"
    assert lines[1] == f"there: running 0, started 1 (node {default_node()})"
    assert lines[2].startswith("nojobjar: failed: no Job Jar there: cannot import Job Jar")
    assert lines[3] == ("nopython: failed: no Python there: env: '/nonexistent/python3': "
                        "No such file or directory")
    assert len(lines) == 4
    workers = sorted(w for w in os.listdir(jar.workers_dir) if w.rsplit(".", 1)[-1].isdigit())
    jar.worker_pids.extend(int(w.rsplit(".", 1)[1]) for w in workers)
    assert Counter(w.rsplit(".", 1)[0] for w in workers) == {"standin-a": 2, default_node(): 1}

    sent = calls(standin)
    assert sent["here"][:7] == ["-o", "SendEnv=NOTHING AT ALL", "-p", "2222", "-l", "ann", "here"]
    assert sent["there"][:3] == ["-o", "SendEnv=NOTHING AT ALL", "there"]
    here = shlex.split(sent["here"][-1])
    assert here[0] == "env" and "JJ_ALLOW_ROOT=yes" in here and f"JJ_HOME={jar.home}" in here
    assert {"JJ_NODE=standin-a", "JJ_MAX_WORKERS=2", "JJ_CATEGORIES=EXTRA"} <= set(here)
    assert not any(w.startswith(("JJ_SSH=", "STANDIN_")) or w == "JJ_NODE=invoker" for w in here)
    there = shlex.split(sent["there"][-1])
    assert "JJ_MAX_WORKERS=1" in there and not any(w.startswith("JJ_NODE=") for w in there)

    # the section's categories reached the workers: only standin-a's claim EXTRA
    job = jar.submit("-c", "EXTRA", "true")
    jar.wait_completed(1)
    assert jar.record(job)["node"] == "standin-a"

    again = jar.run("hire_workers", "here", "there", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "here: running 2, started 0 (node standin-a)",
        f"there: running 1, started 0 (node {default_node()})"]

    # stopping needs no ssh: by node, through the jar; hiring then starts new ones
    stopped = jar.run("stop_worker", "standin-a", check=True).stdout.split()
    assert len(stopped) == 4  # "stop: NAME" twice
    for name in stopped[1::2]:
        wait_for(lambda n=name: not pid_alive(int(n.rsplit(".", 1)[1])), 60,
                 message=f"{name} to stop")
    import jobjar

    (result,) = jobjar.hire_workers(hosts_file=str(hosts), hosts=["HERE"])  # any case
    jar.worker_pids.extend(int(w.rsplit(".", 1)[1]) for w in result.started)
    assert (result.host, result.ok, result.running, len(result.started)) == ("here", True, 0, 2)
    assert result.node == "standin-a" and result.max_workers == 2


def test_workers_auto_is_counted_on_the_host(jar, standin):
    from jobjar.hosts import auto_workers

    hosts = write_hosts(jar.root / "hosts.ini", f"[auto.example]\nworkers: auto\n"
                                                f"node: auto\npython: {PYTHON}\n")
    result = jar.run("hire_workers", "--hosts", str(hosts))
    assert result.returncode == 0, result.stderr
    jar.worker_pids.extend(int(w.rsplit(".", 1)[1]) for w in os.listdir(jar.workers_dir)
                           if w.startswith("auto."))
    assert result.stdout.strip() == f"auto.example: running 0, started {auto_workers()} (node auto)"
    assert "JJ_MAX_WORKERS=auto" in calls(standin)["auto.example"][-1]


def test_the_hosts_file_follows_jj_config_file(jar, standin, tmp_path):
    """``hosts.ini`` lives beside the personal configuration file, wherever that is."""
    elsewhere = tmp_path / "conf"
    write_hosts(elsewhere / "hosts.ini", "[nowhere]\npython: /nonexistent/python3\n")
    result = jar.run("hire_workers", env={"JJ_CONFIG_FILE": str(elsewhere / "config.ini")})
    assert result.returncode == 1 and result.stdout.startswith("nowhere: failed: no Python")


# -- bad hosts files --------------------------------------------------------------

BAD_FILES = [
    ("[a]\nworkers: 2\nwokers: 3\n", 3, "unknown key 'wokers'"),
    ("[a]\nworkers: -1\n", 2, "number of workers"),
    ("[a]\nworkers: many\n", 2, "number of workers"),
    ("[a]\nworkers: 2.5\n", 2, "number of workers"),
    ("[-oProxyCommand=touch x]\n", 1, "is not a host name"),
    ("[a b]\n", 1, "is not a host name"),
    ("[ann@rain]\n", 1, "is not a host name"),
    ("# rain\n[rain]\n[flower]\n[Rain]\n", 4, "duplicate host [Rain] (first on line 2)"),
    ("workers: 2\n[a]\n", 1, "before the first [HOST] section"),
    ("[a]\nport: 70000\n", 2, "port number"),
    ("[a]\nuser: -oX\n", 2, "not a user name"),
    ("[a]\nnode: a/b\n", 2, "node name"),
    ("[a]\ncategories: .hidden\n", 2, "category"),
    ("[a]\nhome: relative/jar\n", 2, "absolute path"),
    ("[a]\nworkers: 1\nworkers: 2\n", 3, "given twice"),
    ("[a\n", 1, "expected '[HOST]'"),
    ("[a]\njust words\n", 2, "expected 'key: value'"),
    ("# nothing\n", None, "no hosts"),
]


@pytest.mark.parametrize("text,line,problem", BAD_FILES)
def test_a_bad_hosts_file_is_one_line_naming_file_and_line_before_any_ssh(
        jar, standin, text, line, problem):
    hosts = write_hosts(jar.root / "bad hosts.ini", text)
    for command in ("hire_workers", "install_cron"):
        error = one_line_error(jar.run(command, "--hosts", str(hosts)), problem, status=2)
        where = f"{hosts}:{line}:" if line else f"{hosts}:"
        assert where in error, error
    assert calls(standin) == {}


def test_hosts_files_others_could_have_written_are_refused(jar, standin, tmp_path):
    good = "[a]\npython: /nonexistent/python3\n"
    for mode, problem in ((0o620, "others may write it (mode 0620"),
                          (0o602, "others may write it (mode 0602")):
        hosts = write_hosts(tmp_path / f"hosts{mode:o}.ini", good, mode)
        one_line_error(jar.run("hire_workers", "--hosts", str(hosts)), problem, status=2)
    real = write_hosts(tmp_path / "real.ini", good)
    (tmp_path / "link.ini").symlink_to(real)
    one_line_error(jar.run("hire_workers", "--hosts", str(tmp_path / "link.ini")),
                   "symbolic link", status=2)
    open_dir = tmp_path / "open"
    write_hosts(open_dir / "hosts.ini", good)
    open_dir.chmod(0o777)
    one_line_error(jar.run("hire_workers", "--hosts", str(open_dir / "hosts.ini")),
                   "refusing its directory", status=2)
    one_line_error(jar.run("hire_workers", "--hosts", str(tmp_path / "missing.ini")),
                   "no hosts file", status=2)
    one_line_error(jar.run("hire_workers", "--hosts", str(real), "b"), "no host 'b'", status=2)
    one_line_error(jar.run("hire_workers", "--hosts", str(tmp_path)), status=2)
    if os.geteuid() == 0:  # a file of another user
        os.chown(real, 65534, 65534)
        one_line_error(jar.run("hire_workers", "--hosts", str(real)), "owned by uid 65534",
                       status=2)
        os.chown(real, 0, 0)
    assert calls(standin) == {}
    open_dir.chmod(0o1777)  # sticky, as /tmp: others cannot replace the file
    assert jar.run("hire_workers", "--hosts", str(open_dir / "hosts.ini")).returncode == 1
    assert list(calls(standin)) == ["a"]


def test_a_bad_jj_ssh_or_timeout_is_one_line(jar, standin):
    hosts = write_hosts(jar.root / "hosts.ini", "[a]\n[b]\n")
    for bad in ("ssh 'oops", "  "):
        one_line_error(jar.run("hire_workers", "--hosts", str(hosts), env={"JJ_SSH": bad}),
                       "JJ_SSH", status=2)
    one_line_error(jar.run("hire_workers", "--hosts", str(hosts), "--timeout", "soon"),
                   "--timeout", status=1)
    missing = jar.run("hire_workers", "--hosts", str(hosts), env={"JJ_SSH": "/nonexistent/ssh"})
    assert missing.returncode == 1
    assert missing.stdout.splitlines() == [
        f"{host}: failed: cannot run '/nonexistent/ssh': No such file or directory"
        for host in "ab"]


# -- install_cron --hosts ---------------------------------------------------------


def test_install_cron_on_every_host(jar, standin, tmp_path):
    """Each host's crontab gets lines with its own settings; --remove takes them out again."""
    hosts = write_hosts(jar.root / "hosts.ini", f"""
[rain]
workers: 3
node: rain
python: {PYTHON}
[flower]
workers: auto
home: {tmp_path / "flower jar"}
categories: GPU
python: {PYTHON}
[broken]
python: /nonexistent/python3
""")
    tabs = {host: tmp_path / "hosts" / host / "tab" for host in ("rain", "flower")}
    (tmp_path / "hosts" / "rain").mkdir(parents=True)
    tabs["rain"].write_text("0 3 * * * /usr/bin/backup\n")
    result = jar.run("install_cron", "--hosts", str(hosts), "--file", "tab", "--stale", "15m",
                     "--purge", "7d", "--html", str(tmp_path / "status.html"))
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "rain: cron lines installed", "flower: cron lines installed",
        "broken: failed: no Python there: env: '/nonexistent/python3': No such file or directory"]
    from jobjar.hosts import auto_workers

    rain = [x for x in tabs["rain"].read_text().splitlines() if x.strip()]
    assert rain[0] == "0 3 * * * /usr/bin/backup" and len(rain) == 5
    assert all(f"JJ_HOME={jar.home} " in x and "JJ_NODE=rain " in x and
               "JJ_MAX_WORKERS=3 " in x and "JJ_ALLOW_ROOT=yes" in x for x in rain[1:])
    assert "recover_jobs --stale 900 " in rain[2]
    assert any("purge_jobs --older-than 604800" in x for x in rain)
    assert any(f"system_status --html {tmp_path / 'status.html'}" in x for x in rain)
    # A later install for one option keeps the other's lines (each has its own tag).
    jar.run("install_cron", "--hosts", str(hosts), "--file", "tab")
    assert len([x for x in tabs["rain"].read_text().splitlines() if x.strip()]) == 5
    flower = [x for x in tabs["flower"].read_text().splitlines() if x.strip()]
    assert len(flower) == 4 and not any("JJ_NODE=" in x for x in flower)
    assert all(shlex.quote(f"JJ_HOME={tmp_path / 'flower jar'}") in x or
               f"JJ_HOME={shlex.quote(str(tmp_path / 'flower jar'))}" in x for x in flower)
    assert all(f"JJ_MAX_WORKERS={auto_workers()} " in x and "JJ_CATEGORIES=GPU " in x
               for x in flower)
    dry = jar.run("install_cron", "--hosts", str(hosts), "--file", "tab", "--remove",
                  "--dry-run")
    assert "rain:   0 3 * * * /usr/bin/backup" in dry.stdout.splitlines()
    assert len(tabs["rain"].read_text().splitlines()) == 5
    jar.run("install_cron", "--hosts", str(hosts), "--file", "tab", "--remove")
    assert tabs["rain"].read_text() == "0 3 * * * /usr/bin/backup\n"
    assert tabs["flower"].read_text().strip() == ""
    bad = jar.run("install_cron", "--hosts", str(hosts), "--file", "tab",
                  "--worker-schedule", "61 * * * *")
    assert bad.returncode == 1 and "rain: failed: install_cron failed there" in bad.stdout


# -- real ssh to namespace nodes ------------------------------------------------------

NODES = ("alpha", "bravo", "charlie")


class Fleet:
    """Three namespace nodes sharing a local jar, each with an sshd of its own."""

    def __init__(self) -> None:
        from test_nodes import Cluster

        self.root = Path(tempfile.mkdtemp(prefix="jj-fleet-"))
        self.cluster = Cluster(self.root, "local")
        self.servers: dict[str, SshServer] = {}

    def start(self) -> None:
        self.cluster.start(*NODES)
        for name in NODES:
            server = SshServer(self.root / f"ssh-{name}")
            self.servers[name] = server
            server.start(inside=self.cluster.nodes[name])
        # a key no sshd knows, a port where nothing listens, a port that never answers
        self.stranger = self.root / "stranger_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(self.stranger)], check=True, capture_output=True)
        self.closed_port = free_port()
        self.silent = socket.socket()
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen(8)
        config = [f"Host {n}\n  IdentityFile {s.key}\n" for n, s in self.servers.items()]
        config += [f"Host echo\n  IdentityFile {self.stranger}\n",
                   f"Host foxtrot\n  IdentityFile {self.servers['alpha'].key}\n",
                   "Host *\n  HostName 127.0.0.1\n  User root\n  IdentitiesOnly yes\n"
                   "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                   "  LogLevel ERROR\n"]
        (self.root / "ssh_config").write_text("".join(config))
        self.env = {**self.cluster.env,
                    "JJ_SSH": f"ssh -F {self.root / 'ssh_config'} -o BatchMode=yes"}

    def hosts_file(self, extra: str = "") -> Path:
        ports = {n: s.port for n, s in self.servers.items()}
        text = (f"[alpha]\nworkers: 2\ncategories: EXTRA\nport: {ports['alpha']}\n"
                f"python: {PYTHON}\n"
                f"[bravo]\nworkers: 1\nport: {ports['bravo']}\nuser: root\npython: {PYTHON}\n"
                f"[charlie]\nworkers: auto\nnode: charlie-node\nport: {ports['charlie']}\n"
                f"python: {PYTHON}\n" + extra)
        return write_hosts(self.root / "home" / ".jobjar" / "hosts.ini", text)

    def hire(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "hire_workers"), *args], env=self.env,
                              capture_output=True, text=True, timeout=300)

    def live_workers(self) -> Counter:
        """Live workers by node name (the host's name of their process checked)."""
        found = Counter()
        for worker in os.listdir(self.cluster.home / "workers"):
            node, _, pid = worker.rpartition(".")
            host = "charlie" if node == "charlie-node" else node
            if pid.isdigit() and host in self.cluster.nodes and \
                    not (self.cluster.home / "workers" / worker / "exited").exists() and \
                    self.cluster.worker_pid_alive(f"{host}.{pid}"):
                found[node] += 1
        return found

    def shutdown(self) -> None:
        self.silent.close()
        self.cluster.shutdown()  # every process of every node, its sshd too
        for server in self.servers.values():
            server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def fleet():
    reason = missing_support()
    for tool in ("ssh", "ssh-keygen"):
        if not reason and not shutil.which(tool):
            reason = f"{tool} is not installed (apt-get install openssh-client)"
    if not reason and not os.access(SSHD, os.X_OK):
        reason = f"{SSHD} is not installed (apt-get install openssh-server)"
    if reason:
        from test_nodes import skip_loudly

        skip_loudly("fleet", reason)
    made = Fleet()
    try:
        made.start()
        yield made
    finally:
        made.shutdown()


def test_hire_workers_over_ssh_on_every_node(fleet):
    """Counts per node, jobs on them, idempotent hiring, stop by node, failures named."""
    from jobjar.hosts import auto_workers

    extra = (f"[delta]\nport: {fleet.closed_port}\n"  # nothing listens there
             f"[echo]\nport: {fleet.servers['alpha'].port}\n"  # a key alpha does not know
             f"[foxtrot]\nport: {fleet.servers['alpha'].port}\npython: /nonexistent/python3\n")
    fleet.hosts_file(extra)
    result = fleet.hire()
    lines = result.stdout.splitlines()
    assert result.returncode == 1, (result.stdout, result.stderr)
    auto = auto_workers()
    assert lines[:3] == ["alpha: running 0, started 2", "bravo: running 0, started 1",
                         f"charlie: running 0, started {auto} (node charlie-node)"]
    assert lines[3].startswith("delta: failed: unreachable: ") and "refused" in lines[3]
    assert lines[4].startswith("echo: failed: authentication failed: ") and \
        "Permission denied" in lines[4]
    assert lines[5].startswith("foxtrot: failed: no Python there: ")
    assert len(lines) == 6
    assert fleet.live_workers() == {"alpha": 2, "bravo": 1, "charlie-node": auto}

    # hiring again starts nothing; only the named hosts are asked
    again = fleet.hire("alpha", "bravo", "charlie")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines() == [
        "alpha: running 2, started 0", "bravo: running 1, started 0",
        f"charlie: running {auto}, started 0 (node charlie-node)"]

    # jobs for each node run there; EXTRA (alpha's section) too
    cluster = fleet.cluster
    names = cluster.submit("bravo", 9, "alpha", "bravo", "charlie-node")
    names += cluster.submit("charlie", 2, "EXTRA")
    wait_for(lambda: len(cluster.completed()) >= 11, 120, message="11 completed jobs")
    hosts = dict(cluster.log_lines())
    assert sorted(hosts) == sorted(names)
    expected = ["alpha", "bravo", "charlie"] * 3 + ["alpha", "alpha"]
    assert [hosts[name] for name in names] == expected

    # stop bravo's workers by node, from alpha: no ssh; the others keep theirs
    out = cluster.cmd("alpha", "stop_worker", "bravo").stdout
    assert len(out.splitlines()) == 1
    wait_for(lambda: "bravo" not in fleet.live_workers(), 60, message="bravo's workers to stop")
    assert fleet.live_workers() == {"alpha": 2, "charlie-node": auto}
    topped = fleet.hire("bravo")
    assert topped.returncode == 0 and topped.stdout.strip() == "bravo: running 0, started 1"
    assert fleet.live_workers() == {"alpha": 2, "bravo": 1, "charlie-node": auto}


def test_a_host_that_never_answers_costs_only_its_timeout(fleet):
    """ssh's own timeout (from JJ_SSH) or hire_workers's --timeout, whichever comes first."""
    fleet.hosts_file(f"[golf]\nport: {fleet.silent.getsockname()[1]}\n")
    fleet.env["JJ_SSH"] += " -o ConnectTimeout=3"
    result = fleet.hire("golf", "bravo")
    assert result.returncode == 1, result.stderr
    bravo, golf = result.stdout.splitlines()
    assert bravo == "bravo: running 0, started 1"
    assert golf.startswith("golf: failed: unreachable: ") and "timed out" in golf, golf
    assert fleet.live_workers() == {"bravo": 1}
    fleet.env["JJ_SSH"] = fleet.env["JJ_SSH"].replace(" -o ConnectTimeout=3", "")
    alone = fleet.hire("--timeout", "2s", "golf")
    assert alone.returncode == 1, alone.stderr
    assert alone.stdout.strip() == "golf: failed: no answer within 2 s (timed out)"


# -- the example and the report ----------------------------------------------------


def test_the_example_hosts_file_is_valid_and_uses_every_key():
    from jobjar import hosts

    parsed = hosts.parse(ROOT / "hosts.ini.example", (ROOT / "hosts.ini.example").read_text())
    assert {key for h in parsed for key in hosts.KEYS if getattr(h, key) is not None} == \
        set(hosts.KEYS)
    assert "auto" in [h.workers for h in parsed]


def test_check_workers_json_is_the_report(jar):
    first = jar.run("check_workers", "--json", env={"JJ_MAX_WORKERS": "1"}, check=True)
    report = json.loads(first.stdout)
    jar.worker_pids.extend(int(w.rsplit(".", 1)[1]) for w in report["started"])
    assert (report["alive"], len(report["started"]), report["max_workers"]) == ([], 1, 1)
    again = json.loads(jar.run("check_workers", "--json", "--dry-run", check=True).stdout)
    assert again["alive"] == report["started"] and again["started"] == []


def test_the_python_api_checks_as_the_command_does(jar, standin):
    import jobjar
    from jobjar.hosts import HostsFileError

    hosts = write_hosts(jar.root / "hosts.ini", "[a]\npython: /nonexistent/python3\n")
    with pytest.raises(jobjar.JobJarError, match="timeout must be a duration"):
        jobjar.hire_workers(hosts, timeout="soon")
    with pytest.raises(HostsFileError, match="no host 'b'"):
        jobjar.hire_workers(hosts, "b")
    (result,) = jobjar.install_cron_on_hosts(hosts, "a", timeout="1m")
    assert not result.ok and result.reason.startswith("no Python there")
    assert calls(standin)["a"][-1].split()[-1] == "install_cron"


def test_jj_ssh_stays_out_of_cron_lines(jar, standin, tmp_path):
    jar.run("install_cron", "--file", str(tmp_path / "tab"), check=True)
    text = (tmp_path / "tab").read_text()
    assert "JJ_ALLOW_ROOT=yes" in text and "JJ_SSH" not in text and "ssh-standin" not in text
