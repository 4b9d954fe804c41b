"""gevent receivers: TCP (or unix socket) line and pickle streams, UDP datagrams, HTTP POSTs.

Each read buffer is parsed into one Batch and handed to ``sink(batch, droppable)`` in a single
call. TCP receivers wait on the shared :class:`FlowControl` gate before every read, so a full
queue downstream stops the reading and the kernel pushes back on the client. UDP cannot be
slowed down: its batches are marked droppable and queues count what they cannot hold. The HTTP
receiver answers 503 while the gate is closed, so its clients retry later.

Parsers are per connection (they keep the partial tail of the stream) and expose counters of
what they rejected as integer attributes named in ``parser.COUNTERS``; receivers move those
into the shared :class:`Stats` after every read.
"""

from __future__ import annotations

import logging
import socket
from typing import Callable, Protocol

from gevent.server import StreamServer

from cadent.core.flow import FlowControl
from cadent.core.net.listen import (YIELD_EVERY_READS, DatagramReader, PooledTcpServer,
                                    describe_address, yield_to_loop)
from cadent.core.point import Batch
from cadent.core.stats import Stats

log = logging.getLogger(__name__)

Sink = Callable[[Batch, bool], None]
# One read's datapoints (about 2k lines) stay in the CPU cache until the senders encode them:
# the reader yields after each read it routed, so they are sent before the next read is parsed.
READ_BYTES = 64 * 1024


class StreamParser(Protocol):
    COUNTERS: tuple[str, ...]
    pending_bytes: int

    def feed(self, data: bytes) -> Batch: ...


class DatagramParser(Protocol):
    COUNTERS: tuple[str, ...]

    def feed_datagram(self, data: bytes) -> Batch: ...


def move_counters(parser: object, stats: Stats) -> None:
    """Add the parser's rejection counters to ``stats`` and zero them."""
    for name in parser.COUNTERS:  # type: ignore[attr-defined]
        value = getattr(parser, name)
        if value:
            stats.incr(name, value)
            setattr(parser, name, 0)


class ConnectionCounter:
    """Inbound TCP connections open right now, across all receivers of a process."""

    def __init__(self) -> None:
        self.active = 0

    def read(self) -> float:
        return float(self.active)


class TcpReceiver(PooledTcpServer):
    """Reads a TCP stream per connection through a fresh parser and feeds the sink."""

    def __init__(
        self,
        name: str,
        listener: socket.socket,
        parser_factory: Callable[..., StreamParser],
        sink: Sink,
        *,
        flow: FlowControl,
        stats: Stats,
        connections: ConnectionCounter | None = None,
        max_connections: int | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        super().__init__(listener, max_connections)
        self.name = name
        self.description = f"{name} receiver listening"
        self.parser_factory = parser_factory
        self.sink = sink
        self.flow = flow
        self.stats = stats
        self.connections = connections or ConnectionCounter()
        self.idle_timeout_s = idle_timeout_s

    def _handle(self, conn: socket.socket, address: tuple | str) -> None:
        # a unix socket's peer has no address: name the socket instead
        peer = address[0] if address else describe_address(self.address)
        parser = self.parser_factory(peer=describe_address(address) if address else peer)
        flow, sink, stats = self.flow, self.sink, self.stats
        conn.settimeout(self.idle_timeout_s)
        self.connections.active += 1
        reads = 0
        try:
            while True:
                reads += 1
                if not flow.is_open:
                    flow.wait()
                elif reads % YIELD_EVERY_READS == 0:
                    yield_to_loop()
                try:
                    data = conn.recv(READ_BYTES)
                except socket.timeout:
                    log.info("%s: closing idle connection from %s", self.name, peer)
                    break
                except OSError as exc:
                    log.info("%s: connection from %s lost: %s", self.name, peer, exc)
                    break
                if not data:
                    break
                batch = parser.feed(data)
                move_counters(parser, stats)
                if batch:
                    stats.incr("metricsReceived", len(batch))
                    sink(batch, False)
                    yield_to_loop()
        finally:
            self.connections.active -= 1
            if parser.pending_bytes:
                stats.incr("incompleteAtClose", 1)
                log.info("%s: %d bytes of an unterminated last line from %s discarded",
                         self.name, parser.pending_bytes, peer)
            conn.close()



class UdpReceiver(DatagramReader):
    """Parses each datagram into a batch and feeds the sink as droppable (UDP cannot push back)."""

    def __init__(
        self,
        name: str,
        sock: socket.socket,
        parser_factory: Callable[[], DatagramParser],
        sink: Sink,
        *,
        stats: Stats,
        receive_buffer_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.description = f"{name} receiver listening"
        self.parser = parser_factory()
        self.sink = sink
        self.stats = stats
        super().__init__(sock, self._ingest, receive_buffer_bytes=receive_buffer_bytes)

    def _ingest(self, data: bytes) -> None:
        batch = self.parser.feed_datagram(data)
        move_counters(self.parser, self.stats)
        if batch:
            self.stats.incr("metricsReceived", len(batch))
            self.sink(batch, True)

    def stop(self) -> None:
        """Stop reading, hand on the datagrams the kernel already holds, close."""
        super().stop()
        self.drain()
        self.sock.close()


class HttpReceiver(TcpReceiver):
    """POSTed bodies of lines: each body is parsed whole (its last line may lack a newline).

    Answers 204 once the body's points are queued, 413 for a body over ``max_body_bytes``
    (``httpOversizeBodies``), 503 with ``Retry-After: 1`` while flow control has the receivers
    paused (``httpPausedRejects``: the client keeps the body and retries), 404 for another
    path and 405 for another method.
    """

    def __init__(
        self,
        name: str,
        listener: socket.socket,
        parser_factory: Callable[..., StreamParser],
        sink: Sink,
        *,
        path: str,
        flow: FlowControl,
        stats: Stats,
        max_body_bytes: int = 1 << 20,
        max_connections: int | None = None,
    ) -> None:
        super().__init__(name, listener, parser_factory, sink, flow=flow, stats=stats,
                         max_connections=max_connections)
        self.path = path or "/"
        self.description = f"{name} receiver (POST {self.path}) listening"
        self.max_body_bytes = max_body_bytes

    def _make_server(self, listener: socket.socket) -> StreamServer:
        from gevent.pywsgi import WSGIServer  # only daemons with an http:// listener need it

        return WSGIServer(listener, self._app, spawn=self._pool, log=None, error_log=log)

    @staticmethod
    def _reply(start_response, status: str, text: str) -> list[bytes]:
        """An error answer; the connection closes, as the request body may be left unread."""
        body = (text + "\n").encode()
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                   ("Connection", "close")]
        if status.startswith("405"):
            headers.append(("Allow", "POST"))
        elif status.startswith("503"):
            headers.append(("Retry-After", "1"))
        start_response(status, headers)
        return [body]

    def _app(self, environ: dict, start_response) -> list[bytes]:
        reply = self._reply
        if environ.get("PATH_INFO", "") != self.path:
            return reply(start_response, "404 Not Found", f"lines are POSTed to {self.path}")
        if environ["REQUEST_METHOD"] != "POST":
            return reply(start_response, "405 Method Not Allowed", "POST lines here")
        if not self.flow.is_open:
            self.stats.incr("httpPausedRejects", 1)
            return reply(start_response, "503 Service Unavailable",
                         "paused: a destination queue is full; retry")
        limit = self.max_body_bytes
        length = environ.get("CONTENT_LENGTH") or ""
        too_big = length.isdigit() and int(length) > limit
        body = b"" if too_big else environ["wsgi.input"].read(limit + 1)
        if too_big or len(body) > limit:
            self.stats.incr("httpOversizeBodies", 1)
            return reply(start_response, "413 Payload Too Large", f"body over {limit} bytes")
        peer = f"{environ.get('REMOTE_ADDR', '-')}:{environ.get('REMOTE_PORT', '-')}"
        parser = self.parser_factory(peer=peer)
        batch = parser.feed(body)
        if parser.pending_bytes:
            batch += parser.feed(b"\n")
        move_counters(parser, self.stats)
        if batch:
            self.stats.incr("metricsReceived", len(batch))
            self.sink(batch, False)
        start_response("204 No Content", [])
        return []
