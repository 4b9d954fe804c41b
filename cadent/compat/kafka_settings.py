"""carbon.conf keys of the writers beside whisper and of the Kafka input → typed settings.

Declares ``KAFKA_*`` (the Kafka writer of ``DATABASE = kafka`` and the Kafka input of
cadent-cache and cadent-relay), ``FILE_WRITER_*`` (the ``file`` writer) and
``WRITER_STALL_SECONDS`` (how long one lagging writer may hold the others back), and parses
them into frozen dataclasses; a bad value is a ConfigError at its file line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cadent.compat.carbon_conf import CarbonSettings
from cadent.compat.daemon_settings import real_number, whole_number
from cadent.compat.settings import AGGREGATOR_CACHE, CACHE, RELAY, Setting, register

_W = (CACHE, AGGREGATOR_CACHE)
_IN = (CACHE, RELAY)

COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
ACKS = ("all", "1", "0")
INPUT_FORMATS = ("plaintext", "pickle", "cadent-json")
MIB = 1024 * 1024

register(*(Setting(name, default, kind, doc, roles) for name, default, kind, roles, doc in [
    ("KAFKA_BROKERS", [], "list", _W, "Kafka writer: bootstrap brokers, host:port, ..."),
    ("KAFKA_METRIC_TOPIC", "cadent", "str", _W, "Kafka writer: topic of the metric messages"),
    ("KAFKA_INDEX_TOPIC", "cadent", "str", _W, "Kafka writer: topic of the index messages"),
    ("KAFKA_WRITE_INDEX", True, "bool", _W, "Kafka writer: send an index message per new series"),
    ("KAFKA_COMPRESSION", "none", "str", _W,
     "Kafka writer: none, gzip, snappy, lz4 or zstd (the ones the installed libraries support)"),
    ("KAFKA_ACKS", "all", "str", _W,
     "Kafka writer: all (every in-sync replica), 1 (the leader) or 0 (no acknowledgement)"),
    ("KAFKA_MAX_INFLIGHT", 5, "int", _W,
     "Kafka writer: unacknowledged requests per broker connection"),
    ("KAFKA_BATCH_BYTES", 262144, "int", _W, "Kafka writer: producer batch size per partition"),
    ("KAFKA_LINGER_MS", 5, "int", _W, "Kafka writer: milliseconds a batch waits to fill"),
    ("KAFKA_KEY_BY_METRIC", True, "bool", _W,
     "Kafka writer: the metric name is the message key (one series, one partition, in order)"),
    ("KAFKA_TIMEOUT_SECONDS", 10.0, "float", _W,
     "Kafka writer: seconds a write waits for its acknowledgements before it is retried"),
    ("KAFKA_WRITE_BATCH", 500, "int", _W, "Kafka writer: series handed to the producer at once"),
    ("KAFKA_WRITER_THREADS", 2, "int", _W, "Kafka writer: threads draining its cache"),
    ("KAFKA_INPUT_BROKERS", [], "list", _IN, "Kafka input: brokers to read from (empty: off)"),
    ("KAFKA_INPUT_TOPIC", "cadent", "str", _IN, "Kafka input: topic"),
    ("KAFKA_INPUT_PARTITIONS", ["0"], "list", _IN,
     "Kafka input: partitions read (explicit list; no consumer group)"),
    ("KAFKA_INPUT_FORMAT", "plaintext", "str", _IN,
     "Kafka input: plaintext (graphite lines), pickle, or cadent-json (metric messages)"),
    ("KAFKA_INPUT_STATE_FILE", "", "str", _IN,
     "Kafka input: file of the next offset per partition; default STORAGE_DIR/kafka-input-"
     "<role>.offsets"),
    ("FILE_WRITER_PATH", "", "str", _W,
     "file writer: base path; one file <path>_<seconds>s per resolution; default "
     "STORAGE_DIR/points"),
    ("FILE_WRITER_MAX_BYTES", 100 * MIB, "int", _W, "file writer: rotate a file at this size"),
    ("WRITER_STALL_SECONDS", 30.0, "float", _W,
     "several writers: seconds one writer at MAX_CACHE_SIZE may pause the receivers before "
     "points for it alone are dropped (0: never drop, always push back)"),
]))


@dataclass(frozen=True)
class KafkaWriterConfig:
    """The Kafka writer's producer and message settings."""

    brokers: tuple[str, ...]
    metric_topic: str
    index_topic: str
    write_index: bool
    compression: str | None          # None: uncompressed
    acks: str | int                  # "all", 1 or 0 (kafka-python's spelling)
    max_inflight: int
    batch_bytes: int
    linger_ms: int
    key_by_metric: bool
    timeout_s: float
    write_batch: int
    threads: int


@dataclass(frozen=True)
class KafkaInputConfig:
    """Where the Kafka input reads, what it reads, and where it keeps its offsets."""

    brokers: tuple[str, ...]
    topic: str
    partitions: tuple[int, ...]
    format: str
    state_file: str


@dataclass(frozen=True)
class FileWriterConfig:
    """The ``file`` writer: base path and rotation size."""

    path: str
    max_bytes: int


def _brokers(conf: CarbonSettings, key: str) -> tuple[str, ...]:
    brokers = tuple(item for item in conf[key] if item)   # a "list" setting: items stripped
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise conf.error(key, f"expected host:port, not {broker!r}")
    return brokers


def _compression(conf: CarbonSettings) -> str | None:
    name = str(conf.KAFKA_COMPRESSION or "none").strip().lower()
    if name not in COMPRESSIONS:
        raise conf.error("KAFKA_COMPRESSION", f"must be one of {', '.join(COMPRESSIONS)}, "
                                              f"not {name!r}")
    if name == "none":
        return None
    from kafka import codec

    if not getattr(codec, f"has_{name}")():
        raise conf.error("KAFKA_COMPRESSION", f"{name} needs a library that is not installed "
                                              f"(python-{name}); use another or none")
    return name


def kafka_writer_config(conf: CarbonSettings) -> KafkaWriterConfig:
    """KAFKA_* of the writer; ConfigError at the key's line for a bad value."""
    brokers = _brokers(conf, "KAFKA_BROKERS")
    if not brokers:
        raise conf.error("KAFKA_BROKERS", "DATABASE lists kafka but KAFKA_BROKERS is empty")
    acks = str(conf.KAFKA_ACKS).strip().lower()
    if acks not in ACKS:
        raise conf.error("KAFKA_ACKS", f"must be one of {', '.join(ACKS)}, not {acks!r}")
    for key in ("KAFKA_METRIC_TOPIC", "KAFKA_INDEX_TOPIC"):
        if not str(conf[key] or "").strip():
            raise conf.error(key, "must name a topic")
    return KafkaWriterConfig(
        brokers=brokers,
        metric_topic=str(conf.KAFKA_METRIC_TOPIC).strip(),
        index_topic=str(conf.KAFKA_INDEX_TOPIC).strip(),
        write_index=bool(conf.KAFKA_WRITE_INDEX),
        compression=_compression(conf),
        acks="all" if acks == "all" else int(acks),
        max_inflight=whole_number(conf, "KAFKA_MAX_INFLIGHT", 1),
        batch_bytes=whole_number(conf, "KAFKA_BATCH_BYTES", 1024),
        linger_ms=whole_number(conf, "KAFKA_LINGER_MS", 0),
        key_by_metric=bool(conf.KAFKA_KEY_BY_METRIC),
        timeout_s=real_number(conf, "KAFKA_TIMEOUT_SECONDS", 0.1),
        write_batch=whole_number(conf, "KAFKA_WRITE_BATCH", 1),
        threads=whole_number(conf, "KAFKA_WRITER_THREADS", 1),
    )


def kafka_input_config(conf: CarbonSettings, role: str) -> KafkaInputConfig | None:
    """KAFKA_INPUT_* (None when KAFKA_INPUT_BROKERS is empty)."""
    brokers = _brokers(conf, "KAFKA_INPUT_BROKERS")
    if not brokers:
        return None
    raw = conf.KAFKA_INPUT_PARTITIONS
    try:
        partitions = tuple(sorted({int(item) for item in raw if item}))
    except ValueError:
        raise conf.error("KAFKA_INPUT_PARTITIONS", f"expected partition numbers, not {raw!r}") \
            from None
    if not partitions or partitions[0] < 0:
        raise conf.error("KAFKA_INPUT_PARTITIONS", f"expected partition numbers, not {raw!r}")
    fmt = str(conf.KAFKA_INPUT_FORMAT).strip().lower()
    if fmt not in INPUT_FORMATS:
        raise conf.error("KAFKA_INPUT_FORMAT", f"must be one of {', '.join(INPUT_FORMATS)}, "
                                               f"not {fmt!r}")
    topic = str(conf.KAFKA_INPUT_TOPIC or "").strip()
    if not topic:
        raise conf.error("KAFKA_INPUT_TOPIC", "must name a topic")
    state = str(conf.KAFKA_INPUT_STATE_FILE or "").strip() or os.path.join(
        conf.STORAGE_DIR, f"kafka-input-{role}" +
        (f"-{conf.instance}" if conf.instance else "") + ".offsets")
    return KafkaInputConfig(brokers, topic, partitions, fmt, state)


def file_writer_config(conf: CarbonSettings) -> FileWriterConfig:
    """FILE_WRITER_PATH / FILE_WRITER_MAX_BYTES."""
    path = str(conf.FILE_WRITER_PATH or "").strip() or os.path.join(conf.STORAGE_DIR, "points")
    return FileWriterConfig(path=path,
                            max_bytes=whole_number(conf, "FILE_WRITER_MAX_BYTES", 1024))


def writer_stall_seconds(conf: CarbonSettings) -> float:
    """WRITER_STALL_SECONDS (0: a lagging writer always pushes back, never drops)."""
    return real_number(conf, "WRITER_STALL_SECONDS", 0, infinite=True)

__all__ = ["FileWriterConfig", "KafkaInputConfig", "KafkaWriterConfig", "file_writer_config",
           "kafka_input_config", "kafka_writer_config", "writer_stall_seconds"]
