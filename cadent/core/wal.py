"""cadent-cache's write-ahead log: every accepted batch on disk before a crash can lose it.

The log is a directory of segment files (:mod:`cadent.core.spool.records`: records of length,
point count, crc32 and body); a body is a list of points as ``marshal`` data (a list of
``(name, (timestamp, value))``). :meth:`WriteAheadLog.store` is put in front of the cache's
store: it encodes the batch into an in-memory buffer and stores it in the caches. Encoding
comes first on purpose: before the caches hold references to a batch's names and numbers,
marshal writes them without its back-reference table, at about 0.1 µs a point; the same batch
encoded later (by the log's thread, say, joined with others) costs twice that or more. A batch
that cannot be encoded is counted (``wal.encodeErrors``), logged and cached all the same.

One OS thread (the log's own) writes the buffer whenever ``WAKE_BYTES`` are waiting and
fsyncs it: with ``sync_interval_s`` > 0 every that many seconds (group commit: whatever the
receivers appended meanwhile goes in one write and one fsync), so a SIGKILL or power loss
loses at most the last interval (a SIGKILL at most ``WAKE_BYTES`` of batches); with 0 the
receiver's greenlet waits until its batch is fsynced before the batch is cached (other
receivers keep running and their batches share the same fsync), so nothing acknowledged is
lost. The gevent loop never touches the files.

Segment release: a new segment starts once the open one reaches ``segment_bytes``, has been
open for ``MAX_SEGMENT_AGE_S`` or has had nothing appended for ``IDLE_SEAL_S`` (checked on the
release round), so a quiet log keeps no open segment that a crash would replay whole. A
segment that is sealed and whose batches are all in the caches records each cache's store
number then (``barrier``); once every cache's oldest unwritten store (``unwritten``) is past
it, every point of the segment has been written (or dropped) by every writer, and the file
is deleted.

Replay (:meth:`WriteAheadLog.replay`, at start before the listeners open): every segment, in
order, is read and stored into the caches; reading stops at the first torn or corrupt record
of a segment (what follows is skipped, counted in ``wal.corruptRecords`` and logged) and goes
on with the next segment. Points already written before the crash are written again.
"""

from __future__ import annotations

import logging
import marshal
import os
import time
from dataclasses import dataclass
from typing import Callable

import gevent
from gevent.event import Event
from gevent.threadpool import ThreadPool

from cadent.core.native import LoopCaller, NativeSignal, allocate_lock
from cadent.core.point import Batch
from cadent.core.spool import records

log = logging.getLogger(__name__)

#: buffered bytes that have the log's thread write (not fsync) before its interval is up
WAKE_BYTES = 4 << 20
#: an open segment is sealed once it is this old, or has had no batch for IDLE_SEAL_S
MAX_SEGMENT_AGE_S = 60.0
IDLE_SEAL_S = 5.0
#: a buffered batch: (segment, points, its encoded body)
Entry = tuple[int, int, bytes]
#: bytes read from a segment at a time during replay
REPLAY_CHUNK_BYTES = 4 << 20

Barrier = Callable[[], tuple[int, ...]]


@dataclass(frozen=True)
class WalConfig:
    """Where the log lives and how often it syncs (ENABLE_WAL, WAL_DIR, WAL_SYNC_INTERVAL,
    WAL_SEGMENT_BYTES)."""

    directory: str
    sync_interval_s: float = 1.0
    segment_bytes: int = 64 << 20


@dataclass
class _Segment:
    """The loop's view of one segment: batches not yet cached, and its barrier once known."""

    opened: float = 0.0         # time.monotonic() of its first batch
    pending: int = 0
    sealed: bool = False
    barrier: tuple[int, ...] | None = None
    #: a batch of it never reached the caches (its receiver was stopped while waiting for the
    #: fsync): only the next start's replay can deliver it, so the file stays
    kept: bool = False


@dataclass
class _Counters:
    appended_points: int = 0
    syncs: int = 0
    bytes: int = 0
    replayed_points: int = 0
    corrupt_records: int = 0
    write_errors: int = 0
    encode_errors: int = 0


def encode_batch(batch: Batch) -> bytes:
    """The body of ``batch``'s record (the log's thread adds the record header)."""
    return marshal.dumps(batch)


def decode_body(body: bytes) -> Batch:
    """The batch of a record body; ValueError if it is not one."""
    try:
        batch = marshal.loads(body)
    except (EOFError, ValueError, TypeError) as exc:
        raise ValueError(f"undecodable body: {exc}") from None
    if not isinstance(batch, list):
        raise ValueError("body is not a list of points")
    return batch


class WriteAheadLog:
    """The log of one cadent-cache (see the module doc). Loop-side API: replay, start, store,
    release, collect_stats, close."""

    def __init__(self, config: WalConfig, *, barrier: Barrier, unwritten: Barrier) -> None:
        self.config = config
        self.directory = config.directory
        self._barrier = barrier
        self._unwritten = unwritten
        self._lock = allocate_lock()
        self._buffer: list[Entry] = []
        self._buffered = 0                             # bytes in the buffer
        self._deletes: list[int] = []
        self._wake = NativeSignal()
        self._stopping = False      # the thread's last round
        self._closing = False       # no more batches go to the caches
        self._segments: dict[int, _Segment] = {}
        self._active = 0
        self._active_bytes = 0
        self._last_append = 0.0
        self._seq = 0              # batches appended
        self._written = 0          # batches written (loop side)
        self._synced = 0           # batches written and fsynced (loop side)
        self._synced_event = Event()
        self._counters = _Counters()
        self._file = records.SegmentFile(self.directory)
        self._pool: ThreadPool | None = None
        self._thread = None
        self._in_loop: LoopCaller | None = None
        self._release_timer = None

    # -- start ---------------------------------------------------------------------------

    def replay(self, store: Callable[[Batch], None]) -> int:
        """Store every logged batch with ``store`` (in log order); return the points replayed.

        Files are read in a pool thread, a chunk at a time; damage is counted, never fatal.
        """
        os.makedirs(self.directory, exist_ok=True)
        pool = gevent.get_hub().threadpool
        ids = pool.apply(records.list_segments, (self.directory,))
        replayed = 0
        for segment in ids:
            path = records.segment_path(self.directory, segment)
            points = self._replay_segment(pool, path, store)
            replayed += points
            self._segments[segment] = _Segment(sealed=True, barrier=self._barrier())
        self._active = (ids[-1] + 1) if ids else 0
        self._counters.replayed_points += replayed
        if ids:
            log.info("write-ahead log %s: replayed %d points from %d segments", self.directory,
                     replayed, len(ids))
        return replayed

    def _replay_segment(self, pool, path: str, store: Callable[[Batch], None]) -> int:
        try:
            size = pool.apply(os.path.getsize, (path,))
        except OSError as exc:
            log.error("write-ahead log: cannot read %s (%s): skipped", path, exc)
            self._counters.corrupt_records += 1
            return 0
        pos = points = 0
        while pos < size:
            try:
                got = pool.apply(records.read_records, (path, pos, size, REPLAY_CHUNK_BYTES))
            except OSError as exc:
                self._counters.corrupt_records += 1
                log.error("write-ahead log: reading %s failed at byte %d (%s); the %d bytes "
                          "from there are skipped", path, pos, exc, size - pos)
                break
            for body in got.bodies:
                try:
                    batch = decode_body(body)
                except ValueError as exc:
                    self._counters.corrupt_records += 1
                    log.error("write-ahead log %s: a record at or after byte %d is damaged "
                              "(%s): skipped", path, pos, exc)
                    continue
                store(batch)
                points += len(batch)
            pos = got.end
            if got.corrupt:
                self._counters.corrupt_records += 1
                log.error("write-ahead log %s: torn or corrupt record at byte %d; the %d bytes "
                          "after it are skipped", path, pos, size - pos)
                break
            if not got.bodies:
                break
        return points

    def start(self) -> None:
        """Start the log's thread and the periodic release of written segments."""
        os.makedirs(self.directory, exist_ok=True)
        self._in_loop = LoopCaller()
        self._pool = ThreadPool(1)
        self._thread = self._pool.spawn(self._run)
        self._release_timer = gevent.spawn(self._release_loop)

    # -- the gevent side -----------------------------------------------------------------

    def store(self, batch: Batch, store: Callable[[Batch], None]) -> None:
        """Log ``batch`` and hand it to ``store`` (the caches); with a sync interval of 0 the
        calling greenlet first waits until the batch is fsynced."""
        if not batch:
            return
        points = len(batch)
        try:
            body = encode_batch(batch)
        except (ValueError, TypeError) as exc:
            self._encode_failed(f"{type(exc).__name__}: {exc}", points)
            store(batch)
            return
        nbytes = len(body) + records.HEADER.size
        segment = self._active
        info = self._segments.get(segment)
        self._last_append = now = time.monotonic()
        if info is None:
            info = self._segments[segment] = _Segment(opened=now)
        with self._lock:
            self._buffer.append((segment, points, body))
            self._buffered += nbytes
            wake = self._buffered >= WAKE_BYTES
        self._seq += 1
        self._counters.appended_points += points
        self._active_bytes += nbytes
        if self._active_bytes >= self.config.segment_bytes:
            self._seal_active(info, barrier=False)
        if self.config.sync_interval_s > 0:
            if wake:
                self._wake.set()
            store(batch)
            if info.sealed and info.pending == 0:
                info.barrier = self._barrier()
            return
        info.pending += 1
        seq = self._seq
        self._wake.set()
        stored = False
        try:
            while self._synced < seq and not self._closing:
                self._synced_event.wait()
            if not self._closing:
                store(batch)
                stored = True
        finally:
            info.pending -= 1
            info.kept = info.kept or not stored
        if info.sealed and info.pending == 0:
            info.barrier = self._barrier()

    def _seal_active(self, info: _Segment, barrier: bool) -> None:
        """Later batches go to a new segment; with ``barrier`` (every batch of this one is in
        the caches unless some wait for their fsync) its barrier is taken now."""
        info.sealed = True
        self._active += 1
        self._active_bytes = 0
        if barrier and info.pending == 0:
            info.barrier = self._barrier()

    def seal_idle(self, now: float | None = None) -> bool:
        """Seal the open segment if it is ``MAX_SEGMENT_AGE_S`` old or had nothing appended for
        ``IDLE_SEAL_S`` (it can then be released once written); True if it was sealed."""
        info = self._segments.get(self._active)
        if info is None or info.sealed:
            return False
        now = time.monotonic() if now is None else now
        if now - info.opened < MAX_SEGMENT_AGE_S and now - self._last_append < IDLE_SEAL_S:
            return False
        self._seal_active(info, barrier=True)
        return True

    def release(self) -> list[int]:
        """Delete the sealed segments every writer is through with; returns their ids."""
        candidates = []
        for segment, info in self._segments.items():
            if not info.sealed or info.kept:
                continue
            if info.barrier is None and info.pending == 0:
                info.barrier = self._barrier()
            if info.barrier is not None:
                candidates.append((segment, info.barrier))
        if not candidates:
            return []          # the caches' scan for their oldest unwritten point is not free
        unwritten = self._unwritten()
        done = [segment for segment, barrier in candidates
                if all(u > b for u, b in zip(unwritten, barrier))]
        if done:
            for segment in done:
                del self._segments[segment]
            with self._lock:
                self._deletes.extend(done)
            self._wake.set()
        return done

    def collect_stats(self) -> dict[str, float]:
        """The log's self-metrics (``wal.*``); counters since the previous call."""
        c, self._counters = self._counters, _Counters()
        return {"wal.appendedPoints": c.appended_points, "wal.syncs": c.syncs,
                "wal.bytes": c.bytes, "wal.segments": len(self._segments),
                "wal.replayedPoints": c.replayed_points, "wal.corruptRecords": c.corrupt_records,
                "wal.writeErrors": c.write_errors, "wal.encodeErrors": c.encode_errors}

    @property
    def segments(self) -> int:
        """Segments on disk or about to be (open, sealed, not yet released)."""
        return len(self._segments)

    def close(self, written: bool) -> None:
        """Write and fsync what is buffered and stop the thread; with ``written`` (every cache
        was written out) the whole log is deleted, since nothing in it is needed any more."""
        if self._release_timer is not None:
            self._release_timer.kill()
            self._release_timer = None
        # receivers still waiting for an fsync leave their batch to the next start's replay
        self._closing = True
        self._synced_event.set()
        gevent.sleep(0)
        if written:
            for info in self._segments.values():
                info.sealed, info.barrier = True, ()
            self.release()
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.get()
            self._thread = None
        if self._pool is not None:
            self._pool.kill()
            self._pool = None
        self._synced_event.set()

    # -- the thread side -----------------------------------------------------------------

    def _run(self) -> None:
        interval = self.config.sync_interval_s
        next_sync = time.monotonic() + interval
        while True:
            stopping = self._stopping
            if not stopping:
                self._wake.wait(next_sync - time.monotonic() if interval > 0 else 1.0)
            with self._lock:
                buffer, self._buffer, self._buffered = self._buffer, [], 0
                deletes, self._deletes = self._deletes, []
            now = time.monotonic()
            sync = stopping or interval <= 0 or now >= next_sync
            if sync:
                next_sync = now + interval
            self._flush(buffer, deletes, sync)
            if stopping:
                self._file.seal()
                return

    def _flush(self, buffer: list[Entry], deletes: list[int], sync: bool) -> None:
        """Write ``buffer`` (fsync it with ``sync``), then delete the released segments."""
        written = 0
        if buffer or (sync and self._file.dirty):
            try:
                parts: list[bytes] = []
                segment = -1
                for entry_segment, points, body in buffer:
                    if entry_segment != segment and parts:
                        written += self._append(segment, parts)
                        parts = []
                    segment = entry_segment
                    parts += (records.record_header(points, body), body)
                if parts:
                    written += self._append(segment, parts)
                if sync:
                    self._file.sync()
            except Exception as exc:  # noqa: BLE001 - the thread must live on (disk full...)
                self._loop(self._write_failed, f"{type(exc).__name__}: {exc}", len(buffer))
            self._loop(self._synced_to, len(buffer), written, sync)
        for segment in deletes:
            try:
                self._file.unlink(segment)
            except OSError as exc:
                self._loop(log.error, "write-ahead log %s: cannot delete segment %d: %s",
                           self.directory, segment, exc)

    def _append(self, segment: int, parts: list[bytes]) -> int:
        self._file.open(segment)
        return self._file.append(parts)

    def _loop(self, func: Callable, *args) -> None:
        if self._in_loop is not None:
            self._in_loop(func, *args)

    # -- called on the loop by the thread -------------------------------------------------

    def _synced_to(self, count: int, nbytes: int, synced: bool) -> None:
        # batches are counted in order; every write with a sync covers all earlier ones
        self._written += count
        self._counters.bytes += nbytes
        if not synced:
            return
        self._synced = self._written
        self._counters.syncs += 1
        event, self._synced_event = self._synced_event, Event()
        event.set()

    def _write_failed(self, error: str, batches: int) -> None:
        self._counters.write_errors += 1
        log.error("write-ahead log %s: write failed (%s): %d batches are not on disk (their "
                  "points are cached and written as usual)", self.directory, error, batches)

    def _encode_failed(self, error: str, points: int) -> None:
        self._counters.encode_errors += points
        log.error("write-ahead log %s: %d points cannot be encoded (%s): they are not on disk "
                  "(they are cached and written as usual)", self.directory, points, error)

    def _release_loop(self) -> None:
        while True:
            gevent.sleep(max(self.config.sync_interval_s, 1.0))
            self.seal_idle()
            self.release()


__all__ = ["WalConfig", "WriteAheadLog", "decode_body", "encode_batch"]
