"""The Kafka writer without a broker: its messages, and how it waits for the acknowledgements."""

from __future__ import annotations

import json
import re
import threading

import gevent
import pytest
from kafka.future import Future

from cadent.compat.kafka_settings import KafkaWriterConfig
from cadent.compat.storage_schemas import Schema, StorageSchemas, parse_retentions
from cadent.core.write.kafka import KafkaWriter, index_message, metric_messages


def _schemas() -> StorageSchemas:
    return StorageSchemas([Schema("fine", "^fine\\.", tuple(parse_retentions("1s:10m,1m:1d")),
                                  re.compile("^fine\\.")),
                           Schema("all", ".*", tuple(parse_retentions("10s:6h")),
                                  re.compile(".*"))])


def _config(**changes) -> KafkaWriterConfig:
    base = dict(brokers=("127.0.0.1:9",), metric_topic="m", index_topic="i", write_index=True,
                compression=None, acks="all", max_inflight=5, batch_bytes=16384, linger_ms=0,
                key_by_metric=True, timeout_s=0.5, write_batch=10, threads=1)
    base.update(changes)
    return KafkaWriterConfig(**base)


class FakeProducer:
    """Records sends; acknowledges each (or fails it, or never answers) from the loop."""

    def __init__(self, outcome="ok") -> None:
        self.sent: list[tuple[str, bytes | None, dict]] = []
        self.outcome = outcome

    def send(self, topic, key=None, value=None):
        self.sent.append((topic, key, json.loads(value)))
        future = Future()
        if self.outcome == "ok":
            gevent.spawn_later(0.01, future.success, object())
        elif self.outcome == "fail":
            gevent.spawn_later(0.01, future.failure, RuntimeError("NOT_LEADER"))
        return future

    def close(self, timeout=None):
        pass


def _in_thread(func, *args):
    """Run ``func`` in a real OS thread while this (the loop's) thread keeps the loop going."""
    box: dict = {}

    def run():
        try:
            box["value"] = func(*args)
        except Exception as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    while thread.is_alive():
        gevent.sleep(0.005)
    return box


def test_messages_per_bin_with_the_finest_retention_and_tags():
    points = [(100.0, 1.0), (101.0, 5.0), (109.0, -2.0), (110.0, 7.0), (125.0, float("nan"))]
    got = metric_messages("a.b;x=1", points, 10, 21600)
    assert got == [
        {"type": "metric", "time": 100 * 10**9, "metric": "a.b;x=1", "sum": 4.0,
         "mean": 4.0 / 3, "min": -2.0, "max": 5.0, "first": 1.0, "last": -2.0, "count": 3,
         "resolution": 10.0, "ttl": 21600, "tags": {"x": "1"}},
        {"type": "metric", "time": 110 * 10**9, "metric": "a.b;x=1", "sum": 7.0, "mean": 7.0,
         "min": 7.0, "max": 7.0, "first": 7.0, "last": 7.0, "count": 1, "resolution": 10.0,
         "ttl": 21600, "tags": {"x": "1"}}]
    assert index_message("my.metric.is.good", 5) == {
        "type": "index", "path": "my.metric.is.good", "segments": ["my", "metric", "is", "good"],
        "time": 5}


def test_write_many_waits_for_every_ack_and_indexes_once():
    producer = FakeProducer()
    writer = KafkaWriter(_config(), _schemas(), producer_factory=lambda: producer,
                         clock_ns=lambda: 42)
    box = _in_thread(writer.write_many, [("fine.x", [(100.0, 1.0), (101.0, 2.0)]),
                                         ("other", [(100.0, 3.0)])])
    assert box == {"value": 3}
    topics = [(topic, key, m["type"]) for topic, key, m in producer.sent]
    assert topics == [("i", b"fine.x", "index"), ("m", b"fine.x", "metric"),
                      ("m", b"fine.x", "metric"), ("i", b"other", "index"),
                      ("m", b"other", "metric")]
    assert [m["resolution"] for _, _, m in producer.sent if m["type"] == "metric"] == [1, 1, 10]
    producer.sent.clear()
    assert _in_thread(writer.write, "fine.x", [(102.0, 4.0)]) == {"value": 1}
    assert [m["type"] for _, _, m in producer.sent] == ["metric"]   # index sent once
    assert writer.messages_sent == 6


@pytest.mark.parametrize("outcome, error", [("fail", ConnectionError),
                                            ("never", TimeoutError)])
def test_a_refused_or_unanswered_write_raises(outcome, error):
    writer = KafkaWriter(_config(write_index=False, key_by_metric=False), _schemas(),
                         producer_factory=lambda: FakeProducer(outcome))
    box = _in_thread(writer.write, "a", [(1.0, 1.0)])
    assert isinstance(box.get("error"), error)


def test_a_broker_that_cannot_be_reached_raises_and_is_retried():
    calls = []

    def factory():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("no brokers available")
        return FakeProducer()

    writer = KafkaWriter(_config(), _schemas(), producer_factory=factory)
    assert isinstance(_in_thread(writer.write, "a", [(1.0, 1.0)]).get("error"), ConnectionError)
    assert _in_thread(writer.write, "a", [(1.0, 1.0)]) == {"value": 1}
