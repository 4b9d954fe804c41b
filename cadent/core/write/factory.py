"""Writers by name: what ``[cache] DATABASE`` may list, and how each one is built.

Each backend is named by the module and function that build it from the cache's settings,
so a backend's driver (cassandra-driver, kafka-python) is imported only when it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from cadent.core.write.base import Writer

if TYPE_CHECKING:
    from cadent.compat.cache_settings import CacheSettings

#: DATABASE name → "module:function" taking a CacheSettings and returning a Writer.
BACKENDS: dict[str, str] = {
    "whisper": "cadent.core.write.whisper:writer_from_settings",
    "cassandra": "cadent.core.write.cassandra:writer_from_settings",
    "kafka": "cadent.core.write.kafka:writer_from_settings",
    "file": "cadent.core.write.lines:file_writer_from_settings",
    "echo": "cadent.core.write.lines:echo_writer_from_settings",
}


def build_writer(name: str, settings: CacheSettings) -> Writer:
    """The writer for backend ``name`` (one of :data:`BACKENDS`) configured by ``settings``."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown storage backend {name!r}") from None
    module_name, function = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, function)(settings)


def build_writers(settings: CacheSettings) -> list[tuple[str, Writer]]:
    """``(name, writer)`` for every backend DATABASE lists, the primary first."""
    return [(name, build_writer(name, settings)) for name in settings.databases]


__all__ = ["BACKENDS", "build_writer", "build_writers"]
