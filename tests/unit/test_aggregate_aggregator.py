"""Aggregator: rule matching on batches, FORWARD_ALL, capture forms, match cache, stats."""

import pytest

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.core.aggregate.aggregator import Aggregator

NOW = 1_700_000_000.5
TS = 1_699_999_980


def agg(text, **kw):
    return Aggregator(parse_aggregation_rules(text), **kw)


def run(a, batch, wait=60):
    forwarded = a.add_batch(batch, NOW)
    return forwarded, a.tick(NOW + wait)


@pytest.mark.parametrize(
    "rule, names, expected_outputs",
    [
        # <f>: one part
        ("x.<a>.total (10) = sum x.<a>.*", ["x.g1.h", "x.g2.h", "x.g1.h.extra"], {"x.g1.total", "x.g2.total"}),
        # <<f>>: may span dots, output still writes <f>
        ("y.<a>.all (10) = sum y.<<a>>.end", ["y.p.q.r.end", "y.s.end"], {"y.p.q.r.all", "y.s.all"}),
        # field with literal text around it inside one part
        ("z.<a>.sum (10) = sum z.pre-<a>-post.v", ["z.pre-k1-post.v", "z.k2.v"], {"z.k1.sum"}),
        # bare * must match a non-empty part; partial * may be empty
        ("w.all (10) = sum w.*.v", ["w..v", "w.a.v"], {"w.all"}),
        ("w.all (10) = sum w.a*.v", ["w.a.v", "w.ab.v", "w.b.v"], {"w.all"}),
        # regex metacharacters stay live
        ("m.out (10) = sum m.(a|b).v", ["m.a.v", "m.b.v", "m.c.v"], {"m.out"}),
        # two fields, reordered in the output
        ("<b>.<a>.n (10) = count <a>.<b>.n", ["s1.h1.n", "s1.h2.n"], {"h1.s1.n", "h2.s1.n"}),
    ],
)
def test_capture_forms(rule, names, expected_outputs):
    a = agg(rule)
    _, aggregates = run(a, [(n, (TS, 1.0)) for n in names])
    assert {name for name, _ in aggregates} == expected_outputs


def test_anchored_at_both_ends():
    a = agg("o (10) = sum a.b")
    _, aggregates = run(a, [("xa.b", (TS, 1.0)), ("a.bc", (TS, 1.0)), ("a.b", (TS, 2.0))])
    assert aggregates == [("o", (TS, 2.0))]


@pytest.mark.parametrize(
    "method, expected",
    [("sum", 9.0), ("avg", 3.0), ("min", 1.0), ("max", 6.0), ("count", 3), ("p50", 2.0),
     ("p75", 4.0), ("p80", 4.4), ("p90", 5.2), ("p95", 5.6), ("p99", 5.92), ("p999", 5.992)],
)
def test_every_method_through_the_aggregator(method, expected):
    a = agg(f"out (10) = {method} in.*")
    _, aggregates = run(a, [("in.a", (TS, 1.0)), ("in.b", (TS + 3, 2.0)), ("in.c", (TS + 9, 6.0))])
    assert len(aggregates) == 1
    name, (ts, value) = aggregates[0]
    assert (name, ts) == ("out", TS)
    assert value == pytest.approx(expected)


def test_forward_all_forwards_everything_but_points_that_feed_their_own_name():
    a = agg("agg.<g>.total (10) = sum agg.<g>.*\nself (10) = sum self\nx.total (10) = sum x.*")
    batch = [
        ("agg.g1.h1", (TS, 1.0)),
        ("plain", (TS, 2.0)),
        ("self", (TS, 3.0)),          # its only output is itself: not forwarded
        ("agg.g1.total", (TS, 4.0)),  # matches agg.<g>.* and yields its own name: not forwarded
        ("x.total", (TS, 5.0)),       # yields x.total, its own name: not forwarded
        ("x.total.z", (TS, 6.0)),     # an output's name only as input of nothing: forwarded
    ]
    forwarded, aggregates = run(a, batch)
    assert forwarded == [batch[0], batch[1], batch[5]]
    assert dict(aggregates) == {"agg.g1.total": (TS, 5.0), "self": (TS, 3.0), "x.total": (TS, 5.0)}


def test_forward_all_off_forwards_nothing():
    a = agg("o (10) = sum a.*", forward_all=False)
    forwarded, aggregates = run(a, [("a.x", (TS, 1.0)), ("b", (TS, 1.0))])
    assert forwarded == [] and aggregates == [("o", (TS, 1.0))]


def test_two_rules_with_same_output_add_the_value_twice_first_rule_configures():
    a = agg("o (10) = sum a.*\no (60) = avg a.x")
    _, aggregates = run(a, [("a.x", (TS, 5.0)), ("a.y", (TS, 1.0))])
    assert aggregates == [("o", (TS, 11.0))]


def test_match_cache_is_bounded_and_still_correct():
    a = agg("o (10) = count a.*", match_cache_size=8)
    batch = [(f"a.{i}", (TS, 1.0)) for i in range(100)] * 2
    _, aggregates = run(a, batch)
    assert len(a._matches) <= 8
    assert aggregates == [("o", (TS, 200))]


def test_replace_rules_keeps_unchanged_buffers_and_uses_new_matches():
    a = agg("o (10) = sum a.*")
    a.add_batch([("a.x", (TS, 1.0))], NOW)
    a.replace_rules(parse_aggregation_rules("o (10) = sum b.*"))
    forwarded = a.add_batch([("a.x", (TS, 10.0)), ("b.x", (TS, 2.0))], NOW + 1)
    assert len(forwarded) == 2
    assert a.tick(NOW + 10) == [("o", (TS, 3.0))]


def test_stats_carbon_names_and_per_report_counter():
    a = agg("o.<x> (10) = sum a.<x>")
    a.add_batch([("a.1", (TS, 1.0)), ("a.2", (TS, 1.0)), ("a.2", (TS, 1.0))], NOW)
    assert a.take_stats() == {"allocatedBuffers": 2, "bufferedDatapoints": 3, "aggregateDatapointsSent": 0}
    a.tick(NOW + 10)
    assert a.take_stats()["aggregateDatapointsSent"] == 2
    assert a.take_stats()["aggregateDatapointsSent"] == 0
    assert a.datapoints_received == 3


def test_rule_that_cannot_name_output_is_logged_and_skipped(caplog):
    class Broken:
        frequency, method = 10, "sum"

        def output_for(self, name):
            raise KeyError("f")

    a = Aggregator([Broken()] + parse_aggregation_rules("o (10) = sum a"))
    forwarded = a.add_batch([("a", (TS, 1.0))], NOW)
    assert forwarded == [("a", (TS, 1.0))]
    assert a.rule_errors == 1
    assert a.tick(NOW + 10) == [("o", (TS, 1.0))]
