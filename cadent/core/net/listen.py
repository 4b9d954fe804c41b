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
