"""Listening sockets (TCP/UDP shareable by worker processes with SO_REUSEPORT, unix stream
sockets) and the stream server and UDP reader every receiver is built on."""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from typing import Callable

import gevent
from gevent import socket as gsocket
from gevent.pool import Pool
from gevent.server import StreamServer


def bind_socket(host: str, port: int, kind: int, *, reuse_port: bool = False, backlog: int = 1024) -> gsocket.socket:
    """Bind a TCP (``SOCK_STREAM``) or UDP (``SOCK_DGRAM``) socket, IPv4 or IPv6 by ``host``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = gsocket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(backlog)
    return sock


def bind_unix_socket(path: str, *, mode: int = 0o660, backlog: int = 1024) -> gsocket.socket:
    """Bind and listen on a unix stream socket at ``path`` with permissions ``mode``.

    A socket file left by a process that is gone (nothing accepts on it) is removed first;
    a live one, or a file that is not a socket, is an OSError.
    """
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # stale: its listener is gone
        else:
            raise OSError(errno.EADDRINUSE, f"{path}: another process is listening on it")
        finally:
            probe.close()
    sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)  # no moment with wider permissions than asked
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"unix socket {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    sock.listen(backlog)
    return sock


def socket_address(sock: socket.socket) -> tuple[str, int] | str:
    """``(host, port)`` of an inet socket, the path of a unix one."""
    name = sock.getsockname()
    return name if isinstance(name, str) else name[:2]


def describe_address(address: tuple[str, int] | str) -> str:
    """``host:port`` or the unix socket path, for log lines."""
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


class PooledTcpServer:
    """A gevent StreamServer on a bound listener (TCP or unix), one greenlet per connection
    from a bounded pool.

    Subclasses implement ``_handle(conn, address)`` and set ``description`` for the log line.
    A unix socket file is removed when the server stops.
    """

    description = "tcp server"

    def __init__(self, listener: socket.socket, max_connections: int | None = None) -> None:
        self.listener = listener
        self._pool = Pool(max_connections) if max_connections else Pool()
        self._server = self._make_server(listener)

    def _make_server(self, listener: socket.socket) -> StreamServer:
        return StreamServer(listener, self._handle, spawn=self._pool)

    @property
    def address(self) -> tuple[str, int] | str:
        return socket_address(self.listener)

    def _handle(self, conn: socket.socket, address: tuple) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._server.start()
        logging.getLogger(type(self).__module__).info(
            "%s on %s", self.description, describe_address(self.address))

    def stop(self) -> None:
        """Stop accepting and end every connection's greenlet."""
        path = self.address
        self._server.close()
        self._pool.kill(block=True, timeout=2)
        if isinstance(path, str) and path:
            try:
                os.unlink(path)
            except OSError:
                pass


UDP_READ_BYTES = 65536  # the largest UDP payload is 65527 bytes
# A socket that always has data never blocks, so the greenlet reading it would never let
# senders, timers or other connections run: readers yield once every this many reads.
YIELD_EVERY_READS = 16
# a timer this short is due by the time the loop has polled
_POLL_YIELD_S = 1e-6


def yield_to_loop() -> None:
    """Let the loop poll its sockets and run its timers and other greenlets, then come back.

    ``gevent.sleep(0)`` is not enough for a reader that always finds data: it only queues the
    caller behind the loop's other callbacks, and gevent polls for I/O once every 50 of them,
    so a CarbonLink query or a flush timer would wait for 50 of the reader's batches (100 ms
    and more under load). Sleeping on a timer that is due at once makes the loop poll first.
    """
    gevent.sleep(_POLL_YIELD_S)


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a ``size`` byte receive buffer (beyond net.core.rmem_max when privileged);
    returns the size the kernel granted."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError:
            pass
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


class DatagramReader:
    """Reads whole datagrams (up to 64 KiB) from a bound UDP socket: ``on_datagram(bytes)`` each.

    ``drain()`` hands on what the kernel already holds (shutdown: those datagrams were
    accepted, so they are processed rather than discarded).
    """

    description = "udp input"

    def __init__(self, sock: socket.socket, on_datagram: Callable[[bytes], None], *,
                 receive_buffer_bytes: int) -> None:
        self.sock = sock
        self.on_datagram = on_datagram
        self._log = logging.getLogger(type(self).__module__)
        got = set_receive_buffer(sock, receive_buffer_bytes)
        if got < receive_buffer_bytes:
            self._log.warning("UDP receive buffer is %d bytes (asked %d); raise net.core.rmem_max",
                              got, receive_buffer_bytes)
        self._greenlet = None

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)
        self._log.info("%s on %s:%d/udp", self.description, *self.address)

    def _handle(self, data: bytes) -> None:
        try:
            self.on_datagram(data)
        except Exception:
            self._log.exception("%s: datagram handler failed; datagram dropped", self.description)

    def _run(self) -> None:
        recv, reads = self.sock.recv, 0
        while True:
            reads += 1
            if reads % YIELD_EVERY_READS == 0:
                yield_to_loop()
            try:
                data = recv(UDP_READ_BYTES)
            except OSError as exc:
                self._log.warning("%s: receive failed: %s", self.description, exc)
                gevent.sleep(0.1)
                continue
            self._handle(data)

    def drain(self) -> int:
        """Handle every datagram already queued in the kernel; returns how many."""
        self.sock.settimeout(0.0)  # a gevent socket would otherwise wait for more data
        count = 0
        while True:
            try:
                data = self.sock.recv(UDP_READ_BYTES)
            except OSError:  # BlockingIOError: nothing left
                return count
            count += 1
            self._handle(data)

    def stop(self) -> None:
        """Stop reading (the socket stays open for :meth:`drain`)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1)
            self._greenlet = None

    def close(self) -> None:
        self.stop()
        self.sock.close()
