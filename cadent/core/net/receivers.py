"""gevent receivers: TCP line and pickle streams, UDP datagrams.

Each read buffer is parsed into one Batch and handed to ``sink(batch, droppable)`` in a single
call. TCP receivers wait on the shared :class:`FlowControl` gate before every read, so a full
queue downstream stops the reading and the kernel pushes back on the client. UDP cannot be
slowed down: its batches are marked droppable and queues count what they cannot hold.

Parsers are per connection (they keep the partial tail of the stream) and expose counters of
what they rejected as integer attributes named in ``parser.COUNTERS``; receivers move those
into the shared :class:`Stats` after every read.
"""

from __future__ import annotations

import logging
import socket
from typing import Callable, Protocol

import gevent

from cadent.core.flow import FlowControl
from cadent.core.net.listen import YIELD_EVERY_READS, DatagramReader, PooledTcpServer
from cadent.core.point import Batch
from cadent.core.stats import Stats

log = logging.getLogger(__name__)

Sink = Callable[[Batch, bool], None]
READ_BYTES = 256 * 1024


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

    def _handle(self, conn: socket.socket, address: tuple) -> None:
        parser = self.parser_factory(peer=f"{address[0]}:{address[1]}")
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
                    gevent.sleep(0)
                try:
                    data = conn.recv(READ_BYTES)
                except socket.timeout:
                    log.info("%s: closing idle connection from %s", self.name, address[0])
                    break
                except OSError as exc:
                    log.info("%s: connection from %s lost: %s", self.name, address[0], exc)
                    break
                if not data:
                    break
                batch = parser.feed(data)
                move_counters(parser, stats)
                if batch:
                    stats.incr("metricsReceived", len(batch))
                    sink(batch, False)
        finally:
            self.connections.active -= 1
            if parser.pending_bytes:
                stats.incr("incompleteAtClose", 1)
                log.info("%s: %d bytes of an unterminated last line from %s discarded",
                         self.name, parser.pending_bytes, address[0])
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
