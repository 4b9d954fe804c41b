"""Raw points rolled up into time bins: what the Cassandra, Kafka, file and echo writers store.

A bin of ``resolution`` seconds starts at ``floor(t / resolution) * resolution`` and holds the
sum, count, min and max of every raw point in it, plus the first and the last value by
timestamp (ties: the later arrival is the last). Coarser resolutions are rolled up from the raw
points too, never from a finer bin's mean. Merging two bins of the same series and start gives
exactly the bin of all their points, whatever the order they arrived in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable


def bin_start(timestamp: float, resolution: int) -> int:
    """The start (unix seconds) of the ``resolution``-second bin holding ``timestamp``."""
    return int(timestamp // resolution) * resolution


@dataclass
class Bin:
    """The aggregate of the raw points of one series in one time bin."""

    sum: float
    count: int
    min: float
    max: float
    first: float
    last: float
    first_ts: float
    last_ts: float

    @classmethod
    def of_point(cls, timestamp: float, value: float) -> Bin:
        return cls(value, 1, value, value, value, value, timestamp, timestamp)

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def add(self, timestamp: float, value: float) -> None:
        """Fold one raw point into the bin."""
        self.sum += value
        self.count += 1
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if timestamp < self.first_ts:
            self.first, self.first_ts = value, timestamp
        if timestamp >= self.last_ts:
            self.last, self.last_ts = value, timestamp

    def merge(self, other: Bin) -> None:
        """Fold ``other`` (later arrivals of the same series and bin) into this bin."""
        self.sum += other.sum
        self.count += other.count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.first_ts < self.first_ts:
            self.first, self.first_ts = other.first, other.first_ts
        if other.last_ts >= self.last_ts:
            self.last, self.last_ts = other.last, other.last_ts

    def copy(self) -> Bin:
        return Bin(self.sum, self.count, self.min, self.max, self.first, self.last,
                   self.first_ts, self.last_ts)


def rollup(points: Iterable[tuple[float, float]], resolution: int) -> dict[int, Bin]:
    """``{bin start: Bin}`` of ``points`` (timestamp, value) at ``resolution`` seconds.

    NaN and infinite values are skipped (they have no place in a sum or a mean).
    """
    bins: dict[int, Bin] = {}
    for timestamp, value in points:
        if not math.isfinite(value):
            continue
        start = int(timestamp // resolution) * resolution
        found = bins.get(start)
        if found is None:
            bins[start] = Bin.of_point(timestamp, value)
        else:
            found.add(timestamp, value)
    return bins


__all__ = ["Bin", "bin_start", "rollup"]
