"""Wake-ups from local filesystem notifications (Linux inotify, via ctypes).

Notifications only see changes made through this machine's kernel: a job
submitted on another NFS client produces no event.  So they are an
accelerator for same-node submissions and control files, and every caller
keeps its timed poll as the fallback.  Where inotify is missing, ``Watcher``
still works: ``wait`` simply sleeps for the timeout.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import time

IN_CREATE = 0x100
IN_MOVED_TO = 0x80
IN_ATTRIB = 0x4
IN_DELETE = 0x200
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")
_MASK = IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE

_libc = None


def _load_libc():
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            lib.inotify_init1  # noqa: B018 - raise AttributeError where missing
            _libc = lib
        except (OSError, AttributeError):
            _libc = False
    return _libc


class Watcher:
    """Watch a few directories; ``wait`` returns names created in them."""

    def __init__(self) -> None:
        lib = _load_libc()
        self.fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC) if lib else -1
        self.watches: dict[int, str] = {}
        self.paths: set[str] = set()

    @property
    def active(self) -> bool:
        """True when notifications work here."""
        return self.fd >= 0

    def add(self, path: os.PathLike | str) -> bool:
        """Watch a directory (again harmless); False if it cannot be watched."""
        path = os.fspath(path)
        if not self.active or path in self.paths:
            return path in self.paths
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), _MASK)
        if wd < 0:
            return False
        self.watches[wd] = path
        self.paths.add(path)
        return True

    def wait(self, timeout: float) -> list[tuple[str, str]]:
        """Block up to ``timeout`` seconds; return ``(directory, name)`` events."""
        if not self.active:
            if timeout > 0:
                time.sleep(timeout)
            return []
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        return self.drain() if ready else []

    def drain(self) -> list[tuple[str, str]]:
        """Events already queued, without blocking."""
        events = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset : offset + length].rstrip(b"\0")
                offset += length
                if mask & 0x8000:  # IN_IGNORED: the directory went away
                    path = self.watches.pop(wd, None)
                    self.paths.discard(path)
                    continue
                if wd in self.watches and name:  # nameless: about the directory itself
                    events.append((self.watches[wd], os.fsdecode(name)))

    def close(self) -> None:
        """Release the notification descriptor."""
        if self.active:
            os.close(self.fd)
            self.fd = -1
