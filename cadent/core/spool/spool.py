"""A destination's disk spool: where its points go while it is down or too slow.

The sender hands whole batches to :meth:`Spool.append` on the gevent loop; a writer greenlet
takes them in order, encodes them into wire messages (the sender's encoder, ``batch_points``
datapoints each; this CPU work is on the loop, like the sender's own encoding) and has the
spool's own thread append them to the current segment (see :mod:`cadent.core.spool.records`).
Every file operation of a spool runs in that one thread, in order, so the loop never waits on
the disk and the files need no locks.

Replay is strictly first in, first out: :meth:`read` returns the oldest messages not yet
delivered, :meth:`commit` records them as delivered (the cursor file is rewritten after every
delivered write) and deletes a segment once it has been read through.

Durability: a message is *acknowledged into the spool* once its ``write()`` has returned; from
then on a crash or SIGKILL of the process cannot lose it (the kernel holds it). Segments are
fsynced when they are sealed, on shutdown and at most ``fsync_interval_s`` after a write, so a
power loss or kernel crash can lose up to that last interval. After a crash, messages sent but
not yet committed are sent again (at most one sender write, a few thousand datapoints).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

import gevent
from gevent.event import Event
from gevent.threadpool import ThreadPool

from cadent.core.flow import FlowControl
from cadent.core.point import Batch
from cadent.core.spool import records
from cadent.core.stats import Stats

log = logging.getLogger(__name__)

WRITE_BACKLOG_POINTS = 200_000


@dataclass(frozen=True)
class SpoolConfig:
    """Where and how much to spool (carbon.conf: SPOOL_DIR, SPOOL_MAX_BYTES, SPOOL_AFTER_S)."""

    directory: str
    max_bytes: int
    after_s: float
    segment_bytes: int = 8 << 20
    fsync_interval_s: float = 1.0


@dataclass
class ReadToken:
    """Messages :meth:`Spool.read` returned, and where the cursor goes once they are sent."""

    bodies: list[bytes]
    points: int
    segment: int
    end: int
    nbytes: int


class _Files:
    """The thread side: the open segment and the cursor. Only the spool's thread calls this."""

    def __init__(self, directory: str, segment_bytes: int, fsync_interval_s: float) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.fsync_interval_s = fsync_interval_s
        self.segment = records.SegmentFile(directory)
        self.next_id = 0
        self.last_sync = time.monotonic()
        self.cursor: records.CursorFile | None = None

    def recover(self) -> tuple[dict[int, int], tuple[int, int] | None, int, int]:
        """Open the directory: (readable end per segment, read position, points, torn records)."""
        os.makedirs(self.directory, exist_ok=True)
        ids = records.list_segments(self.directory)
        cursor = records.read_cursor(self.directory)
        ends: dict[int, int] = {}
        points = torn = 0
        start: tuple[int, int] | None = None
        for segment in ids:
            path = records.segment_path(self.directory, segment)
            offset = 0
            if cursor is not None:
                if segment < cursor[0]:
                    os.unlink(path)
                    continue
                if segment == cursor[0]:
                    offset = cursor[1]
            scan = records.scan_segment(path, offset)
            if scan.corrupt:
                torn += 1
            if start is None:
                start = (segment, offset)
            ends[segment] = max(scan.end, offset)
            points += scan.points
        self.next_id = (ids[-1] + 1) if ids else 0
        self.cursor = records.CursorFile(self.directory)
        return ends, start, points, torn

    def append(self, chunks: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
        """Append records, starting a new segment whenever the open one is full; returns the
        new size of every segment written to, in order."""
        sizes: list[tuple[int, int]] = []
        parts: list[bytes] = []
        grouped = 0
        for count, body in chunks:
            parts += (records.record_header(count, body), body)
            grouped += records.HEADER.size + len(body)
            if self.segment.fd is None or self.segment.size + grouped >= self.segment_bytes:
                sizes.append(self._write(parts))
                parts, grouped = [], 0
        if parts:
            sizes.append(self._write(parts))
        if time.monotonic() - self.last_sync >= self.fsync_interval_s:
            self.sync()
        return sizes

    def _write(self, parts: list[bytes]) -> tuple[int, int]:
        """Append whole records to the open segment, or to a new one if it is full."""
        if self.segment.fd is None or self.segment.size >= self.segment_bytes:
            self.segment.open(self.next_id)
            self.next_id += 1
        self.segment.append(parts)
        return self.segment.active, self.segment.size

    def sync(self) -> None:
        self.segment.sync()
        self.last_sync = time.monotonic()

    def drop_active(self) -> int:
        """Close and delete the open segment (everything in it was delivered)."""
        segment = self.segment.active
        if segment >= 0:
            self.segment.unlink(segment)
        return segment

    def unlink(self, segment: int) -> None:
        self.segment.unlink(segment)

    def commit(self, segment: int, offset: int) -> None:
        if self.cursor is not None:
            self.cursor.write(segment, offset)

    def close(self) -> None:
        self.segment.seal()
        if self.cursor is not None:
            self.cursor.close()
            self.cursor = None


class Spool:
    """One destination's spool. Loop-side API: append, read, commit, empty, close."""

    def __init__(
        self,
        directory: str,
        *,
        encode: Callable[[Batch], bytes],
        batch_points: int,
        max_bytes: int,
        name: str = "",
        stats: Stats | None = None,
        prefix: str = "",
        flow: FlowControl | None = None,
        segment_bytes: int = 8 << 20,
        fsync_interval_s: float = 1.0,
    ) -> None:
        self.directory = directory
        self.encode = encode
        self.batch_points = batch_points
        self.max_bytes = max_bytes
        self.name = name or directory
        self.stats = stats if stats is not None else Stats()
        self.prefix = prefix
        self._flow = flow
        self._flow_reason = f"spool {self.name} writing"
        self._files = _Files(directory, segment_bytes, fsync_interval_s)
        self._pool = ThreadPool(1)
        self._ends: dict[int, int] = {}
        self._active = -1
        self._read: tuple[int, int] | None = None
        self._unread_points = 0
        self._unread_bytes = 0
        self._pending: list[Batch] = []
        self._pending_points = 0
        self._writing_points = 0
        self._bytes_per_point = 64.0
        self._wake = Event()
        self._written = Event()
        self._idle = Event()
        self._idle.set()
        self._reading = False
        self._opened = False
        self._writer: gevent.Greenlet | None = None
        self.corrupt = 0

    def _run(self, func, *args):
        return self._pool.apply(func, args)

    # ---- lifecycle

    def open(self) -> None:
        """Recover what a previous run left (blocking the calling greenlet only)."""
        if self._opened:
            return
        try:
            ends, start, points, torn = self._run(self._files.recover)
        except OSError as exc:
            log.error("spool %s: cannot use %s: %s", self.name, self.directory, exc)
            raise
        self._ends, self._read, self._unread_points = ends, start, points
        self._unread_bytes = sum(ends.values()) - (start[1] if start else 0)
        self._opened = True
        if torn:
            self.corrupt += torn
            self.stats.incr(self.prefix + "spoolCorruptRecords", torn)
            log.error("spool %s: %d segment(s) end in a torn or damaged record; the rest of "
                      "each was skipped", self.name, torn)
        if points:
            log.warning("spool %s holds %d datapoints from a previous run; replaying them "
                        "before newer points", self.name, points)
        self._writer = gevent.spawn(self._write_loop)

    def close(self, timeout_s: float = 10.0) -> int:
        """Write what is pending, fsync, close; returns datapoints that could not be written."""
        deadline = time.monotonic() + timeout_s
        while self._opened and (self._pending or self._writing_points) \
                and time.monotonic() < deadline:
            self._idle.wait(0.1)
            gevent.sleep(0)
        if self._writer is not None:
            self._writer.kill(block=True, timeout=2)
            self._writer = None
        lost = self._pending_points + self._writing_points
        self._pending, self._pending_points, self._writing_points = [], 0, 0
        if self._opened:
            self._run(self._files.close)
        self._pool.kill()
        self._opened = False
        if self._flow is not None:
            self._flow.resume(self._flow_reason)
        return lost

    # ---- state

    @property
    def opened(self) -> bool:
        return self._opened

    @property
    def empty(self) -> bool:
        """Nothing waiting: every spooled point was delivered and nothing is being written."""
        return not (self._unread_points or self._pending_points or self._writing_points)

    @property
    def points(self) -> int:
        """Datapoints in the spool (written or about to be) and not yet delivered."""
        return self._unread_points + self._pending_points + self._writing_points

    @property
    def unread_bytes(self) -> int:
        return self._unread_bytes

    def _estimated_bytes(self) -> float:
        return self._unread_bytes + (self._pending_points + self._writing_points) * self._bytes_per_point

    # ---- writing

    def append(self, batch: Batch) -> int:
        """Queue ``batch`` for the disk; returns how many points were refused (spool full)."""
        if not batch:
            return 0
        if self._estimated_bytes() >= self.max_bytes:
            return len(batch)
        self._pending.append(batch)
        self._pending_points += len(batch)
        self._wake.set()
        if self._flow is not None and self._pending_points >= WRITE_BACKLOG_POINTS:
            self._flow.pause(self._flow_reason)
        return 0

    def _write_loop(self) -> None:
        while True:
            self._wake.wait(timeout=self._files.fsync_interval_s)
            self._wake.clear()
            if not self._pending:
                try:
                    self._run(self._files.sync)
                    self._tidy()
                except OSError as exc:
                    log.error("spool %s: %s", self.name, exc)
                continue
            batches, self._pending = self._pending, []
            count, self._pending_points = self._pending_points, 0
            self._writing_points = count
            self._idle.clear()
            try:
                self._write(batches, count)
            finally:
                self._writing_points = 0
                self._idle.set()
                if self._flow is not None:
                    self._flow.resume(self._flow_reason)

    def _write(self, batches: list[Batch], count: int) -> None:
        chunks: list[tuple[int, bytes]] = []
        bad = 0
        step = self.batch_points
        for batch in batches:
            for i in range(0, len(batch), step):
                chunk = batch[i:i + step]
                try:
                    chunks.append((len(chunk), self.encode(chunk)))
                except Exception:
                    log.exception("spool %s: cannot encode a message; %d datapoints dropped",
                                  self.name, len(chunk))
                    bad += len(chunk)
        if bad:
            self.stats.incr(self.prefix + "encodeErrors", bad)
        if not chunks:
            return
        try:
            sizes = self._run(self._files.append, chunks)
        except OSError as exc:
            lost = count - bad
            log.error("spool %s: write failed (%s); %d datapoints dropped", self.name, exc, lost)
            self.stats.incr(self.prefix + "spoolWriteErrors", lost)
            self.stats.incr(self.prefix + "fullQueueDrops", lost)
            return
        grew = 0
        for segment, size in sizes:
            grew += size - self._ends.get(segment, 0)
            self._ends[segment] = size
            self._active = segment
            if self._read is None:
                self._read = (segment, 0)
        points = count - bad
        self._unread_points += points
        self._unread_bytes += grew
        self._bytes_per_point = 0.9 * self._bytes_per_point + 0.1 * (grew / max(points, 1))
        self.stats.incr(self.prefix + "spooled", points)
        self._written.set()

    def _tidy(self) -> None:
        """Delete the open segment once everything in it was delivered (on an idle wake)."""
        if self._unread_points or self._pending or self._reading or self._active < 0:
            return
        if self._read is not None and self._read != (self._active, self._ends.get(self._active)):
            return
        segment = self._run(self._files.drop_active)
        self._ends.pop(segment, None)
        self._active = -1
        self._read = None
        self._unread_bytes = sum(self._ends.values())

    # ---- replay

    def wait_readable(self, timeout: float) -> bool:
        """Wait until a write completes (or ``timeout``)."""
        self._written.clear()
        return self._written.wait(timeout)

    def read(self, max_bytes: int) -> ReadToken | None:
        """The oldest undelivered messages (about ``max_bytes``); None when nothing is readable."""
        while self._read is not None:
            segment, offset = self._read
            end = self._ends.get(segment, 0)
            if offset < end:
                break
            later = [s for s in self._ends if s > segment]
            if segment == self._active or not later:
                if not (self._pending_points or self._writing_points):
                    self._unread_points = 0     # points lost to a damaged record
                return None
            self._ends.pop(segment, None)
            self._run(self._files.unlink, segment)
            self._read = (min(later), 0)
        if self._read is None:
            return None
        segment, offset = self._read
        self._reading = True
        try:
            got = self._run(records.read_records, records.segment_path(self.directory, segment),
                            offset, end, max_bytes)
        finally:
            self._reading = False
        if got.corrupt:
            self.corrupt += 1
            self.stats.incr(self.prefix + "spoolCorruptRecords", 1)
            log.error("spool %s: damaged record in segment %d at byte %d; skipping the rest "
                      "of that segment (%d bytes)", self.name, segment, got.end, end - got.end)
            self._unread_bytes -= end - got.end
            self._ends[segment] = got.end
        return ReadToken(got.bodies, got.points, segment, got.end, got.end - offset)

    def commit(self, token: ReadToken) -> None:
        """The messages of ``token`` were delivered: move the cursor past them."""
        self._read = (token.segment, token.end)
        self._unread_points = max(0, self._unread_points - token.points)
        self._unread_bytes -= token.nbytes
        self.stats.incr(self.prefix + "spoolReplayed", token.points)
        self._run(self._files.commit, token.segment, token.end)
