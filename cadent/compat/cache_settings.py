"""carbon.conf ``[cache]`` (plus storage-schemas.conf / storage-aggregation.conf) → typed settings.

The cache's pieces never see carbon's setting names: this module reads them once and hands
over a :class:`CacheSettings`. Receivers, the white/blacklist and the self-metrics use the
same readers as the relay.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from cadent.compat.carbon_conf import CarbonSettings, read_carbon_conf
from cadent.compat.daemon_settings import (DaemonPaths, SelfMetricsConfig, metric_filter,
                                           real_number, receiver_config, self_metrics_config,
                                           whole_number)
from cadent.compat.graphite_tags import tag_endpoint
from cadent.compat.lists import MetricFilter
from cadent.compat.storage_aggregation import StorageAggregation, load_storage_aggregation
from cadent.compat.storage_schemas import StorageSchemas, load_storage_schemas
from cadent.core.cache import STRATEGIES
from cadent.core.net.inputs import ReceiverConfig

SCHEMAS_FILE = "storage-schemas.conf"
AGGREGATION_FILE = "storage-aggregation.conf"


@dataclass(frozen=True)
class WhisperConfig:
    """Where and how whisper files are written (carbon's WHISPER_* and TAG_HASH_FILENAMES)."""

    data_dir: str
    autoflush: bool
    sparse: bool
    fallocate: bool
    lock_writes: bool
    fadvise_random: bool
    tag_hash_filenames: bool


@dataclass(frozen=True)
class TagsConfig:
    """ENABLE_TAGS: where and how series are registered with graphite-web's tag database."""

    graphite_url: str                 # GRAPHITE_URL
    update_interval: int              # TAG_UPDATE_INTERVAL
    batch_size: int                   # TAG_BATCH_SIZE
    queue_size: int                   # TAG_QUEUE_SIZE


@dataclass(frozen=True)
class CacheConfig:
    """The in-memory cache and the writer loop's limits."""

    max_points: float                 # MAX_CACHE_SIZE (inf: unbounded)
    strategy: str                     # CACHE_WRITE_STRATEGY
    min_timestamp_lag: int            # MIN_TIMESTAMP_LAG
    max_updates_per_second: float     # inf: no limit
    max_creates_per_minute: float     # inf: no limit
    writer_threads: int = 1           # WRITER_THREADS
    log_creates: bool = False         # LOG_CREATES: creates.log
    log_updates: bool = False         # LOG_UPDATES: updates.log
    log_cache_hits: bool = False      # LOG_CACHE_HITS: query.log


@dataclass(frozen=True)
class CacheSettings(DaemonPaths):
    conf: CarbonSettings
    receivers: ReceiverConfig
    metric_filter: MetricFilter | None
    self_metrics: SelfMetricsConfig
    cache: CacheConfig
    whisper: WhisperConfig
    schemas_path: str
    aggregation_path: str
    schemas: StorageSchemas
    aggregations: StorageAggregation
    carbonlink: tuple[str, int] | None   # None: CACHE_QUERY_PORT = 0
    drain_seconds: float
    tags: TagsConfig | None = None       # None: ENABLE_TAGS off
    databases: tuple[str, ...] = ("whisper",)   # DATABASE; the first is the primary

def _limit(conf: CarbonSettings, name: str) -> float:
    """Limit ``name`` (a size or a rate): None/inf/0 or less → no limit (math.inf)."""
    if conf[name] is None:
        return math.inf
    number = real_number(conf, name, -math.inf, infinite=True)
    return math.inf if number <= 0 else number


def cache_config(conf: CarbonSettings) -> CacheConfig:
    strategy = str(conf.CACHE_WRITE_STRATEGY).strip().lower()
    if strategy not in STRATEGIES:
        raise conf.error("CACHE_WRITE_STRATEGY",
                         f"must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    return CacheConfig(
        max_points=_limit(conf, "MAX_CACHE_SIZE"),
        strategy=strategy,
        min_timestamp_lag=int(conf.MIN_TIMESTAMP_LAG or 0),
        max_updates_per_second=_limit(conf, "MAX_UPDATES_PER_SECOND"),
        max_creates_per_minute=_limit(conf, "MAX_CREATES_PER_MINUTE"),
        writer_threads=whole_number(conf, "WRITER_THREADS", 1),
        log_creates=bool(conf.LOG_CREATES),
        log_updates=bool(conf.LOG_UPDATES),
        log_cache_hits=bool(conf.LOG_CACHE_HITS),
    )


def databases(conf: CarbonSettings) -> tuple[str, ...]:
    """DATABASE as a tuple of backend names, the primary first (``whisper, cassandra``)."""
    from cadent.core.write.factory import BACKENDS

    names = [item.strip().lower() for item in str(conf.DATABASE or "whisper").split(",")]
    names = [name for name in names if name]
    if not names:
        raise conf.error("DATABASE", "names no backend")
    for name in names:
        if name not in BACKENDS:
            raise conf.error("DATABASE", f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
    if len(set(names)) != len(names):
        raise conf.error("DATABASE", "names a backend twice")
    return tuple(names)


def whisper_config(conf: CarbonSettings) -> WhisperConfig:
    return WhisperConfig(
        data_dir=conf.LOCAL_DATA_DIR,
        autoflush=bool(conf.WHISPER_AUTOFLUSH),
        sparse=bool(conf.WHISPER_SPARSE_CREATE),
        fallocate=bool(conf.WHISPER_FALLOCATE_CREATE),
        lock_writes=bool(conf.WHISPER_LOCK_WRITES),
        fadvise_random=bool(conf.WHISPER_FADVISE_RANDOM),
        tag_hash_filenames=bool(conf.TAG_HASH_FILENAMES),
    )


def tags_config(conf: CarbonSettings) -> TagsConfig | None:
    """None unless ENABLE_TAGS; a GRAPHITE_URL that is not an http(s) URL fails startup."""
    if not conf.ENABLE_TAGS:
        return None
    url = str(conf.GRAPHITE_URL or "").strip()
    try:
        tag_endpoint(url)
    except ValueError as exc:
        raise conf.error("GRAPHITE_URL", str(exc)) from None
    return TagsConfig(graphite_url=url, update_interval=whole_number(conf, "TAG_UPDATE_INTERVAL", 1),
                      batch_size=whole_number(conf, "TAG_BATCH_SIZE", 1),
                      queue_size=whole_number(conf, "TAG_QUEUE_SIZE", 0))


def load_storage_rules(conf_dir: str) -> tuple[str, str, StorageSchemas, StorageAggregation]:
    """(schemas path, aggregation path, schemas, aggregations) from ``conf_dir``.

    A missing storage-schemas.conf or a bad entry in either file raises ConfigError with the
    file and line, as carbon refuses to start; a missing storage-aggregation.conf means the
    defaults (xFilesFactor 0.5, average).
    """
    schemas_path = os.path.join(conf_dir, SCHEMAS_FILE)
    aggregation_path = os.path.join(conf_dir, AGGREGATION_FILE)
    return (schemas_path, aggregation_path, load_storage_schemas(schemas_path),
            load_storage_aggregation(aggregation_path))


def load_cache_settings(path: str | None, instance: str | None = None,
                        overrides: dict | None = None) -> CacheSettings:
    """Read carbon.conf's ``[cache]`` (+ ``[cache:instance]``) and the storage rule files.

    ``overrides`` are the command line's paths (``pidfile``, ``logdir``).
    """
    conf = read_carbon_conf(path, "cache", instance, overrides)
    schemas_path, aggregation_path, schemas, aggregations = load_storage_rules(conf.CONF_DIR)
    port = int(conf.CACHE_QUERY_PORT or 0)
    return CacheSettings(
        conf=conf,
        receivers=receiver_config(conf, reuse_port=False),
        metric_filter=metric_filter(conf),
        self_metrics=self_metrics_config(conf),
        cache=cache_config(conf),
        whisper=whisper_config(conf),
        schemas_path=schemas_path,
        aggregation_path=aggregation_path,
        schemas=schemas,
        aggregations=aggregations,
        carbonlink=(conf.CACHE_QUERY_INTERFACE, port) if port else None,
        drain_seconds=float(conf.SHUTDOWN_DRAIN_SECONDS),
        tags=tags_config(conf),
        databases=databases(conf),
    )


__all__ = ["CacheConfig", "CacheSettings", "TagsConfig", "WhisperConfig", "cache_config",
           "databases", "load_cache_settings", "load_storage_rules", "tags_config", "whisper_config"]
