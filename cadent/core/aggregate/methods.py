"""The aggregation methods of aggregation-rules.conf: a list of values → one value.

Results are the values carbon-aggregator computes, operation for operation: ``sum`` adds left
to right, ``avg`` is that sum over the count, ``count`` is an int, and ``pNN`` interpolates
linearly between the two values around rank ``q·(n−1)`` of the sorted list (p90 of 1, 2, 6 is
2·0.2 + 6·0.8 = 5.2). Every function is called with a non-empty list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import ceil, floor

Method = Callable[[Sequence[float]], float]


def agg_sum(values: Sequence[float]) -> float:
    """Sum, added left to right (the builtin, so floats round exactly as carbon's do)."""
    return sum(values)


def agg_avg(values: Sequence[float]) -> float:
    """Arithmetic mean as a float."""
    return float(sum(values)) / len(values)


def agg_count(values: Sequence[float]) -> int:
    """Number of values received in the interval."""
    return len(values)


def percentile(q: float) -> Method:
    """A method returning the ``q`` quantile (0 ≤ q ≤ 1) with linear interpolation."""

    def agg_percentile(values: Sequence[float]) -> float:
        ordered = sorted(values)
        rank = q * (len(ordered) - 1)
        lo = int(floor(rank))
        hi = int(ceil(rank))
        if lo == hi:
            return ordered[lo]
        return ordered[lo] * (hi - rank) + ordered[hi] * (rank - lo)

    agg_percentile.__name__ = f"percentile_{q}"
    return agg_percentile


METHODS: dict[str, Method] = {
    "sum": agg_sum,
    "avg": agg_avg,
    "min": min,
    "max": max,
    "count": agg_count,
    "p50": percentile(0.50),
    "p75": percentile(0.75),
    "p80": percentile(0.80),
    "p90": percentile(0.90),
    "p95": percentile(0.95),
    "p99": percentile(0.99),
    "p999": percentile(0.999),
}


def method(name: str) -> Method:
    """The function for method ``name``; KeyError names the known methods."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown aggregation method {name!r}; known: {', '.join(METHODS)}") from None


__all__ = ["METHODS", "Method", "agg_avg", "agg_count", "agg_sum", "method", "percentile"]
