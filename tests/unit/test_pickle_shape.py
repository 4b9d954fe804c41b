"""carbon's pickled batch shape: the compiled twin hands on the same lists as they stand and
answers everything else exactly as the Python source."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit.twins import outcome, twins

MODULE = "cadent.core.parse.pickle_shape"
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAME = st.sampled_from(["a.b", "servers.web-1.cpu", "", "a b", "a\tb", "a\x1cb", "a\x1fb", "a\x00b",
                        "ü.name", "a\u2003b", "a\x85b", "a\u00a0b", "\ud800", "x\udc00y", "a;t=v",
                        "é", "a\u2028b", "a\u200bb", "\u3000", "\U0001f600.x"]) | st.text(max_size=12)
NUMBER = (st.floats() | st.sampled_from([-1.0, -1.0000001, -0.99, -0.0, 1e308, 2.0 ** 1023])
          | st.integers(-3, 3) | st.just(2 ** 1100) | st.booleans() | st.just("1.5") | st.none())
POINT = st.tuples(NUMBER, NUMBER) | st.lists(NUMBER, max_size=3).map(tuple) | st.lists(NUMBER, max_size=2)
ITEM = st.tuples(NAME, POINT) | st.tuples(NAME, POINT, NAME) | st.lists(NAME, max_size=2) | NUMBER \
    | st.tuples(st.binary(max_size=3), POINT)
CARBON_ITEM = st.tuples(NAME, st.tuples(st.floats(), st.floats()))


@pytest.fixture(scope="module")
def both():
    return twins(MODULE)


def _answers(module, obj, resolution):
    result = outcome(lambda: module.carbon_batch(obj, resolution))
    return module.carbon_batch(obj, resolution) is obj if result[0] == "ok" else None, result


@FUZZ
@given(st.lists(ITEM | CARBON_ITEM, max_size=8) | st.lists(CARBON_ITEM, min_size=1, max_size=8),
       st.sampled_from([0, 0, 60]))
@example([("a.b", (1.0, 2.0))], 0)
@example([("a.b", (-1.0, 2.0))], 0)
@example([("a b", (1.0, 2.0))], 0)
@example([("a.b", (1.0, 2.0)), ("é", (1e308, 1e308))], 0)
def test_same_answer_as_python(both, obj, resolution):
    compiled, python = both
    assert _answers(compiled, obj, resolution) == _answers(python, obj, resolution)


@FUZZ
@given(st.lists(CARBON_ITEM, min_size=1, max_size=8))
def test_same_answer_after_a_pickle_round_trip(both, obj):
    """What the receiver really sees: a list fresh from the unpickler."""
    compiled, python = both
    body = pickle.dumps(obj, protocol=2)
    assert _answers(compiled, pickle.loads(body), 0) == _answers(python, pickle.loads(body), 0)


@pytest.mark.parametrize("obj", [[], (("a", (1.0, 2.0)),), None, "a", [("a", (1.0, 2.0))] * 3])
def test_odd_containers_same_as_python(both, obj):
    compiled, python = both
    assert _answers(compiled, obj, 0) == _answers(python, obj, 0)


def test_a_clean_batch_goes_on_as_it_stands(both):
    obj = [("a.b", (1700000000.0, 1.5)), ("ü.c", (1700000060.0, -2.0))]
    for module in both:
        assert module.carbon_batch(obj) is obj
        names, timestamps, values = module.carbon_batch(obj, 60)
        assert names == ["a.b", "ü.c"] and timestamps == [1700000000.0, 1700000060.0]
        assert module.carbon_batch([("a.b", (1700000000, 1))]) == (["a.b"], [1.7e9], [1.0])
        assert module.carbon_batch([("a b", (1.0, 1.0))]) is None
