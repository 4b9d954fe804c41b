import os
import time

import gevent
import pytest

from cadent.core.cache import MetricCache
from cadent.core.write.drain import Drainer, TokenBucket
from cadent.core.write.whisper import WhisperWriter


def wait_until(predicate, timeout=5.0):
    with gevent.Timeout(timeout):
        while not predicate():
            gevent.sleep(0.01)


def test_token_bucket():
    now = [0.0]
    bucket = TokenBucket(2, 1, clock=lambda: now[0])
    assert bucket.take() == 0 and bucket.take() == 0
    assert bucket.take() == pytest.approx(1.0)
    now[0] = 0.5
    assert bucket.wait_time() == pytest.approx(0.5)
    now[0] = 1.0
    assert bucket.take() == 0
    assert TokenBucket(float("inf"), float("inf")).take() == 0


def test_token_bucket_rate_change_switches_the_limit():
    bucket = TokenBucket(1, 1, clock=lambda: 0.0)
    assert not bucket.unlimited and bucket.take() == 0 and bucket.take() > 0
    bucket.rate = float("inf")
    assert bucket.unlimited and bucket.take() == 0 and bucket.take() == 0
    bucket.rate = 2
    assert not bucket.unlimited and bucket.rate == 2 and bucket.take() > 0


def test_throttled_writer_keeps_data_queryable(tmp_path):
    now = int(time.time())
    cache = MetricCache()
    writer = WhisperWriter(str(tmp_path))
    drainer = Drainer(cache, writer, max_updates_per_second=3)
    drainer.start()
    try:
        names = [f"m.n{i}" for i in range(10)]
        cache.store_batch([(n, (now - 60, 1.0)) for n in names])
        # files are created at once, before the (throttled) updates
        wait_until(lambda: all(os.path.exists(writer.path_for(n)) for n in names))
        cache.store_batch([(n, (now, 2.0)) for n in names])
        for n in names:
            got = dict(cache.get(n))
            assert got.get(now) == 2.0  # in cache or in flight: never invisible
        time.sleep(0.3)
        stats = drainer.collect_stats()
        assert stats["updateOperations"] <= 4  # 3 tokens + ~1 refilled
        assert stats["creates"] == 10 and stats["droppedCreates"] == 0
    finally:
        assert drainer.stop(timeout=10)
    import whisper
    for n in names:
        _, values = whisper.fetch(writer.path_for(n), now - 120, now + 1)
        assert values[-1] == 2.0 and values[-2] == 1.0
    assert cache.size == 0 and cache.get("m.n0") == []


def test_create_limit_keeps_points(tmp_path):
    cache = MetricCache()
    writer = WhisperWriter(str(tmp_path))
    drainer = Drainer(cache, writer, max_updates_per_second=float("inf"), max_creates_per_minute=2)
    now = int(time.time())
    cache.store_batch([(f"c.{i}", (now, float(i))) for i in range(4)])
    for _ in range(10):
        drainer.step()
    assert drainer.collect_stats()["creates"] == 2
    assert drainer.pending_creates == 2
    assert cache.size == 2  # the two not yet created are still cached
    assert sorted(n for n in ("c.0", "c.1", "c.2", "c.3") if cache.get(n)) == ["c.2", "c.3"]
    assert drainer.stop(timeout=5)  # shutdown ignores the limits
    assert all(os.path.exists(writer.path_for(f"c.{i}")) for i in range(4))


class FailingWriter(WhisperWriter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail = True
        self.attempts = 0

    def write_each(self, items):
        self.attempts += len(items)
        if self.fail:
            return [OSError(28, "No space left on device") for _ in items]
        return super().write_each(items)


def test_write_error_backs_off_and_retries(tmp_path):
    cache = MetricCache()
    writer = FailingWriter(str(tmp_path))
    drainer = Drainer(cache, writer, max_updates_per_second=float("inf"))
    drainer.start()
    try:
        now = int(time.time())
        cache.store_batch([("d.x", (now, 1.0))])
        wait_until(lambda: writer.attempts >= 1)
        time.sleep(0.3)
        assert writer.attempts <= 2  # backing off, not spinning
        assert cache.get("d.x") == [(now, 1.0)]
        assert drainer.collect_stats()["errors"] >= 1
        writer.fail = False
        wait_until(lambda: cache.size == 0 and cache.get("d.x") == [], timeout=5)
    finally:
        assert drainer.stop(timeout=5)


def test_stop_reports_unwritten(tmp_path):
    cache = MetricCache()
    writer = FailingWriter(str(tmp_path))
    drainer = Drainer(cache, writer)
    cache.store_batch([("e.x", (int(time.time()), 1.0))])
    assert drainer.stop(timeout=0.5) is False
    assert cache.size == 1


class BatchRecordingWriter(WhisperWriter):
    """Records the size of every write_each call; names in ``broken`` fail on their own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sizes = []
        self.broken = set()

    def write_each(self, items):
        self.sizes.append(len(items))
        results = super().write_each([item for item in items if item[0] not in self.broken])
        answers = iter(results)
        return [OSError(5, "Input/output error") if name in self.broken else next(answers)
                for name, _ in items]


def _fill(cache, names, now):
    cache.store_batch([(name, (float(now - 60), 1.0)) for name in names])
    cache.store_batch([(name, (float(now), 2.0)) for name in names])


def _drain_all(tmp_path, names, broken=(), **options):
    """A cache holding two points of each name, drained until nothing is due."""
    cache = MetricCache()
    writer = BatchRecordingWriter(str(tmp_path))
    writer.broken = set(broken)
    drainer = Drainer(cache, writer, **options)
    now = int(time.time()) // 60 * 60
    _fill(cache, names, now)
    while drainer.step():
        pass
    return cache, writer, drainer, now


def test_unlimited_updates_are_written_in_batches(tmp_path):
    from cadent.core.write.drain import EACH_BATCH

    cache, writer, drainer, now = _drain_all(tmp_path, [f"b.n{i}" for i in range(200)],
                                             max_updates_per_second=float("inf"))
    assert cache.size == 0 and sum(writer.sizes) == 200 and max(writer.sizes) == EACH_BATCH
    stats = drainer.collect_stats()
    assert stats["updateOperations"] == 200 and stats["committedPoints"] == 400
    assert stats["pointsPerUpdate"] == 2 and stats["avgUpdateTime"] > 0
    import whisper
    assert whisper.fetch(writer.path_for("b.n199"), now - 120, now + 1)[1][-2:] == [1.0, 2.0]


def test_a_failing_metric_in_a_batch_is_retried_alone(tmp_path):
    cache, writer, drainer, now = _drain_all(tmp_path, [f"f.n{i}" for i in range(10)],
                                             broken={"f.n3"}, max_updates_per_second=float("inf"))
    stats = drainer.collect_stats()
    assert stats["errors"] == 1 and stats["updateOperations"] == 9
    assert cache.size == 2 and cache.get("f.n3") == [(float(now - 60), 1.0), (float(now), 2.0)]
    writer.broken = set()
    assert drainer.stop(timeout=5) and cache.size == 0
    assert drainer.collect_stats()["updateOperations"] == 1


def test_a_batch_takes_no_more_than_the_update_budget_holds(tmp_path):
    clock = [100.0]
    cache = MetricCache()
    writer = BatchRecordingWriter(str(tmp_path))
    drainer = Drainer(cache, writer, max_updates_per_second=10, clock=lambda: clock[0])
    _fill(cache, [f"t.n{i}" for i in range(23)], int(time.time()) // 60 * 60)
    while drainer.step():  # the bucket starts full: 10 updates, then it waits
        if sum(writer.sizes) >= 10:
            break
    assert writer.sizes == [10]
    clock[0] += 0.5  # five more tokens
    drainer.step()
    assert writer.sizes == [10, 5] and cache.queues == 8
    clock[0] += 100  # a full bucket (10) for the last 8
    drainer.step()
    assert writer.sizes == [10, 5, 8] and cache.size == 0
    assert drainer._updates.take_up_to(10) == 2  # what the last batch did not need came back


def test_update_log_writes_one_metric_at_a_time(tmp_path):
    cache, writer, _, _ = _drain_all(tmp_path, [f"s.n{i}" for i in range(20)],
                                     max_updates_per_second=float("inf"), log_updates=True)
    assert cache.size == 0 and writer.sizes == [1] * 20
