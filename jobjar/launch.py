"""Starting workers: detached in the background, or in the foreground.

A detached worker runs in a new session with its standard streams away from
the terminal; ``start_worker`` waits until the worker has created its
directory, so that it can print the worker's name or the reason it failed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .config import load, overrides_as_env
from .errors import JobJarError
from .layout import WORKER_INFO, Jar
from .naming import check_category

#: How long ``start_worker`` waits for a new worker to report in.
START_TIMEOUT = 30.0


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides_as_env())
    top = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(top), env.get("PYTHONPATH")]))
    return env


def start_worker(categories: list[str] | tuple[str, ...] = (), foreground: bool = False,
                 ready: Callable[[str], None] | None = None) -> str:
    """Start a worker claiming ``categories`` (else ``JJ_CATEGORIES``); return its name.

    In the foreground this only returns when the worker stops; ``ready`` is
    called with its name once it has set itself up.
    """
    for category in categories:
        check_category(category)
    config = load()
    if foreground:
        from .worker import Worker

        worker = Worker(config, list(categories) or None)
        worker.run(ready)
        return worker.name
    jar = Jar.from_config(config)
    code = "import sys; from jobjar.worker import main_loop; main_loop(sys.argv[1:] or None)"
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen([sys.executable, "-c", code, *categories], env=_child_env(),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=errors, start_new_session=True, close_fds=True)
        name = f"{config.node}.{child.pid}"
        info = jar.worker_dir(name) / WORKER_INFO
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if info.exists():  # it started (whatever it has done since)
                return name
            if child.poll() is not None and not info.exists():
                errors.seek(0)
                lines = errors.read().decode(errors="replace").strip().splitlines()
                message = lines[-1] if lines else f"exit status {child.returncode}"
                # "jobjar.errors.JobJarError: refusing ..." -> "refusing ..."
                message = re.sub(r"^[\w.]+(Error|Exception): ", "", message)
                raise JobJarError(f"the worker did not start: {message}")
            time.sleep(0.01)
        raise JobJarError(f"the worker {name} did not report in within {START_TIMEOUT:g} s")
