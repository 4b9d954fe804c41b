"""The Kafka writer: each series' points as JSON messages per time bin, acknowledged by the broker.

Messages (one JSON object each, see docs/kafka.md):

* index, once per series and process, before its first metric message (KAFKA_WRITE_INDEX):
  ``{"type": "index", "path": name, "segments": [...], "time": <unix ns>}``;
* metric, per series and bin of the finest retention of its storage-schemas rule:
  ``{"type": "metric", "time": <bin start, unix ns>, "metric": name, "sum", "mean", "min",
  "max", "first", "last", "count", "resolution": <seconds>, "ttl": <seconds>}``.

A write carries only the points handed to it: points arriving later for a bin already sent go
out as another message for the same bin with just the new points (consumers add them up).
Tagged series carry their carbon-normalised name and a ``"tags"`` object.

Delivery: ``write_many`` hands every message to the producer and returns only when the broker
has acknowledged all of them (KAFKA_ACKS); a failure or no answer within KAFKA_TIMEOUT_SECONDS
raises, so the drainer keeps the points and sends them again (at least once: a message whose
acknowledgement was lost is then sent twice).

Threads: kafka-python runs on the gevent loop (its socket I/O is gevent's once patched). The
drainer's OS threads build the messages, hand them to the loop and block on a native lock
until the acknowledgements are in, so the loop never waits on the drainer.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from cadent.core.native import LoopCaller, allocate_lock
from cadent.core.tags import parse_tags
from cadent.core.write.base import Points
from cadent.core.write.binned import BinnedWriter
from cadent.core.write.bins import rollup

if TYPE_CHECKING:
    from cadent.compat.cache_settings import CacheSettings
    from cadent.compat.kafka_settings import KafkaWriterConfig
    from cadent.compat.storage_schemas import StorageSchemas

log = logging.getLogger(__name__)

NS = 1_000_000_000
Message = tuple[str, "bytes | None", bytes]   # (topic, key, value)


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def index_message(name: str, now_ns: int) -> dict[str, Any]:
    """The index message of series ``name`` (carbon-normalised)."""
    base, tags = parse_tags(name)
    message: dict[str, Any] = {"type": "index", "path": name, "segments": base.split("."),
                               "time": now_ns}
    if tags:
        message["tags"] = tags
    return message


def metric_messages(name: str, points: Points, resolution: int,
                    ttl: int) -> list[dict[str, Any]]:
    """One metric message per ``resolution``-second bin of ``points``, oldest first."""
    base, tags = parse_tags(name)
    messages = []
    for start, found in sorted(rollup(points, resolution).items()):
        message: dict[str, Any] = {
            "type": "metric", "time": start * NS, "metric": name,
            "sum": found.sum, "mean": _number(found.mean), "min": found.min, "max": found.max,
            "first": found.first, "last": found.last, "count": found.count,
            "resolution": float(resolution), "ttl": ttl}
        if tags:
            message["tags"] = tags
        messages.append(message)
    return messages


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


class _Acks:
    """Counts the acknowledgements of one write on the loop; wakes the waiting OS thread."""

    def __init__(self, expected: int) -> None:
        self.left = expected
        self.error: BaseException | None = None
        self._lock = allocate_lock()
        self._lock.acquire()
        self._woken = False

    def settle(self, outcome: Any = None) -> None:
        if isinstance(outcome, BaseException):
            self.error = self.error or outcome
        else:
            self.left -= 1
        if (self.error is not None or self.left <= 0) and not self._woken:
            self._woken = True
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        return self._lock.acquire(timeout=timeout)


class KafkaWriter(BinnedWriter):
    """Writer sending each series' bins to Kafka (see module doc). Build it on the loop thread."""

    def __init__(self, config: KafkaWriterConfig, schemas: StorageSchemas,
                 producer_factory: Callable[[], Any] | None = None,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        super().__init__(schemas)
        self.config = config
        self._factory = producer_factory or self._new_producer
        self._clock_ns = clock_ns
        self._producer: Any = None
        self._indexed: set[str] = set()
        self._lock = allocate_lock()
        self._in_loop = LoopCaller()
        self.messages_sent = 0
        #: the lane's Drainer: no disk budget, several series per round trip
        self.drain_options = {"threads": config.threads, "batch": config.write_batch}

    # -- Writer (the index message goes with a series' first write) -----------------------

    def write_many(self, items: Sequence[tuple[str, Points]]) -> int:
        """Send the messages of every ``(name, points)``; return the points once all are
        acknowledged; raise (nothing counts as written) on an error or a timeout."""
        messages: list[Message] = []
        new: list[str] = []
        cfg = self.config
        committed = 0
        for name, points in items:
            key = name.encode() if cfg.key_by_metric else None
            if cfg.write_index and name not in self._indexed:
                messages.append((cfg.index_topic, key,
                                 _encode(index_message(name, self._clock_ns()))))
                new.append(name)
            resolution, ttl = self.retention(name)
            messages.extend((cfg.metric_topic, key, _encode(message))
                            for message in metric_messages(name, points, resolution, ttl))
            committed += len(points)
        if messages:
            self._send(messages)
        if new:
            with self._lock:
                self._indexed.update(new)
        return committed

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=min(self.config.timeout_s, 5.0))
            except Exception as exc:
                log.warning("closing the Kafka producer: %s", exc)

    # -- internals ----------------------------------------------------------------------

    def _send(self, messages: list[Message]) -> None:
        acks = _Acks(len(messages))
        self._in_loop(self._spawn_send, messages, acks)
        if not acks.wait(self.config.timeout_s + 1.0):
            raise TimeoutError(f"Kafka did not acknowledge {len(messages)} messages within "
                               f"{self.config.timeout_s:g} s")
        if acks.error is not None:
            raise ConnectionError(f"Kafka refused a message: {acks.error!r}")
        with self._lock:
            self.messages_sent += len(messages)

    def _spawn_send(self, messages: list[Message], acks: _Acks) -> None:
        import gevent

        gevent.spawn(self._send_on_loop, messages, acks)

    def _send_on_loop(self, messages: list[Message], acks: _Acks) -> None:
        try:
            if self._producer is None:
                self._producer = self._factory()
            send = self._producer.send
            for topic, key, value in messages:
                send(topic, key=key, value=value).add_both(acks.settle)
        except Exception as exc:
            acks.settle(exc)

    def _new_producer(self) -> Any:
        from kafka import KafkaProducer

        # kafka-python logs every failed reconnection; what fails reaches us through the
        # futures and is logged (at most once a minute) by the drainer instead
        kafka_log = logging.getLogger("kafka")
        if not kafka_log.isEnabledFor(logging.DEBUG):
            kafka_log.setLevel(logging.CRITICAL)

        cfg = self.config
        timeout_ms = int(cfg.timeout_s * 1000)
        return KafkaProducer(
            bootstrap_servers=list(cfg.brokers), acks=cfg.acks,
            compression_type=cfg.compression,
            max_in_flight_requests_per_connection=cfg.max_inflight,
            batch_size=cfg.batch_bytes, linger_ms=cfg.linger_ms,
            max_block_ms=timeout_ms, request_timeout_ms=max(timeout_ms // 2, 1000),
            delivery_timeout_ms=max(timeout_ms, cfg.linger_ms + timeout_ms // 2 + 1000),
            retries=5, enable_idempotence=False)   # at least once; survives a broker restart


def writer_from_settings(settings: CacheSettings) -> KafkaWriter:
    """The ``kafka`` backend of ``[cache] DATABASE``, from the KAFKA_* settings."""
    from cadent.compat.kafka_settings import kafka_writer_config

    return KafkaWriter(kafka_writer_config(settings.conf), settings.schemas)


__all__ = ["KafkaWriter", "index_message", "metric_messages", "writer_from_settings"]
