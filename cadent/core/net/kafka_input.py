"""The Kafka input: points read from explicit partitions of a topic, offsets kept in a file.

No consumer group: the partitions are assigned (``assign``) and each starts at the offset the
state file holds (or the earliest one). Records are parsed by KAFKA_INPUT_FORMAT:

* ``plaintext``: graphite lines (``name value timestamp``), any number per record;
* ``pickle``: carbon's pickle frames (4-byte length + pickle), any number per record;
* ``cadent-json``: the Kafka writer's metric messages, each one point ``(time, mean)`` at the
  start of its bin; index messages are skipped.

A record that does not parse costs itself (``kafkaBadRecords``, logged at most once a minute).

Offsets are saved (atomically: a temporary file renamed over the state file) only once what
was read up to them is safe: ``barrier()`` is taken after each handed-over batch (for the
cache: the store number of each writer's cache) and the records up to it are safe once every
number of ``unwritten()`` (each cache's oldest store with a point not yet written) is above
it. The relay passes neither: a batch queued at its destinations counts as safe. So after a crash, also SIGKILL, the input resumes at the last saved
offsets: nothing is lost, and the points read after them are read again (duplicates: what was
read in the last ``SAVE_INTERVAL_S`` plus what was still unwritten at the crash).

Backpressure: while the FlowControl gate is closed (the cache or a destination queue over its
watermark) the input stops fetching.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any, Callable

from cadent.compat.kafka_settings import kafka_input_config   # declares KAFKA_INPUT_*
from cadent.core.parse.pickle import PickleFrameParser
from cadent.core.parse.plaintext import LineParser
from cadent.core.point import Batch
from cadent.core.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from cadent.compat.kafka_settings import KafkaInputConfig
    from cadent.core.flow import FlowControl
    from cadent.core.stats import Stats

log = logging.getLogger(__name__)

SAVE_INTERVAL_S = 1.0
POLL_MS = 500
MAX_RECORDS = 5000
RETRY_S = 5.0


def read_offsets(path: str, topic: str) -> dict[int, int]:
    """``{partition: next offset}`` saved for ``topic`` in ``path`` ({} when none)."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable Kafka input state ({exc})") from None
    if state.get("topic") != topic:
        log.warning("%s holds offsets of topic %r, not %r: starting from the earliest",
                    path, state.get("topic"), topic)
        return {}
    return {int(p): int(o) for p, o in state.get("offsets", {}).items()}


def write_offsets(path: str, topic: str, offsets: dict[int, int]) -> None:
    """Save ``offsets`` atomically (write, fsync, rename)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"topic": topic, "offsets": {str(p): o for p, o in sorted(offsets.items())}},
                  handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class RecordParser:
    """bytes of one record → Batch, by KAFKA_INPUT_FORMAT; counts what it refuses."""

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        self.bad = 0
        self._lines = LineParser()
        self._log = RateLimitedLog(log)

    def parse(self, value: bytes | None) -> Batch:
        if not value:
            return []
        if self.format == "plaintext":
            return self._lines.feed_datagram(value)
        if self.format == "pickle":
            frames = PickleFrameParser(peer="kafka")
            batch = frames.feed(value)
            if frames.pending_bytes or frames.bad_frames:
                self._refuse(value, "incomplete or bad pickle frame")
            return batch
        try:
            message = json.loads(value)
            if message.get("type") == "index":
                return []
            if message.get("type") != "metric":
                raise ValueError("neither a metric nor an index message")
            return [(str(message["metric"]), (message["time"] / 1e9, float(message["mean"])))]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._refuse(value, str(exc))
            return []

    def _refuse(self, value: bytes, why: str) -> None:
        self.bad += 1
        self._log(logging.WARNING, "Kafka input: refused a record (%s): %r", why, value[:200])


class KafkaInput:
    """Reads KAFKA_INPUT_* into ``sink``; see the module doc."""

    def __init__(self, config: KafkaInputConfig, sink: Callable[[Batch], Any],
                 flow: FlowControl | None = None, stats: Stats | None = None,
                 barrier: Callable[[], tuple[int, ...]] = tuple,
                 unwritten: Callable[[], tuple[int, ...]] = tuple,
                 consumer_factory: Callable[[], Any] | None = None) -> None:
        self.config = config
        self.sink = sink
        self.flow = flow
        self.stats = stats
        self.barrier = barrier
        self.unwritten = unwritten
        self._factory = consumer_factory or self._new_consumer
        self.parser = RecordParser(config.format)
        self.read = read_offsets(config.state_file, config.topic)   # next offset to read
        self.saved = dict(self.read)
        self._pending: list[tuple[tuple[int, ...], dict[int, int]]] = []   # (barrier, offsets)
        self._error_log = RateLimitedLog(log)
        self._greenlet = None
        self._saver = None
        self._running = False

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        import gevent

        self._running = True
        self._greenlet = gevent.spawn(self._run)
        self._saver = gevent.spawn(self._save_loop)
        log.info("Kafka input: %s topic %s partitions %s (%s), offsets in %s, resuming at %s",
                 ",".join(self.config.brokers), self.config.topic,
                 ",".join(map(str, self.config.partitions)), self.config.format,
                 self.config.state_file, json.dumps(self.read, sort_keys=True) or "the start")

    def stop(self) -> None:
        """Stop reading; the offsets stay where they were last saved (the caller saves the
        rest with ``save_safe`` once its writers are done)."""
        self._running = False
        for greenlet in (self._greenlet, self._saver):
            if greenlet is not None:
                greenlet.kill()
        self._greenlet = self._saver = None

    # -- reading ------------------------------------------------------------------------

    def _run(self) -> None:
        import gevent

        consumer = None
        while self._running:
            try:
                if consumer is None:
                    consumer = self._open()
                if self.flow is not None and not self.flow.wait(1.0):
                    continue   # the cache or a queue is above its watermark: fetch nothing
                records = consumer.poll(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
                self._take(records)
            except gevent.GreenletExit:
                raise
            except Exception as exc:
                self._count("kafkaErrors")
                self._error_log(logging.ERROR, "Kafka input: %s", exc)
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception:
                        pass
                    consumer = None
                gevent.sleep(RETRY_S)
        if consumer is not None:
            consumer.close()

    def _open(self) -> Any:
        from kafka import TopicPartition

        consumer = self._factory()
        parts = [TopicPartition(self.config.topic, p) for p in self.config.partitions]
        consumer.assign(parts)
        for part in parts:
            offset = self.read.get(part.partition)
            if offset is None:
                consumer.seek_to_beginning(part)
            else:
                consumer.seek(part, offset)
        return consumer

    def _take(self, records: dict) -> None:
        if not records:
            return
        batch: Batch = []
        offsets: dict[int, int] = {}
        count = 0
        for part, items in records.items():
            for record in items:
                batch.extend(self.parser.parse(record.value))
                offsets[part.partition] = record.offset + 1
                count += 1
        if batch:
            self.sink(batch)
        self.read.update(offsets)
        self._pending.append((self.barrier(), dict(self.read)))
        self._count("kafkaRecords", count)
        self._count("metricsReceived", len(batch))
        if self.parser.bad:
            self._count("kafkaBadRecords", self.parser.bad)
            self.parser.bad = 0

    def _count(self, name: str, n: int = 1) -> None:
        if self.stats is not None:
            self.stats.incr(name, n)

    # -- offsets ------------------------------------------------------------------------

    def _save_loop(self) -> None:
        import gevent

        while True:
            gevent.sleep(SAVE_INTERVAL_S)
            try:
                self.save_safe()
            except Exception as exc:
                self._error_log(logging.ERROR, "Kafka input: saving offsets to %s failed: %s",
                                self.config.state_file, exc)

    def save_safe(self) -> bool:
        """Save the newest offsets whose records are safe; True if the file was written."""
        if not self._pending:
            return False       # nothing read since: skip the caches' scan
        newest = None
        unwritten = self.unwritten()
        while self._pending and all(b < u for b, u in zip(self._pending[0][0], unwritten)):
            newest = self._pending.pop(0)[1]
        if newest is None or newest == self.saved:
            return False
        from gevent import get_hub

        # a small write with an fsync: in a thread, never on the loop
        get_hub().threadpool.apply(write_offsets, (self.config.state_file, self.config.topic,
                                                   newest))
        self.saved = newest
        return True

    def _new_consumer(self) -> Any:
        from kafka import KafkaConsumer

        kafka_log = logging.getLogger("kafka")
        if not kafka_log.isEnabledFor(logging.DEBUG):
            kafka_log.setLevel(logging.CRITICAL)   # its retries reach us as exceptions
        return KafkaConsumer(bootstrap_servers=list(self.config.brokers), group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")


def relay_kafka_input(settings: Any, sink: Callable[[Batch], Any], flow: FlowControl,
                      stats: Stats) -> KafkaInput | None:
    """The relay's Kafka input (None unless KAFKA_INPUT_BROKERS is set): a batch counts as
    safe once queued at its destinations. One reader only: with WORKERS > 1 it would be read
    once per worker, so that is refused."""
    config = kafka_input_config(settings.conf, "relay")
    if config is None:
        return None
    if getattr(settings, "workers", 1) > 1:
        raise settings.conf.error("KAFKA_INPUT_BROKERS", "the Kafka input needs WORKERS = 1")
    return KafkaInput(config, sink, flow=flow, stats=stats)


__all__ = ["KafkaInput", "RecordParser", "read_offsets", "relay_kafka_input", "write_offsets"]
