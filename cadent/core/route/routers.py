"""Relay routers: which destinations a metric name goes to. Pure: no I/O, no clocks.

``RELAY_METHOD`` names map to classes:

* ``rules`` → :class:`RulesRouter` (relay-rules.conf);
* ``consistent-hashing`` → :class:`ConsistentHashingRouter`;
* ``fast-hashing`` → :class:`FastHashingRouter`;
* ``aggregated-consistent-hashing`` / ``fast-aggregated-hashing`` →
  :class:`AggregatedConsistentHashingRouter` / :class:`FastAggregatedHashingRouter`.

Every router answers ``destinations_for(name)`` with an ordered tuple (primary first, no
duplicates) and ``route_batch(batch)`` with ``{destination: points}``. Placements are cached per
name in a bounded dict, so a steady working set of names costs one dict lookup per point.
With ``tag_relay_normalized`` the name is first put in canonical tag form; that form is both
the routing key and the name forwarded downstream.

Compiled (see :mod:`cadent.compiled`), ``route_batch`` makes one typed pass over a list batch
(``_group_by_placement``: cache lookup and grouping per point) instead of the column-wise
Python path below; both give the same lists in the same order.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from typing import Protocol

from cadent.compat.aggregation_rules import AggregationRule
from cadent.core.point import Batch
from cadent.core.ring.consistent import ConsistentHashRing, FastHashRing, Node
from cadent.core.route.destination import Destination, check_unique_nodes, parse_destination
from cadent.core.tags import normalize_name

try:
    import cython

    _COMPILED = cython.compiled  # True in the compiled twin, False when run as Python
except ImportError:  # Cython is needed only to build the compiled twin
    _COMPILED = False

# named for this module even in the compiled twin, whose __name__ is the extension's
log = logging.getLogger("cadent.core.route.routers")

DEFAULT_CACHE_NAMES = 200_000

RELAY_METHODS: tuple[str, ...] = (
    "rules",
    "consistent-hashing",
    "fast-hashing",
    "fast-aggregated-hashing",
    "aggregated-consistent-hashing",
)

_NAME = itemgetter(0)


class RelayRule(Protocol):
    """One relay-rules.conf section as the rules router consumes it."""

    pattern: re.Pattern[str]
    destinations: list[str]
    continue_matching: bool
    is_default: bool


class HashRing(Protocol):
    """What the hashing routers need from a ring."""

    def add_node(self, node: Node) -> None: ...

    def remove_node(self, node: Node) -> None: ...

    def get_nodes(self, key: str) -> Iterator[Node]: ...


class Router(Protocol):
    """The routing interface the relay, ``--test`` mode and the API share."""

    method: str
    destinations: tuple[Destination, ...]
    unroutable: int

    def normalize(self, name: str) -> str: ...

    def key_for(self, name: str) -> str: ...

    def destinations_for(self, name: str) -> tuple[Destination, ...]: ...

    def route_batch(self, batch: Batch) -> dict[Destination, Batch]: ...


class BaseRouter:
    """Placement cache, name normalisation and batch routing shared by every router.

    Subclasses implement :meth:`_select` (routing key → ordered destinations, may repeat).
    """

    method = ""

    def __init__(
        self,
        destinations: Iterable[Destination],
        *,
        tag_relay_normalized: bool = False,
        cache_names: int = DEFAULT_CACHE_NAMES,
    ) -> None:
        self.destinations: tuple[Destination, ...] = tuple(destinations)
        self.tag_relay_normalized = bool(tag_relay_normalized)
        self.cache_names = max(1, int(cache_names))
        self._cache: dict[str, int] = {}  # name -> placement id
        self._renames: dict[str, str] = {}  # name -> normalized name, only when they differ
        self._placement_ids: dict[tuple[Destination, ...], int] = {}
        self._placements: list[tuple[Destination, ...]] = []
        self.unroutable = 0  # datapoints route_batch found no destination for (caller resets)

    # -- per name -----------------------------------------------------------------------

    def normalize(self, name: str) -> str:
        """The name as forwarded: canonical tag form when enabled, else unchanged."""
        return normalize_name(name) if self.tag_relay_normalized else name

    def key_for(self, name: str) -> str:
        """The routing key for ``name`` (its forwarded form)."""
        return self.normalize(name)

    def _select(self, key: str) -> Iterable[Destination]:
        raise NotImplementedError

    def _compute(self, name: str) -> tuple[Destination, ...]:
        return tuple(dict.fromkeys(self._select(self.key_for(name))))

    def destinations_for(self, name: str) -> tuple[Destination, ...]:
        """Destinations for ``name``: ordered, primary first, no duplicates."""
        pid = self._cache.get(name)
        if pid is None:
            if len(self._cache) >= self.cache_names:
                self.clear_cache()
            pid = self._place(name)
        return self._placements[pid]

    def clear_cache(self) -> None:
        """Forget every cached placement (call after any change to the routing inputs)."""
        self._cache.clear()
        self._renames.clear()
        self._placement_ids.clear()
        self._placements.clear()

    def _place(self, name: str) -> int:
        placement = self._compute(name)
        pid = self._placement_ids.get(placement)
        if pid is None:
            pid = self._placement_ids[placement] = len(self._placements)
            self._placements.append(placement)
        self._cache[name] = pid
        if self.tag_relay_normalized:
            forwarded = normalize_name(name)
            if forwarded != name:
                self._renames[name] = forwarded
        return pid

    # -- per batch ----------------------------------------------------------------------

    def route_batch(self, batch: Batch) -> dict[Destination, Batch]:
        """Split ``batch`` by destination, names rewritten when normalisation is on.

        A point bound for several destinations appears in each of their lists. The lists
        returned are new; ``batch`` itself is not modified.
        """
        if not batch:
            return {}
        cache = self._cache
        if len(cache) >= self.cache_names:
            self.clear_cache()
        if _COMPILED and type(batch) is list:
            return self._route_grouped(batch)
        get = cache.get
        pids = list(map(get, map(_NAME, batch)))
        if None in pids:
            place = self._place
            for i, pid in enumerate(pids):
                if pid is None:
                    name = batch[i][0]
                    pid = get(name)
                    pids[i] = place(name) if pid is None else pid
        if self._renames:
            renames = self._renames
            batch = [
                point if (new := renames.get(point[0])) is None else (new, point[1])
                for point in batch
            ]
        return self._split(pids, batch)

    def _route_grouped(self, batch: list) -> dict[Destination, Batch]:
        """:meth:`route_batch` with the per-point loops in :func:`_group_by_placement` and
        :func:`_spread` (used compiled)."""
        groups = _group_by_placement(batch, self._cache, self._place)
        placements = self._placements
        targets: set = set()
        fanout = 0
        for pid in groups:
            placement = placements[pid]
            fanout += len(placement)
            targets.update(placement)
        renames = self._renames
        if fanout != len(targets):
            # a destination shared between placements: its list merges them in batch order
            out = {dest: [] for dest in targets}
            lists = {pid: [out[dest] for dest in placements[pid]] for pid in groups}
            for pid in groups:
                if not placements[pid]:
                    self.unroutable += len(groups[pid])
            _spread(batch, self._cache, lists, renames)
            return out
        out: dict[Destination, Batch] = {}
        for pid, points in groups.items():
            placement = placements[pid]
            if not placement:
                self.unroutable += len(points)
                continue
            if renames:
                points = _renamed(points, renames)
            out[placement[0]] = points
            for dest in placement[1:]:
                out[dest] = list(points)
        return out

    def _split(self, pids: list[int], batch: Batch) -> dict[Destination, Batch]:
        # Each destination's list keeps the batch order.
        placements = self._placements
        used = set(pids)
        for pid in used:
            if not placements[pid]:
                self.unroutable += pids.count(pid)
        if len(used) == 1:
            return {dest: list(batch) for dest in placements[pids[0]]}
        fanout = sum(len(placements[pid]) for pid in used)
        targets = {dest for pid in used for dest in placements[pid]}
        if fanout == len(targets):
            # no destination is shared between placements: group once, hand lists out
            groups: defaultdict[int, Batch] = defaultdict(list)
            for pid, point in zip(pids, batch):
                groups[pid].append(point)
            out: dict[Destination, Batch] = {}
            for pid, points in groups.items():
                placement = placements[pid]
                if placement:
                    out[placement[0]] = points
                    for dest in placement[1:]:
                        out[dest] = list(points)
            return out
        out = {dest: [] for dest in targets}
        appenders = {pid: tuple(out[dest].append for dest in placements[pid]) for pid in used}
        for pid, point in zip(pids, batch):
            for append in appenders[pid]:
                append(point)
        return out


def _group_by_placement(batch: list, cache: dict, place) -> dict:
    """``{placement id: points}`` for ``batch``, each list in batch order; ``place(name)``
    places (and caches) a name the cache does not hold.

    Placement ids are small dense ints, so the lists sit in a list indexed by id: one dict
    lookup per point (the cache's), none for the group.
    """
    by_pid: list = []
    groups: dict = {}  # in order of first appearance, as the Python path gives them
    for point in batch:
        name = point[0]
        found = cache.get(name)
        pid = place(name) if found is None else found
        if pid >= len(by_pid):
            by_pid.extend([None] * (pid + 1 - len(by_pid)))
        points = by_pid[pid]
        if points is None:
            by_pid[pid] = groups[pid] = [point]
        else:
            points.append(point)
    return groups


def _spread(batch: list, cache: dict, lists: dict, renames: dict) -> None:
    """Append every point of ``batch`` (all of its names placed) to each list in
    ``lists[placement id]``, renamed when ``renames`` says so."""
    for point in batch:
        name = point[0]
        targets = lists[cache[name]]
        if targets:
            if renames:
                new = renames.get(name)
                if new is not None:
                    point = (new, point[1])
            for points in targets:
                points.append(point)


def _renamed(points: list, renames: dict) -> list:
    """``points`` with every name in ``renames`` replaced by its normalized form."""
    return [point if (new := renames.get(point[0])) is None else (new, point[1])
            for point in points]


def route_batch(router: Router, batch: Batch) -> dict[Destination, Batch]:
    """Split ``batch`` by destination through ``router`` (see :meth:`BaseRouter.route_batch`)."""
    return router.route_batch(batch)


class RulesRouter(BaseRouter):
    """relay-rules.conf: first matching rule wins unless it says ``continue``; the default
    rule is evaluated last. A rule's destination is used only if the exact
    ``host:port:instance`` is also in DESTINATIONS."""

    method = "rules"

    def __init__(
        self,
        destinations: Iterable[Destination],
        relay_rules: Sequence[RelayRule],
        *,
        tag_relay_normalized: bool = False,
        cache_names: int = DEFAULT_CACHE_NAMES,
    ) -> None:
        super().__init__(destinations, tag_relay_normalized=tag_relay_normalized, cache_names=cache_names)
        configured = set(self.destinations)
        ordered = [r for r in relay_rules if not r.is_default] + [r for r in relay_rules if r.is_default]
        self._rules: list[tuple[re.Pattern[str], tuple[Destination, ...], bool, bool]] = []
        for rule in ordered:
            targets = []
            for text in rule.destinations:
                dest = parse_destination(text)
                if dest in configured:
                    targets.append(dest)
                else:
                    log.warning(
                        "relay rule %r sends to %s, which is not in DESTINATIONS: ignored",
                        rule.pattern.pattern if rule.pattern is not None else "default", dest,
                    )
            self._rules.append((rule.pattern, tuple(targets), rule.continue_matching, rule.is_default))

    def _select(self, key: str) -> Iterator[Destination]:
        for pattern, targets, continue_matching, is_default in self._rules:
            if is_default or pattern.search(key):
                yield from targets
                if not continue_matching or is_default:
                    return


class ConsistentHashingRouter(BaseRouter):
    """carbon's ``consistent-hashing``: walk the ring for the name, take REPLICATION_FACTOR
    nodes (with ``diverse_replicas``, at most one per host string)."""

    method = "consistent-hashing"
    default_hash_type = "carbon_ch"

    def __init__(
        self,
        destinations: Iterable[Destination],
        replication_factor: int = 1,
        diverse_replicas: bool = True,
        hash_type: str | None = None,
        tag_relay_normalized: bool = False,
        *,
        cache_names: int = DEFAULT_CACHE_NAMES,
    ) -> None:
        super().__init__(destinations, tag_relay_normalized=tag_relay_normalized, cache_names=cache_names)
        if int(replication_factor) < 1:
            raise ValueError(f"REPLICATION_FACTOR must be >= 1, got {replication_factor}")
        check_unique_nodes(self.destinations)
        self.replication_factor = int(replication_factor)
        self.diverse_replicas = bool(diverse_replicas)
        self.hash_type = hash_type or self.default_hash_type
        self._by_node: dict[Node, Destination] = {d.node: d for d in self.destinations}
        self.ring: HashRing = self._make_ring([d.node for d in self.destinations])

    def _make_ring(self, nodes: list[Node]) -> HashRing:
        return ConsistentHashRing(nodes, hash_type=self.hash_type)

    def _select(self, key: str) -> list[Destination]:
        by_node = self._by_node
        wanted = self.replication_factor
        chosen: list[Destination] = []
        if self.diverse_replicas:
            hosts: set[str] = set()
            for node in self.ring.get_nodes(key):
                if node[0] in hosts:
                    continue
                hosts.add(node[0])
                chosen.append(by_node[node])
                if len(hosts) >= wanted:
                    break
        else:
            for node in self.ring.get_nodes(key):
                if len(chosen) == wanted:
                    break
                chosen.append(by_node[node])
        return chosen

    def add_destination(self, dest: Destination) -> None:
        """Put ``dest`` on the ring (after the existing ones); ValueError if its node exists."""
        if dest.node in self._by_node:
            raise ValueError(f"destination instance ({dest.host}, {dest.instance}) already configured")
        self.ring.add_node(dest.node)
        self._by_node[dest.node] = dest
        self.destinations = self.destinations + (dest,)
        self.clear_cache()

    def remove_destination(self, dest: Destination) -> None:
        """Take ``dest``'s node off the ring; ValueError if it is not configured."""
        if self._by_node.get(dest.node) != dest:
            raise ValueError(f"destination instance ({dest.host}, {dest.instance}) not configured")
        self.ring.remove_node(dest.node)
        del self._by_node[dest.node]
        self.destinations = tuple(d for d in self.destinations if d != dest)
        self.clear_cache()


class FastHashingRouter(ConsistentHashingRouter):
    """``fast-hashing``: same replica selection over a :class:`FastHashRing`
    (default hash ``mmh3_ch``)."""

    method = "fast-hashing"
    default_hash_type = "mmh3_ch"

    def _make_ring(self, nodes: list[Node]) -> HashRing:
        return FastHashRing(nodes, hash_type=self.hash_type)


class AggregatedConsistentHashingRouter(ConsistentHashingRouter):
    """``aggregated-consistent-hashing``: route by the aggregate names a metric feeds, so
    every input of an aggregate reaches the same aggregator. The result is the union of the
    destinations of each matching rule's output (the raw name when no rule matches)."""

    method = "aggregated-consistent-hashing"

    def __init__(
        self,
        destinations: Iterable[Destination],
        rules: Sequence[AggregationRule] = (),
        replication_factor: int = 1,
        diverse_replicas: bool = True,
        hash_type: str | None = None,
        tag_relay_normalized: bool = False,
        *,
        cache_names: int = DEFAULT_CACHE_NAMES,
    ) -> None:
        super().__init__(
            destinations,
            replication_factor,
            diverse_replicas,
            hash_type,
            tag_relay_normalized,
            cache_names=cache_names,
        )
        self.rules: tuple[AggregationRule, ...] = tuple(rules)

    def set_rules(self, rules: Sequence[AggregationRule]) -> None:
        """Swap in re-read aggregation rules."""
        self.rules = tuple(rules)
        self.clear_cache()

    def _select(self, key: str) -> list[Destination]:
        outputs = [out for rule in self.rules if (out := rule.output_for(key)) is not None]
        if not outputs:
            return super()._select(key)
        chosen: list[Destination] = []
        for output in dict.fromkeys(outputs):
            chosen.extend(super()._select(output))
        return chosen


class FastAggregatedHashingRouter(AggregatedConsistentHashingRouter):
    """``fast-aggregated-hashing``: the aggregated router over a :class:`FastHashRing`."""

    method = "fast-aggregated-hashing"
    default_hash_type = "mmh3_ch"

    def _make_ring(self, nodes: list[Node]) -> HashRing:
        return FastHashRing(nodes, hash_type=self.hash_type)


def build_router(
    method: str,
    destinations: Iterable[Destination],
    *,
    replication_factor: int = 1,
    diverse_replicas: bool = True,
    hash_type: str | None = None,
    tag_relay_normalized: bool = False,
    relay_rules: Sequence[RelayRule] | None = None,
    aggregation_rules: Sequence[AggregationRule] | None = None,
    cache_names: int = DEFAULT_CACHE_NAMES,
) -> BaseRouter:
    """The router for a RELAY_METHOD name; ValueError for an unknown method or bad input.

    ``hash_type`` None means the method's default (``carbon_ch``, ``mmh3_ch`` for fast-*).
    """
    hashing = dict(
        replication_factor=replication_factor,
        diverse_replicas=diverse_replicas,
        hash_type=hash_type,
        tag_relay_normalized=tag_relay_normalized,
        cache_names=cache_names,
    )
    if method == "rules":
        if relay_rules is None:
            raise ValueError("RELAY_METHOD = rules needs relay rules")
        return RulesRouter(
            destinations, relay_rules, tag_relay_normalized=tag_relay_normalized, cache_names=cache_names
        )
    if method == "consistent-hashing":
        return ConsistentHashingRouter(destinations, **hashing)
    if method == "fast-hashing":
        return FastHashingRouter(destinations, **hashing)
    if method == "aggregated-consistent-hashing":
        return AggregatedConsistentHashingRouter(destinations, aggregation_rules or (), **hashing)
    if method == "fast-aggregated-hashing":
        return FastAggregatedHashingRouter(destinations, aggregation_rules or (), **hashing)
    raise ValueError(f"RELAY_METHOD must be one of {', '.join(RELAY_METHODS)}; got {method!r}")


__all__ = [
    "AggregatedConsistentHashingRouter",
    "BaseRouter",
    "ConsistentHashingRouter",
    "FastAggregatedHashingRouter",
    "FastHashingRouter",
    "HashRing",
    "RELAY_METHODS",
    "RelayRule",
    "Router",
    "RulesRouter",
    "build_router",
    "route_batch",
]


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.core.route._cadent_c_routers")
