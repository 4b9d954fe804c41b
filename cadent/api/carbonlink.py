"""CarbonLink client: ask carbon-compatible caches for the points not yet on disk.

Hosts are ``host:port[:instance]`` strings (IPv6 as ``[addr]:port[:instance]``). The cache
asked for a metric is chosen on carbon's consistent-hash ring of ``(host, instance)`` nodes:
walk the ring until ``replication_factor`` distinct hosts are collected, then pick one at
random among those not failed within ``retry_delay_s`` (all of them if every one failed).
Names starting with ``<carbon_prefix>.`` (self-metrics) are asked of every host and the
replies merged. Frames are a 4-byte big-endian length plus a pickle; replies are read with
a restricted unpickler. Any failure is logged and counted and yields no cached points, so
the caller serves disk data only.
"""

from __future__ import annotations

import io
import logging
import pickle
import random
import socket
import struct
import threading
import time
from collections.abc import Sequence

from cadent.core.ring.consistent import ConsistentHashRing

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 1 << 30
_LENGTH = struct.Struct("!L")

_ALLOWED_GLOBALS = {
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
    ("builtins", "list"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "dict"),
    ("builtins", "tuple"),
    ("collections", "deque"),
}


class _ReplyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in a CarbonLink reply")


def loads_reply(data: bytes):
    """Unpickle a CarbonLink reply allowing plain builtins only."""
    return _ReplyUnpickler(io.BytesIO(data), encoding="utf-8").load()


def parse_host(spec: str) -> tuple[str, int, str | None]:
    """``host:port[:instance]`` → (host, port, instance or None); ValueError if malformed."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        rest = rest.lstrip(":")
    else:
        host, _, rest = spec.partition(":")
    port_text, _, instance = rest.partition(":")
    if not host or not port_text.isdigit():
        raise ValueError(f"bad CarbonLink host {spec!r}; expected host:port[:instance]")
    return host, int(port_text), instance or None


class CarbonLinkError(Exception):
    """A query failed: connection, timeout, framing, unpickling or an ``error`` reply."""


class CarbonLinkPool:
    """Thread/greenlet safe pool of persistent connections to the cache-query ports."""

    def __init__(
        self,
        hosts: Sequence[str],
        timeout_s: float = 1.0,
        retry_delay_s: float = 15.0,
        replication_factor: int = 1,
        hash_type: str = "carbon_ch",
        carbon_prefix: str = "carbon",
    ) -> None:
        parsed = [parse_host(h) for h in hosts]
        self.nodes = [(host, instance) for host, _, instance in parsed]
        self.ports = {(host, instance): port for host, port, instance in parsed}
        self.timeout_s = timeout_s
        self.retry_delay_s = retry_delay_s
        self.replication_factor = replication_factor
        self.carbon_prefix = carbon_prefix
        self.ring = ConsistentHashRing(self.nodes, hash_type=hash_type)
        self._idle: dict[tuple[str, str | None], list[socket.socket]] = {n: [] for n in self.nodes}
        self._last_failure: dict[tuple[str, str | None], float] = {}
        self._lock = threading.Lock()
        self.counters = {"queries": 0, "errors": 0, "skipped": 0}

    @property
    def enabled(self) -> bool:
        return bool(self.nodes) and self.replication_factor > 0

    def hosts_for(self, metric: str) -> list[tuple[str, str | None]]:
        """The nodes to ask for ``metric``: all for self-metrics, else one from the ring."""
        if not self.enabled:
            return []
        if self.carbon_prefix and metric.startswith(self.carbon_prefix + "."):
            return list(self.nodes)
        candidates: list[tuple[str, str | None]] = []
        servers: set[str] = set()
        for node in self.ring.get_nodes(metric):
            if node not in candidates:
                candidates.append(node)
                servers.add(node[0])
            if len(servers) >= self.replication_factor:
                break
        now = time.monotonic()
        alive = [n for n in candidates if now - self._last_failure.get(n, -1e18) >= self.retry_delay_s]
        if not alive:
            self.counters["skipped"] += 1
            return []
        return [random.choice(alive)]

    def query(self, metric: str) -> list[tuple[float, float]]:
        """Cached ``(timestamp, value)`` points for ``metric``; ``[]`` on any failure."""
        points: list[tuple[float, float]] = []
        for node in self.hosts_for(metric):
            try:
                reply = self._request(node, {"type": "cache-query", "metric": metric})
                got = reply["datapoints"]
            except Exception as exc:  # every failure means "disk data only"
                self._failed(node, exc, metric)
                continue
            points.extend((float(ts), float(v)) for ts, v in got)
        return points

    def _failed(self, node, exc: Exception, metric: str) -> None:
        self.counters["errors"] += 1
        with self._lock:
            self._last_failure[node] = time.monotonic()
            dropped, self._idle[node] = self._idle[node], []
        for conn in dropped:
            conn.close()
        log.warning("CarbonLink query of %r on %s:%s failed: %r; serving disk data", metric, node[0], self.ports[node], exc)

    def _request(self, node, request: dict) -> dict:
        self.counters["queries"] += 1
        conn = self._checkout(node)
        try:
            body = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
            conn.sendall(_LENGTH.pack(len(body)) + body)
            (length,) = _LENGTH.unpack(_recv_exactly(conn, 4))
            if length > MAX_REPLY_BYTES:
                raise CarbonLinkError(f"reply of {length} bytes is too large")
            reply = loads_reply(_recv_exactly(conn, length))
        except BaseException:
            conn.close()
            raise
        if not isinstance(reply, dict):
            conn.close()
            raise CarbonLinkError(f"reply is a {type(reply).__name__}, not a dict")
        with self._lock:
            self._idle[node].append(conn)
        if "error" in reply:
            raise CarbonLinkError(str(reply["error"]))
        return reply

    def _checkout(self, node) -> socket.socket:
        with self._lock:
            if self._idle[node]:
                return self._idle[node].pop()
        conn = socket.create_connection((node[0], self.ports[node]), timeout=self.timeout_s)
        conn.settimeout(self.timeout_s)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return conn

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle = [c for conns in self._idle.values() for c in conns]
            for conns in self._idle.values():
                conns.clear()
        for conn in idle:
            conn.close()


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise CarbonLinkError("connection closed by the cache")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


__all__ = ["CarbonLinkError", "CarbonLinkPool", "loads_reply", "parse_host"]
