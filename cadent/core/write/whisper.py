"""Whisper files in carbon's exact layout (see ``layout.py``), created with the whisper package
and updated with ``whisper_batch.write_batch`` (byte-identical to whisper's update).

Per-writer options (autoflush, locking, fadvise) are applied on the descriptor this writer
opens, so the whisper module's global switches are never touched and two writers with
different options can coexist.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Sequence

import whisper

from cadent.compat.storage_aggregation import StorageAggregation
from cadent.compat.storage_schemas import StorageSchemas
from cadent.core import oplog
from cadent.core.write.base import Points
from cadent.core.write.layout import path_for, relative_path
from cadent.core.write.whisper_batch import write_batch

if TYPE_CHECKING:
    from cadent.compat.cache_settings import CacheSettings

log = logging.getLogger(__name__)

METADATA_KEY = "aggregationMethod"


class WhisperWriter:
    """Writer over a whisper tree rooted at ``data_dir`` (carbon's LOCAL_DATA_DIR)."""

    def __init__(
        self,
        data_dir: str,
        schemas: StorageSchemas | None = None,
        aggregations: StorageAggregation | None = None,
        autoflush: bool = False,
        sparse: bool = False,
        fallocate: bool = False,
        lock_writes: bool = False,
        tag_hash_filenames: bool = True,
        fadvise_random: bool = False,
        log_creates: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self._root = os.path.join(data_dir, "")  # what path_for's join puts before a file
        self.schemas = schemas or StorageSchemas.default()
        self.aggregations = aggregations or StorageAggregation.default()
        self.autoflush = autoflush
        self.sparse = sparse
        self.fallocate = fallocate and whisper.CAN_FALLOCATE
        if fallocate and not whisper.CAN_FALLOCATE:
            log.error("fallocate requested but not available; creating files without it")
        self.lock_writes = lock_writes
        self.tag_hash_filenames = tag_hash_filenames
        self.fadvise_random = fadvise_random and hasattr(os, "posix_fadvise")
        self.log_creates = log_creates

    def path_for(self, name: str) -> str:
        """``layout.path_for`` of ``name`` (a relative path never starts with ``/``, so the
        join is a concatenation)."""
        return self._root + relative_path(name, self.tag_hash_filenames)

    def exists(self, name: str) -> bool:
        """True when the file exists; an unhashed tagged file is renamed to its hashed name."""
        path = self.path_for(name)
        if os.path.exists(path):
            return True
        if self.tag_hash_filenames and ";" in name:
            legacy = path_for(self.data_dir, name, False)
            if os.path.exists(legacy):
                os.rename(legacy, path)
                log.info("renamed %s to %s", legacy, path)
                return True
        return False

    def create(self, name: str) -> None:
        """Create ``name``'s file with its matched schema and aggregation (no-op if it exists).

        The file is built under a temporary name and linked into place, so a reader that
        finds the ``.wsp`` (graphite-web listing the tree) never sees a half-written header.
        """
        path = self.path_for(name)
        if os.path.exists(path):
            return
        schema = self.schemas.match(name)
        archives = list(schema.archives)
        xff, method = self.aggregations.settings_for(name)
        if self.log_creates:
            self._log_create(name, schema.name, archives)
        directory, base = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        temp = os.path.join(directory, f".{base}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            whisper.create(temp, archives, xff, method, self.sparse, self.fallocate)
            if self.autoflush:
                self._fsync_path(temp)
            try:
                os.link(temp, path)
            except FileExistsError:
                return  # created meanwhile by someone else: fine
        finally:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
        log.debug("created %s (archives=%s xff=%s method=%s)", path, archives, xff, method)

    def _log_create(self, name: str, schema: str, archives: list) -> None:
        """carbon's three creates.log lines (its xff/agg read None for the default rule)."""
        rule = self.aggregations.match(name)
        oplog.creates.info("new metric %s matched schema %s", name, schema)
        oplog.creates.info("new metric %s matched aggregation schema %s", name, rule.name)
        oplog.creates.info("creating database metric %s (archive=%s xff=%s agg=%s)",
                           name, archives, rule.xff, rule.method)

    def write(self, name: str, points: Points) -> int:
        """Write one metric's points (``write_each`` of one); raise what its update raised."""
        result = self.write_each([(name, points)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def write_each(self, items: Sequence[tuple[str, Points]]) -> list[int | Exception]:
        """Write every ``(name, points)``: one result per metric, the points committed or the
        exception its update raised (the others are written all the same).

        ``whisper_batch.write_batch`` leaves the bytes ``whisper.file_update_many`` would, the
        timestamps truncated to int as carbon does; each file is opened, updated and closed
        (its compiled twin releases the GIL once for the whole batch).
        """
        return write_batch([self.path_for(name) for name, _ in items],
                           [points for _, points in items], None, self.lock_writes,
                           self.fadvise_random, self.autoflush)

    def get_metadata(self, name: str, key: str) -> Any:
        if key != METADATA_KEY:
            raise ValueError(f'Unsupported metadata key "{key}"')
        path = self.path_for(name)
        info = whisper.info(path)  # whisper answers None for a missing file
        if info is None:
            raise FileNotFoundError(f"no whisper file for {name!r} at {path}")
        return info[METADATA_KEY]

    def set_metadata(self, name: str, key: str, value: Any) -> Any:
        if key != METADATA_KEY:
            raise ValueError(f'Unsupported metadata key "{key}"')
        return whisper.setAggregationMethod(self.path_for(name), value)

    def set_rules(self, schemas: StorageSchemas, aggregations: StorageAggregation) -> None:
        self.schemas = schemas
        self.aggregations = aggregations

    def flush(self) -> None:
        """Every write closes its file; with autoflush it was fsync'ed too. Nothing pending."""

    def close(self) -> None:
        """No handles are kept between writes."""

    @staticmethod
    def _fsync_path(path: str) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def writer_from_settings(settings: CacheSettings) -> WhisperWriter:
    """The ``whisper`` backend of ``[cache] DATABASE``, from carbon's WHISPER_* settings."""
    wc = settings.whisper
    return WhisperWriter(
        wc.data_dir, settings.schemas, settings.aggregations, autoflush=wc.autoflush,
        sparse=wc.sparse, fallocate=wc.fallocate, lock_writes=wc.lock_writes,
        tag_hash_filenames=wc.tag_hash_filenames, fadvise_random=wc.fadvise_random,
        log_creates=settings.cache.log_creates)


__all__ = ["METADATA_KEY", "WhisperWriter", "writer_from_settings"]
