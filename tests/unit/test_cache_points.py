"""The cache's store loop: its compiled twin adds the same points, counts the same and fails the
same way as the Python source."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadent.compiled import python_twin
from cadent.core import cache_points
from tests.unit.twins import outcome, twins, typed

MODULE = "cadent.core.cache_points"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.sampled_from(["a", "a.b", "servers.web1.cpu", "x;tag=1", "ü.name"])
TIMESTAMPS = st.sampled_from([0.0, 60.0, 1700000000.0, 1700000060.0, -0.0, 60, 1700000000,
                              float("nan")])
VALUES = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5)
POINT = st.tuples(NAMES, st.tuples(TIMESTAMPS, VALUES))
BATCHES = st.lists(st.lists(POINT, max_size=20), max_size=6)


@pytest.fixture(scope="module")
def both():
    return twins(MODULE)


def _store(module, batches):
    data, new, since, stamps = {}, {}, {}, {}
    added = [module.add_points(list(batch), data, new, since, seq, stamps)
             for seq, batch in enumerate(batches, 1)]
    return data, new, since, stamps, added


def _state(data, new, since, stamps, added):
    return typed(data), list(new), since, typed(list(stamps)), added


@FUZZ
@given(BATCHES)
def test_same_points_and_counts_as_python(both, batches):
    compiled, python = both
    assert _state(*_store(compiled, batches)) == _state(*_store(python, batches))


@FUZZ
@given(BATCHES)
def test_counts_match_what_the_map_holds(both, batches):
    for module in both:
        data, _new, _since, _stamps, added = _store(module, batches)
        assert sum(added) == sum(map(len, data.values()))


@pytest.mark.parametrize("module", [cache_points, python_twin(MODULE)], ids=["chosen", "python"])
def test_equal_float_timestamps_share_one_object(module):
    data, new, since, stamps = {}, {}, {}, {}
    module.add_points([("a", (float("60"), 1.0)), ("b", (float("60"), 2.0))], data, new, since,
                      1, stamps)
    (ts_a,), (ts_b,) = data["a"], data["b"]
    assert ts_a is ts_b
    module.add_points([("c", (60, 3.0))], data, new, since, 2, stamps)
    assert type(next(iter(data["c"]))) is int  # an int timestamp is not turned into a float
    assert since == {"a": 1, "b": 1, "c": 2} and list(new) == ["a", "b", "c"]


@pytest.mark.parametrize("items", [
    [("a", (1.0, 2.0)), ("b", (1.0,))],
    [("a", (1.0, 2.0)), ("b",)],
    [("a", 1.0)],
    [None],
    [("a", (1.0, 2.0, 3.0))],
    [(["unhashable"], (1.0, 2.0))],
    [("a", ({}, 2.0))],
])
def test_malformed_items_fail_the_same_way(both, items):
    results = []
    for module in both:
        data, new, since, stamps = {}, {}, {}, {}
        result = outcome(lambda: module.add_points(items, data, new, since, 1, stamps))
        results.append((result, typed(data), list(new)))
    assert results[0] == results[1]
