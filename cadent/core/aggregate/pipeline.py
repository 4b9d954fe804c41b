"""carbon-aggregator's stage order: rewrite ``[pre]`` → aggregate → rewrite ``[post]`` → relay.

Received points pass ``[pre]``, feed the aggregator, and those forwarded raw pass ``[post]``.
Aggregates are generated inside the daemon and, as in carbon, go straight to the relay stage:
they never pass ``[post]`` (nor ``[pre]``, nor the white/blacklists).
"""

from __future__ import annotations

from collections.abc import Callable

from cadent.core.aggregate.aggregator import Aggregator
from cadent.core.point import Batch
from cadent.core.route.rewrite import apply_rules

Stage = Callable[[Batch], Batch]


class AggregatorPipeline:
    """The pure part of the aggregator daemon: received batches in, batches to relay out."""

    def __init__(self, aggregator: Aggregator, pre: Stage | None = None, post: Stage | None = None) -> None:
        self.aggregator = aggregator
        self.pre = pre
        self.post = post

    @classmethod
    def from_rewrite_rules(cls, aggregator: Aggregator, rewrite_rules) -> AggregatorPipeline:
        """Build from a ``cadent.compat.rewrite_rules.RewriteRules`` (``.pre``/``.post`` lists);
        ``None`` means no rewriting."""
        pipeline = cls(aggregator)
        pipeline.set_rewrite_rules(rewrite_rules)
        return pipeline

    def set_rewrite_rules(self, rewrite_rules) -> None:
        """Swap in new rewrite rules (a reload); ``None`` or empty sections disable a stage."""
        if rewrite_rules is None:
            self.pre = self.post = None
            return
        pre, post = rewrite_rules.pre, rewrite_rules.post
        self.pre = (lambda batch: apply_rules(pre, batch)) if pre else None
        self.post = (lambda batch: apply_rules(post, batch)) if post else None

    def received(self, batch: Batch, now: float) -> Batch:
        """A received batch through ``[pre]``, the aggregator and ``[post]``: the raw points to relay."""
        if self.pre is not None:
            batch = self.pre(batch)
        forwarded = self.aggregator.add_batch(batch, now)
        if forwarded and self.post is not None:
            forwarded = self.post(forwarded)
        return forwarded

    def tick(self, now: float) -> Batch:
        """Aggregates due at ``now``, ready to relay (no rewriting)."""
        return self.aggregator.tick(now)

    def flush_all(self) -> Batch:
        """Every unsent aggregate, for shutdown (no rewriting)."""
        return self.aggregator.flush_all()

    def run(self, batch: Batch, now: float) -> tuple[Batch, Batch]:
        """``(forwarded raw, aggregates due)`` for ``batch`` received at ``now``."""
        return self.received(batch, now), self.tick(now)


__all__ = ["AggregatorPipeline", "Stage"]
