"""The compiled line encoder and batch router against their Python source.

``cadent.core.encode.plaintext`` is run as its compiled extension and as a fresh copy of its
Python source (``python_twin``) on random and adversarial batches (odd floats, huge and
negative ints, NaN/inf, bools, non-str names, unicode, lone surrogates, malformed points) and
must give the same bytes, exceptions and log lines. ``cadent.core.route.routers`` is run
both ways on random routers (every hashing method, replication, tag normalisation, relay
rules with unroutable names, a small placement cache) and must split every batch the same
way and count the same unroutable points. The comparisons skip only when an extension was
not built (and fail instead when ``CADENT_REQUIRE_COMPILED`` is set). The per-point helpers
the compiled twins use are also run as Python against the reference paths, so their logic is
checked even without a compiler.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.compiled import python_twin
from cadent.core.route.destination import parse_destinations
from tests.unit.twins import LogCapture, twins

ENCODE = "cadent.core.encode.plaintext"
ROUTERS = "cadent.core.route.routers"

FUZZ = settings(max_examples=150, deadline=None, database=None)


@pytest.fixture(scope="module")
def encode():
    return twins(ENCODE)


@pytest.fixture(scope="module")
def python_encode():
    return python_twin(ENCODE)


def run_logged(call):
    """(("ok", result) or ("raised", exception type and text), log records) of ``call()``."""
    with LogCapture(names=True) as logs:
        try:
            returned = call()
            result = ("ok", type(returned).__name__, returned)
        except Exception as exc:
            result = ("raised", type(exc).__name__, str(exc))
    return result, logs.messages


class Name(str):
    """A str subclass with its own text: formatting must go through ``str()``."""

    def __str__(self) -> str:
        return "sub." + str.__str__(self)


class Gauge(float):
    """A float subclass (as numpy.float64 is)."""


class Count(int):
    """An int subclass whose ``%d`` text is its value."""


class Exploding:
    """A name whose ``str()`` fails with an error the encoder does not catch."""

    def __str__(self) -> str:
        raise RuntimeError("no text")


ODD_FLOATS = st.sampled_from([
    0.0, -0.0, 1e-12, -1e-12, 5e-11, 1 / 2048, 0.1, 2.5, -2.5, 1e15, -1e15, 1e15 - 1,
    999999999999999.9, 1e18, -1e18, 1e18 - 128, 9.2e18, 1e20, 1e308, -1e308, 5e-324,
    math.inf, -math.inf, math.nan, -math.nan, 2.0 ** 53, 2.0 ** 63, 123456789.123456789,
])
FLOATS = st.floats() | ODD_FLOATS | st.integers(-10 ** 6, 10 ** 6).map(float)
INTS = st.integers() | st.integers(-2 ** 70, 2 ** 70) | st.sampled_from(
    [0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 64, 10 ** 18, -10 ** 18, 10 ** 40])
NUMBERS = FLOATS | INTS | st.booleans() | FLOATS.map(Gauge) | INTS.map(Count)
JUNK = st.sampled_from([None, "1", b"2", [1], (1, 2), 1j, Exploding()])
NAMES = (st.from_regex(r"\A[a-z0-9_.;=-]{0,40}\Z")
         | st.text(max_size=30)
         | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1,
                   max_size=3)
         | st.sampled_from(["métrique.é", "日本.語", "a\x00b", "tab\tname", "nl\nname", "€"])
         | st.text(max_size=10).map(Name)
         | st.integers(-10, 10) | st.none() | st.binary(max_size=5) | st.tuples(st.integers()))
TIMESTAMPS = NUMBERS | st.sampled_from([1700000000.0, 1700000000.9, -1.5, 0.99]) | JUNK
VALUES = NUMBERS | JUNK


def _point(name, ts, value, shape):
    if shape == 0:
        return (name, (ts, value))
    if shape == 1:
        return [name, [ts, value]]
    if shape == 2:
        return (name, (ts, value, 1))
    if shape == 3:
        return (name,)
    if shape == 4:
        return name
    return (name, ts)


POINT = st.builds(_point, NAMES, TIMESTAMPS, VALUES,
                  st.integers(0, 5) | st.just(0) | st.just(0) | st.just(0))
USUAL_POINT = st.builds(lambda n, t, v: (n, (t, v)),
                        st.from_regex(r"\A[a-z][a-z0-9_.]{0,60}\Z"),
                        st.floats(1e9, 2e9) | st.integers(0, 2 * 10 ** 9),
                        FLOATS | st.integers(-10 ** 12, 10 ** 12))
BATCHES = st.lists(POINT, max_size=25) | st.lists(USUAL_POINT, max_size=60)


@FUZZ
@given(BATCHES)
def test_lines_same_as_python(encode, batch):
    compiled, python = encode
    assert run_logged(lambda: compiled.encode_lines(batch)) == \
        run_logged(lambda: python.encode_lines(batch))


@FUZZ
@given(BATCHES)
def test_direct_writer_as_python_agrees_with_formatting(python_encode, batch):
    """The direct writer's own source, run as Python: the reference bytes, or None exactly
    when the reference leaves a point out (or raises)."""
    direct = run_logged(lambda: python_encode._encode_direct(batch))
    reference = run_logged(lambda: python_encode.encode_lines(batch))
    (outcome, kind, result), _ = direct
    if outcome == "ok" and result is not None:
        assert direct == reference
    elif outcome == "ok":
        assert reference[1] or reference[0][0] == "raised"
    else:
        assert reference[0][0] == "raised"


@pytest.mark.parametrize("batch", [
    [], [("a", (1.0, 2.0))], (("a", (1.0, 2.0)),), None, 5,
    [("a", (1.0, 2.0))] * 3 + [None], [("a" * 100_000, (1e300, -1e300))] * 3,
    [("m", (1700000000.0, float(i))) for i in range(-500, 500)],
    [("m", (float("nan"), 1.0)), ("n", (1.0, float("nan")))],
    [(Exploding(), (1.0, 1.0))], [("a\ud800", (1.0, 1.0)), (Exploding(), (1.0, 1.0))],
])
def test_edge_batches_same_as_python(encode, batch):
    compiled, python = encode
    assert run_logged(lambda: compiled.encode_lines(batch)) == \
        run_logged(lambda: python.encode_lines(batch))


def test_iterator_batch_same_as_python(encode):
    compiled, python = encode
    points = [("a", (1.0, 2.0)), ("b", (math.nan, 1.0)), ("c", (3.0, 4.0))]
    assert run_logged(lambda: compiled.encode_lines(iter(points))) == \
        run_logged(lambda: python.encode_lines(iter(points)))


def test_large_batch_grows_the_buffer(encode):
    compiled, python = encode
    batch = [("n.%d.%s" % (i, "x" * (i % 300)), (1.7e9 + i, 1e300 / (i + 1))) for i in range(3000)]
    assert compiled.encode_lines(batch) == python.encode_lines(batch)


def test_log_line_names_the_module(encode, caplog):
    compiled, _ = encode
    with caplog.at_level(logging.WARNING):
        compiled.encode_lines([("a", (math.nan, 1.0))])
    assert [r.name for r in caplog.records] == ["cadent.core.encode.plaintext"]


def test_the_import_picks_the_compiled_twin_unless_pure_python_is_asked(encode):
    import subprocess

    code = ("import cadent.core.encode.plaintext as p; print(p.encode_lines.__module__)")
    env = {k: v for k, v in os.environ.items() if k != "CADENT_PURE_PYTHON"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    pure = subprocess.run([sys.executable, "-c", code], env={**env, "CADENT_PURE_PYTHON": "1"},
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert out == "cadent.core.encode._cadent_c_plaintext"
    assert pure == ENCODE


# --- routing ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def routers():
    return twins(ROUTERS)


@dataclass
class Rule:
    pattern: re.Pattern[str] | None
    destinations: list[str]
    continue_matching: bool = False
    is_default: bool = False


DESTINATIONS = parse_destinations([f"10.0.0.{h}:{p}:{i}" for h in range(1, 5)
                                   for p, i in ((2004, "a"), (2104, "b"))])
RULES = [
    Rule(re.compile(r"^cpu\."), ["10.0.0.1:2004:a", "10.0.0.2:2104:b"], continue_matching=True),
    Rule(re.compile(r"user"), ["10.0.0.2:2104:b", "10.0.0.3:2004:a"]),
    Rule(re.compile(r"^mem"), ["10.0.0.4:2104:b"]),
]
AGGREGATION = parse_aggregation_rules("servers.all.<m> (60) = avg servers.*.<m>")

ROUTER_SPECS = st.tuples(
    st.sampled_from(["rules", "rules-with-default", "consistent-hashing", "fast-hashing",
                     "aggregated-consistent-hashing", "fast-aggregated-hashing"]),
    st.integers(1, 8), st.integers(1, 3), st.booleans(), st.booleans(),
    st.sampled_from([1, 3, 200_000]))
ROUTE_NAMES = (st.sampled_from(["cpu.user", "cpu.sys", "mem.free", "disk.io", "servers.a.x",
                                "servers.b.x", "a;tag=1;b=2", "a;b=2;tag=1", "user.x", "é.ü"])
               | st.from_regex(r"\A[a-z.;=]{1,12}\Z") | st.text(max_size=8))
ROUTE_BATCHES = st.lists(st.lists(st.builds(lambda n, v: (n, (1700000000.0, v)), ROUTE_NAMES,
                                            st.floats(allow_nan=False)), max_size=30),
                         min_size=1, max_size=4)


def _router(module, spec):
    method, count, rf, diverse, normalized, cache_names = spec
    dests = DESTINATIONS[:count]
    if method.startswith("rules"):
        rules = list(RULES) + ([Rule(None, ["10.0.0.1:2104:b"], is_default=True)]
                               if method == "rules-with-default" else [])
        return module.build_router("rules", dests, relay_rules=rules,
                                   tag_relay_normalized=normalized, cache_names=cache_names)
    return module.build_router(method, dests, replication_factor=rf, diverse_replicas=diverse,
                               tag_relay_normalized=normalized, aggregation_rules=AGGREGATION,
                               cache_names=cache_names)


def _routed_run(module, spec, batches):
    router = _router(module, spec)
    steps = []
    for batch in batches:
        try:
            routed = router.route_batch(list(batch))
            steps.append(("ok", {str(dest): points for dest, points in routed.items()},
                          router.unroutable))
        except Exception as exc:
            steps.append(("raised", type(exc).__name__, str(exc)))
        router.unroutable = 0
    return steps


@FUZZ
@given(ROUTER_SPECS, ROUTE_BATCHES)
def test_routing_same_as_python(routers, spec, batches):
    compiled, python = routers
    assert _routed_run(compiled, spec, batches) == _routed_run(python, spec, batches)


@FUZZ
@given(ROUTER_SPECS, ROUTE_BATCHES)
def test_grouped_routing_as_python_agrees_with_split(spec, batches):
    """The compiled twin's one-pass routing, run as Python, splits as the reference does."""
    python = python_twin(ROUTERS)
    grouped, reference = _router(python, spec), _router(python, spec)
    for batch in batches:
        if len(grouped._cache) >= grouped.cache_names:
            grouped.clear_cache()
        assert grouped._route_grouped(list(batch)) == reference.route_batch(list(batch))
        assert grouped.unroutable == reference.unroutable


def test_unhashable_name_raises_the_same(routers):
    compiled, python = routers
    spec = ("consistent-hashing", 2, 1, True, False, 100)
    batches = [[("a", (1.0, 1.0)), (["x"], (1.0, 1.0))], [("a", (1.0, 1.0))]]
    assert _routed_run(compiled, spec, batches) == _routed_run(python, spec, batches)
