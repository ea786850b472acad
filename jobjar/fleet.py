"""Many machines from one terminal: ``hire_workers`` and ``install_cron --hosts`` over ssh.

Each host of the hosts file (``hosts.py``) gets one ``ssh`` running a Job
Jar command there, all hosts in parallel: ``check_workers`` for
``hire_workers`` (so hiring is idempotent: it tops a host up to its number
and starts nothing where enough run), ``install_cron`` for
``install_cron --hosts``.  The remote side gets the host's settings from its
section and the ``JJ_*`` settings of the invoking shell, as ``install_cron``
carries them into cron lines, except ``JJ_NODE`` (each host has its own) and,
when the section names the jar's ``home`` there, ``JJ_WORKER_HOME``.

Nothing here is needed to stop a fleet: ``stop_worker NODE`` works through
the jar's files from any node.

The ssh command is ``$JJ_SSH`` (default ``ssh -o BatchMode=yes``), as rsync's
``-e`` and git's ``GIT_SSH``: users add options there, tests a stand-in.  It
is read from the environment, not the configuration files, and is never
carried to the hosts.  Every ssh has a deadline, so a host that does not
answer delays nothing but its own line.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .hosts import Host, HostsFileError, default_file, load

#: The ssh command when ``JJ_SSH`` is not set.
DEFAULT_SSH = "ssh -o BatchMode=yes"

#: How long one host may take (ssh, then the remote command), by default.
DEFAULT_TIMEOUT = 180.0

#: The remote exit status when the host's Python cannot import Job Jar.
NO_JOBJAR = 3

#: Settings of the invoking shell never sent to a host.
NOT_SENT = ("JJ_NODE", "JJ_SSH")

#: The remote program: Job Jar's ``cli.fleet.remote_main``, or exit ``NO_JOBJAR`` saying why.
#: Plain enough for any Python to run up to the import, so that an old one
#: is reported as such rather than as a syntax error.
REMOTE_CODE = (
    "import sys\n"
    "try:\n"
    "    from jobjar.cli.fleet import remote_main\n"
    "except Exception as exc:\n"
    "    sys.stderr.write('cannot import Job Jar with %s: %s\\n' % (sys.executable, exc))\n"
    f"    sys.exit({NO_JOBJAR})\n"
    "sys.exit(remote_main(sys.argv[1:]))\n"
)

__all__ = ["hire_workers", "install_cron_on_hosts", "HostResult"]


@dataclass
class HostResult:
    """What one host did: ``ok`` with the counts, or ``reason`` why it could not."""

    host: str
    ok: bool
    reason: str = ""
    node: str = ""
    max_workers: int = 0
    running: int = 0  # live workers found before any was started
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    stop_all: bool = False
    output: str = ""  # the remote command's standard output


def hire_workers(hosts_file: str | os.PathLike | None = None,
                 hosts: Sequence[str] | str | None = None,
                 timeout: float | str = DEFAULT_TIMEOUT) -> list[HostResult]:
    """Start or top up the workers of every host (or of ``hosts``) to its number.

    Returns one ``HostResult`` per host, in the hosts file's order; a host
    that failed does not stop the others.  A bad hosts file or an unknown
    host raises ``HostsFileError`` before any ssh runs; ``timeout`` is a
    duration (``90``, ``3m``), checked as ``hire_workers --timeout`` is.
    """
    timeout = _duration(timeout)
    results = run_everywhere(select(hosts_file, hosts), ["check_workers", "--json"], timeout)
    for result in results:
        if not result.ok:
            continue
        report = _last_json(result.output)
        if report is None:
            result.ok = False
            result.reason = "check_workers gave no report (an older Job Jar there?)"
            continue
        result.node = str(report.get("node", ""))
        result.max_workers = _count(report.get("max_workers"))
        result.running = len(_names(report.get("alive")))
        result.started = _names(report.get("started"))
        result.stopped = _names(report.get("stopped"))
        result.stop_all = report.get("stop_all") is True
    return results


def install_cron_on_hosts(hosts_file: str | os.PathLike | None = None,
                          hosts: Sequence[str] | str | None = None, *, remove: bool = False,
                          tabfile: str | None = None, schedules: dict | None = None,
                          stale: float | None = None, dry_run: bool = False,
                          timeout: float | str = DEFAULT_TIMEOUT, purge: float | None = None,
                          html: str | None = None) -> list[HostResult]:
    """Run ``install_cron`` (or ``install_cron --remove``) on every host of the file.

    Each host's cron lines carry its own settings (``home``, ``node``,
    ``workers``, ...), as ``hire_workers`` gives them; ``tabfile`` is a
    crontab file on the host instead of the user's crontab.  ``purge``
    (seconds) and ``html`` (a path on the host) add the purge and status
    page lines there, as ``install_cron --purge``/``--html`` do.
    """
    timeout = _duration(timeout)
    argv = ["install_cron"]
    if remove:
        argv.append("--remove")
    if dry_run:
        argv.append("--dry-run")
    if tabfile:
        argv += ["--file", str(tabfile)]
    for name, value in (schedules or {}).items():
        if value:
            argv += [f"--{name}-schedule", str(value)]
    if stale is not None:
        argv += ["--stale", f"{stale:g}"]
    if purge is not None:
        argv += ["--purge", f"{purge:g}s"]
    if html:
        argv += ["--html", str(html)]
    return run_everywhere(select(hosts_file, hosts), argv, timeout)


def select(hosts_file: str | os.PathLike | None,
           names: Sequence[str] | str | None) -> list[Host]:
    """The hosts named (all when none are), in the file's order; an unknown one is an error."""
    every = load(hosts_file)
    if isinstance(names, str):  # one host, not its letters
        names = [names]
    if not names:
        return every
    known = {host.name.lower(): host for host in every}
    unknown = [name for name in names if name.lower() not in known]
    if unknown:
        where = hosts_file if hosts_file is not None else default_file()
        raise HostsFileError(f"{where}: no host {unknown[0]!r} in the hosts file")
    wanted = {name.lower() for name in names}
    return [host for host in every if host.name.lower() in wanted]


def run_everywhere(hosts: list[Host], argv: list[str], timeout: float) -> list[HostResult]:
    """Run the Job Jar command ``argv`` on every host at once; one result per host."""
    ssh = ssh_words()  # a bad JJ_SSH is found before any ssh runs
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(len(hosts), 32)) as pool:
        return list(pool.map(lambda host: run_on(host, argv, timeout, ssh), hosts))


def run_on(host: Host, argv: list[str], timeout: float,
           ssh: list[str] | None = None) -> HostResult:
    """Run the Job Jar command ``argv`` on ``host`` over ssh, within ``timeout`` seconds."""
    command = ssh_command(host, ssh) + [remote_command(host, argv)]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, close_fds=True)
    except subprocess.TimeoutExpired:
        return HostResult(host.name, False, f"no answer within {timeout:g} s (timed out)")
    except OSError as exc:
        return HostResult(host.name, False, f"cannot run {command[0]!r}: {exc.strerror}")
    out = done.stdout.decode(errors="replace")
    err = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        return HostResult(host.name, False, why_failed(done.returncode, err, argv[0]),
                          output=out)
    return HostResult(host.name, True, output=out)


def ssh_words() -> list[str]:
    """``$JJ_SSH`` (default ``DEFAULT_SSH``) split as a shell would; a bad one is an error."""
    text = os.environ.get("JJ_SSH") or DEFAULT_SSH
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise HostsFileError(f"JJ_SSH: cannot split {text!r}: {exc}") from None
    if not words:
        raise HostsFileError("JJ_SSH has no command in it")
    return words


def ssh_command(host: Host, ssh: list[str] | None = None) -> list[str]:
    """The ssh command (``ssh_words``), ``-p PORT``, ``-l USER``, then the host."""
    words = list(ssh or ssh_words())
    if host.port is not None:
        words += ["-p", str(host.port)]
    if host.user is not None:
        words += ["-l", host.user]
    return [*words, host.name]


def settings(host: Host) -> dict[str, str]:
    """The ``JJ_*`` settings the host's command runs with (see the module's docstring)."""
    from .config import overrides_as_env
    from .cron import NOT_CARRIED

    sent = {key: value for key, value in sorted(os.environ.items())
            if key.startswith("JJ_") and key not in NOT_CARRIED and key not in NOT_SENT}
    sent.update((k, v) for k, v in overrides_as_env().items() if k not in NOT_SENT)
    if host.home is not None:
        sent["JJ_HOME"] = host.home
        sent.pop("JJ_WORKER_HOME", None)  # a path of this machine's jar
    if host.node is not None:
        sent["JJ_NODE"] = host.node
    if host.categories is not None:
        sent["JJ_CATEGORIES"] = " ".join(host.categories)
    if host.workers is not None:
        sent["JJ_MAX_WORKERS"] = str(host.workers)
    return sent


def remote_command(host: Host, argv: list[str]) -> str:
    """The command line ssh hands to the host's shell: ``env SETTINGS PYTHON -c CODE ARGV``."""
    assignments = [f"{key}={value}" for key, value in settings(host).items()]
    words = ["env", *assignments, *(host.python or ("python3",)), "-c", REMOTE_CODE, *argv]
    return " ".join(shlex.quote(word) for word in words)


def why_failed(status: int, stderr: str, command: str) -> str:
    """Name the reason of a failed ssh: unreachable, authentication, no Python, the command.

    ssh itself exits 255 (its message tells a refused key from a host it
    cannot reach); the remote shell exits 127 or 126 when the Python is not
    there; ``REMOTE_CODE`` exits ``NO_JOBJAR`` when that Python has no Job Jar.
    """
    from .naming import printable

    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = printable(lines[-1][:300]) if lines else "no message"
    text = stderr.lower()
    if status == 255:
        if any(sign in text for sign in ("permission denied", "host key verification failed",
                                         "authentication", "no supported authentication")):
            return f"authentication failed: {last}"
        if any(sign in text for sign in ("could not resolve", "name or service not known",
                                         "connection refused", "timed out", "no route to host",
                                         "network is unreachable", "connection closed",
                                         "connection reset")):
            return f"unreachable: {last}"
        return f"ssh failed: {last}"
    if status in (126, 127):
        return f"no Python there: {last}"
    if status == NO_JOBJAR:
        return f"no Job Jar there: {last}"
    if status < 0:
        return f"ssh ended by signal {-status}"
    return f"{command} failed there (exit status {status}): {last}"


def _duration(value: float | str) -> float:
    """A timeout as every command spells it; a bad one is a ``JobJarError`` naming it."""
    from .config import MAX_OPTION_SECONDS, seconds
    from .errors import JobJarError

    try:
        return seconds(value, MAX_OPTION_SECONDS)
    except ValueError as exc:
        raise JobJarError(f"timeout {exc}, not {value!r}") from None


def _last_json(text: str) -> dict | None:
    import json

    for line in reversed(text.splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _names(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
