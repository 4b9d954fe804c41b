"""cadent-cache: a carbon-cache drop-in.

cache = receive → filter → normalise → cache → writer thread (whisper)  + CarbonLink

The receivers feed the in-memory :class:`MetricCache` on the gevent loop; a :class:`Drainer` in
a real OS thread writes it to whisper files; CarbonLink answers graphite-web from the cache.
Self-metrics (``carbon.agents.<host>-<instance>.*``) are stored into the cache itself, so they
end up in whisper files like any other series.
"""

from __future__ import annotations

import argparse
import logging
import os
import time


from cadent.compat.cache_settings import CacheSettings, load_cache_settings, load_storage_rules
from cadent.compat.graphite_tags import RegisteringWriter, TagRegistrar
from cadent.core.cache import MetricCache
from cadent.core.filewatch import FileWatcher
from cadent.core.flow import FlowControl
from cadent.core.net.carbonlink_server import CarbonLinkServer
from cadent.core.net.inputs import Inputs
from cadent.core.point import Batch
from cadent.core.stats import ProcessGauges, SelfMetricsReporter, Stats
from cadent.core.write.base import MultiWriter, Writer
from cadent.core.write.drain import Drainer
from cadent.core.write.factory import build_writers
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
    """Receivers → MetricCache → Drainer(WhisperWriter), plus CarbonLink and self-metrics."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.flow = FlowControl()
        self.stats = Stats()
        ProcessGauges().install(self.stats)
        cc = settings.cache
        self.cache = MetricCache(max_points=cc.max_points, strategy=cc.strategy,
                                 min_timestamp_lag=cc.min_timestamp_lag, flow=self.flow)
        self.writers = build_writers(settings)
        # the primary (first listed) answers CarbonLink's metadata and takes rule reloads
        self.writer: Writer = self.writers[0][1]
        store: Writer = (self.writer if len(self.writers) == 1
                         else MultiWriter([writer for _, writer in self.writers]))
        # the drainer's writer also registers series with graphite-web under ENABLE_TAGS
        self.tags = None
        drain_writer: Writer = store
        if settings.tags is not None:
            tc = settings.tags
            self.tags = TagRegistrar(tc.graphite_url, batch_size=tc.batch_size,
                                     update_interval=tc.update_interval,
                                     queue_size=tc.queue_size)
            drain_writer = RegisteringWriter(store, self.tags)
        self.drainer = Drainer(self.cache, drain_writer,
                               max_updates_per_second=cc.max_updates_per_second,
                               max_creates_per_minute=cc.max_creates_per_minute,
                               threads=cc.writer_threads, log_updates=cc.log_updates)
        self.metric_filter = settings.metric_filter
        self.inputs = Inputs(settings.receivers, self.ingest, flow=self.flow, stats=self.stats)
        self.carbonlink = None
        if settings.carbonlink is not None:
            self.carbonlink = CarbonLinkServer(settings.carbonlink, self.cache, self.writer,
                                               log_hits=cc.log_cache_hits)
        sm = settings.self_metrics
        handler = self.carbonlink.handler if self.carbonlink is not None else None
        self.reporter = SelfMetricsReporter(
            _CacheStats(self.stats, self.cache, self.drainer, handler, self.tags),  # type: ignore[arg-type]
            self.cache.store_batch, prefix=sm.prefix, kind="agents", instance=sm.instance,
            interval_s=sm.interval_s)
        self.watcher = FileWatcher((settings.schemas_path, settings.aggregation_path), self.reload,
                                   RULES_CHECK_INTERVAL_S)

    # -- data path ----------------------------------------------------------------------

    def ingest(self, batch: Batch, droppable: bool = False) -> None:
        """Entry point for every received batch."""
        if self.metric_filter is not None:
            batch = self.metric_filter.apply(batch, self.stats)
            if not batch:
                return
        if droppable and self.cache.is_full:
            # UDP cannot be paused: while the cache is over MAX_CACHE_SIZE its points go.
            self.stats.incr("fullCacheDrops", len(batch))
            return
        self.cache.store_batch(batch)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        os.makedirs(self.settings.whisper.data_dir, exist_ok=True)
        self.drainer.start()
        if self.carbonlink is not None:
            self.carbonlink.start()
        self.inputs.start()
        self.reporter.start()
        if self.tags is not None:
            self.tags.start()
        self.watcher.start()
        cc = self.settings.cache
        log.info("cache started: data in %s, strategy %s, max %s points, %s updates/s, "
                 "%s creates/min", self.settings.whisper.data_dir, cc.strategy, cc.max_points,
                 cc.max_updates_per_second, cc.max_creates_per_minute)

    def stop(self) -> bool:
        """Stop receiving, write the whole cache (within SHUTDOWN_DRAIN_SECONDS), then close."""
        self.inputs.stop()
        self.watcher.stop()
        self.reporter.stop()
        limit = self.settings.drain_seconds
        points, metrics = self.cache.size, self.cache.queues
        log.info("writing %d cached points of %d metrics to disk (at most %.0f s)",
                 points, metrics, limit)
        started = time.monotonic()
        clean = self.drainer.stop(limit)
        elapsed = time.monotonic() - started
        if clean:
            log.info("cache written to disk in %.2f s", elapsed)
        else:
            log.error("SHUTDOWN_DRAIN_SECONDS (%.0f s) passed: %d points of %d metrics are "
                      "lost", limit, self.cache.size, self.cache.queues)
        if self.carbonlink is not None:
            self.carbonlink.stop()
        if self.tags is not None:
            self.tags.stop()
        for _, writer in self.writers:
            writer.close()
        return clean

    def reload(self) -> None:
        """Re-read storage-schemas.conf and storage-aggregation.conf (for files created from
        now on); SIGHUP, or a change to either file (checked every 60 s as carbon does). A bad
        file raises ConfigError and the rules in force are kept."""
        self.watcher.rearm()
        _, _, schemas, aggregations = load_storage_rules(self.settings.conf.CONF_DIR)
        for _, writer in self.writers:
            writer.set_rules(schemas, aggregations)
        log.info("storage schemas (%d) and aggregation rules (%d) reloaded",
                 len(schemas.schemas), len(aggregations.rules))


def _load(args: argparse.Namespace) -> CacheSettings:
    return load_cache_settings(args.config, args.instance, path_overrides(args))


def _describe(settings: CacheSettings) -> str:
    return (f"({len(settings.schemas.schemas)} storage schemas, "
            f"{len(settings.aggregations.rules)} aggregation rules, "
            f"data in {settings.whisper.data_dir})")


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()
    from cadent.daemons.cli import Role, main_for

    role = Role(name="cache", load_settings=_load, build_service=CacheService,
                describe=_describe)
    return main_for(role, argv)


if __name__ == "__main__":
    from cadent.daemons.launch import cache as launch_cache

    raise SystemExit(launch_cache())
