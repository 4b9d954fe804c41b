"""Property-based fuzzing of the API's parsers: the target parser, the time parser, the glob
matcher and /render as a whole. Only the documented errors come out, in bounded time and memory.
The budget is fixed (a few hundred examples each, well under 20 s together)."""

from __future__ import annotations

import time
import tracemalloc

import pytest
import whisper
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadent.api import create_app, expr
from cadent.api.finders.glob import PatternError, node_matcher
from cadent.api.settings import ApiSettings
from cadent.api.timeparse import TimeParseError, parse_offset, parse_range, parse_time

NOW = 1795300418
_FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

_TARGET_CHARS = "abcxyz019.,()'\"=*?[]{}!-+ ~;^$\\\x00é"
_TOKENS = st.sampled_from(["sumSeries(", "scale(", "alias(", "seriesByTag(", "summarize(",
                           "timeShift(", "aliasSub(", "movingAverage(", "limit(", ")", ",", "'",
                           '"', "=", "a.b", "a.*", "{a,b}", "1e999", "-1", "true", "None",
                           "name=~", "'1h'", "x=", "  "])
_TARGETS = st.one_of(st.text(alphabet=_TARGET_CHARS, max_size=80),
                     st.lists(_TOKENS, max_size=30).map("".join))
_TIME_CHARS = "0123456789-+:_/ nowdaysminhourweekmonthyearjanfebnoonmidnightteatimetoday.,"
_TIMES = st.one_of(st.text(alphabet=_TIME_CHARS, max_size=30),
                   st.integers(min_value=-10**30, max_value=10**30).map(str),
                   st.text(max_size=20))


@_FUZZ
@given(_TARGETS)
def test_target_parser_raises_only_expr_error(text):
    try:
        node = expr.parse(text)
    except expr.ExprError:
        return
    expr.path_expressions(node)


@_FUZZ
@given(_TIMES, _TIMES)
def test_time_parser_raises_only_time_parse_error(a, b):
    for parse in (lambda: parse_time(a, NOW), lambda: parse_range(a, b, NOW),
                  lambda: parse_offset(a)):
        try:
            parse()
        except TimeParseError:
            pass


_GLOBS = st.one_of(st.text(alphabet="ab{},*?[]!-^\\.", max_size=40),
                  st.lists(st.sampled_from(["{", "}", ",", "[", "]", "*", "a", "{a,b}", "[!a]"]),
                           max_size=400).map("".join))


@_FUZZ
@given(_GLOBS, st.lists(st.text(max_size=10), max_size=5))
def test_glob_raises_only_pattern_error(pattern, names):
    try:
        test = node_matcher(pattern)
    except PatternError:
        return
    for name in names:
        test(name)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "whisper"
    (root / "a").mkdir(parents=True)
    for name in ("b", "c"):
        path = str(root / "a" / f"{name}.wsp")
        whisper.create(path, [(60, 1440)], xFilesFactor=0.0)
        whisper.update_many(path, [(NOW - 600 + 60 * i, float(i)) for i in range(10)], now=NOW)
    settings_ = ApiSettings(whisper_dirs=(str(root),), carbonlink_hosts=(), replication_factor=0,
                            tagdb_path=str(root.parent / "tagdb.sqlite"))
    return create_app(settings_).test_client()


@settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(_TARGETS, _TIMES, st.one_of(st.none(), _TIMES), st.sampled_from(["json", "raw", "csv", "x"]))
def test_render_answers_200_or_400(client, target, start, points, fmt):
    params = {"target": target, "from": start, "now": NOW, "format": fmt}
    if points is not None:
        params["maxDataPoints"] = points
    rv = client.get("/render", query_string=params)
    assert rv.status_code in (200, 400), rv.data[:500]


@pytest.mark.parametrize("text", [
    "f(" * 100_000,
    "a" * 100_000,
    "sumSeries(" + ",".join(["a.b"] * 5_000) + ")",
    "{" * 20_000 + "}" * 20_000,
    "'" + "x" * 1_000_000,
])
def test_adversarial_targets_bounded(text):
    tracemalloc.start()
    started = time.monotonic()
    try:
        expr.parse(text)
    except expr.ExprError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert peak < 64 * 2**20, peak
