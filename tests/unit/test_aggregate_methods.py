"""Aggregation methods: values carbon-aggregator computes, checked by hand and against carbon."""

import math
import random

import pytest

from cadent.compat.aggregation_rules import AGGREGATION_METHODS
from cadent.core.aggregate.methods import METHODS, method, percentile


def test_every_rule_method_has_a_function():
    assert set(METHODS) == set(AGGREGATION_METHODS)


def test_carbon_method_set_is_covered():
    from carbon.aggregator.rules import AGGREGATION_METHODS as carbon_methods

    assert set(METHODS) == set(carbon_methods)


@pytest.mark.parametrize(
    "name, values, expected",
    [
        ("sum", [1.0, 2.0, 6.0], 9.0),
        ("avg", [1.0, 2.0, 6.0, 10.0], 4.75),
        ("avg", [3], 3.0),
        ("min", [4.0, -1.5, 2.0], -1.5),
        ("max", [4.0, -1.5, 2.0], 4.0),
        ("count", [4.0, 4.0, 4.0], 3),
        ("p50", [1.0, 2.0, 6.0], 2.0),
        ("p50", [1.0, 2.0, 3.0, 4.0], 2.5),
        ("p75", [1.0, 2.0, 3.0, 4.0, 5.0], 4.0),
        ("p80", [10.0, 20.0], 18.0),
        ("p90", [1.0, 2.0, 6.0], 5.2),
        ("p95", [0.0, 100.0], 95.0),
        ("p99", [0.0, 100.0], 99.0),
        ("p999", [0.0, 1000.0], 999.0),
        ("p90", [7.0], 7.0),
    ],
)
def test_examples(name, values, expected):
    assert method(name)(values) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_p90_interpolates_unsorted_input():
    assert percentile(0.9)([6.0, 1.0, 2.0]) == pytest.approx(5.2)


def test_count_is_an_int_and_avg_a_float():
    assert type(method("count")([1.0, 2.0])) is int
    assert type(method("avg")([1, 2])) is float


def test_percentile_does_not_reorder_the_callers_list():
    values = [3.0, 1.0, 2.0]
    method("p50")(values)
    assert values == [3.0, 1.0, 2.0]


def test_unknown_method_is_a_clear_error():
    with pytest.raises(KeyError, match="median"):
        method("median")


def test_bit_identical_to_carbon_on_random_lists():
    from carbon.aggregator.rules import AGGREGATION_METHODS as carbon_methods

    rng = random.Random(7)
    for _ in range(300):
        values = [rng.choice([rng.uniform(-1e6, 1e6), float(rng.randint(-5, 5)), 0.1 * rng.randint(0, 99)])
                  for _ in range(rng.randint(1, 40))]
        for name, func in METHODS.items():
            mine, theirs = func(list(values)), carbon_methods[name](list(values))
            assert mine == theirs or (math.isnan(mine) and math.isnan(theirs)), (name, values)
            assert type(mine) is type(theirs)
