"""One reconnecting connection per destination, draining that destination's queue.

The sender takes up to ``batch_points`` datapoints at a time (carbon's
MAX_DATAPOINTS_PER_MESSAGE), encodes them as one pickle frame or as plaintext lines, and
writes several such messages per system call when the queue is deep. A message that fails to
send goes back to the head of the queue and is sent again after reconnecting, so a destination
restart costs no datapoints (a point may arrive twice if the failure came after the peer had
read it). Reconnects back off exponentially from ``backoff_min_s`` to ``backoff_max_s``.

What can still be lost: bytes already handed to the kernel when the peer dies without
closing (a crash or a network cut) — TCP gives no acknowledgement to the application.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Callable

import gevent
from gevent import socket as gsocket
from gevent.monkey import get_original

from cadent.core.buffer.queue import PointQueue
from cadent.core.encode.pickle import encode_pickle
from cadent.core.encode.plaintext import encode_lines
from cadent.core.point import Batch
from cadent.core.route.destination import Destination
from cadent.core.stats import Stats

log = logging.getLogger(__name__)

_poll_select = get_original("select", "select")
ENCODERS: dict[str, Callable[[Batch], bytes]] = {"pickle": encode_pickle, "line": encode_lines}
MESSAGES_PER_WRITE = 8


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
    ) -> None:
        # A callable is the encoder itself (e.g. statsd's pre-formatted lines).
        if not callable(protocol) and protocol not in ENCODERS:
            raise ValueError(f"unknown destination protocol {protocol!r} (pickle or line)")
        self.destination = destination
        self.queue = queue
        self.protocol = protocol
        self.encode = protocol if callable(protocol) else ENCODERS[protocol]
        self.batch_points = batch_points
        self.stats = stats if stats is not None else Stats()
        self.connect_timeout_s = connect_timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.tcp_keepalive = tcp_keepalive
        self.prefix = f"destinations.{destination.metric_key}."
        self._sock: gsocket.socket | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False
        self._in_flight = 0

    @property
    def connected(self) -> bool:
        return self._sock is not None

    @property
    def pending(self) -> int:
        """Datapoints not yet written to the socket."""
        return len(self.queue) + self._in_flight

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

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

    def _run(self) -> None:
        backoff = self.backoff_min_s
        queue, stats, prefix = self.queue, self.stats, self.prefix
        while True:
            if not queue.wait_not_empty(timeout=1.0):
                queue.check_stall()
                if self._stopping:
                    return
                continue
            queue.check_stall()
            if self._sock is None or self._peer_closed(self._sock):
                self._close()
                self._sock = self._connect()
                if self._sock is None:
                    gevent.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_max_s)
                    continue
                backoff = self.backoff_min_s
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
                self._sock.sendall(payload)
            except OSError as exc:
                log.warning("send to %s failed (%s); %d datapoints requeued", self.destination, exc, count)
                for message in reversed(messages):
                    queue.put_front(message)
                self._close()
                gevent.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            except Exception:
                log.exception("cannot encode a message for %s; %d datapoints dropped", self.destination, count)
                stats.incr(prefix + "encodeErrors", count)
                continue
            finally:
                self._in_flight = 0
            stats.incr(prefix + "sent", count)
            stats.incr(prefix + "batchesSent", len(messages))

    def stop(self, drain_timeout_s: float) -> int:
        """Deliver what is queued for up to ``drain_timeout_s``; returns datapoints left undelivered."""
        self._stopping = True
        deadline = time.monotonic() + drain_timeout_s
        while self.pending and time.monotonic() < deadline:
            gevent.sleep(0.05)
        left = self.pending
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1)
            self._greenlet = None
        self._close()
        self.queue.close()
        if left:
            log.error("%d datapoints for %s were not delivered before shutdown", left, self.destination)
        return left
