"""statsd's flush, compiled against its Python source: the same graphite text, byte for byte.

``cadent.statsd.numbers`` (``js_str``: JavaScript's Number → String), ``cadent.statsd.store``
(updates folded into the maps), ``cadent.statsd.flush`` (timer statistics) and
``cadent.statsd.graphite`` (the flush's lines) have compiled twins. Each is run beside a fresh
copy of its Python source (``python_twin``) on the same numbers, names and whole flushes; the
text must be identical. The Python ``js_str`` takes a fast path through ``repr()``; it is also
checked against the general path that follows ``Number::toString`` step by step, and both
against values JavaScript prints. The differential tests skip only when the extensions were
not built, and fail instead when ``CADENT_REQUIRE_COMPILED`` is set.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cadent.compiled import pure_python_requested, python_twin
from cadent.statsd.config import statsd_settings
from tests.unit.test_statsd_fuzz import _PACKET as STATSD_PACKET
from tests.unit.twins import twins

NUMBERS = "cadent.statsd.numbers"
GRAPHITE = "cadent.statsd.graphite"
FLUSH = "cadent.statsd.flush"
STORE = "cadent.statsd.store"
ENGINE = "cadent.statsd.engine"

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=_SLOW_OK)
LINES_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=_SLOW_OK)
FLUSH_FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=_SLOW_OK)


@pytest.fixture(scope="module")
def numbers():
    return twins(NUMBERS)


@pytest.fixture(scope="module")
def graphite():
    return twins(GRAPHITE)


@pytest.fixture(scope="module")
def flush():
    return twins(FLUSH)


@pytest.fixture(scope="module")
def store():
    return twins(STORE)


@pytest.fixture(scope="module")
def python_numbers():
    """The Python source of numbers.py, built or not."""
    return python_twin(NUMBERS)


def outcome(call):
    """What ``call()`` returned, or the type of what it raised."""
    try:
        return "ok", call()
    except Exception as exc:
        return "raised", type(exc).__name__


# --- numbers ----------------------------------------------------------------------------------

def _from_bits(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


# Every bit pattern is a double: subnormals, both zeros, NaNs with payloads, the extremes.
ANY_DOUBLE = st.integers(0, 2**64 - 1).map(_from_bits)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    ANY_DOUBLE,
    st.integers(-(2**70), 2**70).map(float),  # integral doubles on both sides of 2**53 and 1e21
    st.integers(-(10**6), 10**6).map(lambda n: n / 100),  # gauge-like decimals
    st.integers(-30, 30).flatmap(lambda e: st.integers(1, 10**17).map(lambda m: m * 10.0**e)),
)
INTS = st.one_of(st.integers(-(10**30), 10**30), st.integers(-(2**64), 2**64))

# JavaScript's String(x) for these (Number::toString, as node prints them).
JS_PRINTS = [
    (0.0, "0"), (-0.0, "0"), (1.0, "1"), (-1.0, "-1"), (0.5, "0.5"), (-1.25, "-1.25"),
    (0.1 + 0.2, "0.30000000000000004"), (1 / 3, "0.3333333333333333"),
    (123.456, "123.456"), (1e15, "1000000000000000"), (1e16, "10000000000000000"),
    (123456789012345680000.0, "123456789012345680000"), (1e21, "1e+21"), (1.5e21, "1.5e+21"),
    (2.0**53, "9007199254740992"), (2.0**53 + 2, "9007199254740994"),
    (1.7976931348623157e308, "1.7976931348623157e+308"), (5e-324, "5e-324"),
    (2.2250738585072014e-308, "2.2250738585072014e-308"),
    (0.000001, "0.000001"), (0.0000012, "0.0000012"), (1e-7, "1e-7"), (1.5e-7, "1.5e-7"),
    (0.0001, "0.0001"), (0.00001, "0.00001"), (123e-20, "1.23e-18"), (-1e-7, "-1e-7"),
    (1234567.891, "1234567.891"), (12345678901234.5, "12345678901234.5"),
    (123456789012345.67, "123456789012345.67"), (1234567890123456.8, "1234567890123456.8"),
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"),
    (7, "7"), (-3, "-3"), (0, "0"), (10**21, "1000000000000000000000"),
]


@pytest.mark.parametrize("value, text", JS_PRINTS)
def test_js_str_prints_what_javascript_prints(python_numbers, value, text):
    assert python_numbers.js_str(value) == text
    if isinstance(value, float):
        assert python_numbers._js_str_general(value) == text


@pytest.mark.parametrize("value, text", JS_PRINTS)
def test_compiled_js_str_prints_what_javascript_prints(numbers, value, text):
    compiled, _ = numbers
    assert compiled.js_str(value) == text


@FUZZ
@given(FLOATS)
@example(-0.0)
@example(9007199254740991.0)
@example(-9007199254740991.0)
@example(9007199254740993.0)
@example(0.0001)
@example(0.00009999999999999999)
@example(9999999999999998.0)
@example(1e16 - 1)
def test_fast_path_agrees_with_number_to_string(python_numbers, x):
    """The repr() shortcut gives the text of the step-by-step algorithm for every double."""
    assert python_numbers.js_str(x) == python_numbers._js_str_general(x)


@FUZZ
@given(FLOATS | INTS)
def test_js_str_same_as_python(numbers, x):
    compiled, python = numbers
    assert outcome(lambda: compiled.js_str(x)) == outcome(lambda: python.js_str(x))


@pytest.mark.parametrize("x", [None, "1", True, 2**1100, float("nan"), complex(1, 2)])
def test_js_str_odd_arguments_same_as_python(numbers, x):
    compiled, python = numbers
    assert outcome(lambda: compiled.js_str(x)) == outcome(lambda: python.js_str(x))


@FUZZ
@given(st.text(max_size=30) | st.from_regex(r"\s*[+-]?(0[xob])?[0-9a-f.eE+-]{0,12}\s*", fullmatch=True))
def test_js_number_same_as_python(numbers, text):
    compiled, python = numbers
    same = outcome(lambda: compiled.js_number(text)), outcome(lambda: python.js_number(text))
    assert repr(same[0]) == repr(same[1])
    assert compiled.is_js_number(text) == python.is_js_number(text)


@FUZZ
@given(FLOATS)
def test_round_half_up_same_as_python(numbers, x):
    compiled, python = numbers
    got, want = compiled.round_half_up(x), python.round_half_up(x)
    assert repr(got) == repr(want) and type(got) is type(want)


# --- the store ----------------------------------------------------------------------------------

def _maps(store) -> str:
    return repr([store.counters, store.timers, store.timer_counters, store.gauges,
                 store.gauges_ttl, sorted((k, sorted(v)) for k, v in store.sets.items())])


@FUZZ
@given(st.lists(STATSD_PACKET, max_size=6), st.integers(1, 3))
def test_apply_same_as_python(store, packets, max_ttl):
    from cadent.statsd.parse import PacketParser

    compiled, python = store
    parser = PacketParser()
    updates = [parser.parse(packet).updates for packet in packets]
    stores = compiled.MetricStore("statsd", max_ttl), python.MetricStore("statsd", max_ttl)
    for target in stores:
        target.counters["statsd.bad_lines_seen"] = float("nan")  # as after a management delete
        for batch in updates:
            target.apply(batch)
    assert _maps(stores[0]) == _maps(stores[1])


@pytest.mark.parametrize("updates", [[(0, "a", 1.0), [0, "b", 2.0]], [(0, "a")], None, [(9, "s", "m")],
                                     [(1, "t", 1.0, "x")]])
def test_apply_errors_same_as_python(store, updates):
    compiled, python = store
    stores = compiled.MetricStore(), python.MetricStore()
    assert outcome(lambda: stores[0].apply(updates)) == outcome(lambda: stores[1].apply(updates))


# --- timer statistics -------------------------------------------------------------------------

TIMER_VALUES = st.floats(allow_nan=False, allow_subnormal=True) | ANY_DOUBLE.filter(lambda x: x == x) \
    | st.integers(0, 2000).map(float) | st.integers(-(10**6), 10**6).map(lambda n: n / 7)
PERCENTILES = st.lists(st.one_of(st.integers(-100, 100).map(float),
                                 st.floats(-100, 100, allow_nan=False),
                                 st.sampled_from([90.0, 99.9, -10.0, 50.0, 0.0, 100.0, -100.0])),
                       max_size=4)
BINS = st.lists(st.one_of(st.floats(-10, 3000, allow_nan=False), st.just(math.inf)), max_size=4).map(
    lambda limits: tuple(("bin_%d" % i, limit) for i, limit in enumerate(sorted(limits))))


def _stats_text(data: dict) -> str:
    """The stats exactly: names, order, number types and every bit of every double."""
    return repr([(k, type(v).__name__, v.hex() if isinstance(v, float) else v)
                 for k, v in data.items()])


@FUZZ
@given(st.lists(TIMER_VALUES, max_size=60), st.one_of(st.integers(0, 10**6).map(float), TIMER_VALUES),
       st.sampled_from([1.0, 10.0, 0.25, 7.0]), PERCENTILES, BINS)
@example([5.0, -0.0, 0.0, 1e308, 1e308], 3.0, 10.0, [90.0, -50.0], (("bin_inf", math.inf),))
@example([0.1] * 7 + [0.2, 0.3], 9.0, 1.0, [99.9, -99.9, 33.3], (("bin_0_1", 0.1), ("bin_1", 1.0)))
@example([5e-324, 2.2250738585072014e-308, -0.0], 1.0, 10.0, [100.0, -100.0], ())
def test_timer_stats_same_as_python(flush, values, count, interval_s, pcts, bins):
    compiled, python = flush
    percentiles = [python.percentile(p) for p in pcts]
    got = compiled.timer_stats(list(values), count, interval_s, percentiles, bins)
    want = python.timer_stats(list(values), count, interval_s, percentiles, bins)
    assert list(got) == list(want)
    hist_got, hist_want = got.pop("histogram", None), want.pop("histogram", None)
    assert hist_got == hist_want
    assert _stats_text(got) == _stats_text(want)


# --- graphite lines ---------------------------------------------------------------------------

SETTINGS = [
    {},
    {"keyNameSanitize": False},
    {"flush_counts": False, "flushInterval": 7000},
    {"graphite": {"legacyNamespace": False, "globalSuffix": "sfx", "prefixCounter": ""}},
    {"graphite": {"legacyNamespace": False, "globalPrefix": "", "prefixTimer": "t",
                  "prefixGauge": "g.x", "prefixSet": "s"}, "prefixStats": "own"},
]

KEYS = st.one_of(
    st.sampled_from(["a", "a.b", "0", "7", "12", "007", "4294967294", "4294967295", "a;t=v",
                     "sp ace", "x/y", "é.n", ";", "b;c;d", "٣"]),
    st.text(max_size=12),
)
VALUES = FLOATS | st.integers(-(10**6), 10**6)


def _timer_entry():
    stats = st.dictionaries(st.sampled_from(["count", "mean_90", "upper", "std", "median",
                                             "sum_squares_99_9", "count_ps"]), VALUES, max_size=6)
    hist = st.dictionaries(st.sampled_from(["bin_10", "bin_0_5", "bin_inf"]),
                           st.integers(0, 1000), max_size=3)
    return st.tuples(stats, st.one_of(st.none(), hist)).map(
        lambda t: t[0] if t[1] is None else {**t[0], "histogram": t[1]})


SNAPSHOT = st.fixed_dictionaries({
    "counters": st.dictionaries(KEYS, VALUES, max_size=12),
    "timers": st.dictionaries(KEYS, _timer_entry(), max_size=6),
    "gauges": st.dictionaries(KEYS, VALUES, max_size=8),
    "sets": st.dictionaries(KEYS, st.sets(st.text(max_size=3), max_size=4), max_size=4),
    "ts": st.one_of(st.integers(0, 2**40), st.just(1_700_000_000)),
})


def _lines(module, config: dict, snap: dict):
    settings = statsd_settings(config)
    names = module.GraphiteNames(settings)
    lines = module.graphite_lines(names, snap["counters"], settings.flush_interval_s,
                                  snap["timers"], snap["gauges"], snap["sets"], snap["ts"])
    internal = {"calculationtime": 3, "processing_time": 0, "last_exception": 0,
                "last_flush": snap["ts"] - 1, "flush_time": 2, "flush_length": 12345}
    own = module.own_stats_lines(names, 42, internal, snap["ts"])
    return lines, own


@LINES_FUZZ
@given(st.sampled_from(SETTINGS), SNAPSHOT)
def test_graphite_lines_same_as_python(graphite, config, snap):
    compiled, python = graphite
    assert _lines(compiled, config, snap) == _lines(python, config, snap)


@LINES_FUZZ
@given(st.sampled_from(SETTINGS), SNAPSHOT)
def test_graphite_lines_shape(config, snap):
    """Whatever the build: one line per value, each ``name value ts\\n`` in statsd's order."""
    import cadent.statsd.graphite as module

    lines, own = _lines(module, config, snap)
    settings = statsd_settings(config)
    expected = len(snap["counters"]) * (2 if settings.flush_counts else 1) + len(snap["gauges"]) \
        + len(snap["sets"]) + sum(len(d) - ("histogram" in d) + len(d.get("histogram", ()))
                                  for d in snap["timers"].values())
    assert len(lines) == expected and len(own) == 7
    tail = " %d\n" % snap["ts"]
    assert all(line.endswith(tail) for line in lines + own)


def test_graphite_lines_wrong_types_same_as_python(graphite):
    compiled, python = graphite
    names_c = compiled.GraphiteNames(statsd_settings({}))
    names_p = python.GraphiteNames(statsd_settings({}))
    for args in (([], 1.0, {}, {}, {}, 1), ({"a": 1.0}, "1", {}, {}, {}, 1), ({"a": 1.0}, 1.0, {"t": {"x": "text"}}, {}, {}, 1),
                 ({"a": 1.0}, 1.0, {}, {"g": None}, {}, 1), ({"a": 1.0}, 0.0, {}, {}, {}, 1),
                 ({7: 1.0}, 1.0, {}, {}, {}, 1)):
        assert outcome(lambda: compiled.graphite_lines(names_c, *args)) == \
            outcome(lambda: python.graphite_lines(names_p, *args)), args


# --- whole flushes ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engines(graphite, numbers, flush, store):
    import cadent.statsd.engine as compiled_engine

    if pure_python_requested():
        pytest.skip("CADENT_PURE_PYTHON is set: the imported engine runs the Python twins too")
    python_engine = python_twin(ENGINE)
    # the copy must really run the Python source, or this comparison proves nothing
    assert python_engine.graphite_lines.__module__ == GRAPHITE + "__python_twin"
    assert compiled_engine.graphite_lines.__module__ != python_engine.graphite_lines.__module__
    return compiled_engine, python_engine


def _flushes(module, config: dict, packets: list[str], monkeypatch) -> list[list[str]]:
    monkeypatch.setattr(module, "_elapsed_ms", lambda started: 0)  # timings differ run to run
    start = 1_700_000_000.0
    engine = module.StatsdEngine(statsd_settings(config), now=start)
    interval = engine.settings.flush_interval_s
    out = []
    for step in range(3):
        now = start + (step + 1) * interval
        for packet in packets[step::3]:
            engine.ingest(packet, now=now)
        out.append(engine.flush(now * 1000).lines)
        engine.note_sent(now, 1, 100 + step)
    return out


FLUSH_SETTINGS = SETTINGS + [
    {"percentThreshold": [90, -10, 99.9, 50], "histogram": [{"metric": "", "bins": [1, 10, "inf"]}]},
    {"deleteIdleStats": True, "calculatedTimerMetrics": ["count", "mean_percent", "upper"]},
]

SIMPLE_PACKETS = st.lists(
    st.tuples(st.sampled_from(["a", "b.c", "0", "12", "t;x=y", "sp ace", "é"]),
              st.sampled_from(["1", "0", "42", "+3", "-2", "1.5", "0.1", "1e-7", "1e21", "0x1f",
                               "9007199254740993", "-0", "3.3333333333333335"]),
              st.sampled_from(["c", "ms", "g", "s"]),
              st.sampled_from(["", "|@0.5", "|@0.1", "|@0.3"])).map(lambda t: "%s:%s|%s%s" % t),
    max_size=30).map("\n".join)


@FLUSH_FUZZ
@given(st.sampled_from(FLUSH_SETTINGS), st.lists(SIMPLE_PACKETS | STATSD_PACKET, max_size=9))
def test_whole_flushes_same_as_python(engines, config, packets):
    compiled, python = engines
    with pytest.MonkeyPatch.context() as monkeypatch:
        got = _flushes(compiled, config, packets, monkeypatch)
        want = _flushes(python, config, packets, monkeypatch)
    assert got == want


def test_flush_of_many_keys_same_as_python(engines, monkeypatch):
    """A flush the size the benchmarks make: 10k keys of every kind."""
    compiled, python = engines
    packets = []
    for start in range(0, 10_000, 50):
        packets.append("\n".join(
            f"bench.k{n}:{(n * 7919) % 2003 / (1 + n % 3)}|{'c' if n % 4 == 0 else 'ms' if n % 4 < 3 else 'g'}"
            for n in range(start, start + 50)))
    got = _flushes(compiled, {"flushInterval": 1000}, packets, monkeypatch)
    want = _flushes(python, {"flushInterval": 1000}, packets, monkeypatch)
    assert sum(map(len, got)) > 60_000
    values = [line.split(" ")[1] for line in got[1]]
    assert any("." in v for v in values) and any(v.isdigit() for v in values)  # both number paths
    assert got == want


def test_flush_leaves_the_garbage_collector_as_it_found_it():
    import gc

    from cadent.statsd.engine import StatsdEngine, collector_paused

    engine = StatsdEngine(statsd_settings({}), now=1_700_000_000.0)
    engine.ingest("a:1|c\nb:2|ms", now=1_700_000_000.0)
    assert gc.isenabled()
    assert engine.flush(1_700_000_010_000).lines
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
        raise RuntimeError("inside a flush")
    assert gc.isenabled()
    gc.disable()
    try:
        engine.flush(1_700_000_020_000)
        assert not gc.isenabled()
    finally:
        gc.enable()
