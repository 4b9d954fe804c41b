"""Re-read config files when they change on disk (carbon re-checks rule files every 10 s)."""

from __future__ import annotations

import logging
import os
from typing import Callable, Iterable

import gevent

log = logging.getLogger(__name__)


def _stamp(path: str) -> tuple[int, int, int] | None:
    """What tells an edited or replaced file apart: mtime, size and inode (None: missing)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


class FileWatcher:
    """Calls ``on_change()`` when any of ``paths`` is created, modified or removed."""

    def __init__(self, paths: Iterable[str], on_change: Callable[[], None], interval_s: float = 10.0) -> None:
        self.paths = tuple(paths)
        self.on_change = on_change
        self.interval_s = interval_s
        self._seen = self._snapshot()
        self._greenlet: gevent.Greenlet | None = None

    def _snapshot(self) -> tuple[tuple[int, int, int] | None, ...]:
        return tuple(_stamp(path) for path in self.paths)

    def rearm(self) -> None:
        """Take the files as they are now as seen (after a reload triggered elsewhere)."""
        self._seen = self._snapshot()

    def check(self) -> bool:
        """Run ``on_change`` if something changed since the last check; True if it ran."""
        now = self._snapshot()
        if now == self._seen:
            return False
        self._seen = now
        try:
            self.on_change()
        except Exception:
            log.exception("reloading %s failed; keeping the previous rules", ", ".join(self.paths))
        return True

    def _run(self) -> None:
        while True:
            gevent.sleep(self.interval_s)
            self.check()

    def start(self) -> None:
        if self._greenlet is None and self.paths:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1)
            self._greenlet = None
