"""Flush-time math: counter rates, timer statistics, percentiles and histograms.

Every value is an IEEE double computed in the same order as statsd, so the printed
digits match to the last place (cumulative sums left to right over the sorted values,
``Math.round`` for percentile counts, a two-pass standard deviation).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple, Sequence

from cadent.statsd.numbers import NAN, js_str, round_half_up

_PCT_SUFFIX = re.compile(r"_(top)?\d+\Z")


class Percentile(NamedTuple):
    """One ``percentThreshold`` entry with its pre-built stat name suffix."""

    pct: float
    suffix: str  # "90", "99_9", "top10"


class HistogramRule(NamedTuple):
    """``{metric, bins}``: ``bins`` are (name, upper limit) with ``inf`` for 'inf'."""

    metric: str
    bins: tuple[tuple[str, float], ...]


def percentile(pct: float) -> Percentile:
    """Build a :class:`Percentile` (suffix: first ``.`` → ``_``, first ``-`` → ``top``)."""
    return Percentile(pct, js_str(pct).replace(".", "_", 1).replace("-", "top", 1))


def metric_filter(calculated: Sequence[str]):
    """Predicate for ``calculatedTimerMetrics`` (None when every stat is kept)."""
    if not calculated:
        return None
    wanted = frozenset(calculated)
    cache: dict[str, bool] = {}

    def keep(stat: str) -> bool:
        hit = cache.get(stat)
        if hit is None:
            hit = cache[stat] = _PCT_SUFFIX.sub("_percent", stat) in wanted
        return hit

    return keep


def histogram_bins(key: str, rules: Sequence[HistogramRule]) -> tuple:
    """The bins of the first rule whose metric is a substring of ``key`` (else none)."""
    for rule in rules:
        if rule.metric in key:
            return rule.bins
    return ()


def timer_stats(
    values: list[float],
    count: float,
    interval_s: float,
    percentiles: Sequence[Percentile],
    bins: tuple = (),
) -> dict:
    """statsd's timer_data for one key, in emission order.

    Values are numbers; the histogram, if any, is a nested dict under ``"histogram"``.
    """
    if not values:
        return {"count_ps": 0, "count": 0}
    v = sorted(values)
    n = len(v)
    cum = []  # running sums left to right, as statsd adds them
    cumsq = []
    acc = acc_sq = -0.0  # the additive identity of doubles: -0.0 + x is x, even for x = -0.0
    for x in v:
        acc += x
        acc_sq += x * x
        cum.append(acc)
        cumsq.append(acc_sq)
    low = v[0]
    high = v[-1]
    data: dict = {}
    for pct, suffix in percentiles:
        k = 1
        bound = high
        total = low
        total_sq = low * low
        mean = low
        if n > 1:
            k = int(round_half_up(abs(pct) / 100 * n))
            if k == 0:
                continue
            if pct > 0:
                bound = v[k - 1]
                total = cum[k - 1]
                total_sq = cumsq[k - 1]
            else:
                bound = v[n - k]
                j = n - k - 1
                total = cum[n - 1] - (cum[j] if j >= 0 else NAN)
                total_sq = cumsq[n - 1] - (cumsq[j] if j >= 0 else NAN)
            mean = total / k
        data["count_" + suffix] = k
        data["mean_" + suffix] = mean
        data[("upper_" if pct > 0 else "lower_") + suffix] = bound
        data["sum_" + suffix] = total
        data["sum_squares_" + suffix] = total_sq
    total = cum[-1]
    mean = total / n
    diffs = 0.0
    for x in v:
        d = x - mean
        diffs += d * d
    mid = n // 2
    data["std"] = math.sqrt(diffs / n)
    data["upper"] = high
    data["lower"] = low
    data["count"] = count
    data["count_ps"] = count / interval_s
    data["sum"] = total
    data["sum_squares"] = cumsq[-1]
    data["mean"] = mean
    data["median"] = v[mid] if n % 2 else (v[mid - 1] + v[mid]) / 2
    if bins:
        hist: dict = {}
        i = 0
        for name, limit in bins:
            freq = 0
            while i < n and (limit == math.inf or v[i] < limit):
                freq += 1
                i += 1
            hist[name] = freq
        data["histogram"] = hist
    return data


def filter_stats(data: dict, keep) -> dict:
    """Drop the stats ``calculatedTimerMetrics`` does not ask for."""
    return {k: v for k, v in data.items() if keep(k)}


__all__ = [
    "Percentile",
    "HistogramRule",
    "percentile",
    "metric_filter",
    "histogram_bins",
    "timer_stats",
    "filter_stats",
]


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.statsd._cadent_c_flush")
