"""gevent TCP server for CarbonLink: persistent connections, any number of requests each.

Frames may arrive split over several reads or several in one read; each is answered in turn.
A frame longer than ``max_frame_bytes`` gets an error reply and the connection is closed (its
body cannot be skipped safely); an unreadable body gets an error reply and the connection
stays open. Metadata requests touch the disk and run in gevent's thread pool.
"""

from __future__ import annotations

import logging
import socket

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer

from cadent.core import oplog
from cadent.core.carbonlink import CarbonLinkHandler, RequestFramer, encode_reply

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
READ_SIZE = 65536


class CarbonLinkServer:
    """Serve ``cache`` (and ``writer`` metadata) on ``address`` = (host, port)."""

    def __init__(self, address: tuple[str, int], cache, writer=None,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 max_connections: int = 1000, handler: CarbonLinkHandler | None = None,
                 log_hits: bool = False) -> None:
        self.handler = handler or CarbonLinkHandler(cache, writer, run_io=_in_threadpool,
                                                    log_hits=log_hits)
        self.max_frame_bytes = max_frame_bytes
        self._server = StreamServer(address, self._serve, spawn=Pool(max_connections))
        self.connections = 0

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); port is real after ``start`` even when 0 was asked."""
        return self._server.address

    def start(self) -> None:
        self._server.start()
        log.info("CarbonLink listening on %s:%d", *self._server.address[:2])

    def stop(self, timeout: float = 5.0) -> None:
        self._server.stop(timeout=timeout)

    def _serve(self, sock: socket.socket, address) -> None:
        self.connections += 1
        peer = "%s:%d" % tuple(address[:2]) if isinstance(address, tuple) else str(address)
        oplog.query.info("%s connected", peer)
        try:
            self._conversation(sock, peer)
        except OSError as exc:
            log.debug("CarbonLink client %s: %s", peer, exc)
            oplog.query.info("%s connection lost: %s", peer, exc)
        else:
            oplog.query.info("%s disconnected", peer)
        finally:
            self.connections -= 1
            sock.close()

    def _conversation(self, sock: socket.socket, peer: str) -> None:
        framer = RequestFramer(self.max_frame_bytes)
        while True:
            data = sock.recv(READ_SIZE)
            if not data:
                return
            for body in framer.feed(data):
                sock.sendall(self.handler.handle_request(body, peer))
            if framer.oversize is not None:
                log.warning("CarbonLink frame of %d bytes from %s over the %d limit: closing",
                            framer.oversize, peer, self.max_frame_bytes)
                self.handler.errors += 1
                sock.sendall(encode_reply(
                    {"error": f"request of {framer.oversize} bytes exceeds {self.max_frame_bytes}"}))
                return


def _in_threadpool(func, *args):
    return gevent.get_hub().threadpool.apply(func, args)


__all__ = ["CarbonLinkServer", "DEFAULT_MAX_FRAME_BYTES"]
