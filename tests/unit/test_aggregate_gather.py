"""The aggregator's batch-wise hot path: compiled twin against its Python source.

``cadent.core.aggregate.gather`` runs as its compiled extension wherever it is built; here every
function is also run as a fresh copy of the Python source (``python_twin``) on the same random
and adversarial input (NaN, infinite, integer and huge timestamps, repeated names, rule
reloads, both bounds), and the results, the state they leave and what they raise must be the
same. Skips, saying why, only when the extension is not built (fails instead under
``CADENT_REQUIRE_COMPILED``).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cadent.core.aggregate.aggregator as aggregator_module
import cadent.core.aggregate.buffers as buffers_module
from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.core.aggregate.aggregator import Aggregator
from tests.unit.twins import outcome, typed
from tests.unit.twins import twins as module_twins

GATHER = "cadent.core.aggregate.gather"
T0 = 1_700_000_000

EXAMPLES = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def twins():
    return module_twins(GATHER)


# close together, so that groups often share an interval and often end on its boundary
stamps = st.one_of(
    st.integers(T0 - 20, T0 + 20),
    st.integers(T0 - 20, T0 + 20).map(float),
    st.floats(T0 - 20, T0 + 20),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0, 2**53 + 1, 10**400, -(10**30),
                     1e300, float(T0) + 0.5]),
)
values = st.one_of(st.floats(allow_nan=True), st.integers(-10**6, 10**6))
pairs = st.lists(st.tuples(stamps, values), max_size=30)
frequencies = st.sampled_from([1, 5, 7, 10, 60, 3600])


@EXAMPLES
@given(pairs=pairs, frequency=frequencies)
def test_common_interval(twins, pairs, frequency):
    compiled, python = twins
    assert outcome(lambda: compiled.common_interval(pairs, frequency)) == \
        outcome(lambda: python.common_interval(pairs, frequency))


def test_common_interval_examples(twins):
    for module in twins:
        assert module.common_interval([(T0 + 1.5, 1.0), (T0 + 9, 2)], 10) == T0 - T0 % 10
        assert type(module.common_interval([(T0 + 1.5, 1.0)], 10)) is float
        assert type(module.common_interval([(T0 + 1, 1.0), (T0 + 2.0, 1.0)], 10)) is int
        assert module.common_interval([(T0, 1.0), (T0 + 10, 1.0)], 10) is None
        start = float(T0 - T0 % 10)
        assert module.common_interval([(start, 1.0), (start + 9.999, 1.0)], 10) == start
        assert module.common_interval([(start, 1.0), (start + 10, 1.0)], 10) is None
        assert module.common_interval([(start, 1.0), (start - 0.001, 1.0)], 10) is None
        assert module.common_interval([(float(T0), 1.0), (math.nan, 1.0)], 10) is None
        assert module.common_interval([(float(T0), 1.0), (math.inf, 1.0)], 10) is None
        assert module.common_interval([], 10) is None


NAMES = [f"in.{g}.{h}" for g in "abc" for h in range(4)] + ["out.a", "plain"]
batches = st.lists(st.tuples(st.sampled_from(NAMES), st.tuples(stamps, values)), max_size=60)


def _match_table(draw_outputs):
    """A match function over NAMES built from drawn ``(outputs, forward)`` per name, and the
    list of names it was asked for."""
    asked = []

    def match(name):
        asked.append(name)
        return draw_outputs[name]

    return match, asked


targets = st.tuples(st.sampled_from(["out.a", "out.b", "out.all"]), frequencies,
                    st.sampled_from(["sum", "avg"]))
entries = st.tuples(st.lists(targets, max_size=3).map(tuple), st.booleans())


@EXAMPLES
@given(batch=batches, table=st.fixed_dictionaries({name: entries for name in NAMES}),
       cached=st.sets(st.sampled_from(NAMES)))
def test_group_by_output(twins, batch, table, cached):
    results = []
    for module in twins:
        matches = {name: table[name] for name in cached}
        match, asked = _match_table(table)

        def fill(name, matches=matches, match=match):
            entry = matches[name] = match(name)
            return entry

        groups, firsts, forwarded = module.group_by_output(batch, matches, fill)
        results.append((typed(groups), typed(firsts), typed(forwarded), asked,
                        forwarded is batch))
        expected_forward = [item for item in batch if table[item[0]][1]]
        assert forwarded == expected_forward
    assert results[0] == results[1]


def _buffer(frequency, generation, intervals):
    return SimpleNamespace(frequency=frequency, generation=generation,
                           intervals={k: list(v) for k, v in intervals.items()}, active=set())


@EXAMPLES
@given(groups=st.lists(st.tuples(st.sampled_from(["o1", "o2", "o3", "o4"]), pairs.filter(bool)),
                       max_size=6, unique_by=lambda g: g[0]),
       live=st.sets(st.sampled_from(["o1", "o2", "o3", "o4"])),
       stale=st.sets(st.sampled_from(["o1", "o2", "o3", "o4"])),
       frequency=frequencies, start=st.integers(0, 3), room=st.integers(0, 100))
def test_take_groups(twins, groups, live, stale, frequency, start, room):
    results = []
    for module in twins:
        buffers = {name: _buffer(frequency, 1 if name in stale else 2,
                                 {T0 - T0 % frequency: [1.0]})
                   for name in live}
        grouped = {name: list(ps) for name, ps in groups}
        firsts = [(name, frequency, "sum") for name, _ in groups]
        got = outcome(lambda: module.take_groups(buffers, 2, grouped, firsts, start, room))
        state = {name: (typed(b.intervals), typed(b.active)) for name, b in buffers.items()}
        results.append((got, state))
    assert results[0] == results[1]


RULES = """\
x.<a>.sum (10) = sum in.<a>.*
x.all (10) = avg in.*.*
x.all (60) = max in.<a>.*
out.a (5) = count out.a
"""
RELOADED = """\
x.<a>.sum (10) = sum in.<a>.*
x.all (60) = max in.*.*
"""


def _state(agg):
    b = agg.buffers
    return (typed({n: (buf.frequency, buf.method_name, buf.intervals, buf.active)
                   for n, buf in b.buffers.items()}),
            b.buffered_datapoints, b.dropped_points, b.bad_timestamps, b.allocated_buffers)


@EXAMPLES
@given(schedule=st.lists(st.tuples(batches, st.integers(0, 3), st.booleans()), max_size=12),
       forward_all=st.booleans(), max_buffers=st.integers(1, 6), max_points=st.integers(1, 200))
def test_aggregator_runs_the_same_on_both(twins, monkeypatch, schedule, forward_all,
                                          max_buffers, max_points):
    """Whole aggregators, one on each twin: same forwarded points, aggregates and state."""
    compiled, python = twins
    runs = []
    for module in twins:
        monkeypatch.setattr(aggregator_module, "group_by_output", module.group_by_output)
        monkeypatch.setattr(buffers_module, "take_group", module.take_group)
        monkeypatch.setattr(buffers_module, "take_groups", module.take_groups)
        agg = Aggregator(parse_aggregation_rules(RULES), forward_all=forward_all,
                         max_buffers=max_buffers, max_points=max_points)
        log = []
        now = float(T0)
        for batch, advance, reload in schedule:
            if reload:
                agg.replace_rules(parse_aggregation_rules(RELOADED))
            log.append(("fwd", typed(agg.add_batch(batch, now))))
            now += advance * 2.5
            log.append(("tick", typed(agg.tick(now)), _state(agg)))
        log.append(("flush", typed(agg.flush_all())))
        runs.append(log)
    assert runs[0] == runs[1]
