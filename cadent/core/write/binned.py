"""What the binned writers (Kafka, file, echo) share: bins and TTL from the storage-schemas
rule, no storage to create, no metadata."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Sequence

from cadent.core.write.base import Points

if TYPE_CHECKING:
    from cadent.compat.storage_aggregation import StorageAggregation
    from cadent.compat.storage_schemas import StorageSchemas


def finest_retention(schemas: StorageSchemas, name: str) -> tuple[int, int]:
    """(resolution, ttl) in seconds: the finest archive of the first storage-schemas rule
    matching ``name`` (``10s:6h,1m:1d`` → ``(10, 21600)``)."""
    seconds, points = schemas.match(name).archives[0]
    return seconds, seconds * points


class BinnedWriter(ABC):
    """A Writer whose every write is ``write_many`` over rolled-up bins of the points."""

    def __init__(self, schemas: StorageSchemas) -> None:
        self._schemas = schemas

    def exists(self, name: str) -> bool:
        return True   # nothing to create

    def create(self, name: str) -> None:
        pass

    def write(self, name: str, points: Points) -> int:
        return self.write_many([(name, points)])

    @abstractmethod
    def write_many(self, items: Sequence[tuple[str, Points]]) -> int:
        """Write every ``(name, points)``; return the points written (all or nothing)."""

    def retention(self, name: str) -> tuple[int, int]:
        return finest_retention(self._schemas, name)

    def get_metadata(self, name: str, key: str) -> Any:
        raise KeyError(f"this writer keeps no metadata ({key} of {name})")

    def set_metadata(self, name: str, key: str, value: Any) -> Any:
        raise KeyError(f"this writer keeps no metadata ({key} of {name})")

    def set_rules(self, schemas: StorageSchemas, aggregations: StorageAggregation) -> None:
        self._schemas = schemas

    def flush(self) -> None:
        pass   # every write is complete when it returns

    def close(self) -> None:
        pass


__all__ = ["BinnedWriter", "finest_retention"]
