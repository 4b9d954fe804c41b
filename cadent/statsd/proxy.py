"""statsd cluster proxy logic without sockets: the node ring, packet splitting, health.

The ring reproduces the proxy's consistent hashing exactly:

* node ids ``"host:port"`` in config order, equal weights;
* points per node ``floor((100 / (100 * N)) * 40 * N)`` in doubles (40, but 39 for N = 7
  or 14); point ``i`` of a node is the first 4 bytes of ``md5("host:port-i")`` read as a
  little-endian uint32;
* points sorted by value (stable); a key hashes the same way and belongs to the first point
  with a value ≥ its hash, wrapping to the first point.

Health: a node whose check fails leaves the ring (rebuilt from the remaining nodes); the
next successful check appends it at the end and rebuilds the ring.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from typing import Iterable, Sequence

HELP = "Commands: config, health, status, quit\n\n"


def _point(text: str) -> int:
    return int.from_bytes(hashlib.md5(text.encode("utf-8")).digest()[:4], "little")


def points_per_node(count: int) -> int:
    """Ring points for each of ``count`` equally weighted nodes."""
    if count <= 0:
        return 0
    return math.floor((100 / (100 * count)) * 40 * count)


class ProxyRing:
    """The proxy's hash ring over node ids (``host:port``), in the given order."""

    def __init__(self, node_ids: Sequence[str]) -> None:
        self.node_ids = list(node_ids)
        per_node = points_per_node(len(self.node_ids))
        points = []
        for node in self.node_ids:
            for i in range(per_node):
                points.append((_point(f"{node}-{i}"), node))
        points.sort(key=lambda p: p[0])
        self._values = [p[0] for p in points]
        self._owners = [p[1] for p in points]

    def get(self, key: str) -> str | None:
        """Owner node id for ``key`` (None when the ring is empty)."""
        if not self._values:
            return None
        i = bisect.bisect_left(self._values, _point(key))
        if i == len(self._values):
            i = 0
        return self._owners[i]


def split_packet(packet: bytes) -> list[bytes]:
    """Datagrams the proxy forwards for one received packet.

    Without a newline the packet goes out unchanged; otherwise every non-empty line goes out
    on its own, without its newline (a ``\\r`` stays).
    """
    if b"\n" not in packet:
        return [packet]
    return [line for line in packet.split(b"\n") if line]


def routing_key(line: bytes) -> str:
    """The text before the first ``:`` (the whole line without one), not sanitised."""
    return line.split(b":", 1)[0].decode("utf-8", "replace")


def route_packet(ring: ProxyRing, packet: bytes) -> list[tuple[str, bytes]]:
    """``(node_id, datagram)`` for every datagram of ``packet`` (empty when the ring is)."""
    out = []
    for line in split_packet(packet):
        node = ring.get(routing_key(line))
        if node is not None:
            out.append((node, line))
    return out


def is_healthy_reply(reply: str | None) -> bool:
    """A health check passes when the node's reply contains ``up``."""
    return reply is not None and "up" in reply


class NodeHealth:
    """Which nodes are in the ring; feed it check results, read ``ring``."""

    def __init__(self, node_ids: Iterable[str]) -> None:
        self.all_nodes = list(node_ids)
        self.live = list(self.all_nodes)
        self.ring = ProxyRing(self.live)

    def report(self, node_id: str, healthy: bool) -> bool:
        """Record one check result; returns True when the ring was rebuilt."""
        if healthy and node_id not in self.live:
            self.live.append(node_id)
        elif not healthy and node_id in self.live:
            self.live.remove(node_id)
        else:
            return False
        self.ring = ProxyRing(self.live)
        return True


def handle_proxy_command(state: dict, health: NodeHealth, data: str, uptime_s: int, config_text: str) -> tuple[str, bool]:
    """The proxy's management commands; ``state['health']`` holds 'up'/'down'."""
    parts = data.strip().split(" ")
    cmd, args = parts[0], parts[1:]
    if cmd == "help":
        return HELP, False
    if cmd == "health":
        if args and args[0].lower() in ("up", "down"):
            state["health"] = args[0].lower()
        return f"health: {state.get('health', 'up')}\n", False
    if cmd == "config":
        return config_text, False
    if cmd == "status":
        nodes = "".join(node + " " for node in health.live)
        return f"uptime: {uptime_s}\nnodes: {nodes}\n", False
    if cmd == "quit":
        return "", True
    return "ERROR\n", False


__all__ = [
    "ProxyRing",
    "NodeHealth",
    "points_per_node",
    "split_packet",
    "routing_key",
    "route_packet",
    "is_healthy_reply",
    "handle_proxy_command",
]
