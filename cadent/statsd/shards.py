"""Several statsd worker processes that still aggregate every key in exactly one place.

Design
------
``workers: N`` forks N processes that all bind the statsd UDP (and TCP) port with
SO_REUSEPORT, so the kernel spreads datagrams over them. Any worker may receive any key,
but a key is *aggregated* only by its shard ``crc32(key) % N``:

1. the receiving worker parses the packet (the expensive part, done in parallel) and splits
   the update tuples with :func:`cadent.statsd.store.partition_updates`; its own part goes
   straight into its store, the rest is batched and sent to the owning workers over a mesh
   of Unix stream sockets (one per ordered pair, so each peer sees a sender's updates in
   order: gauge deltas and sets stay exact);
2. the receiver counts ``packets_received``/``metrics_received``/``bad_lines_seen`` in its
   own store (they are plain counters, so they add up when stores merge);
3. worker 0 owns the flush clock, the management port and the carbon connections. At each
   flush it asks every other worker for a snapshot; a worker first pushes its pending
   updates, then replies with its interval state and resets it like statsd would. Worker 0
   merges the (disjoint) snapshots into its own store and computes one flush, so numStats,
   the internal counters and every line are statsd's; only the order of lines differs from
   a single process (keys first seen by another worker come after worker 0's own).

Worker 0's store therefore keeps a copy of every key, reset after each flush exactly as the
owning worker resets its own, so the next merge only adds the new interval. ``del*``
management commands are broadcast to every worker. A snapshot that arrives late is merged
into the next flush (never dropped). At SIGTERM each worker stops reading, pushes its
updates, tells every peer it is done, waits for the other workers' "done", and sends its
final state to worker 0, which makes the final flush and delivers it.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import struct
import time

import gevent
from gevent import socket as gsocket
from gevent.event import Event

from cadent.statsd.store import MetricStore, partition_updates

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
_SEND_EVERY_S = 0.02
_BATCH_UPDATES = 20000


def socket_name(group: str, index: int) -> str:
    """Abstract Unix socket name of worker ``index`` (no filesystem path, no length trouble)."""
    return f"\0cadent-statsd-{group}-{index}"


def snapshot(store: MetricStore) -> dict:
    """The interval state of a store, ready to pickle."""
    return {
        "counters": store.counters, "timers": store.timers, "timer_counters": store.timer_counters,
        "gauges": store.gauges, "gauges_ttl": store.gauges_ttl, "sets": store.sets,
    }


def store_from_snapshot(state: dict) -> MetricStore:
    store = MetricStore.__new__(MetricStore)
    for name, value in state.items():
        setattr(store, name, value)
    return store


class ShardMesh:
    """Worker ``index`` of ``count``: routes updates to owners and serves worker 0's flush.

    ``engine`` is this worker's :class:`cadent.statsd.engine.StatsdEngine`; ``settings``
    supplies the delete* flags for resetting after a snapshot.
    """

    def __init__(self, engine, index: int, count: int, group: str) -> None:
        self.engine = engine
        self.index = index
        self.count = count
        self.group = group
        self._out: dict[int, gsocket.socket | None] = {}
        self._pending: dict[int, list] = {j: [] for j in range(count) if j != index}
        self._pending_size = 0
        self._listener: gsocket.socket | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._snaps = 0
        self._snap_event = Event()
        self._done_from: set[int] = set()
        self._done_event = Event()
        self._finals: set[int] = set()
        self._final_event = Event()
        self.dropped_updates = 0
        self._bad_reported = 0

    # -- setup ------------------------------------------------------------------------

    def start(self) -> None:
        sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(socket_name(self.group, self.index))
        sock.listen(64)
        self._listener = sock
        self._greenlets.append(gevent.spawn(self._accept))
        self._greenlets.append(gevent.spawn(self._pusher))

    def _connect(self, peer: int, timeout_s: float = 10.0) -> gsocket.socket | None:
        sock = self._out.get(peer)
        if sock is not None:
            return sock
        deadline = time.monotonic() + timeout_s
        while True:
            conn = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(socket_name(self.group, peer))
                conn.sendall(_HEADER.pack(self.index))
                self._out[peer] = conn
                return conn
            except OSError:
                conn.close()
                if time.monotonic() > deadline:
                    return None
                gevent.sleep(0.05)

    def _accept(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            self._greenlets.append(gevent.spawn(self._reader, conn))

    # -- wire ---------------------------------------------------------------------------

    def _send(self, peer: int, message: tuple) -> bool:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        for _ in range(2):
            sock = self._connect(peer)
            if sock is None:
                break
            try:
                sock.sendall(_HEADER.pack(len(body)) + body)
                return True
            except OSError as exc:
                log.warning("worker %d: link to worker %d failed: %s", self.index, peer, exc)
                sock.close()
                self._out[peer] = None
        log.error("worker %d: cannot reach worker %d; message dropped", self.index, peer)
        return False

    @staticmethod
    def _read_exact(conn: gsocket.socket, size: int) -> bytes | None:
        chunks = []
        while size:
            data = conn.recv(min(size, 1 << 20))
            if not data:
                return None
            chunks.append(data)
            size -= len(data)
        return b"".join(chunks)

    def _reader(self, conn: gsocket.socket) -> None:
        try:
            head = self._read_exact(conn, 4)
            if head is None:
                return
            peer = _HEADER.unpack(head)[0]
            while True:
                head = self._read_exact(conn, 4)
                if head is None:
                    return
                body = self._read_exact(conn, _HEADER.unpack(head)[0])
                if body is None:
                    return
                self._dispatch(peer, pickle.loads(body))
        except OSError:
            pass
        finally:
            conn.close()

    def _dispatch(self, peer: int, message: tuple) -> None:
        kind = message[0]
        store = self.engine.store
        if kind == "u":
            store.apply(message[1])
        elif kind == "snapreq":
            self._reply_snapshot("snap")
        elif kind in ("snap", "final"):
            store.merge(store_from_snapshot(message[1]))
            self.engine.stats.bad_lines_total += message[2]
            if kind == "snap":
                self._snaps += 1
                self._snap_event.set()
            else:
                self._finals.add(peer)
                self._final_event.set()
        elif kind == "del":
            store.delete_matching(message[1], message[2])
        elif kind == "done":
            self._done_from.add(peer)
            self._done_event.set()

    # -- receiving side -----------------------------------------------------------------

    def route(self, updates: list) -> None:
        """Apply this worker's share of ``updates`` and queue the rest for their owners."""
        parts = partition_updates(updates, self.count)
        mine = parts[self.index]
        if mine:
            self.engine.store.apply(mine)
        for peer, part in enumerate(parts):
            if part and peer != self.index:
                self._pending[peer].extend(part)
                self._pending_size += len(part)
        if self._pending_size >= _BATCH_UPDATES:
            self.push()

    def push(self) -> None:
        """Send every queued update to its owner now."""
        if not self._pending_size:
            return
        pending, self._pending = self._pending, {j: [] for j in self._pending}
        self._pending_size = 0
        for peer, part in pending.items():
            if part and not self._send(peer, ("u", part)):
                self.dropped_updates += len(part)

    def _pusher(self) -> None:
        while True:
            gevent.sleep(_SEND_EVERY_S)
            self.push()

    def _take_state(self) -> tuple[dict, int]:
        """This interval's state plus bad lines seen since the last report (for mgmt stats)."""
        total = self.engine.stats.bad_lines_total
        bad, self._bad_reported = total - self._bad_reported, total
        return snapshot(self.engine.store), bad

    def _reply_snapshot(self, kind: str) -> None:
        self.push()
        engine = self.engine
        settings = engine.settings
        state, bad = self._take_state()
        self._send(0, (kind, state, bad))  # pickled before anything can touch the store
        engine.store.reset_after_flush(
            settings.delete_counters, settings.delete_timers, settings.delete_sets, settings.delete_gauges)

    # -- worker 0 -----------------------------------------------------------------------

    def collect(self, timeout_s: float) -> int:
        """Worker 0: gather every other worker's interval state into this store."""
        self.push()
        self._snaps = 0
        self._snap_event.clear()
        asked = sum(1 for peer in range(1, self.count) if self._send(peer, ("snapreq",)))
        deadline = time.monotonic() + timeout_s
        while self._snaps < asked and time.monotonic() < deadline:
            self._snap_event.wait(max(0.0, deadline - time.monotonic()))
            self._snap_event.clear()
        if self._snaps < asked:
            log.warning("%d of %d workers answered before the flush; the rest joins the next one",
                        self._snaps, asked)
        return self._snaps

    def broadcast_delete(self, kind: str, patterns: list[str]) -> None:
        for peer in range(self.count):
            if peer != self.index:
                self._send(peer, ("del", kind, patterns))

    # -- shutdown -----------------------------------------------------------------------

    def finish(self, timeout_s: float = 5.0) -> None:
        """Stop protocol: push, say done, wait for the others; non-zero workers send final state."""
        self.push()
        for peer in range(self.count):
            if peer != self.index:
                self._send(peer, ("done",))
        deadline = time.monotonic() + timeout_s
        # worker 0 too: it may still hold updates for keys this worker owns
        others = {p for p in range(self.count) if p != self.index}
        while not others <= self._done_from and time.monotonic() < deadline:
            self._done_event.wait(max(0.0, deadline - time.monotonic()))
            self._done_event.clear()
        if self.index != 0:
            self._reply_snapshot("final")
            return
        while len(self._finals) < self.count - 1 and time.monotonic() < deadline:
            self._final_event.wait(max(0.0, deadline - time.monotonic()))
            self._final_event.clear()
        missing = self.count - 1 - len(self._finals)
        if missing:
            log.error("%d workers sent no final state before shutdown", missing)

    def close(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        for sock in self._out.values():
            if sock is not None:
                sock.close()
        if self._listener is not None:
            self._listener.close()


def worker_index() -> int:
    """This process's worker number (set by the supervisor), 0 when single."""
    return int(os.environ.get("CADENT_WORKER", "0"))


__all__ = ["ShardMesh", "socket_name", "snapshot", "store_from_snapshot", "worker_index"]
