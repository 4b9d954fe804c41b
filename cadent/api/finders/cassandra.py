"""cadent-api over Cassandra (``[api] DATABASE = cassandra``): find from the path index, render
from ``metric.metric``.

Finding walks the index one level at a time (see ``cadent.core.write.cassandra_schema``): the
roots come from ``segment WHERE pos = 0``, the children of ``a.b`` from the one ``path``
partition ``{1, 'a.b'}``; a literal pattern node is looked up directly. Glob syntax and
leaf/branch flags are the whisper finder's (a name that is both is listed once, as a branch,
as there); ``**`` is not supported here.

Rendering picks, as whisper picks an archive, the finest resolution whose TTL covers ``from``;
the slots are whisper's (``from`` rounded up to the next step, ``until`` included), a bin without
a row is None, and the value is the column storage-aggregation.conf's method names: average →
mean, sum, min, max, absmax / absmin → whichever of max and min is larger / smaller in magnitude;
``last`` has no column and reads the mean. Points still in the cache are merged over CarbonLink
exactly as for whisper (:func:`cadent.api.readers.merge_cached`).

In a gevent worker the driver runs in its own thread (see ``cadent.core.write.cassandra_io``):
the finder is called both on the worker's loop and, for glob walks, in gevent's thread pool, and
a driver session must not be shared between hubs.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from cadent.api.finders.glob import WILDCARDS, PatternError, match_node, split_pattern
from cadent.api.finders.whisper import Node, deadline_check
from cadent.api.readers import fetch_window, merge_cached
from cadent.api.render import Fetcher, run_blocking
from cadent.api.series import TimeSeries
from cadent.compat.cache_settings import load_storage_rules
from cadent.compat.cassandra_settings import CassandraConfig
from cadent.core.native import get_ident
from cadent.core.write.cassandra import resolutions
from cadent.core.write.cassandra_io import CqlRunner
from cadent.core.write.cassandra_schema import (SELECT_CHILDREN, SELECT_RANGE, SELECT_ROOTS,
                                                statement)

log = logging.getLogger(__name__)

_COLUMNS = {"average": "mean", "avg": "mean", "avg_zero": "mean", "last": "mean",
            "sum": "sum", "min": "min", "max": "max"}


def column_value(point: Any, method: str) -> float | None:
    """The value a stored ``metric_point`` shows for aggregation ``method``."""
    if point is None:
        return None
    if method == "absmax":
        return point.max if abs(point.max) >= abs(point.min) else point.min
    if method == "absmin":
        return point.min if abs(point.min) <= abs(point.max) else point.max
    return getattr(point, _COLUMNS.get(method, "mean"))


class CassandraIndex:
    """The storage rules and a :class:`CqlRunner` (started on first use, in the worker). The
    driver lives in the runner's own thread; a call from the worker's gevent loop waits in
    gevent's thread pool, a call already in a pool thread (a glob walk) waits there."""

    def __init__(self, config: CassandraConfig) -> None:
        self.config = config
        _, _, self.schemas, self.aggregations = load_storage_rules(config.conf_dir)
        self.runner = CqlRunner(config)
        self._loop_thread = get_ident()
        ks = config.keyspace
        self.select_children = statement(SELECT_CHILDREN, ks)
        self.select_roots = statement(SELECT_ROOTS, ks)
        self.select_range = statement(SELECT_RANGE, ks)

    def run(self, cql: str, values_list: Sequence[Sequence[Any]]) -> list[list]:
        """Run one statement once per values tuple, all at once; the rows of each."""
        statements = [(cql, tuple(values)) for values in values_list]
        if self.runner.use_gevent and get_ident() == self._loop_thread:
            return run_blocking(self._run, statements)
        return self._run(statements)

    def _run(self, statements: list) -> list[list]:
        self.runner.start()
        if not self.runner.connected:
            self.runner.wait_connected(self.config.connect_timeout_s)
        return self.runner.run(statements)

    def children(self, parents: Sequence[tuple[int, str]]) -> list[list[tuple[str, bool]]]:
        """``(path, has_data)`` rows of the ``path`` partition of each ``(pos, prefix)``."""
        return [[(row.path, row.has_data) for row in rows]
                for rows in self.run(self.select_children, [(p,) for p in parents])]

    def roots(self) -> list[str]:
        return [row.segment for row in self.run(self.select_roots, [()])[0]]

    def plan(self, name: str) -> tuple[tuple[int, int], ...]:
        return resolutions(self.schemas.archives_for(name))

    def close(self) -> None:
        self.runner.close()


class CassandraFinder:
    """The finder interface of :class:`WhisperFinder` over the Cassandra path index."""

    def __init__(self, config: CassandraConfig, index: CassandraIndex | None = None) -> None:
        self.index = index or CassandraIndex(config)

    def find(self, pattern: str, leaves_only: bool = False,
             deadline: float | None = None) -> list[Node]:
        pattern = pattern.strip()
        if not pattern:
            return []
        if ";" in pattern:
            node = self.find_exact(pattern)
            return [node] if node is not None else []
        nodes = split_pattern(pattern)
        if "**" in nodes:
            raise PatternError("'**' is not supported with DATABASE = cassandra")
        check = deadline_check(deadline, pattern)
        # (pos, prefix) of the branches matched so far
        if WILDCARDS.intersection(nodes[0]):
            level = [(0, name) for name in sorted(match_node(nodes[0], self.index.roots(), check))]
        else:
            level = [(0, nodes[0])]
        if len(nodes) == 1:
            found = self._flags_of(level)
        else:
            for depth, node_pattern in enumerate(nodes[1:], start=1):
                check()
                last = depth == len(nodes) - 1
                found = []
                for (pos, prefix), rows in zip(level, self.index.children(level)):
                    kids: dict[str, set[bool]] = {}
                    for path, has_data in rows:
                        if path != prefix:
                            kids.setdefault(path[len(prefix) + 1:], set()).add(bool(has_data))
                    for name in sorted(match_node(node_pattern, list(kids), check)):
                        path = f"{prefix}.{name}"
                        if not last:
                            if False in kids[name]:
                                found.append((pos + 1, path))
                            continue
                        if False in kids[name]:
                            found.append(Node(path, False))
                        if True in kids[name]:
                            found.append(Node(path, True))
                if not last:
                    level = found
        seen: dict[str, Node] = {}
        for node in found:
            if leaves_only and not node.is_leaf:
                continue
            seen.setdefault(node.path, node)
        return list(seen.values())

    def _flags_of(self, level: list[tuple[int, str]]) -> list[Node]:
        """Root names: a branch when its partition has children, a leaf when it has its own row."""
        out = []
        for (_, name), rows in zip(level, self.index.children(level)):
            if any(path != name for path, _ in rows):
                out.append(Node(name, False))
            if any(path == name and has_data for path, has_data in rows):
                out.append(Node(name, True))
        return out

    def find_exact(self, name: str) -> Node | None:
        parts = name.split(".")
        if not all(parts):
            return None
        rows = self.index.children([(len(parts) - 1, name)])[0]
        return Node(name, True) if any(p == name and d for p, d in rows) else None

    def all_leaves(self) -> list[str]:
        """Every series in the index, sorted (one partition read per branch)."""
        leaves: set[str] = set()
        level = [(0, name) for name in self.index.roots()]
        while level:
            following = []
            for (pos, prefix), rows in zip(level, self.index.children(level)):
                for path, has_data in rows:
                    if has_data:
                        leaves.add(path)
                    elif path != prefix:
                        following.append((pos + 1, path))
            level = following
        return sorted(leaves)

    def intervals(self, node: Node) -> list[tuple[float, float]]:
        now = time.time()
        return [(now - max(ttl for _, ttl in self.index.plan(node.path)), now)]


class CassandraFetcher(Fetcher):
    """:class:`cadent.api.render.Fetcher` reading ``metric.metric`` rows (cache merged)."""

    def exact(self, names: Sequence[str], path_expression: str, start: int,
              end: int) -> list[TimeSeries]:
        nodes = [node for node in map(self.finder.find_exact, names) if node is not None]
        return self._read(nodes, path_expression, start, end)

    def _read(self, nodes: list, path_expression: str, start: int, end: int) -> list[TimeSeries]:
        index: CassandraIndex = self.finder.index
        wanted = []
        for node in nodes:
            plan = index.plan(node.path)
            window = fetch_window(plan, start, end, self.now)
            if window is not None:
                wanted.append((node, plan, window))
        answers = index.run(index.select_range, [((node.path, w.step), w.first, w.last - w.step)
                                                 for node, _, w in wanted])
        out = []
        for (node, plan, window), rows in zip(wanted, answers):
            first, last, step, _ = window
            method = index.aggregations.settings_for(node.path)[1]
            values: list = [None] * ((last - first) // step)
            for row in rows:
                slot = (row.time - first) // step
                if 0 <= slot < len(values) and row.time % step == 0:
                    values[slot] = column_value(row.point, method)
            if self.cache_query is not None:
                merge_cached(window.time_info, values, self.cache_query(node.path), plan[0][0],
                             method)
            out.append(TimeSeries(node.path, first, last, step, values,
                                  path_expression=path_expression))
        return out


def cassandra_reading(config: CassandraConfig) -> tuple[CassandraFinder, type[Fetcher]]:
    """The finder and fetcher class cadent-api uses with ``DATABASE = cassandra``."""
    return CassandraFinder(config), CassandraFetcher


__all__ = ["CassandraFetcher", "CassandraFinder", "CassandraIndex", "cassandra_reading",
           "column_value"]
