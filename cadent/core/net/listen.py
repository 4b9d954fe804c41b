"""Listening sockets shared by several worker processes (SO_REUSEPORT)."""

from __future__ import annotations

import socket

from gevent import socket as gsocket


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


class PooledTcpServer:
    """A gevent StreamServer on a bound listener, one greenlet per connection from a bounded pool.

    Subclasses implement ``_handle(conn, address)`` and set ``description`` for the log line.
    """

    description = "tcp server"

    def __init__(self, listener: socket.socket, max_connections: int | None = None) -> None:
        from gevent.pool import Pool
        from gevent.server import StreamServer

        self.listener = listener
        self._pool = Pool(max_connections) if max_connections else Pool()
        self._server = StreamServer(listener, self._handle, spawn=self._pool)

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.getsockname()[:2]

    def _handle(self, conn: socket.socket, address: tuple) -> None:
        raise NotImplementedError

    def start(self) -> None:
        import logging

        self._server.start()
        logging.getLogger(type(self).__module__).info("%s on %s:%d", self.description, *self.address)

    def stop(self) -> None:
        """Stop accepting and end every connection's greenlet."""
        self._server.close()
        self._pool.kill(block=True, timeout=2)
