"""AggregationBuffers.add_many and Aggregator.add_batch equal adding points one by one."""

import math
import random

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.core.aggregate.aggregator import Aggregator
from cadent.core.aggregate.buffers import AggregationBuffers

T0 = 1_700_000_000.5
TS = 1_699_999_980


def one_by_one(points, **kw):
    b = AggregationBuffers(**kw)
    results = [b.add("out", 10, "sum", ts, v, T0) for ts, v in points]
    return b, sum(results)


def batched(points, **kw):
    b = AggregationBuffers(**kw)
    return b, b.add_many("out", 10, "sum", points, T0)


def state(b):
    return ({name: {k: list(v) for k, v in buf.intervals.items()} for name, buf in b.buffers.items()},
            b.buffered_datapoints, b.dropped_points, b.bad_timestamps, b.flush_all())


def test_one_interval_fast_path():
    points = [(TS + i % 10, float(i)) for i in range(50)]
    (a, na), (b, nb) = one_by_one(points), batched(points)
    assert na == nb == 50
    assert state(a) == state(b)


def test_mixed_intervals_nan_and_inf_stamps():
    points = [(TS, 1.0), (TS + 15, 2.0), (math.nan, 3.0), (math.inf, 4.0), (TS + 1.5, 5.0)]
    (a, na), (b, nb) = one_by_one(points), batched(points)
    assert na == nb == 3
    assert state(a) == state(b)
    assert b.bad_timestamps == 2


def test_nan_hidden_behind_a_good_first_stamp():
    points = [(TS, 1.0), (math.nan, 2.0), (TS + 2, 3.0)]
    b, n = batched(points)
    assert n == 2 and b.bad_timestamps == 1


def test_point_bound_applies_per_point():
    points = [(TS, float(i)) for i in range(10)]
    (a, na), (b, nb) = one_by_one(points, max_points=4), batched(points, max_points=4)
    assert na == nb == 4
    assert state(a) == state(b)
    assert b.dropped_points == 6


def test_buffer_bound_drops_the_whole_group():
    b = AggregationBuffers(max_buffers=1)
    b.add("first", 10, "sum", TS, 1.0, T0)
    assert b.add_many("second", 10, "sum", [(TS, 1.0), (TS, 2.0)], T0) == 0
    assert b.dropped_points == 2


def test_add_batch_matches_per_point_adds_in_order():
    rules = parse_aggregation_rules(
        "x.<a>.sum (10) = sum in.<a>.*\n"
        "x.all (10) = avg in.*.*\n"
        "x.all (60) = max in.<a>.*\n"   # same output, other rule: the first one configures it
    )
    rng = random.Random(7)
    batch = [(f"in.{rng.choice('abc')}.{i}", (TS + rng.randrange(30), rng.random())) for i in range(300)]
    fast = Aggregator(rules)
    forwarded = fast.add_batch(batch, T0)
    slow = Aggregator(rules)
    for name, (ts, value) in batch:
        for output, freq, method in slow.matches(name)[0]:
            slow.buffers.add(output, freq, method, ts, value, T0)
    assert forwarded == batch
    assert state(fast.buffers) == state(slow.buffers)
