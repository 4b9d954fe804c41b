"""The per-flush metric state of a statsd aggregator: counters, timers, gauges, sets.

Maps are plain dicts keyed by the (sanitised, tagged) metric key; insertion order is the
creation order statsd emits in (:func:`js_key_order` adds JavaScript's rule that array-index
keys come first). A key deleted and created again moves to the end, as in statsd.

Shard design for several cores
------------------------------
Receiving processes parse packets with :class:`cadent.statsd.parse.PacketParser` and split
the resulting update tuples with :func:`partition_updates`, which sends every update of a
key to the one aggregating process owning ``crc32(key) % N``. Each aggregator applies what
it receives to its own :class:`MetricStore`, so every key is aggregated in exactly one
place per flush and no cross-process merging of half-aggregated values (gauge deltas,
percentiles) is ever needed. Receivers count packets/lines/bad lines locally and send
the totals to shard 0 with :meth:`MetricStore.count_packet`. At flush time each shard
produces its own lines; :meth:`MetricStore.merge` folds a disjoint store into another when
one process must emit everything (line order then follows shard order, not arrival
order — single-process mode keeps statsd's exact order).
"""

from __future__ import annotations

import zlib
from typing import Iterable

from cadent.statsd.numbers import NAN
from cadent.statsd.parse import COUNTER, GAUGE, TIMER

INTERNAL_COUNTER_NAMES = ("bad_lines_seen", "packets_received", "metrics_received")
_MAX_ARRAY_INDEX = 4294967294


def _is_array_index(key: str) -> bool:
    return (
        key.isdigit()
        and key.isascii()
        and (key == "0" or key[0] != "0")
        and int(key) <= _MAX_ARRAY_INDEX
    )


def js_key_order(mapping: dict) -> list:
    """Keys in JavaScript object order: array indices ascending, then insertion order."""
    index_keys = [k for k in mapping if k[:1].isdigit() and _is_array_index(k)]
    if not index_keys:
        return list(mapping)
    index_keys.sort(key=int)
    seen = set(index_keys)
    return index_keys + [k for k in mapping if k not in seen]


def partition_updates(updates: list, shards: int) -> list[list]:
    """Split update tuples by owning shard (``crc32(key) % shards``), order kept per shard."""
    out: list[list] = [[] for _ in range(shards)]
    if shards == 1:
        out[0] = list(updates)
        return out
    owner: dict[str, list] = {}
    for update in updates:
        key = update[1]
        bucket = owner.get(key)
        if bucket is None:
            bucket = owner[key] = out[zlib.crc32(key.encode("utf-8")) % shards]
        bucket.append(update)
    return out


def apply_updates(updates: Iterable[tuple], counters: dict, timers: dict, timer_counters: dict,
                  gauges: dict, ttl: dict, max_ttl: int, sets: dict) -> None:
    """Fold update tuples into a store's maps, as statsd does line by line (the loop of
    :meth:`MetricStore.apply`, a function so that it compiles with typed maps)."""
    for update in updates:
        kind = update[0]
        key = update[1]
        if kind == COUNTER:
            current = counters.get(key)
            if not current or current != current:
                current = 0.0
            counters[key] = current + update[2]
        elif kind == TIMER:
            values = timers.get(key)
            if values is None:
                values = timers[key] = []
                timer_counters[key] = 0.0
            values.append(update[2])
            timer_counters[key] = timer_counters.get(key, NAN) + update[3]
        elif kind == GAUGE:
            current = gauges.get(key)
            if update[3] and current and current == current:
                gauges[key] = current + update[2]
            else:
                gauges[key] = update[2]
            ttl[key] = max_ttl
        else:
            members = sets.get(key)
            if members is None:
                members = sets[key] = set()
            members.add(update[2])


class MetricStore:
    """statsd's live maps plus the operations a flush and the management port need."""

    def __init__(self, prefix_stats: str = "statsd", gauges_max_ttl: int = 1) -> None:
        self.prefix_stats = prefix_stats
        self.gauges_max_ttl = gauges_max_ttl
        self.bad_lines_key = prefix_stats + ".bad_lines_seen"
        self.packets_key = prefix_stats + ".packets_received"
        self.metrics_key = prefix_stats + ".metrics_received"
        self.timestamp_lag_key = prefix_stats + ".timestamp_lag"
        self.counters: dict[str, float] = {
            self.bad_lines_key: 0.0,
            self.packets_key: 0.0,
            self.metrics_key: 0.0,
        }
        self.timers: dict[str, list[float]] = {}
        self.timer_counters: dict[str, float] = {}
        self.gauges: dict[str, float] = {}
        self.gauges_ttl: dict[str, int] = {}
        self.sets: dict[str, set[str]] = {}

    # -- ingest -----------------------------------------------------------------------

    def _bump_internal(self, key: str, n: int) -> None:
        # statsd increments these with ++, so a counter deleted over the management port
        # becomes NaN (undefined + 1) until the next flush zeroes it.
        counters = self.counters
        counters[key] = counters.get(key, NAN) + n

    def count_packet(self, packets: int, metrics: int, bad: int) -> None:
        """Account packets received, non-empty lines and bad segments."""
        if packets:
            self._bump_internal(self.packets_key, packets)
        if metrics:
            self._bump_internal(self.metrics_key, metrics)
        if bad:
            self._bump_internal(self.bad_lines_key, bad)

    def count_too_long(self, lines: int) -> None:
        """TCP lines dropped for their length: received, bad, and ``<prefixStats>.lines_too_long``
        (a counter that appears with the first such line)."""
        self.count_packet(0, lines, lines)
        key = self.prefix_stats + ".lines_too_long"
        self.counters[key] = self.counters.get(key, 0.0) + lines

    def apply(self, updates: Iterable[tuple]) -> None:
        """Fold parsed update tuples (see :mod:`cadent.statsd.parse`) into the maps."""
        apply_updates(updates, self.counters, self.timers, self.timer_counters, self.gauges,
                      self.gauges_ttl, self.gauges_max_ttl, self.sets)

    def merge(self, other: "MetricStore") -> None:
        """Fold another store's interval state into this one.

        Counters and timer counts add, timer values extend, set members unite; for gauges
        the other store's value wins (with disjoint shards there is nothing to combine).
        """
        for key, value in other.counters.items():
            self.counters[key] = self.counters.get(key, 0.0) + value
        for key, values in other.timers.items():
            if key not in self.timers:
                self.timers[key] = []
                self.timer_counters[key] = 0.0
            self.timers[key].extend(values)
            self.timer_counters[key] += other.timer_counters.get(key, 0.0)
        for key, value in other.gauges.items():
            self.gauges[key] = value
            if key in other.gauges_ttl:
                self.gauges_ttl[key] = other.gauges_ttl[key]
        for key, members in other.sets.items():
            self.sets.setdefault(key, set()).update(members)

    # -- flush ------------------------------------------------------------------------

    def num_stats(self) -> int:
        """statsd's ``numStats``: number of counter, timer, gauge and set keys."""
        return len(self.counters) + len(self.timers) + len(self.gauges) + len(self.sets)

    def reset_after_flush(
        self,
        delete_counters: bool = False,
        delete_timers: bool = False,
        delete_sets: bool = False,
        delete_gauges: bool = False,
    ) -> None:
        """Clear the interval state the way statsd does once backends have the snapshot."""
        if delete_counters:
            self.counters = {
                k: 0.0
                for k in self.counters
                if "packets_received" in k or "metrics_received" in k or "bad_lines_seen" in k
            }
        else:
            self.counters = dict.fromkeys(self.counters, 0.0)
        if delete_timers:
            self.timers = {}
            self.timer_counters = {}
        else:
            self.timers = {k: [] for k in self.timers}
            self.timer_counters = dict.fromkeys(self.timer_counters, 0.0)
        if delete_sets:
            self.sets = {}
        else:
            self.sets = {k: set() for k in self.sets}
        if delete_gauges:
            ttl = self.gauges_ttl
            for key in list(self.gauges):
                left = ttl.get(key)
                if left is None:  # set by the flush itself (timestamp_lag): never expires
                    continue
                left -= 1
                if left < 1:
                    del self.gauges[key]
                    del ttl[key]
                else:
                    ttl[key] = left

    # -- management -------------------------------------------------------------------

    def delete_matching(self, kind: str, patterns: list[str]) -> list[str]:
        """statsd's del* commands on ``kind`` ('counters', 'timers' or 'gauges').

        Returns the reply lines: ``deleted: k`` per key, ``metric X not found`` for a
        pattern that matched nothing. A pattern ending ``.*`` deletes by prefix.
        """
        mapping: dict = getattr(self, kind)
        lines: list[str] = []
        for pattern in patterns:
            if pattern.endswith(".*"):
                prefix = pattern[:-1]
                found = [k for k in js_key_order(mapping) if k.startswith(prefix)]
            else:
                found = [pattern] if pattern in mapping else []
            if not found:
                lines.append(f"metric {pattern} not found")
            for key in found:
                del mapping[key]
                lines.append(f"deleted: {key}")
        return lines


__all__ = ["MetricStore", "apply_updates", "js_key_order", "partition_updates", "INTERNAL_COUNTER_NAMES"]


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.statsd._cadent_c_store")
