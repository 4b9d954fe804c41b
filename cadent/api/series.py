"""The in-memory series the render pipeline passes between functions."""

from __future__ import annotations

import math
from itertools import repeat
from operator import truediv
from dataclasses import dataclass, field

from cadent.api.readers import AGGREGATORS


@dataclass
class TimeSeries:
    """``values[i]`` is the value at ``start + i*step``; ``end`` is exclusive for fetched data."""

    name: str
    start: int
    end: int
    step: int
    values: list
    path_expression: str = ""
    consolidation_func: str = "average"
    x_files_factor: float = 0.0
    values_per_point: int = 1
    tags: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.path_expression:
            self.path_expression = self.name
        if not self.tags:
            self.tags = tags_of(self.name)

    def copy(self, name: str | None = None, values: list | None = None, **changes) -> "TimeSeries":
        """A new series sharing this one's timing; ``name`` keeps tags unless given."""
        attrs = dict(self.__dict__)
        attrs["values"] = list(self.values) if values is None else values
        attrs["tags"] = dict(self.tags)
        if name is not None:
            attrs["name"] = name
            attrs["tags"]["name"] = attrs["tags"].get("name", name)
        attrs.update(changes)
        return TimeSeries(**attrs)

    def consolidated(self) -> list:
        """``values`` grouped ``values_per_point`` at a time with ``consolidation_func``."""
        vpp = self.values_per_point
        if vpp <= 1:
            return list(self.values)
        agg = consolidator(self.consolidation_func)
        values, xff = self.values, self.x_files_factor

        def bucket(chunk: list):
            usable = [v for v in chunk if v is not None] if None in chunk else chunk
            if not usable or len(usable) / len(chunk) < xff:
                return None
            return agg(usable)

        whole = len(values) - len(values) % vpp
        gaps = _none_positions(values, limit=whole // vpp // 8)
        if gaps is None:  # mostly gaps: bucket by bucket
            return [bucket(values[i : i + vpp]) for i in range(0, len(values), vpp)]
        # reduce every full bucket in C with gaps read as 0, then redo the buckets holding gaps
        filled = values
        if gaps:
            filled = list(values)
            for i in gaps:
                filled[i] = 0.0
        out = _reduce_full_buckets(self.consolidation_func, agg, filled, vpp, whole)
        for b in sorted({i // vpp for i in gaps if i < whole}):
            out[b] = bucket(values[b * vpp : (b + 1) * vpp])
        if whole < len(values):
            out.append(bucket(values[whole:]))
        return out


def _none_positions(values: list, limit: int) -> list[int] | None:
    """Indexes of None in ``values`` (found in C), or None when there are more than ``limit``."""
    found: list[int] = []
    i = -1
    while True:
        try:
            i = values.index(None, i + 1)
        except ValueError:
            return found
        found.append(i)
        if len(found) > limit:
            return None


def _reduce_full_buckets(func: str, agg, values: list, vpp: int, whole: int) -> list:
    """``agg`` over each run of ``vpp`` values in ``values[:whole]`` (no None in them).

    The built-in reducers give the same floats as ``agg`` (left-to-right ``sum``)."""
    buckets = zip(*[iter(values[:whole])] * vpp)
    if func in ("average", "avg"):
        return list(map(truediv, map(sum, buckets), repeat(vpp)))
    if func in ("sum", "max", "min"):
        return list(map({"sum": sum, "max": max, "min": min}[func], buckets))
    if func == "last":
        return values[vpp - 1 : whole : vpp]
    if func == "first":
        return values[0:whole:vpp]
    return list(map(agg, buckets))


def consolidator(name: str):
    """Aggregation function by graphite name (``average``, ``sum``, ``max``, ``first``, ...)."""
    if name == "first":
        return lambda vals: vals[0]
    if name in ("avg", "average"):
        return AGGREGATORS["average"]
    if name in AGGREGATORS:
        return AGGREGATORS[name]
    if name in ("multiply",):
        return math.prod
    if name in ("range", "rangeOf"):
        return lambda vals: max(vals) - min(vals)
    if name in ("count",):
        return len
    if name in ("median",):
        return lambda vals: sorted(vals)[len(vals) // 2] if len(vals) % 2 else sum(sorted(vals)[len(vals) // 2 - 1 : len(vals) // 2 + 1]) / 2
    raise ValueError(f"Unsupported aggregation function: {name}")


def tags_of(name: str) -> dict:
    """``a.b;k=v`` → {'name': 'a.b', 'k': 'v'}; untagged names → {'name': name}."""
    if ";" not in name:
        return {"name": name}
    base, *pairs = name.split(";")
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if sep:
            tags[key] = value
    tags["name"] = base
    return tags


__all__ = ["TimeSeries", "consolidator", "tags_of"]
