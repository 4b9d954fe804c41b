import threading
import pytest


from cadent.core.cache import FLOW_REASON, MetricCache


class FakeFlow:
    def __init__(self):
        self.calls = []

    def pause(self, reason):
        self.calls.append(("pause", reason))

    def resume(self, reason):
        self.calls.append(("resume", reason))


def drain_names(cache, skip=()):
    names = []
    while (item := cache.pop_next(skip)) is not None:
        names.append(item[0])
        cache.done(item[0])
    return names


def test_overwrite_insertion_order_and_normalisation():
    cache = MetricCache()
    cache.store_batch([("a", (30.0, 1.0)), ("a", (10.0, 2.0)), ("a", (30.0, 3.0)),
                       ("t;z=1;b=2", (1, 5)), ("~t;b=2;z=1", (2, 6))])
    assert cache.get("a") == [(30.0, 3.0), (10.0, 2.0)]
    assert cache.get("t;b=2;z=1") == [(1, 5), (2, 6)]
    assert cache.size == 4 and cache.queues == 2
    assert cache.get("missing") == []
    name, points = cache.pop_next()
    assert points == sorted(points)


def test_sorted_strategy_biggest_first_and_one_pass():
    cache = MetricCache(strategy="sorted")
    for name, n in (("one", 1), ("three", 3), ("two", 2)):
        cache.store_batch([(name, (t, 0.0)) for t in range(n)])
    first = cache.pop_next()
    assert first[0] == "three"
    # a metric growing mid-pass does not jump the snapshot
    cache.store_batch([("one", (t, 0.0)) for t in range(10, 20)])
    assert drain_names(cache) == ["two", "one"]
    assert cache.size == 0


def test_max_strategy():
    cache = MetricCache(strategy="max")
    cache.store_batch([("a", (1, 1)), ("b", (1, 1)), ("b", (2, 1))])
    assert cache.pop_next()[0] == "b"
    cache.store_batch([("c", (t, 1)) for t in range(5)])
    assert cache.pop_next()[0] == "c"
    assert cache.pop_next()[0] == "a"
    assert cache.pop_next() is None


def test_naive_and_unknown_strategy_drain_everything():
    for strategy in ("naive", "bogus"):
        cache = MetricCache(strategy=strategy)
        cache.store_batch([(f"m{i}", (1, i)) for i in range(5)])
        names = drain_names(cache)
        assert sorted(names) == [f"m{i}" for i in range(5)]
        if strategy == "bogus":
            assert names == [f"m{i}" for i in range(5)]  # insertion order


def test_timesorted_oldest_first_with_lag():
    now = [1000.0]
    cache = MetricCache(strategy="timesorted", min_timestamp_lag=60, clock=lambda: now[0])
    cache.store_batch([("new", (990, 1)), ("old", (100, 1)), ("mid", (500, 1)), ("old", (999, 2))])
    assert drain_names(cache) == ["old", "mid"]  # "new" is only 10 s old
    now[0] = 2000.0
    assert drain_names(cache) == ["new"]


def test_skip_leaves_points_cached():
    cache = MetricCache()
    cache.store_batch([("a", (1, 1)), ("b", (1, 1))])
    assert drain_names(cache, skip={"a"}) == ["b"]
    assert cache.get("a") == [(1, 1)] and cache.size == 1


def test_in_flight_points_stay_visible_until_done():
    cache = MetricCache()
    cache.store_batch([("a", (1, 1.0)), ("a", (2, 2.0))])
    name, points = cache.pop_next()
    assert cache.size == 0
    cache.store_batch([("a", (2, 20.0)), ("a", (3, 3.0))])
    assert cache.get("a") == [(1, 1.0), (2, 20.0), (3, 3.0)]
    cache.done("a")
    assert cache.get("a") == [(2, 20.0), (3, 3.0)]


def test_requeue_keeps_newer_values():
    cache = MetricCache()
    cache.store_batch([("a", (1, 1.0)), ("a", (2, 2.0))])
    name, points = cache.pop_next()
    cache.store_batch([("a", (2, 9.0))])
    cache.requeue(name, points)
    assert dict(cache.get("a")) == {1: 1.0, 2: 9.0}
    assert cache.size == 2


def test_backpressure_pause_and_resume():
    flow = FakeFlow()
    cache = MetricCache(max_points=10, flow=flow)
    cache.store_batch([("a", (t, 1)) for t in range(8)])
    assert flow.calls == []
    cache.store_batch([("b", (t, 1)) for t in range(5)])  # 13 points: nothing dropped
    assert cache.size == 13 and flow.calls == [("pause", FLOW_REASON)]
    assert cache.collect_stats() == {"cache.size": 13, "cache.queues": 2, "cache.overflow": 3}
    cache.store_batch([("a", (0, 5))])  # overwrite: no new overflow, no second pause
    assert cache.collect_stats()["cache.overflow"] == 0
    assert flow.calls == [("pause", FLOW_REASON)]
    assert cache.pop_next()[0] == "a"  # 5 left < 9.5
    assert flow.calls == [("pause", FLOW_REASON), ("resume", FLOW_REASON)]


def test_resume_from_writer_thread_runs_on_loop():
    import gevent

    flow = FakeFlow()
    cache = MetricCache(max_points=2, flow=flow)
    cache.store_batch([("a", (1, 1)), ("a", (2, 1))])
    worker = threading.Thread(target=cache.pop_next)
    worker.start()
    worker.join(5)
    with gevent.Timeout(5):
        while len(flow.calls) < 2:
            gevent.sleep(0.01)
    assert flow.calls[-1] == ("resume", FLOW_REASON)


def test_thread_safety_smoke():
    cache = MetricCache()
    total = 20000
    popped = []
    stop = threading.Event()

    def consumer():
        while not stop.is_set() or cache.size:
            item = cache.pop_next()
            if item:
                popped.append(len(item[1]))
                cache.done(item[0])

    worker = threading.Thread(target=consumer)
    worker.start()
    for start in range(0, total, 100):
        cache.store_batch([(f"m{i % 37}", (start + i, 1.0)) for i in range(100)])
        cache.get("m1")
    stop.set()
    worker.join(10)
    assert not worker.is_alive()
    assert sum(popped) == total and cache.size == 0


def test_new_names():
    cache = MetricCache()
    cache.store_batch([("a", (1, 1)), ("b", (1, 1)), ("a", (2, 1))])
    assert cache.take_new_names() == ["a", "b"]
    assert cache.take_new_names() == []


def test_batch_normalisation_matches_name_by_name():
    """The one-join fast path stores exactly what normalising each name stores."""
    from cadent.core.tags import normalize_name

    names = ["a.b", "t;z=1;b=2", "~t;b=2;z=1", 'seriesByTag("x=1")', 'x{"}', "x;", "~x",
             "plain.~tilde", 'a"', "}b", "", "a;b=c;a=d"]
    batches = [[(n, (float(i), 1.0))] for i, n in enumerate(names)]  # one name per batch
    batches.append([(n, (float(i), 2.0)) for i, n in enumerate(names)])  # all in one
    batches.append([("p.a", (1.0, 1.0)), ("q.b", (2.0, 2.0))])  # nothing to normalise
    batches.append([('ends."', (1.0, 1.0)), ("}starts", (2.0, 2.0))])  # '"}' only when joined
    for batch in batches:
        cache = MetricCache()
        cache.store_batch(iter(batch))  # any iterable, not only lists
        expected: dict[str, list] = {}
        for name, point in batch:
            expected.setdefault(normalize_name(name), []).append(point)
        assert {n: cache.get(n) for n in expected} == expected
        assert cache.queues == len(expected)


def test_untagged_batch_is_stored_without_copying_names():
    cache = MetricCache()
    batch = [("a.b", (1.0, 1.0)), ("a.c", (1.0, 2.0)), ("a.b", (2.0, 3.0))]
    cache.store_batch(batch)
    assert cache.get("a.b") == [(1.0, 1.0), (2.0, 3.0)] and cache.size == 3
    assert batch == [("a.b", (1.0, 1.0)), ("a.c", (1.0, 2.0)), ("a.b", (2.0, 3.0))]


def test_equal_float_timestamps_share_one_object_and_keep_their_type():
    cache = MetricCache()
    stamp = 1_700_000_000.0
    cache.store_batch([("a", (float(str(stamp)), 1.0)), ("b", (float(str(stamp)), 2.0))])
    cache.store_batch([("c", (float(str(stamp)), 3.0)), ("d", (1_700_000_000, 4.0))])
    (a_ts, _), = cache.get("a")
    (b_ts, _), = cache.get("b")
    (c_ts, _), = cache.get("c")
    (d_ts, _), = cache.get("d")
    assert a_ts is b_ts is c_ts  # one float across metrics and batches
    assert type(d_ts) is int and d_ts == a_ts  # an int timestamp is stored as given
    assert cache.get("a") == [(stamp, 1.0)] and cache.size == 4
    assert [name for name, _ in [cache.pop_next() for _ in range(4)]] == ["d", "c", "b", "a"]


def test_timestamp_table_starts_afresh_past_its_bound():
    from cadent.core import cache as cache_module

    cache = MetricCache()
    for i in range(cache_module.STAMPS_MAX + 10):
        cache.store_batch([(f"m{i % 3}", (float(i), 1.0))])
    assert len(cache._stamps) <= cache_module.STAMPS_MAX + 1
    assert cache.size == cache_module.STAMPS_MAX + 10


def _random_cache(rng, strategy):
    cache = MetricCache(strategy=strategy, clock=lambda: 10_000.0, min_timestamp_lag=0)
    for _ in range(rng.randint(1, 6)):
        cache.store_batch([(f"m.{rng.randint(0, 40)}", (float(rng.randint(0, 50)), rng.random()))
                           for _ in range(rng.randint(1, 60))])
    return cache


@pytest.mark.parametrize("strategy", ["sorted", "max", "naive", "timesorted", "unknown"])
def test_pop_many_gives_what_pop_next_would(strategy):
    import random

    for seed in range(150):
        rng = random.Random(seed)
        one, many = _random_cache(random.Random(seed), strategy), _random_cache(
            random.Random(seed), strategy)
        skip = {f"m.{rng.randint(0, 40)}" for _ in range(rng.randint(0, 5))}
        while True:
            count = rng.randint(1, 9)
            expected = []
            for _ in range(count):
                item = one.pop_next(skip)
                if item is None:
                    break
                expected.append(item)
            got = many.pop_many(count, skip)
            assert got == expected, seed
            if not got:
                break
            one.done_many(name for name, _ in expected)
            many.done_many(name for name, _ in got)
            assert one.size == many.size and all(one.get(n) == many.get(n) for n, _ in got)


def test_pop_many_stops_at_a_name_not_known_and_keeps_it_first():
    cache = MetricCache(strategy="naive")  # pops the newest name first
    cache.store_batch([("a", (1.0, 1.0)), ("b", (1.0, 2.0)), ("c", (1.0, 3.0))])
    assert [name for name, _ in cache.pop_many(3, known={"c", "a"})] == ["c"]
    assert cache.pop_next()[0] == "b" and cache.size == 1
