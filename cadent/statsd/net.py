"""statsd's sockets: UDP and TCP packet inputs, the management port, the repeater.

Every input hands whole *packets* (bytes) to one callback, as statsd's servers do: a UDP
datagram (read with a 64 KiB buffer, so statsd clients' large multi-metric datagrams are
never cut), or the complete lines of a TCP read (the tail waits for its newline and is
dropped if the connection closes first).

statsd buffers a TCP line without limit; here a line longer than :data:`MAX_LINE_BYTES`
(the largest UDP payload, rounded up) is dropped as soon as it passes the limit, the rest of
it is discarded up to its newline, and the connection carries on with the next line.
"""

from __future__ import annotations

import logging
import socket
from typing import Callable

from gevent import socket as gsocket

from cadent.core.net.listen import (UDP_READ_BYTES, YIELD_EVERY_READS, DatagramReader, PooledTcpServer,
                                    bind_socket, yield_to_loop)
from cadent.core.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

PacketHandler = Callable[[bytes], None]
MAX_LINE_BYTES = 65536  # a TCP line longer than this (newline not counted) is dropped


class TcpLineFramer:
    """statsd's TCP framing for one connection, in linear time and bounded memory.

    :meth:`feed` returns everything up to a read's last newline as one packet, preceded by
    the unfinished line held from earlier reads; the bytes after that newline are held. A line
    longer than ``max_line_bytes`` is dropped once it passes the limit (at most that many bytes
    are ever held), its remaining bytes are discarded up to the next newline, and
    ``too_long`` counts it.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self.too_long = 0
        self._parts: list[bytes] = []
        self._held = 0
        self._skipping = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished line held for the next read."""
        return self._held

    def take_too_long(self) -> int:
        """The lines dropped since the last call."""
        count, self.too_long = self.too_long, 0
        return count

    def feed(self, data: bytes) -> bytes | None:
        """One read of the stream → the packet of the lines it completes, or None."""
        limit = self.max_line_bytes
        if len(data) <= limit:
            return self._feed(data)
        # a line inside one piece is then never longer than the limit
        packets = [self._feed(data[i : i + limit]) for i in range(0, len(data), limit)]
        return b"".join(p for p in packets if p) or None

    def _feed(self, data: bytes) -> bytes | None:
        cut = data.rfind(b"\n")
        if cut < 0:
            if not self._skipping:
                self._hold(data)
            return None
        packet = data[: cut + 1]
        if self._skipping:
            packet = packet[packet.find(b"\n") + 1 :]
            self._skipping = False
        elif self._parts:
            if self._held + packet.find(b"\n") > self.max_line_bytes:
                self.too_long += 1
                packet = packet[packet.find(b"\n") + 1 :]
            else:
                packet = b"".join(self._parts) + packet
            self._parts = []
            self._held = 0
        if cut + 1 < len(data):
            self._hold(data[cut + 1 :])
        return packet or None

    def _hold(self, data: bytes) -> None:
        self._held += len(data)
        if self._held > self.max_line_bytes:
            self.too_long += 1
            self._parts = []
            self._held = 0
            self._skipping = True
        else:
            self._parts.append(data)


class UdpPacketInput(DatagramReader):
    """statsd's UDP server: every datagram → ``handler(bytes)`` (one packet)."""

    description = "statsd UDP input"

    def __init__(self, host: str, port: int, handler: PacketHandler, *, reuse_port: bool = False,
                 receive_buffer: int = 16 * 1024 * 1024) -> None:
        super().__init__(bind_socket(host, port, socket.SOCK_DGRAM, reuse_port=reuse_port), handler,
                         receive_buffer_bytes=receive_buffer)


class TcpPacketInput(PooledTcpServer):
    """statsd's TCP server: per connection, the text up to the last newline is one packet.

    Lines over ``max_line_bytes`` are dropped (:class:`TcpLineFramer`), reported to
    ``on_too_long(count)`` (the service counts them) and logged at most once a minute.
    """

    description = "statsd TCP input"

    def __init__(self, host: str, port: int, handler: PacketHandler, *, reuse_port: bool = False,
                 on_too_long: Callable[[int], None] | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES) -> None:
        super().__init__(bind_socket(host, port, socket.SOCK_STREAM, reuse_port=reuse_port), 10000)
        self.handler = handler
        self.on_too_long = on_too_long
        self.max_line_bytes = max_line_bytes
        self._too_long_log = RateLimitedLog(log)

    def _reject(self, count: int, peer: str) -> None:
        self._too_long_log(logging.WARNING,
                           "statsd TCP input: %d line(s) from %s longer than %d bytes dropped",
                           count, peer, self.max_line_bytes)
        if self.on_too_long is not None:
            self.on_too_long(count)

    def _handle(self, conn: gsocket.socket, address: tuple) -> None:
        framer = TcpLineFramer(self.max_line_bytes)
        reads = 0
        try:
            while True:
                reads += 1
                if reads % YIELD_EVERY_READS == 0:
                    yield_to_loop()  # a sender that never pauses must not starve the flush
                data = conn.recv(UDP_READ_BYTES)
                if not data:
                    break
                packet = framer.feed(data)
                if framer.too_long:
                    self._reject(framer.take_too_long(), address[0])
                if packet:
                    self.handler(packet)
        except OSError:
            pass
        except Exception:
            log.exception("statsd TCP connection from %s failed", address[0])
        finally:
            if framer.pending_bytes:
                log.debug("TCP connection from %s closed with %d bytes without newline", address[0],
                          framer.pending_bytes)
            conn.close()



class CommandServer(PooledTcpServer):
    """A line-less TCP command port: every read is one command, ``reply(text) -> (text, close)``."""

    def __init__(self, host: str, port: int, reply: Callable[[str], tuple[str, bool]], name: str) -> None:
        super().__init__(bind_socket(host, port, socket.SOCK_STREAM), 1000)
        self.reply = reply
        self.name = name
        self.description = f"{name} management port"

    def _handle(self, conn: gsocket.socket, address: tuple) -> None:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                try:
                    text, close = self.reply(data.decode("utf-8", "replace"))
                except Exception:
                    log.exception("management command %r failed", data[:100])
                    text, close = "ERROR\n", False
                if text:
                    conn.sendall(text.encode("utf-8"))
                if close:
                    break
        except OSError:
            pass
        finally:
            conn.close()



class Repeater:
    """statsd's repeater backend: every raw packet to every target, UDP or TCP, no retries."""

    def __init__(self, targets, protocol: str = "udp4") -> None:
        self.targets = [(t.host, t.port) for t in targets]
        self.protocol = protocol
        self._udp: socket.socket | None = None
        self._tcp: dict[tuple[str, int], gsocket.socket | None] = {}
        if protocol in ("udp4", "udp6"):
            family = socket.AF_INET6 if protocol == "udp6" else socket.AF_INET
            self._udp = gsocket.socket(family, socket.SOCK_DGRAM)

    def forward(self, packet: bytes) -> None:
        if self._udp is not None:
            for target in self.targets:
                try:
                    self._udp.sendto(packet, target)
                except OSError as exc:
                    log.debug("repeater: cannot send to %s:%d: %s", *target, exc)
            return
        data = packet + b"\n"
        for target in self.targets:
            sock = self._tcp.get(target)
            try:
                if sock is None:
                    sock = self._tcp[target] = gsocket.create_connection(target, timeout=2)
                sock.sendall(data)
            except OSError as exc:
                log.debug("repeater: cannot send to %s:%d: %s", *target, exc)
                if sock is not None:
                    sock.close()
                self._tcp[target] = None

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        for sock in self._tcp.values():
            if sock is not None:
                sock.close()


__all__ = ["UdpPacketInput", "TcpPacketInput", "TcpLineFramer", "MAX_LINE_BYTES", "CommandServer", "Repeater", "UDP_READ_BYTES"]
