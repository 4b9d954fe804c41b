"""The in-memory series the render pipeline passes between functions."""

from __future__ import annotations

import math
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
        out = []
        for i in range(0, len(self.values), vpp):
            chunk = self.values[i : i + vpp]
            usable = [v for v in chunk if v is not None]
            if not usable or len(usable) / len(chunk) < self.x_files_factor:
                out.append(None)
            else:
                out.append(agg(usable))
        return out


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
