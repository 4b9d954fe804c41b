"""Property-based fuzzing of the inbound parsers: plaintext lines, pickle frames, CarbonLink.

For any input: no exception escapes, every complete line / frame / item is either accepted or
counted by exactly one counter, and what a parser holds between reads stays bounded. Each
test has a fixed example budget so the file runs in seconds.
"""

from __future__ import annotations

import math
import pickle
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadent.core.cache import MetricCache
from cadent.core.carbonlink import CarbonLinkHandler, RequestFramer
from cadent.core.lograte import LogLimiter
from cadent.core.parse import LineParser, PickleFrameParser, safe_loads

FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NOW = 1700000000.5
MAX_LINE = 64
MAX_FRAME = 16384
QUIET = LogLimiter(1e9)  # one shared limiter: the fuzzing does not flood the log


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given positions (taken modulo its length, sorted)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0] + points + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


def frame(body: bytes) -> bytes:
    return struct.pack("!L", len(body)) + body


def feed_in_chunks(parser, data: bytes, cuts: list[int], bound: int) -> list:
    """Feed ``data`` cut at ``cuts``; what the parser holds between reads never passes ``bound``."""
    batch = []
    for chunk in chunked(data, cuts):
        batch += parser.feed(chunk)
        assert parser.pending_bytes <= bound
    return batch


def assert_valid_points(batch: list) -> None:
    """Every accepted point has a name that is one carbon line field, a finite float timestamp
    and a float value that is not NaN."""
    for name, (ts, value) in batch:
        assert type(name) is str and name.split() == [name]
        assert type(ts) is float and math.isfinite(ts)
        assert type(value) is float and not math.isnan(value)


# --- plaintext ------------------------------------------------------------------------------

NUMBERS = st.sampled_from(["1", "-1", "1.5", "1e3", "1_000", "nan", "inf", "-inf", "NaN",
                           "0x10", "abc", "", "1.7e9", "-1.5", "1e400", "٣"])
NAME_CHARS = st.characters(codec="utf-8") | st.sampled_from(list("a.b;=~{}\"\x00\x85\u2028é"))
SEPARATORS = st.sampled_from([" ", "\t", "  ", "\x0b", "\x0c", "\r", "\xa0", "\x1c"])


@st.composite
def plaintext_line(draw) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=2 * MAX_LINE)).replace(b"\n", b"")
    fields = [draw(st.text(NAME_CHARS, max_size=20)), draw(NUMBERS), draw(NUMBERS)]
    fields += draw(st.lists(NUMBERS, max_size=1))
    text = draw(SEPARATORS).join(fields)
    if draw(st.booleans()):
        text = draw(SEPARATORS) + text + draw(SEPARATORS)
    return text.encode("utf-8", "surrogatepass").replace(b"\n", b"")


def line_parser() -> LineParser:
    return LineParser(max_line_bytes=MAX_LINE, clock=lambda: NOW)


def rejected(parser) -> int:
    return sum(parser.take_counters().values())


@FUZZ
@given(st.lists(plaintext_line(), max_size=30), st.lists(st.integers(0, 10 ** 6), max_size=8))
def test_plaintext_stream_accounts_for_every_line(lines, cuts):
    data = b"".join(line + b"\n" for line in lines)
    parser = line_parser()
    batch = feed_in_chunks(parser, data, cuts, MAX_LINE)
    assert parser.pending_bytes == 0
    assert len(batch) + rejected(parser) == len(lines)
    assert line_parser().feed(data) == batch
    assert_valid_points(batch)


@FUZZ
@given(st.lists(plaintext_line(), max_size=30), st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_plaintext_datagram_accounts_for_every_line(lines, ending):
    data = ending.join(lines)
    parser = line_parser()
    batch = parser.feed_datagram(data)
    expected = len(data.decode("utf-8", "surrogateescape").splitlines())
    assert len(batch) + rejected(parser) == expected


# --- pickle frames ----------------------------------------------------------------------------

LEAVES = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
          | st.binary(max_size=8))
ANYTHING = st.recursive(
    LEAVES,
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.tuples(inner)
                   | st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=12)
NUMBERISH = (st.floats() | st.integers(-2 ** 70, 2 ** 70) | st.sampled_from(
    [-1, -1.0, -1.5, "3.5", "x", b"7", None, 10 ** 400, math.nan, math.inf]))
NAMES = st.sampled_from(
    ["a b", "x\nevil 1 1", "", "ok.name", "t;a=b", "\x00", "é.µ", "\ud800", "\x85", "\u3000"]
) | st.text(NAME_CHARS | st.sampled_from(" \t\r\n\x0b\xa0"), max_size=12) | st.binary(max_size=6)
POINT = st.tuples(NAMES, st.tuples(NUMBERISH, NUMBERISH))
ITEM = POINT | st.lists(ANYTHING, max_size=3) | ANYTHING
PAYLOAD = (st.lists(POINT, max_size=12) | st.lists(ITEM, max_size=12) | st.tuples(ITEM, ITEM)
           | ANYTHING)
# Values kept out of the drawn examples: hypothesis could not print them in a failure report.
HUGE = [pickle.dumps([("huge", (10 ** 5000, 1.0)), 10 ** 5000], 2),
        pickle.dumps({"type": 10 ** 5000, "metric": 10 ** 5000}, 2)]


@st.composite
def deep_nesting(draw) -> bytes:
    """Protocol-2 opcodes for lists or 1-tuples nested deeper than the recursion limit (the C
    unpickler builds them without recursing; anything walking them recursively fails)."""
    depth = draw(st.sampled_from([2, 999, 1001, 5000]))
    if draw(st.booleans()):
        nested = b"]" * depth + b"a" * (depth - 1)
    else:
        nested = b")" + b"\x85" * depth
    wrap = draw(st.sampled_from([(b"", b""), (b"]", b"a"), (b"}U\x04type", b"s"),
                                 (b"](U\x01a", b"\x86a")]))
    return b"\x80\x02" + wrap[0] + nested + wrap[1] + b"."


@st.composite
def hostile_body(draw, payload: st.SearchStrategy) -> bytes:
    """Random bytes, deep nesting, huge ints, or a pickle of ``payload`` in any protocol, intact,
    truncated or with one byte changed."""
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return draw(deep_nesting() | st.sampled_from(HUGE))
    try:
        body = pickle.dumps(draw(payload), protocol=draw(st.integers(0, 5)))
    except (pickle.PicklingError, RecursionError, ValueError):
        return b"."
    if kind == 2:
        body = body[:draw(st.integers(0, len(body)))]
    elif kind == 3 and body:
        position = draw(st.integers(0, len(body) - 1))
        body = body[:position] + bytes([draw(st.integers(0, 255))]) + body[position + 1:]
    return body


OVERSIZE = st.integers(MAX_FRAME + 1, MAX_FRAME + 100).map(lambda n: b"x" * n)
PICKLE_BODY = hostile_body(PAYLOAD) | OVERSIZE


def oracle(bodies: list[bytes]) -> tuple[int, int, int]:
    """(oversize frames, undecodable or non-iterable frames, items) as the parser should see
    them, from an independent reading of each body."""
    oversize = bad = items = 0
    for body in bodies:
        if len(body) > MAX_FRAME:
            oversize += 1
            continue
        try:
            try:
                obj = safe_loads(body)
            except UnicodeDecodeError:
                obj = safe_loads(body, encoding="bytes")
            items += len(list(iter(obj)))
        except Exception:
            bad += 1
    return oversize, bad, items


def pickle_parser() -> PickleFrameParser:
    return PickleFrameParser(max_frame_bytes=MAX_FRAME, clock=lambda: NOW, name_log=QUIET)


@FUZZ
@given(st.lists(PICKLE_BODY, max_size=6), st.lists(st.integers(0, 10 ** 6), max_size=8))
def test_pickle_frames_account_for_every_item(bodies, cuts):
    good = [("after.all", (NOW, 1.0))]
    data = b"".join(map(frame, bodies)) + frame(pickle.dumps(good, 2))
    parser = pickle_parser()
    batch = feed_in_chunks(parser, data, cuts, MAX_FRAME + 4)
    assert parser.pending_bytes == 0 and batch[-1:] == good
    counters = parser.take_counters()
    oversize, bad, items = oracle(bodies)
    assert counters["oversize_frames"] == oversize
    assert counters["bad_frames"] == bad
    item_counters = ("bad_items", "bad_names", "bad_timestamps", "nan_values")
    assert len(batch) - 1 + sum(counters[c] for c in item_counters) == items
    assert_valid_points(batch)


@pytest.mark.parametrize("make, bound", [(line_parser, MAX_LINE), (pickle_parser, MAX_FRAME + 4)],
                         ids=["plaintext", "pickle"])
@FUZZ
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 10 ** 6), max_size=8))
def test_random_bytes_stay_bounded(make, bound, data, cuts):
    parser = make()
    feed_in_chunks(parser, data, cuts, bound)
    parser.take_counters()


@FUZZ
@given(PICKLE_BODY, st.integers(0, 10 ** 6))
def test_pickle_truncated_frame_waits_and_costs_nothing(body, cut):
    parser = pickle_parser()
    whole = frame(body)
    cut = cut % len(whole)
    assert parser.feed(whole[:cut]) == []
    assert parser.pending_bytes <= MAX_FRAME + 4
    assert not any(parser.take_counters().values()) or len(body) > MAX_FRAME


# --- CarbonLink -------------------------------------------------------------------------------

TYPES = st.sampled_from(["cache-query", "cache-query-bulk", "get-metadata", "set-metadata"]) | ANYTHING
REQUEST = st.fixed_dictionaries(
    {"type": TYPES},
    optional={"metric": NAMES | ANYTHING, "metrics": st.lists(NAMES, max_size=4) | ANYTHING,
              "key": st.just("aggregationMethod") | ANYTHING, "value": ANYTHING}) | ANYTHING


CARBONLINK_BODY = hostile_body(REQUEST)


class _Metadata:
    """A writer whose metadata calls fail the way a missing file does."""

    def get_metadata(self, name, key):
        raise FileNotFoundError(name)

    def set_metadata(self, name, key, value):
        raise FileNotFoundError(name)


@FUZZ
@given(st.lists(CARBONLINK_BODY, min_size=1, max_size=5))
def test_carbonlink_requests_always_get_a_dict_and_errors_are_counted(bodies):
    cache = MetricCache()
    cache.store_batch([("a.b", (NOW, 1.0))])
    handler = CarbonLinkHandler(cache, _Metadata(), log_hits=True)
    for body in bodies:
        before = handler.errors
        reply = handler.handle_request(body, "fuzz:1")
        (length,) = struct.unpack_from("!I", reply)
        assert length == len(reply) - 4
        answer = safe_loads(reply[4:])
        assert type(answer) is dict and answer
        assert handler.errors - before == ("error" in answer)
    assert handler.collect_stats().get("cache.bad_queries", 0) == handler.errors


@FUZZ
@given(st.lists(CARBONLINK_BODY | OVERSIZE, max_size=6),
       st.lists(st.integers(0, 10 ** 6), max_size=8))
def test_carbonlink_framer_returns_every_body_and_stays_bounded(bodies, cuts):
    framer = RequestFramer(MAX_FRAME)
    got = feed_in_chunks(framer, b"".join(map(frame, bodies)), cuts, MAX_FRAME + 4)
    fitting = []
    for body in bodies:
        if len(body) > MAX_FRAME:
            assert framer.oversize == len(body) and framer.pending_bytes == 0
            break
        fitting.append(body)
    else:
        assert framer.oversize is None and framer.pending_bytes == 0
    assert got == fitting
