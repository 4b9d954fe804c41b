"""The ``cassandra`` backend of ``[cache] DATABASE``: binned rows in the design's schema.

For every resolution of a metric's storage-schemas.conf rule (``10s:7d,1m:30d`` → 10 s rows with
a 7-day TTL and 60 s rows with a 30-day TTL) the raw points are rolled up into bins (sum, count,
min, max; mean = sum / count) and each bin is one row of ``metric.metric`` written ``USING TTL``; the rows of one write of a series
go as one UNLOGGED batch (one partition per resolution).

A row always holds the aggregate of every point received for its bin. The writer keeps the
last written aggregate of recent bins in memory (at most ``recent_bins`` of them, each for
``bin_window_s`` seconds after the bin ends); a batch is merged into that and the whole
aggregate is upserted. A bin not in memory (older, evicted, or from before a restart) is read
back from Cassandra first. The memory is updated only when every row of a batch was written,
so a failed write retried later starts from the same state (no double counting); rows that a
failed batch did write are simply overwritten with the same or a larger aggregate.

The path index (``metric.path`` and ``metric.segment``, see ``cassandra_schema``) is written
when a series is created, i.e. once per series per process lifetime.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from cadent.compat.cassandra_settings import CassandraConfig, cassandra_config
from cadent.core.native import allocate_lock
from cadent.core.write.base import Points
from cadent.core.write.bins import Bin, rollup
from cadent.core.write.whisper import METADATA_KEY
from cadent.core.write.cassandra_io import BATCH_ROWS, CqlRunner, RowBatch, Statement
from cadent.core.write.cassandra_schema import (INSERT_PATH, INSERT_POINT, INSERT_SEGMENT,
                                                SELECT_RANGE, path_rows, schema_statements,
                                                segment_rows, statement)

if TYPE_CHECKING:
    from cadent.compat.cache_settings import CacheSettings
    from cadent.compat.storage_aggregation import StorageAggregation
    from cadent.compat.storage_schemas import StorageSchemas

log = logging.getLogger(__name__)

INDEX_BATCH = 10
STATS_PREFIX = "cassandra."

Resolutions = tuple[tuple[int, int], ...]     # ((seconds, ttl seconds), ...), finest first


def resolutions(archives: list[tuple[int, int]]) -> Resolutions:
    """(resolution, TTL) per retention: TTL = precision × points; one row set per distinct
    precision (the longest retention wins when two are equal)."""
    found: dict[int, int] = {}
    for precision, points in archives:
        found[precision] = max(found.get(precision, 0), precision * points)
    return tuple(sorted(found.items()))


def bin_of_row(point: Any) -> Bin:
    """A stored ``metric_point`` as a Bin (first/last are not stored)."""
    count = int(point.count or 0)
    total = float(point.sum or 0.0)
    low = float(point.min if point.min is not None else math.inf)
    high = float(point.max if point.max is not None else -math.inf)
    return Bin(total, count, low, high, math.nan, math.nan, math.inf, -math.inf)


def point_values(b: Bin) -> tuple[float, float, float, float, int]:
    """The ``metric_point`` (max, mean, min, sum, count) of a bin."""
    return (b.max, b.mean, b.min, b.sum, b.count)


class CassandraWriter:
    """Writes cached series as binned rows and index rows (see the module doc)."""

    def __init__(self, config: CassandraConfig, schemas: StorageSchemas,
                 aggregations: StorageAggregation, runner: CqlRunner | None = None,
                 clock=time.time) -> None:
        self.config = config
        self.schemas = schemas
        self.aggregations = aggregations
        self.clock = clock
        ks = config.keyspace
        self._insert_point = statement(INSERT_POINT, ks)
        self._select_range = statement(SELECT_RANGE, ks)
        self._insert_path = statement(INSERT_PATH, ks)
        self._insert_segment = statement(INSERT_SEGMENT, ks)
        self.runner = runner or CqlRunner(config, on_connect=self._on_connect)
        self._lock = allocate_lock()
        self._indexed: set[str] = set()
        self._series: dict[str, Resolutions] = {}
        # name → {(resolution, bin start): Bin}, least recently written first
        self._recent: OrderedDict[str, dict[tuple[int, int], Bin]] = OrderedDict()
        self._recent_count = 0
        self._evicted: set[str] = set()        # series that lost bins from memory
        self._dirty: set[str] = set()          # series whose last write failed: keep their bins
        self._booted = int(clock())
        self._reset_counters()
        self.runner.start()

    # -- the Writer interface -----------------------------------------------------------

    def exists(self, name: str) -> bool:
        with self._lock:
            return name in self._indexed

    def create(self, name: str) -> None:
        """Write the index rows of ``name`` (segment rows for every prefix, path rows for every
        parent → child step and the leaf's own row)."""
        stmts: list[Statement] = [(self._insert_segment, row) for row in segment_rows(name)]
        stmts += [(self._insert_path, row) for row in path_rows(name)]
        try:
            # one partition each: unlogged batches of INDEX_BATCH, under Cassandra's warning
            # threshold for batches spanning partitions
            self.runner.run([RowBatch(stmts[i:i + INDEX_BATCH])
                             for i in range(0, len(stmts), INDEX_BATCH)])
        except Exception as exc:
            self._failed(f"writing the index rows of {name}", exc)
            raise
        with self._lock:
            self._indexed.add(name)
            self._c_index_rows += len(stmts)
            self._c_creates += 1

    def write(self, name: str, points: Points) -> int:
        started = time.perf_counter()
        plan = self.resolutions_of(name)
        binned = {res: rollup(points, res) for res, _ in plan}
        if not any(binned.values()):
            return len(points)          # nothing finite to store (NaN values are skipped)
        try:
            bases = self._bases(name, binned)
            merged: dict[tuple[int, int], Bin] = {}
            rows: list[Statement] = []
            for res, ttl in plan:
                for start, fresh in binned[res].items():
                    base = bases.get((res, start))
                    total = fresh if base is None else _merged(base, fresh)
                    merged[(res, start)] = total
                    rows.append((self._insert_point, ((name, res), start, point_values(total), ttl)))
            self.runner.run(_batched(rows))
        except Exception as exc:
            self._failed(f"writing {len(points)} points of {name}", exc)
            raise
        self._remember(name, merged)
        with self._lock:
            self._c_rows += len(rows)
            self._c_points += len(points)
            self._c_writes += 1
            self._c_write_time += time.perf_counter() - started
        return len(points)

    def get_metadata(self, name: str, key: str) -> Any:
        if key != METADATA_KEY:
            raise ValueError(f"unsupported metadata key {key!r}")
        return self.aggregations.settings_for(name)[1]

    def set_metadata(self, name: str, key: str, value: Any) -> Any:
        raise ValueError("the Cassandra backend takes its aggregation method from "
                         "storage-aggregation.conf; set-metadata is not supported")

    def set_rules(self, schemas: StorageSchemas, aggregations: StorageAggregation) -> None:
        """New rules apply to series first written from now on."""
        self.schemas = schemas
        self.aggregations = aggregations

    def flush(self) -> None:
        """Every write waits for its rows: nothing is buffered."""

    def close(self) -> None:
        self.runner.close()

    # -- bins ---------------------------------------------------------------------------

    def resolutions_of(self, name: str) -> Resolutions:
        found = self._series.get(name)
        if found is None:
            found = resolutions(self.schemas.archives_for(name))
            self._series[name] = found
        return found

    def _bases(self, name: str, binned: dict[int, dict[int, Bin]]) -> dict[tuple[int, int], Bin]:
        """The aggregate already stored for every bin of this batch (absent: none stored),
        from memory, else read back (one range read per resolution)."""
        with self._lock:
            # until this batch is written its bins are not evicted (see _remember)
            self._dirty.add(name)
            known = dict(self._recent.get(name, ()))
            evicted = name in self._evicted
        bases: dict[tuple[int, int], Bin] = {}
        reads: list[tuple[int, list[int]]] = []
        for res, bins in binned.items():
            missing = []
            for start in bins:
                base = known.get((res, start))
                if base is not None:
                    if base.count:
                        bases[(res, start)] = base
                elif evicted or start < self._booted:
                    missing.append(start)
            if missing:
                reads.append((res, missing))
        if reads:
            stmts = [(self._select_range, ((name, res), min(starts), max(starts)))
                     for res, starts in reads]
            answers = self.runner.run(stmts)
            read_back: dict[tuple[int, int], Bin] = {}
            for (res, starts), rows in zip(reads, answers):
                wanted = set(starts)
                for row in rows:
                    if row.time in wanted and row.point is not None:
                        read_back[(res, row.time)] = bin_of_row(row.point)
                for start in wanted:
                    # what was stored before this batch, kept even if the write fails so a
                    # retry does not read back (and add to) rows this batch wrote
                    known_empty = read_back.get((res, start)) or Bin(0.0, 0, math.inf, -math.inf,
                                                                    math.nan, math.nan,
                                                                    math.inf, -math.inf)
                    read_back[(res, start)] = known_empty
            bases.update({key: b for key, b in read_back.items() if b.count})
            self._remember(name, read_back, touch=False)
            with self._lock:
                self._c_read_backs += len(stmts)
        return bases

    def _remember(self, name: str, bins: dict[tuple[int, int], Bin], touch: bool = True) -> None:
        """Keep ``bins`` as the stored state of ``name``; drop its bins older than the window
        and, over the memory bound, whole least recently written series."""
        horizon = self.clock() - self.config.bin_window_s
        with self._lock:
            if touch:
                self._dirty.discard(name)
            recent = self._recent.get(name)
            if recent is None:
                recent = self._recent[name] = {}
            before = len(recent)
            recent.update(bins)
            if touch:
                for key in [k for k in recent if k[1] + k[0] < horizon]:
                    del recent[key]
                    self._evicted.add(name)
            self._recent_count += len(recent) - before
            self._recent.move_to_end(name)
            limit = self.config.recent_bins
            while self._recent_count > limit and self._recent:
                victim = next(iter(self._recent))
                if victim in self._dirty:
                    self._recent.move_to_end(victim)
                    if all(n in self._dirty for n in self._recent):
                        break
                    continue
                self._recent_count -= len(self._recent.pop(victim))
                self._evicted.add(victim)

    def _on_connect(self, session: Any) -> None:
        if self.config.create_schema:
            apply_schema(session, self.config)

    # -- self-metrics -------------------------------------------------------------------

    def _failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            self._c_errors += 1
        self.runner.note_error("Cassandra: %s failed: %s; the points stay in the cache and are "
                               "written again", what, exc)

    def _reset_counters(self) -> None:
        self._c_rows = 0
        self._c_points = 0
        self._c_writes = 0
        self._c_index_rows = 0
        self._c_creates = 0
        self._c_read_backs = 0
        self._c_errors = 0
        self._c_write_time = 0.0

    def collect_stats(self) -> dict[str, float]:
        """``cassandra.*`` self-metrics since the previous call (gauges: current values)."""
        latency, inflight = self.runner.take_latency()
        with self._lock:
            stats: dict[str, float] = {
                "rowsWritten": self._c_rows,
                "pointsWritten": self._c_points,
                "indexRowsWritten": self._c_index_rows,
                "seriesIndexed": self._c_creates,
                "readBacks": self._c_read_backs,
                "errors": self._c_errors,
                "inflight": inflight,
                "recentBins": self._recent_count,
                "connected": 1 if self.runner.connected else 0,
            }
            if self._c_writes:
                stats["avgWriteTime"] = self._c_write_time / self._c_writes
            if latency is not None:
                stats["avgStatementLatency"] = latency
            self._reset_counters()
        return {STATS_PREFIX + key: value for key, value in stats.items()}


def _batched(rows: list[Statement]) -> list:
    """The rows of one series write: a lone statement, or unlogged batches of BATCH_ROWS (they
    span one partition per resolution, well under Cassandra's warning threshold of 10)."""
    if len(rows) == 1:
        return rows
    return [RowBatch(rows[i:i + BATCH_ROWS]) for i in range(0, len(rows), BATCH_ROWS)]


def _merged(base: Bin, fresh: Bin) -> Bin:
    total = base.copy()
    total.merge(fresh)
    return total


def apply_schema(session: Any, config: CassandraConfig) -> None:
    """Create the keyspace, types and tables (IF NOT EXISTS) through ``session``."""
    for stmt in schema_statements(config.keyspace, config.replication_factor, config.local_dc):
        session.execute(stmt, timeout=max(config.request_timeout_s, 30.0))
    log.info("Cassandra schema applied in keyspace %s", config.keyspace)


def create_schema_command(args: Any, load_settings) -> int:
    """``cadent-cache --config F --create-schema``: apply the schema with the CASSANDRA_*
    settings of F, print what happened, return the exit status (0 applied, 1 not)."""
    import sys

    from cadent.compat.errors import ConfigError
    from cadent.core.write.cassandra_io import build_cluster, limit_driver_logs

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        config = cassandra_config(load_settings(args).conf)
    except (ConfigError, OSError) as exc:
        print(f"cadent-cache: configuration error: {exc}", file=sys.stderr)
        return 1
    limit_driver_logs()
    cluster = build_cluster(config)
    try:
        apply_schema(cluster.connect(), config)
    except Exception as exc:
        print(f"cadent-cache: cannot create the schema at {config.contact_points}: {exc}",
              file=sys.stderr)
        return 1
    finally:
        cluster.shutdown()
    print(f"cadent-cache: schema applied in keyspace {config.keyspace} at {config.contact_points}")
    return 0


def writer_from_settings(settings: CacheSettings) -> CassandraWriter:
    """The ``cassandra`` backend of ``[cache] DATABASE``, from the CASSANDRA_* settings."""
    return CassandraWriter(cassandra_config(settings.conf), settings.schemas, settings.aggregations)


__all__ = ["CassandraWriter", "apply_schema", "bin_of_row", "create_schema_command", "point_values",
           "resolutions", "writer_from_settings"]
