"""Property-based fuzzing of statsd's packet parser and the store it feeds.

Whatever a datagram holds, parsing never raises, every non-empty line is counted, every value
segment becomes exactly one update or one bad line, and the store folds the updates in
without error.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadent.statsd.parse import COUNTER, GAUGE, SET, TIMER, PacketParser
from cadent.statsd.store import MetricStore

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_ALPHABET = st.sampled_from(list("ab.:|@#,;=+-_ 0123456789e\x00\t\r/\\é") + ["ms", "|c", "|g",
                                                                             "|s", "|h", "@0."])
_NOISE = st.lists(_ALPHABET, max_size=80).map("".join)

_VALUE = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(repr),
                   st.sampled_from(["", "+3", "-2", "1e400", "NaN", "Infinity", "0x10", " 1 "]))
_TYPE = st.sampled_from(["c", "ms", "g", "s", "h", "", "x", "ms ", " g"])
_RATE = st.one_of(st.none(), st.sampled_from(["@0.5", "@0", "@-1", "@", "@1e-3", "0.1", "@.5",
                                              "@ 0.5", "@Infinity"]))


@st.composite
def _segment(draw) -> str:
    text = draw(_VALUE) + "|" + draw(_TYPE)
    rate = draw(_RATE)
    return text + ("|" + rate if rate is not None else "")


@st.composite
def _line(draw) -> str:
    key = draw(st.text(min_size=0, max_size=20))
    segments = draw(st.lists(_segment(), min_size=0, max_size=3))
    line = key + "".join(":" + segment for segment in segments)
    if draw(st.booleans()):
        line += "|#" + draw(st.text(max_size=15))
    return line


_PACKET = st.one_of(_NOISE, st.lists(_line(), max_size=12).map("\n".join),
                    st.text(max_size=200))


def _segments_of(line: str) -> int:
    body = line.split("|#")[0] if "|#" in line else line
    return max(1, len(body.split(":")) - 1)


@FUZZ
@given(_PACKET)
def test_every_segment_is_an_update_or_a_bad_line(packet):
    parser = PacketParser()
    result = parser.parse(packet)
    lines = [line for line in packet.split("\n") if line]
    assert result.metrics == len(lines)
    assert len(result.updates) + result.bad == sum(_segments_of(line) for line in lines)
    for update in result.updates:
        kind, key = update[0], update[1]
        assert isinstance(key, str)
        if kind == COUNTER:
            # ``@0`` makes statsd count value × ∞ (0 × ∞ is NaN), and cadent does the same
            assert isinstance(update[2], float)
        elif kind == TIMER:
            # statsd checks ``>= 0`` only for the exact type ``ms``; ``ms `` slips through
            assert not math.isnan(update[2]) and update[3] > 0
        elif kind == GAUGE:
            assert not math.isnan(update[2]) and isinstance(update[3], bool)
        else:
            assert kind == SET and isinstance(update[2], str)


@FUZZ
@given(st.lists(_PACKET, max_size=5))
def test_the_store_takes_whatever_the_parser_gives(packets):
    parser = PacketParser(sanitize=bool(len(packets) % 2))
    store = MetricStore()
    for packet in packets:
        result = parser.parse(packet)
        store.count_packet(1, result.metrics, result.bad)
        store.apply(result.updates)
    assert store.num_stats() >= 0


@FUZZ
@given(st.binary(max_size=300))
def test_undecodable_bytes_are_lines_like_any_other(data):
    packet = data.decode("utf-8", "replace")
    result = PacketParser().parse(packet)
    assert result.metrics == len([line for line in packet.split("\n") if line])


def test_a_huge_packet_of_bad_lines_is_linear():
    packet = "\n".join(["x:|c"] * 50_000 + [":" * 10_000])
    result = PacketParser().parse(packet)
    assert result.metrics == 50_001
    assert result.bad == 50_000 + 10_000
