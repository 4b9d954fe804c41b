"""The one datapoint shape that flows through every stage.

A datapoint is carbon's own in-process tuple ``(name, (timestamp, value))``. Keeping that
layout means ``pickle.dumps(batch, protocol=2)`` produces exactly the frames carbon sends, and
a batch received by pickle needs no conversion at all.
"""

from __future__ import annotations

from typing import TypeAlias

Datapoint: TypeAlias = tuple[str, tuple[float, float]]
Batch: TypeAlias = list[Datapoint]

__all__ = ["Datapoint", "Batch"]
