"""Several writers side by side: each lane drains on its own; a stuck one sheds after its stall."""

from __future__ import annotations

import time

import gevent

from cadent.core.flow import FlowControl
from cadent.core.native import allocate_lock, sleep
from cadent.core.write.lanes import Lanes


class MemoryWriter:
    """Keeps every written point; ``stuck`` makes every write fail (a dead backend)."""

    def __init__(self, stuck: bool = False, batched: bool = False) -> None:
        self.stuck = stuck
        self.lock = allocate_lock()
        self.points: dict[str, dict[float, float]] = {}
        self.calls = 0
        if batched:
            self.write_many = self._write_many
            self.drain_options = {"batch": 50}

    def exists(self, name):
        return True

    def create(self, name):
        pass

    def write(self, name, points):
        if self.stuck:
            sleep(0.01)
            raise ConnectionError("backend down")
        with self.lock:
            self.calls += 1
            self.points.setdefault(name, {}).update(points)
        return len(points)

    def _write_many(self, items):
        if self.stuck:
            raise ConnectionError("backend down")
        with self.lock:
            self.calls += 1
            for name, points in items:
                self.points.setdefault(name, {}).update(points)
        return sum(len(points) for _, points in items)

    def set_rules(self, *_):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def _lanes(writers, flow, max_points=1000, stall_s=1.0):
    def drainer_args(name, writer):
        return dict(max_updates_per_second=float("inf"), **getattr(writer, "drain_options", {}))

    return Lanes.build(writers, flow, cache_args=dict(max_points=max_points),
                       drainer_args=drainer_args, stall_s=stall_s)


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.02)
    return True


def _batch(start, names=20, per=5):
    return [(f"s.{i}", (float(start + k), float(start + k + i)))
            for i in range(names) for k in range(per)]


def test_every_lane_gets_every_point_and_a_batched_writer_takes_many_per_call():
    flow = FlowControl()
    disk, bus = MemoryWriter(), MemoryWriter(batched=True)
    lanes = _lanes([("whisper", disk), ("kafka", bus)], flow)
    assert not lanes.single and lanes.lanes[1].drainer.batch == 50
    lanes.start()
    try:
        for start in range(0, 100, 5):
            lanes.store_batch(_batch(start))
        want = {f"s.{i}": {float(t): float(t + i) for t in range(100)} for i in range(20)}
        assert _wait(lambda: disk.points == want and bus.points == want)
        assert bus.calls < disk.calls   # several series per call
        stats = lanes.collect_stats()
        assert stats["writer.kafka.committedPoints"] == 2000
        assert stats["committedPoints"] == stats["writer.whisper.committedPoints"] == 2000
    finally:
        assert lanes.stop(10)


def test_a_dead_writer_stalls_the_receivers_then_sheds_and_the_other_keeps_writing():
    flow = FlowControl()
    disk, dead = MemoryWriter(), MemoryWriter(stuck=True)
    lanes = _lanes([("whisper", disk), ("kafka", dead)], flow, max_points=200, stall_s=1.0)
    lanes.start()
    watch = gevent.spawn(lambda: [lanes.check() or gevent.sleep(0.1) for _ in range(400)])
    try:
        lanes.store_batch(_batch(0, names=50, per=5))          # 250 points: both lanes full
        assert _wait(lambda: not flow.is_open)
        assert _wait(lambda: flow.reasons() == ("cache.full.kafka",))   # whisper drained
        assert _wait(lambda: flow.is_open, 10)                  # the stall bound passed
        kafka = lanes.lanes[1]
        assert kafka.shedding and not kafka.cache.pushes_back
        for start in range(5, 100, 5):
            lanes.store_batch(_batch(start, names=50, per=5))
        assert _wait(lambda: sum(map(len, disk.points.values())) == 5000)
        assert _wait(lambda: flow.is_open)   # whisper pauses only while a batch tops it up
        stats = lanes.collect_stats()
        assert stats["writer.kafka.droppedPoints"] == kafka.dropped_total > 0
        assert stats["writer.kafka.shedding"] == 1
        assert kafka.cache.size <= kafka.cache.max_points + 250
        # the backend comes back: the lane drains and pushes back again
        dead.stuck = False
        assert _wait(lambda: not kafka.shedding and kafka.cache.pushes_back, 20)
    finally:
        watch.kill()
        lanes.stop(10)


def test_one_writer_is_the_lone_cache_and_never_sheds():
    flow = FlowControl()
    lanes = _lanes([("whisper", MemoryWriter(stuck=True))], flow, max_points=10, stall_s=0.01)
    assert lanes.single and lanes.primary.cache.flow_reason == "cache.full"
    lanes.store_batch(_batch(0, names=5, per=5))
    gevent.sleep(0.05)
    lanes.check()
    assert not lanes.primary.shedding and not flow.is_open


class CountingWriter(MemoryWriter):
    """A backend with self-metrics of its own, as the Cassandra writer has."""

    def collect_stats(self):
        return {"cassandra.rowsWritten": self.calls}


class Wrapping:
    """A writer around another one (as tag registration wraps the primary)."""

    def __init__(self, writer):
        self.writer = writer


def test_a_backends_own_self_metrics_are_reported_through_wrappers():
    flow = FlowControl()
    lanes = _lanes([("whisper", MemoryWriter()), ("cassandra", CountingWriter())], flow)
    lanes.lanes[1].writer = Wrapping(lanes.lanes[1].writer)
    stats = lanes.collect_stats()
    assert stats["cassandra.rowsWritten"] == 0
    assert not any(name.startswith("cassandra.") for name in
                   _lanes([("whisper", MemoryWriter())], FlowControl()).collect_stats())
