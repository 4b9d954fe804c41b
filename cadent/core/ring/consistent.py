"""carbon's consistent-hash ring, entry for entry.

Each node ``(host, instance)`` contributes ``replicas`` entries. The replica key is the
Python ``str()`` of the node tuple followed by ``:i`` (``('h', 'a'):0``), except for
``fnv1a_ch`` which uses ``"i-instance"`` only, so the host takes no part in it. A position
already on the ring is bumped by +1 (no wrap) until free, in node insertion order.

Lookups start at the first entry whose position is >= hash(key) (wrapping to 0) and walk
forward; the entry just before the start is never examined. With exactly one node the node is
yielded once up front and once more by the walk, as carbon does.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from cadent.core.ring.hashing import position_function

Node = tuple[str, str | None]


class ConsistentHashRing:
    """Positions for ``nodes`` (in the given order) and the walk that picks nodes for a key.

    ``add_node`` appends a node; ``remove_node`` rebuilds the ring from the remaining nodes in
    their order, so any sequence of changes yields exactly the ring a fresh build with the
    current node list would give.
    """

    __slots__ = ("hash_type", "replicas", "_hash", "_nodes", "_positions", "_owners", "_taken")

    def __init__(
        self,
        nodes: Sequence[Node] = (),
        hash_type: str = "carbon_ch",
        replicas: int = 100,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        self.hash_type = hash_type
        self.replicas = replicas
        self._hash = position_function(hash_type)
        self._nodes: list[Node] = []
        self._positions: list[int] = []
        self._owners: list[Node] = []
        self._taken: set[int] = set()
        for node in nodes:
            self.add_node(node)

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The nodes in insertion order."""
        return tuple(self._nodes)

    def __len__(self) -> int:
        return len(self._positions)

    def entries(self) -> list[tuple[int, Node]]:
        """The whole ring as sorted ``(position, node)`` pairs."""
        return list(zip(self._positions, self._owners))

    def _replica_key(self, node: Node, i: int) -> str:
        if self.hash_type == "fnv1a_ch":
            return "%d-%s" % (i, node[1])
        return "%s:%d" % (node, i)

    def add_node(self, node: Node) -> None:
        """Append ``node``'s replicas; ValueError if it is already on the ring."""
        node = (node[0], node[1])
        if node in self._nodes:
            raise ValueError(f"node {node!r} is already on the ring")
        self._nodes.append(node)
        taken = self._taken
        added = []
        for i in range(self.replicas):
            pos = self._hash(self._replica_key(node, i))
            while pos in taken:
                pos += 1
            taken.add(pos)
            added.append(pos)
        merged = sorted(list(zip(self._positions, range(len(self._positions)))) + [(p, -1) for p in added])
        owners = self._owners
        self._owners = [owners[idx] if idx >= 0 else node for _, idx in merged]
        self._positions = [p for p, _ in merged]

    def remove_node(self, node: Node) -> None:
        """Remove ``node`` and rebuild from the remaining nodes; ValueError if absent."""
        node = (node[0], node[1])
        if node not in self._nodes:
            raise ValueError(f"node {node!r} is not on the ring")
        remaining = [n for n in self._nodes if n != node]
        self._nodes, self._positions, self._owners, self._taken = [], [], [], set()
        for n in remaining:
            self.add_node(n)

    def get_node(self, key: str) -> Node:
        """The primary node for ``key``; LookupError on an empty ring."""
        if not self._positions:
            raise LookupError("the hash ring has no nodes")
        index = bisect_left(self._positions, self._hash(key)) % len(self._positions)
        return self._owners[index]

    def get_nodes(self, key: str) -> Iterator[Node]:
        """Nodes for ``key`` in ring order, primary first (see the module doc for quirks)."""
        positions = self._positions
        ring_len = len(positions)
        if not ring_len:
            return
        node_count = len(self._nodes)
        if node_count == 1:
            yield self._nodes[0]
        index = bisect_left(positions, self._hash(key)) % ring_len
        stop = (index - 1) % ring_len
        owners = self._owners
        seen: set[Node] = set()
        while len(seen) < node_count and index != stop:
            node = owners[index]
            if node not in seen:
                seen.add(node)
                yield node
            index = (index + 1) % ring_len


class FastHashRing:
    """The ``fast-hashing`` ring: nodes sorted by ``hash(str(node))``, walked from
    ``hash(key) % len(nodes)``. Every node is yielded exactly once.

    Nodes with equal hashes keep their insertion order.
    """

    __slots__ = ("hash_type", "_hash", "_nodes", "_sorted")

    def __init__(self, nodes: Sequence[Node] = (), hash_type: str = "mmh3_ch") -> None:
        self.hash_type = hash_type
        self._hash = position_function(hash_type)
        self._nodes: list[Node] = []
        self._sorted: list[Node] = []
        for node in nodes:
            self.add_node(node)

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The nodes in insertion order."""
        return tuple(self._nodes)

    @property
    def sorted_nodes(self) -> tuple[Node, ...]:
        """The nodes in walk order."""
        return tuple(self._sorted)

    def _resort(self) -> None:
        order = sorted(range(len(self._nodes)), key=lambda i: (self._hash(str(self._nodes[i])), i))
        self._sorted = [self._nodes[i] for i in order]

    def add_node(self, node: Node) -> None:
        """Add ``node``; ValueError if it is already present."""
        node = (node[0], node[1])
        if node in self._nodes:
            raise ValueError(f"node {node!r} is already on the ring")
        self._nodes.append(node)
        self._resort()

    def remove_node(self, node: Node) -> None:
        """Remove ``node``; ValueError if absent."""
        node = (node[0], node[1])
        if node not in self._nodes:
            raise ValueError(f"node {node!r} is not on the ring")
        self._nodes.remove(node)
        self._resort()

    def get_node(self, key: str) -> Node:
        """The primary node for ``key``; LookupError when empty."""
        if not self._sorted:
            raise LookupError("the hash ring has no nodes")
        return self._sorted[self._hash(key) % len(self._sorted)]

    def get_nodes(self, key: str) -> Iterator[Node]:
        """Every node once, starting at ``hash(key) % len(nodes)``."""
        count = len(self._sorted)
        if not count:
            return
        start = self._hash(key) % count
        ring = self._sorted
        for i in range(start, start + count):
            yield ring[i % count]


__all__ = ["ConsistentHashRing", "FastHashRing", "Node"]
