"""cadent-cache: a carbon-cache drop-in.

cache = receive → filter → normalise → cache → writer thread (whisper)  + CarbonLink

The receivers feed the in-memory :class:`MetricCache` on the gevent loop; a :class:`Drainer` in
a real OS thread writes it to whisper files; CarbonLink answers graphite-web from the cache.
With several writers (``DATABASE = whisper, kafka``) each has its own cache and drainer, a
lane (:mod:`cadent.core.write.lanes`); CarbonLink answers from the primary's.
Self-metrics (``carbon.agents.<host>-<instance>.*``) are stored into the cache itself, so they
end up in whisper files like any other series. With ENABLE_WAL every received batch goes
through the write-ahead log (:mod:`cadent.core.wal`) on its way into the lanes, and the log is
replayed at start before any listener serves.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time


from cadent.compat.cache_settings import CacheSettings, load_cache_settings, load_storage_rules
from cadent.compat.graphite_tags import RegisteringWriter, TagRegistrar
from cadent.compat.kafka_settings import kafka_input_config, writer_stall_seconds
from cadent.compat.wal_settings import wal_config
from cadent.core.filewatch import FileWatcher
from cadent.core.flow import FlowControl
from cadent.core.net.carbonlink_server import CarbonLinkServer
from cadent.core.net.inputs import Inputs
from cadent.core.net.kafka_input import KafkaInput
from cadent.core.point import Batch
from cadent.core.stats import ProcessGauges, SelfMetricsReporter, Stats
from cadent.core.wal import WriteAheadLog
from cadent.core.write.base import Writer
from cadent.core.write.factory import build_writers
from cadent.core.write.lanes import Lanes
from cadent.daemons.cli import path_overrides

log = logging.getLogger(__name__)

RULES_CHECK_INTERVAL_S = 60.0


class _CacheStats:
    """The counters of the receivers plus those the cache, writer and CarbonLink collect."""

    def __init__(self, stats: Stats, *sources) -> None:
        self.stats = stats
        self.sources = [source for source in sources if source is not None]

    def snapshot(self, reset: bool = True) -> dict[str, float]:
        values = self.stats.snapshot(reset)
        for source in self.sources:
            values.update(source.collect_stats())
        return values


class CacheService:
    """Receivers → a lane per writer (MetricCache → Drainer(writer)), plus CarbonLink and
    self-metrics."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.flow = FlowControl()
        self.stats = Stats()
        ProcessGauges().install(self.stats)
        cc = settings.cache
        self.writers = build_writers(settings)
        # the primary (first listed) answers CarbonLink
        self.writer: Writer = self.writers[0][1]
        self.tags = None
        if settings.tags is not None:
            tc = settings.tags
            self.tags = TagRegistrar(tc.graphite_url, batch_size=tc.batch_size,
                                     update_interval=tc.update_interval,
                                     queue_size=tc.queue_size)
        self.lanes = Lanes.build(
            self.writers, self.flow,
            cache_args=dict(max_points=cc.max_points, strategy=cc.strategy,
                            min_timestamp_lag=cc.min_timestamp_lag),
            drainer_args=self._drainer_args, stall_s=writer_stall_seconds(settings.conf))
        self.cache = self.lanes.primary.cache
        self.drainer = self.lanes.primary.drainer
        self._store = self.lanes.store_batch   # one writer: straight into its cache
        self.metric_filter = settings.metric_filter
        # the write-ahead log: every received batch is logged, then stored in every lane
        self.wal = None
        wal = wal_config(settings.conf)
        if wal is not None:
            self.wal = WriteAheadLog(wal, barrier=self.lanes.barrier,
                                     unwritten=self.lanes.unwritten)
        self.inputs = Inputs(settings.receivers, self.ingest, flow=self.flow, stats=self.stats)
        self.kafka_input = None
        kafka_in = kafka_input_config(settings.conf, "cache")
        if kafka_in is not None:
            # its offsets are saved once every writer has written what was read before them
            self.kafka_input = KafkaInput(
                kafka_in, self.ingest, flow=self.flow, stats=self.stats,
                barrier=self.lanes.barrier, unwritten=self.lanes.unwritten)
        self.carbonlink = None
        if settings.carbonlink is not None:
            self.carbonlink = CarbonLinkServer(settings.carbonlink, self.cache, self.writer,
                                               log_hits=cc.log_cache_hits)
        sm = settings.self_metrics
        handler = self.carbonlink.handler if self.carbonlink is not None else None
        self.reporter = SelfMetricsReporter(
            _CacheStats(self.stats, self.lanes, handler, self.tags,  # type: ignore[arg-type]
                        self.wal),
            self._store, prefix=sm.prefix, kind="agents", instance=sm.instance,
            interval_s=sm.interval_s)
        self.watcher = FileWatcher((settings.schemas_path, settings.aggregation_path), self.reload,
                                   RULES_CHECK_INTERVAL_S)
        from cadent.daemons.cache_http import cache_ops

        self.ops, self.ops_server = cache_ops(self)   # its socket is bound here, before USER

    def _drainer_args(self, name: str, writer: Writer) -> dict:
        """The Drainer options of ``writer``'s lane: carbon's rate limits and WRITER_THREADS,
        unless the writer brings its own (``drain_options``: network writers need no disk
        budget); under ENABLE_TAGS the whisper writer's drainer registers the series with
        graphite-web, which reads them from those files."""
        cc = self.settings.cache
        args: dict = dict(max_updates_per_second=cc.max_updates_per_second,
                          max_creates_per_minute=cc.max_creates_per_minute,
                          threads=cc.writer_threads, log_updates=cc.log_updates)
        own = getattr(writer, "drain_options", None)
        if own:
            args.update(max_updates_per_second=math.inf, max_creates_per_minute=math.inf)
            args.update(own)
        if self.tags is not None and name == "whisper":
            args["writer"] = RegisteringWriter(writer, self.tags)
        return args

    # -- data path ----------------------------------------------------------------------

    def ingest(self, batch: Batch, droppable: bool = False) -> None:
        """Entry point for every received batch."""
        if self.metric_filter is not None:
            batch = self.metric_filter.apply(batch, self.stats)
            if not batch:
                return
        if droppable and self.lanes.is_full:
            # UDP cannot be paused: while the cache is over MAX_CACHE_SIZE its points go.
            self.stats.incr("fullCacheDrops", len(batch))
            return
        if self.wal is not None:
            self.wal.store(batch, self._store)
        else:
            self._store(batch)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        os.makedirs(self.settings.whisper.data_dir, exist_ok=True)
        self.lanes.start()
        if self.wal is not None:
            # the previous run's log goes into the caches before any listener serves
            self.wal.replay(self._store)
            self.wal.start()
        if self.carbonlink is not None:
            self.carbonlink.start()
        self.inputs.start()
        if self.kafka_input is not None:
            self.kafka_input.start()
        self.reporter.start()
        if self.tags is not None:
            self.tags.start()
        self.watcher.start()
        if self.ops_server is not None:
            self.ops_server.start()
        cc = self.settings.cache
        log.info("cache started: data in %s, strategy %s, max %s points, %s updates/s, "
                 "%s creates/min", self.settings.whisper.data_dir, cc.strategy, cc.max_points,
                 cc.max_updates_per_second, cc.max_creates_per_minute)

    def stop(self) -> bool:
        """Stop receiving, write the whole cache (within SHUTDOWN_DRAIN_SECONDS), then close."""
        self.ops.stopping = True
        self.inputs.stop()
        if self.kafka_input is not None:
            self.kafka_input.stop()
        self.watcher.stop()
        self.reporter.stop()
        limit = self.settings.drain_seconds
        points, metrics = self.lanes.size, self.cache.queues
        log.info("writing %d cached points of %d metrics to disk (at most %.0f s)",
                 points, metrics, limit)
        started = time.monotonic()
        clean = self.lanes.stop(limit)
        if self.wal is not None:
            self.wal.close(written=clean)   # all written: nothing left to replay
        elapsed = time.monotonic() - started
        if clean:
            log.info("cache written to disk in %.2f s", elapsed)
        else:
            log.error("SHUTDOWN_DRAIN_SECONDS (%.0f s) passed: %d points of %d metrics are "
                      "lost", limit, self.lanes.size, self.cache.queues)
        if self.kafka_input is not None:
            self.kafka_input.save_safe()   # what the writers finished is not read again
        if self.carbonlink is not None:
            self.carbonlink.stop()
        if self.tags is not None:
            self.tags.stop()
        for _, writer in self.writers:
            writer.close()
        if self.ops_server is not None:
            self.ops_server.stop()
        return clean

    def reload(self) -> None:
        """Re-read storage-schemas.conf and storage-aggregation.conf (for files created from
        now on); SIGHUP, or a change to either file (checked every 60 s as carbon does). A bad
        file raises ConfigError and the rules in force are kept. The file writer reopens its
        files too."""
        self.watcher.rearm()
        for _, writer in self.writers:
            reopen = getattr(writer, "reopen", None)
            if reopen is not None:   # the file writer, after logrotate
                reopen()
        _, _, schemas, aggregations = load_storage_rules(self.settings.conf.CONF_DIR)
        for _, writer in self.writers:
            writer.set_rules(schemas, aggregations)
        log.info("storage schemas (%d) and aggregation rules (%d) reloaded",
                 len(schemas.schemas), len(aggregations.rules))


def _load(args: argparse.Namespace) -> CacheSettings:
    settings = load_cache_settings(args.config, args.instance, path_overrides(args))
    if "cassandra" in settings.databases:
        from cadent.compat.cassandra_settings import cassandra_config

        cassandra_config(settings.conf)   # a bad CASSANDRA_* value stops here, with file:line
    return settings


def _describe(settings: CacheSettings) -> str:
    return (f"({len(settings.schemas.schemas)} storage schemas, "
            f"{len(settings.aggregations.rules)} aggregation rules, "
            f"data in {settings.whisper.data_dir})")


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()
    from cadent.daemons.cli import Role, main_for, parse_args

    args = list(sys.argv[1:] if argv is None else argv)
    if "--create-schema" in args:
        # apply the Cassandra schema (CASSANDRA_* settings) and exit 0/1
        from cadent.core.write.cassandra import create_schema_command

        args.remove("--create-schema")
        return create_schema_command(parse_args("cache", args), _load)
    role = Role(name="cache", load_settings=_load, build_service=CacheService,
                describe=_describe)
    return main_for(role, args)


if __name__ == "__main__":
    from cadent.daemons.launch import cache as launch_cache

    raise SystemExit(launch_cache())
