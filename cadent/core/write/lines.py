"""The ``file`` and ``echo`` writers: one TAB-delimited line per series and bin.

    name  sum  mean  min  max  count  resolution  nano_timestamp  nano_ttl

Bins and TTL come from the finest retention of the series' storage-schemas rule (as for
Kafka); a write carries only the points handed to it, so a bin whose points arrive in two
writes gives two lines (add them up). ``file`` appends to one file per resolution,
``<FILE_WRITER_PATH>_<seconds>s``; a file that reaches FILE_WRITER_MAX_BYTES is renamed to
``<name>.<UTC time>`` and a fresh one started; ``reopen()`` (SIGHUP) closes every file so the
next write opens it again by name, after logrotate moved it away. A write returns once its
lines are in the operating system (flushed, not fsynced). ``echo`` writes the same lines to
standard output.
"""

from __future__ import annotations

import os
import sys
import time
from abc import abstractmethod
from typing import IO, TYPE_CHECKING, Sequence

from cadent.core.native import allocate_lock
from cadent.core.write.base import Points
from cadent.core.write.binned import BinnedWriter
from cadent.core.write.bins import rollup

if TYPE_CHECKING:
    from cadent.compat.cache_settings import CacheSettings
    from cadent.compat.storage_schemas import StorageSchemas

NS = 1_000_000_000


def format_lines(name: str, points: Points, resolution: int, ttl: int) -> list[str]:
    """The lines (with newline) of ``points`` of ``name`` in ``resolution``-second bins."""
    lines = []
    for start, found in sorted(rollup(points, resolution).items()):
        lines.append(f"{name}\t{found.sum!r}\t{found.mean!r}\t{found.min!r}\t{found.max!r}\t"
                     f"{found.count}\t{resolution}\t{start * NS}\t{ttl * NS}\n")
    return lines


class _LineWriter(BinnedWriter):
    """Lines grouped by resolution, handed to ``_emit`` under one lock."""

    def __init__(self, schemas: StorageSchemas) -> None:
        super().__init__(schemas)
        self._lock = allocate_lock()
        #: the lane's Drainer: no disk budget of whisper's, many series per call
        self.drain_options = {"threads": 1, "batch": 500}

    def write_many(self, items: Sequence[tuple[str, Points]]) -> int:
        """Append the lines of every ``(name, points)``; return the points written."""
        by_resolution: dict[int, list[str]] = {}
        committed = 0
        for name, points in items:
            resolution, ttl = self.retention(name)
            by_resolution.setdefault(resolution, []).extend(
                format_lines(name, points, resolution, ttl))
            committed += len(points)
        with self._lock:
            for resolution, lines in by_resolution.items():
                self._emit(resolution, "".join(lines))
        return committed

    @abstractmethod
    def _emit(self, resolution: int, text: str) -> None:
        """Write the lines of one resolution (called under the writer's lock)."""

    def reopen(self) -> None:
        pass


class FileWriter(_LineWriter):
    """Lines into ``<base>_<seconds>s`` per resolution, rotated at ``max_bytes``."""

    def __init__(self, base: str, schemas: StorageSchemas, max_bytes: int = 100 * 1024 * 1024,
                 clock=time.time) -> None:
        super().__init__(schemas)
        self.base = base
        self.max_bytes = max_bytes
        self._clock = clock
        self._files: dict[int, IO[str]] = {}
        self._reopen = False

    def path(self, resolution: int) -> str:
        return f"{self.base}_{resolution}s"

    def _emit(self, resolution: int, text: str) -> None:
        if self._reopen:
            self._close_all()
            self._reopen = False
        handle = self._files.get(resolution)
        if handle is None:
            os.makedirs(os.path.dirname(self.base) or ".", exist_ok=True)
            handle = self._files[resolution] = open(self.path(resolution), "a",
                                                    encoding="utf-8")
        handle.write(text)
        handle.flush()
        if handle.tell() >= self.max_bytes:
            self._rotate(resolution)

    def _rotate(self, resolution: int) -> None:
        self._files.pop(resolution).close()
        current = self.path(resolution)
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(self._clock()))
        target, n = f"{current}.{stamp}", 1
        while os.path.exists(target):
            n += 1
            target = f"{current}.{stamp}-{n}"
        os.rename(current, target)

    def reopen(self) -> None:
        """Reopen every file by name before the next write (after logrotate moved them)."""
        self._reopen = True

    def _close_all(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def close(self) -> None:
        with self._lock:
            self._close_all()


class EchoWriter(_LineWriter):
    """The same lines on standard output."""

    def __init__(self, schemas: StorageSchemas, stream: IO[str] | None = None) -> None:
        super().__init__(schemas)
        self._stream = stream

    def _emit(self, resolution: int, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text)
        stream.flush()


def file_writer_from_settings(settings: CacheSettings) -> FileWriter:
    """The ``file`` backend of ``[cache] DATABASE`` (FILE_WRITER_PATH, FILE_WRITER_MAX_BYTES)."""
    from cadent.compat.kafka_settings import file_writer_config

    fc = file_writer_config(settings.conf)
    return FileWriter(fc.path, settings.schemas, fc.max_bytes)


def echo_writer_from_settings(settings: CacheSettings) -> EchoWriter:
    """The ``echo`` backend of ``[cache] DATABASE``."""
    return EchoWriter(settings.schemas)


__all__ = ["EchoWriter", "FileWriter", "echo_writer_from_settings",
           "file_writer_from_settings", "format_lines"]
