"""The interface every storage writer implements, and a fan-out over several writers.

Writers are called from the cache's writer threads (real OS threads, WRITER_THREADS of them),
never with two calls for the same metric at once, so they may block. ``write`` returns the number of points it committed; any exception means
nothing is known to be written and the caller keeps the points for a retry.
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


class MultiWriter:
    """Fan-out to several writers (e.g. during a migration). The first one is the primary:
    metadata is read from it, and ``exists`` is true only when every writer has the series,
    so a series missing from a newer backend gets created there too."""

    def __init__(self, writers: Sequence[Writer]) -> None:
        if not writers:
            raise ValueError("MultiWriter needs at least one writer")
        self.writers = tuple(writers)

    def exists(self, name: str) -> bool:
        return all(writer.exists(name) for writer in self.writers)

    def create(self, name: str) -> None:
        for writer in self.writers:
            if not writer.exists(name):
                writer.create(name)

    def write(self, name: str, points: Points) -> int:
        committed = [writer.write(name, points) for writer in self.writers]
        return committed[0]

    def get_metadata(self, name: str, key: str) -> Any:
        return self.writers[0].get_metadata(name, key)

    def set_metadata(self, name: str, key: str, value: Any) -> Any:
        old = [writer.set_metadata(name, key, value) for writer in self.writers]
        return old[0]

    def set_rules(self, schemas: StorageSchemas, aggregations: StorageAggregation) -> None:
        for writer in self.writers:
            writer.set_rules(schemas, aggregations)

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


__all__ = ["MultiWriter", "Points", "Writer"]
