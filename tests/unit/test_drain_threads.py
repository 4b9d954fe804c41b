"""The Drainer with several writer threads: one writer per metric at a time, exactly once."""

from __future__ import annotations

import time

import gevent
import pytest

from cadent.compat.cache_settings import load_cache_settings
from cadent.compat.errors import ConfigError
from cadent.core.cache import MetricCache
from cadent.core.native import allocate_lock, get_ident, sleep
from cadent.core.write.drain import Drainer


class RecordingWriter:
    """Records every committed (name, timestamp) and every overlap of two calls on a name."""

    def __init__(self, fail_first=(), write_s=0.0002):
        self.lock = allocate_lock()
        self.busy: dict[str, int] = {}
        self.overlaps: list[str] = []
        self.created: dict[str, int] = {}
        self.written: list[tuple[str, float]] = []
        self.threads: set[int] = set()
        self.most_at_once = 0
        self.fail_first = set(fail_first)
        self.write_s = write_s

    def _enter(self, name):
        with self.lock:
            if name in self.busy:
                self.overlaps.append(name)
            self.busy[name] = get_ident()
            self.threads.add(get_ident())
            self.most_at_once = max(self.most_at_once, len(self.busy))

    def _leave(self, name):
        with self.lock:
            self.busy.pop(name, None)

    def exists(self, name):
        return name in self.created

    def create(self, name):
        self._enter(name)
        try:
            sleep(self.write_s)
            with self.lock:
                self.created[name] = self.created.get(name, 0) + 1
        finally:
            self._leave(name)

    def write(self, name, points):
        self._enter(name)
        try:
            assert name in self.created, f"{name} written before its creation"
            sleep(self.write_s)  # releases the GIL, as disk syscalls do
            with self.lock:
                if name in self.fail_first:
                    self.fail_first.discard(name)
                    raise OSError(28, "No space left on device")
                self.written.extend((name, ts) for ts, _ in points)
            return len(points)
        finally:
            self._leave(name)


def wait_until(predicate, timeout=10.0):
    with gevent.Timeout(timeout):
        while not predicate():
            gevent.sleep(0.01)


def test_cache_does_not_pop_a_metric_in_flight():
    for strategy in ("sorted", "max", "naive", "timesorted"):
        cache = MetricCache(strategy=strategy)
        cache.store_batch([("a", (1, 1.0)), ("b", (1, 1.0))])
        first, _ = cache.pop_next()
        cache.store_batch([(first, (2, 2.0))])
        second, _ = cache.pop_next()
        assert second != first
        assert cache.pop_next() is None  # only `first` has points, and it is in flight
        assert dict(cache.get(first)) == {1: 1.0, 2: 2.0}  # CarbonLink sees both batches
        cache.done(first)
        assert cache.pop_next() == (first, [(2, 2.0)])


def test_four_threads_write_every_point_once_and_never_one_metric_twice_at_once():
    names = [f"t.m{i}" for i in range(40)]
    failing = [n for n in names if n.endswith("7")]
    writer = RecordingWriter(fail_first=failing, write_s=0.001)
    cache = MetricCache()
    drainer = Drainer(cache, writer, max_updates_per_second=float("inf"), threads=4)
    expected = set()
    drainer.start()
    try:
        for ts in range(1, 101):
            batch = [(n, (float(ts), float(ts))) for n in names]
            cache.store_batch(batch)
            expected.update((n, float(ts)) for n in names)
            gevent.sleep(0.002)
    finally:
        assert drainer.stop(timeout=20)
    assert writer.overlaps == []
    assert len(writer.written) == len(set(writer.written))  # no point written twice
    assert set(writer.written) == expected
    assert all(writer.created[n] == 1 for n in names) and len(writer.created) == len(names)
    assert len(writer.threads) > 1 and writer.most_at_once > 1  # really in parallel
    assert cache.size == 0 and all(cache.get(n) == [] for n in names)
    stats = drainer.collect_stats()
    assert stats["committedPoints"] == len(expected)
    assert stats["creates"] == len(names)
    assert stats["errors"] == len(failing)


def test_stop_without_start_flushes_with_many_threads_configured():
    writer = RecordingWriter()
    cache = MetricCache()
    drainer = Drainer(cache, writer, max_updates_per_second=1, max_creates_per_minute=1,
                      threads=4)
    cache.store_batch([(f"s.{i}", (1.0, 1.0)) for i in range(50)])
    assert drainer.stop(timeout=10)  # the limits do not apply on shutdown
    assert sorted(writer.written) == sorted((f"s.{i}", 1.0) for i in range(50))


def test_update_limit_holds_across_threads():
    writer = RecordingWriter(write_s=0.0)
    cache = MetricCache()
    drainer = Drainer(cache, writer, max_updates_per_second=40, threads=4)
    cache.store_batch([(f"u.{i}", (1.0, 1.0)) for i in range(1000)])
    drainer.start()
    try:
        time.sleep(0.5)
        updates = drainer.collect_stats()["updateOperations"]
        # 40 tokens at start + 40/s refill over ~0.5 s, whatever the thread count
        assert 40 <= updates <= 40 + 0.6 * 40 + 1
    finally:
        assert drainer.stop(timeout=10)
    assert len(writer.written) == 1000 and writer.overlaps == []


def test_create_limit_holds_across_threads():
    writer = RecordingWriter(write_s=0.0)
    cache = MetricCache()
    drainer = Drainer(cache, writer, max_updates_per_second=float("inf"),
                      max_creates_per_minute=30, threads=4)
    cache.store_batch([(f"c.{i}", (1.0, 1.0)) for i in range(200)])
    drainer.start()
    try:
        wait_until(lambda: len(writer.created) >= 30)
        time.sleep(0.4)
        assert 30 <= len(writer.created) <= 30 + 1  # 30 at once, then one every 2 s
        assert drainer.pending_creates == 200 - len(writer.created)
        assert cache.size == 200 - len(writer.written)  # the rest is kept, not dropped
    finally:
        assert drainer.stop(timeout=10)
    assert len(writer.created) == 200 and all(v == 1 for v in writer.created.values())
    assert len(writer.written) == 200


def test_stop_reports_unwritten_with_threads():
    class Broken(RecordingWriter):
        def write(self, name, points):
            raise OSError(13, "Permission denied")

    cache = MetricCache()
    drainer = Drainer(cache, Broken(), threads=3)
    drainer.start()
    cache.store_batch([("e.x", (1.0, 1.0)), ("e.y", (1.0, 1.0))])
    assert drainer.stop(timeout=0.5) is False
    assert cache.size == 2


def _conf(tmp_path, text):
    (tmp_path / "carbon.conf").write_text(f"[cache]\nSTORAGE_DIR = {tmp_path}\n{text}")
    (tmp_path / "storage-schemas.conf").write_text("[all]\npattern = .*\nretentions = 10s:1d\n")
    return str(tmp_path / "carbon.conf")


def test_writer_threads_setting(tmp_path):
    assert load_cache_settings(_conf(tmp_path, "")).cache.writer_threads == 1
    assert load_cache_settings(_conf(tmp_path, "WRITER_THREADS = 4\n")).cache.writer_threads == 4
    with pytest.raises(ConfigError, match="WRITER_THREADS"):
        load_cache_settings(_conf(tmp_path, "WRITER_THREADS = 0\n"))
