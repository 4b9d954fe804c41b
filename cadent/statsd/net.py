"""statsd's sockets: UDP and TCP packet inputs, the management port, the repeater.

Every input hands whole *packets* (bytes) to one callback, as statsd's servers do: a UDP
datagram (read with a 64 KiB buffer, so statsd clients' large multi-metric datagrams are
never cut), or the complete lines of a TCP read (the tail waits for its newline and is
dropped if the connection closes first).
"""

from __future__ import annotations

import logging
import socket
from typing import Callable

from gevent import socket as gsocket

from cadent.core.net.listen import UDP_READ_BYTES, DatagramReader, PooledTcpServer, bind_socket

log = logging.getLogger(__name__)

PacketHandler = Callable[[bytes], None]


class UdpPacketInput(DatagramReader):
    """statsd's UDP server: every datagram → ``handler(bytes)`` (one packet)."""

    description = "statsd UDP input"

    def __init__(self, host: str, port: int, handler: PacketHandler, *, reuse_port: bool = False,
                 receive_buffer: int = 16 * 1024 * 1024) -> None:
        super().__init__(bind_socket(host, port, socket.SOCK_DGRAM, reuse_port=reuse_port), handler,
                         receive_buffer_bytes=receive_buffer)


class TcpPacketInput(PooledTcpServer):
    """statsd's TCP server: per connection, the text up to the last newline is one packet."""

    description = "statsd TCP input"

    def __init__(self, host: str, port: int, handler: PacketHandler, *, reuse_port: bool = False) -> None:
        super().__init__(bind_socket(host, port, socket.SOCK_STREAM, reuse_port=reuse_port), 10000)
        self.handler = handler

    def _handle(self, conn: gsocket.socket, address: tuple) -> None:
        tail = b""
        try:
            while True:
                data = conn.recv(UDP_READ_BYTES)
                if not data:
                    break
                data = tail + data
                cut = data.rfind(b"\n")
                if cut < 0:
                    tail = data
                    continue
                tail = data[cut + 1 :]
                self.handler(data[: cut + 1])
        except OSError:
            pass
        except Exception:
            log.exception("statsd TCP connection from %s failed", address[0])
        finally:
            if tail:
                log.debug("TCP connection from %s closed with %d bytes without newline", address[0], len(tail))
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


__all__ = ["UdpPacketInput", "TcpPacketInput", "CommandServer", "Repeater", "UDP_READ_BYTES"]
