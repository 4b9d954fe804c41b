"""One reconnecting connection per destination, draining that destination's queue.

The sender takes up to ``batch_points`` datapoints at a time (carbon's
MAX_DATAPOINTS_PER_MESSAGE), encodes them as one pickle frame or as plaintext lines, and
writes several such messages per system call when the queue is deep. A message that fails to
send goes back to the head of the queue and is sent again after reconnecting, so a destination
restart costs no datapoints (a point may arrive twice if the failure came after the peer had
read it). Reconnects back off exponentially from ``backoff_min_s`` to ``backoff_max_s``.

With a :class:`~cadent.core.spool.Spool` the sender *diverts* its queue to disk (what is
queued, then every new point) when the destination has been unreachable for ``spool_after_s``,
when its queue has stayed full for ``spool_after_s``, or at once when the queue fills while the
destination is unreachable. The receivers are released, so other destinations keep flowing.
Once connected, the sender replays the spool oldest first and returns to the memory queue when
the spool is empty: every point reaches the destination in the order it was queued, spooled
points before newer ones. Points are dropped only when the spool is full; drops are counted
(``fullQueueDrops``) and logged with their count at most once a minute.

What can still be lost: bytes already handed to the kernel when the peer dies without
closing (a crash or a network cut) — TCP gives no acknowledgement to the application.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Callable

import gevent
from gevent import GreenletExit
from gevent import socket as gsocket
from gevent.monkey import get_original

from cadent.core.buffer.queue import PointQueue
from cadent.core.encode.pickle import encode_pickle
from cadent.core.encode.plaintext import encode_lines
from cadent.core.lograte import LogLimiter
from cadent.core.parse.pickle import PickleFrameParser
from cadent.core.parse.plaintext import LineParser
from cadent.core.point import Batch
from cadent.core.route.destination import Destination
from cadent.core.spool import Spool
from cadent.core.stats import Stats

log = logging.getLogger(__name__)

_poll_select = get_original("select", "select")
ENCODERS: dict[str, Callable[[Batch], bytes]] = {"pickle": encode_pickle, "line": encode_lines}


def _decode_pickle(body: bytes) -> Batch:
    return PickleFrameParser(max_frame_bytes=len(body)).feed(body)


def _decode_lines(body: bytes) -> Batch:
    return LineParser(max_line_bytes=max(1, len(body))).feed(body)


# Spooled messages back to datapoints (a purged destination's spool is re-routed).
DECODERS: dict[str, Callable[[bytes], Batch]] = {"pickle": _decode_pickle, "line": _decode_lines}
MESSAGES_PER_WRITE = 8
WATCH_INTERVAL_S = 0.2
DROP_LOG_INTERVAL_S = 60.0


class DestinationSender:
    """Delivers one destination's :class:`PointQueue` over a single TCP connection."""

    def __init__(
        self,
        destination: Destination,
        queue: PointQueue,
        *,
        protocol: str | Callable[[Batch], bytes] = "pickle",
        batch_points: int = 500,
        stats: Stats | None = None,
        connect_timeout_s: float = 5.0,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 5.0,
        tcp_keepalive: bool = True,
        spool: Spool | None = None,
        spool_after_s: float = 2.0,
    ) -> None:
        # A callable is the encoder itself (e.g. statsd's pre-formatted lines).
        if not callable(protocol) and protocol not in ENCODERS:
            raise ValueError(f"unknown destination protocol {protocol!r} (pickle or line)")
        self.destination = destination
        self.queue = queue
        self.protocol = protocol
        self.encode = protocol if callable(protocol) else ENCODERS[protocol]
        self.decode: Callable[[bytes], Batch] | None = (
            None if callable(protocol) else DECODERS[protocol])
        self.batch_points = batch_points
        self.stats = stats if stats is not None else Stats()
        self.connect_timeout_s = connect_timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.tcp_keepalive = tcp_keepalive
        self.prefix = f"destinations.{destination.metric_key}."
        self._sock: gsocket.socket | None = None
        self.spool = spool
        self.spool_after_s = spool_after_s
        self._drop_log = LogLimiter(DROP_LOG_INTERVAL_S)
        self._greenlet: gevent.Greenlet | None = None
        self._watcher: gevent.Greenlet | None = None
        self._stopping = False
        self._in_flight = 0
        self._sending_since: float | None = None    # a send to the socket is under way
        self._backoff = backoff_min_s
        self._down_since: float | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    @property
    def live(self) -> bool:
        """Connected and sending from memory (not spooling)."""
        return self._sock is not None and not self.queue.diverted

    @property
    def down(self) -> bool:
        """Its last connection attempt or send failed, or it is spooling."""
        return self._down_since is not None or self.queue.diverted

    def count_drops(self, count: int, why: str) -> None:
        """Count ``count`` datapoints dropped for this destination; log the count (the first
        drop at once, then at most once a minute with every drop since the previous line)."""
        if not count:
            return
        self.stats.incr(self.prefix + "fullQueueDrops", count)
        logged = self._drop_log.ready(count)
        if logged:
            log.error("%d datapoints for %s dropped since the previous report (%s)",
                      logged, self.destination, why)

    @property
    def pending(self) -> int:
        """Datapoints not yet written to the socket."""
        return len(self.queue) + self._in_flight

    def start(self) -> None:
        """Open the spool (recovering a previous run's, which is then replayed first) and
        start sending; an unusable spool directory raises OSError."""
        if self.spool is not None and not self.spool.opened:
            self.spool.open()
            if not self.spool.empty:
                self._divert("has a spool from a previous run")
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)
        if self._watcher is None:
            self._watcher = gevent.spawn(self._watch)

    def _watch(self) -> None:
        """Decide about spooling (or stalling) even while the sender is blocked in a send."""
        while True:
            gevent.sleep(WATCH_INTERVAL_S)
            self._check_queue()

    def _check_queue(self) -> None:
        queue = self.queue
        if self.spool is None:
            queue.check_stall()
            return
        if queue.diverted or not self.spool.opened:
            return
        full_for = queue.full_for()
        now = time.monotonic()
        down = self._down_since is not None
        blocked_for = 0.0 if self._sending_since is None else now - self._sending_since
        if full_for >= self.spool_after_s or (down and queue.is_full) or (
                down and len(queue) and now - self._down_since >= self.spool_after_s):
            self._divert("unreachable" if down else f"queue full for {full_for:.1f}s")
        elif (len(queue) or self._stopping) and blocked_for >= self.spool_after_s:
            # connected but not reading: the queue could take long to fill (statsd's is large)
            self._divert(f"not reading for {blocked_for:.1f}s")

    def _divert(self, why: str) -> None:
        held = len(self.queue)
        log.warning("%s %s: spooling its points to disk (%d queued)", self.destination, why, held)
        self.count_drops(self.queue.divert(self.spool.append), "spool full")

    def _connect(self) -> gsocket.socket | None:
        host, port = self.destination.host, self.destination.port
        try:
            sock = gsocket.create_connection((host, port), timeout=self.connect_timeout_s)
        except OSError as exc:
            log.warning("cannot connect to %s: %s", self.destination, exc)
            return None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tcp_keepalive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        log.info("connected to %s", self.destination)
        return sock

    def _peer_closed(self, sock: gsocket.socket) -> bool:
        """True if the peer has closed its side (an EOF or reset is waiting to be read).

        Polls without yielding: gevent's socket would wait for readability instead.
        """
        try:
            readable, _, _ = _poll_select([sock.fileno()], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _ensure_connected(self) -> bool:
        """A usable connection, or False after a failed attempt and its backoff sleep."""
        if self._sock is not None and not self._peer_closed(self._sock):
            return True
        self._close()
        self._sock = self._connect()
        if self._sock is None:
            self._failed()
            return False
        self._down_since = None
        self._backoff = self.backoff_min_s
        return True

    def _failed(self) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
        self._check_queue()
        gevent.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, self.backoff_max_s)

    def _run(self) -> None:
        while True:
            try:
                if self._step():
                    return
            except Exception:
                # a bug must not silence this destination for good: its points stay queued
                log.exception("sender for %s failed; retrying", self.destination)
                self._close()
                self._failed()

    def _step(self) -> bool:
        """One round of the sender's loop; True when it is stopping and has nothing left."""
        queue = self.queue
        if queue.diverted:
            if self._ensure_connected():
                self._replay()
            return False
        if not queue.wait_not_empty(timeout=1.0):
            self._check_queue()
            return self._stopping
        self._check_queue()
        if not queue.diverted and self._ensure_connected():
            self._send_queued()
        return False

    def _replay(self) -> None:
        """Send the oldest spooled messages; back to memory when the spool is empty."""
        spool = self.spool
        token = spool.read(MESSAGES_PER_WRITE * self.batch_points * 64)
        if token is None or not token.bodies:
            if spool.empty:
                self.queue.undivert()
                log.info("spool for %s replayed; queueing in memory again", self.destination)
            else:
                spool.wait_readable(1.0)
            return
        try:
            self._sock.sendall(b"".join(token.bodies))
        except OSError as exc:
            log.warning("replay to %s failed (%s); %d datapoints stay spooled",
                        self.destination, exc, token.points)
            self._close()
            self._failed()
            return
        spool.commit(token)
        self.stats.incr(self.prefix + "sent", token.points)
        self.stats.incr(self.prefix + "batchesSent", len(token.bodies))

    def _send_queued(self) -> None:
        queue, stats, prefix = self.queue, self.stats, self.prefix
        messages: list[Batch] = []
        for _ in range(MESSAGES_PER_WRITE):
            chunk = queue.take(self.batch_points)
            if not chunk:
                break
            messages.append(chunk)
        count = sum(len(m) for m in messages)
        self._in_flight = count
        try:
            payload = b"".join([self.encode(m) for m in messages])
            self._sending_since = time.monotonic()
            self._sock.sendall(payload)
        except OSError as exc:
            log.warning("send to %s failed (%s); %d datapoints requeued", self.destination, exc, count)
            self._requeue(messages)
            self._close()
            self._failed()
            return
        except GreenletExit:
            self._requeue(messages)
            raise
        except Exception:
            log.exception("cannot encode a message for %s; %d datapoints dropped", self.destination, count)
            stats.incr(prefix + "encodeErrors", count)
            return
        finally:
            self._in_flight = 0
            self._sending_since = None
        stats.incr(prefix + "sent", count)
        stats.incr(prefix + "batchesSent", len(messages))

    def _requeue(self, messages: list[Batch]) -> None:
        for message in reversed(messages):
            self.queue.put_front(message)

    def check_detachable(self) -> None:
        """ValueError when :meth:`detach` could not hand back what the spool holds (raw lines
        of a callable encoder cannot be decoded back into datapoints)."""
        if self.spool is not None and self.spool.opened and not self.spool.empty \
                and self.decode is None:
            raise ValueError(f"the spool of {self.destination} holds {self.spool.points} "
                             "points that cannot be re-routed; purge it once they are delivered")

    def detach(self, timeout_s: float = 10.0) -> Batch:
        """Stop sending and hand back every undelivered point, oldest first (what its spool
        holds, decoded with ``decode``, then its memory queue): the destination is leaving.

        Raises ValueError (and keeps sending) when :meth:`check_detachable` does."""
        self.check_detachable()
        self._stopping = True
        self._kill()
        points: Batch = []
        if self.spool is not None and self.spool.opened:
            deadline = time.monotonic() + timeout_s
            while not self.spool.empty and time.monotonic() < deadline:
                token = self.spool.read(1 << 20)
                if token is None:
                    self.spool.wait_readable(0.1)
                    continue
                for body in token.bodies:
                    points.extend(self.decode(body))
                self.spool.commit(token)
            self.spool.close()
        while len(self.queue):
            points.extend(self.queue.take(1 << 20))
        self._close()
        self.queue.close()
        return points

    def _kill(self) -> None:
        for greenlet in (self._greenlet, self._watcher):
            if greenlet is not None:
                greenlet.kill(block=True, timeout=1)
        self._greenlet = self._watcher = None

    def _drain(self, deadline: float) -> None:
        """Wait for the queue to be delivered, until ``deadline`` or until it is diverted
        to the spool (the destination stopped reading)."""
        while self.pending and time.monotonic() < deadline:
            if self.spool is not None and self.queue.diverted:
                return
            gevent.sleep(0.05)

    def stop(self, drain_timeout_s: float) -> int:
        """Deliver what is queued for up to ``drain_timeout_s``; returns datapoints left undelivered.

        With a spool, an unreachable destination gets one immediate connection attempt; if that
        fails, or the time runs out, what is still queued goes to the spool (delivered by the
        next start) and only what the spool refuses counts as left."""
        self._stopping = True
        deadline = time.monotonic() + drain_timeout_s
        refused_before = self.queue.dropped
        if self.spool is None:
            self._drain(deadline)
            left = self.pending
        else:
            if self.pending and not self.queue.diverted and self._sock is None:
                self._kill()
                self._sock = self._connect()
                if self._sock is not None:
                    self.start()
            if self._sock is not None and not self.queue.diverted:
                self._drain(deadline)
            self._kill()
            if self.pending:
                self._divert("is shutting down")
            # points the full spool refused while shutting down were neither sent nor kept
            unwritten = self.spool.close(max(2.0, deadline - time.monotonic()))
            if unwritten:
                self.count_drops(unwritten, "spool could not be written before exit")
            left = self.queue.dropped - refused_before + unwritten
            dropped = self.stats.totals.get(self.prefix + "fullQueueDrops", 0)
            if dropped:
                log.error("%d datapoints for %s were dropped since start", dropped, self.destination)
            spooled = self.spool.points
            if spooled:
                log.warning("%d datapoints for %s stay in the spool for the next start",
                            spooled, self.destination)
        self._kill()
        self._close()
        self.queue.close()
        if left:
            log.error("%d datapoints for %s were not delivered before shutdown", left, self.destination)
        return left
