"""The interface every storage writer implements (several at once: ``lanes.py``).

Writers are called from the cache's writer threads (real OS threads, WRITER_THREADS of them),
never with two calls for the same metric at once, so they may block. ``write`` returns the
number of points it committed; any exception means nothing is known to be written and the
caller keeps the points for a retry.

Optional: ``write_many(items)`` writes several ``(name, points)`` in one call (all or
nothing); ``write_each(items)`` writes several, each on its own, and answers one result per
item (the points committed, or the exception that item's write raised); ``drain_options``
(a dict of Drainer keywords such as ``threads`` and ``batch``) replaces carbon's rate limits
and WRITER_THREADS for the writer's lane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from cadent.compat.storage_aggregation import StorageAggregation
    from cadent.compat.storage_schemas import StorageSchemas

Points = Sequence[tuple[float, float]]


@runtime_checkable
class Writer(Protocol):
    """A storage backend for cached series."""

    def exists(self, name: str) -> bool:
        """True when ``name`` already has storage (a file, a row...)."""

    def create(self, name: str) -> None:
        """Create storage for ``name`` with the settings its schema/aggregation rules give."""

    def write(self, name: str, points: Points) -> int:
        """Store ``points`` (timestamp, value) of ``name``; return how many were committed."""

    def get_metadata(self, name: str, key: str) -> Any:
        """Metadata value ``key`` of ``name`` (CarbonLink get-metadata)."""

    def set_metadata(self, name: str, key: str, value: Any) -> Any:
        """Set metadata ``key`` of ``name``; return the old value (CarbonLink set-metadata)."""

    def set_rules(self, schemas: StorageSchemas, aggregations: StorageAggregation) -> None:
        """Use these storage-schemas / storage-aggregation rules for series created from now on."""

    def flush(self) -> None:
        """Make every completed write durable."""

    def close(self) -> None:
        """Release every resource; the writer is not used afterwards."""


__all__ = ["Points", "Writer"]
