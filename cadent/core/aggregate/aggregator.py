"""The aggregate stage of carbon-aggregator: rules + buffers, batches in and out, no I/O.

``add_batch(batch, now)`` feeds each point to the buffer of every rule output it matches (a
point matching two rules with the same output is added twice, as carbon does) and returns the
points to forward raw: with ``forward_all`` every point except one whose own name is among the
outputs computed *from that point*; without it, nothing. ``tick(now)`` returns the aggregates
due (see :mod:`cadent.core.aggregate.buffers` for the timing). The daemon owns the clock: it
calls ``add_batch`` with ``time.time()`` per received batch and ``tick`` from one periodic
greenlet.

Rule matches are cached per name (names repeat); the cache holds at most
``match_cache_size`` names and forgets the oldest quarter when full. The per-point work runs
batch-wise in :mod:`cadent.core.aggregate.gather` (compiled when built).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from cadent.core.aggregate.buffers import DEFAULT_MAX_BUFFERS, DEFAULT_MAX_POINTS, AggregationBuffers
from cadent.core.aggregate.gather import Match, group_by_output
from cadent.core.point import Batch

log = logging.getLogger(__name__)

DEFAULT_MATCH_CACHE_SIZE = 200_000


class Rule(Protocol):
    """What the aggregator needs of a rule (``cadent.compat.aggregation_rules.AggregationRule``)."""

    frequency: int
    method: str

    def output_for(self, name: str) -> str | None: ...


class Aggregator:
    """Aggregation rules applied to batches; see the module docstring."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        forward_all: bool = True,
        max_aggregation_intervals: int = 5,
        write_back_frequency: float | None = None,
        max_buffers: int = DEFAULT_MAX_BUFFERS,
        max_points: int = DEFAULT_MAX_POINTS,
        match_cache_size: int = DEFAULT_MATCH_CACHE_SIZE,
        log_misses: bool = False,
    ) -> None:
        # log_misses: a debug line for each name no rule matches (once per cached name)
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.forward_all = forward_all
        self.log_misses = log_misses
        self.buffers = AggregationBuffers(
            max_aggregation_intervals=max_aggregation_intervals,
            write_back_frequency=write_back_frequency,
            max_buffers=max_buffers,
            max_points=max_points,
        )
        self.match_cache_size = max(1, match_cache_size)
        self._matches: dict[str, Match] = {}
        # one (output, frequency, method) object per target, shared by every name that feeds
        # it: the per-point loop then finds its group by identity, touching no per-name copy
        self._targets: dict[tuple[str, int, str], tuple[str, int, str]] = {}
        self.datapoints_received = 0
        self.rule_errors = 0
        self._sent_reported = 0

    # -- rules --------------------------------------------------------------------------

    def replace_rules(self, rules: Iterable[Rule]) -> None:
        """Switch to a new rule set (a reload). Buffered data is kept: see ``buffers``."""
        self.rules = tuple(rules)
        self._matches.clear()
        self._targets.clear()
        self.buffers.new_generation()
        log.info("aggregation rules replaced: %d rules", len(self.rules))

    def matches(self, name: str) -> Match:
        """``(((output, frequency, method), ...), forward_raw)`` for ``name`` (cached)."""
        entry = self._matches.get(name)
        if entry is None:
            entry = self._match(name)
        return entry

    def _match(self, name: str) -> Match:
        found = []
        shared = self._targets
        for rule in self.rules:
            try:
                output = rule.output_for(name)
            except (TypeError, KeyError, ValueError) as exc:
                self.rule_errors += 1
                log.error("aggregation rule %r cannot name an output for %s: %s", rule, name, exc)
                continue
            if output is not None:
                target = (output, rule.frequency, rule.method)
                found.append(shared.setdefault(target, target))
        outputs = tuple(found)
        forward = self.forward_all and all(name != o for o, _, _ in outputs)
        if self.log_misses and not outputs:
            log.debug("no aggregation rule matches %s: passing it on unaggregated", name)
        cache = self._matches
        if len(cache) >= self.match_cache_size:
            for old in list(cache)[: max(1, len(cache) // 4)]:
                del cache[old]
            if len(shared) >= self.match_cache_size:
                shared.clear()
        entry = cache[name] = (outputs, forward)
        return entry

    # -- data ---------------------------------------------------------------------------

    def add_batch(self, batch: Batch, now: float) -> Batch:
        """Buffer ``batch`` for aggregation at wall time ``now``; returns the raw points to forward.

        Values are gathered per output first (in arrival order, the first matching rule's
        frequency and method configuring a new buffer), then handed to the buffers once per
        output: the result is that of adding every point to every output one by one.
        """
        groups, firsts, forwarded = group_by_output(batch, self._matches, self._match)
        self.buffers.add_groups(groups, firsts, now)
        self.datapoints_received += len(batch)
        return forwarded

    def tick(self, now: float) -> Batch:
        """The aggregates due at wall time ``now``."""
        return self.buffers.tick(now)

    def next_due(self) -> float | None:
        """Wall time of the next aggregate due, or None when nothing is buffered."""
        return self.buffers.next_due()

    def flush_all(self) -> Batch:
        """Every interval with unsent values, computed now; all buffers are dropped (shutdown)."""
        return self.buffers.flush_all()

    # -- self-metrics -------------------------------------------------------------------

    @property
    def allocated_buffers(self) -> int:
        return self.buffers.allocated_buffers

    @property
    def buffered_datapoints(self) -> int:
        return self.buffers.buffered_datapoints

    @property
    def aggregate_datapoints_sent(self) -> int:
        """Aggregates emitted since start (cumulative)."""
        return self.buffers.aggregate_datapoints_sent

    def take_stats(self) -> dict[str, int]:
        """carbon's aggregator self-metrics for one report: the two gauges and the number of
        aggregates sent since the previous call."""
        sent = self.buffers.aggregate_datapoints_sent
        delta = sent - self._sent_reported
        self._sent_reported = sent
        return {
            "allocatedBuffers": self.buffers.allocated_buffers,
            "bufferedDatapoints": self.buffers.buffered_datapoints,
            "aggregateDatapointsSent": delta,
        }


__all__ = ["Aggregator", "Rule", "DEFAULT_MATCH_CACHE_SIZE"]
