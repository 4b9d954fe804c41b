"""LineParser: carbon's plaintext accept rules, stream reassembly, and cadent's leniency."""

from __future__ import annotations

import math
import random

import pytest

from cadent.core.parse.plaintext import LineParser
from tests.carbon_receivers import capture_receiver
from tests.vectors import load_vector

T = 1700000000
NOW = 1234567890.5


def parser(**kwargs) -> LineParser:
    kwargs.setdefault("clock", lambda: NOW)
    return LineParser(**kwargs)


def parse(data: bytes, **kwargs) -> tuple[list, dict]:
    p = parser(**kwargs)
    batch = p.feed(data)
    return batch, p.take_counters()


# Rows of the spec's inbound table (spec/carbon.md §3): input line → accepted datapoints.
ACCEPTED = [
    (b"a 1 1700000000\n", [("a", (1700000000.0, 1.0))]),
    (b"a\t1\t1700000000\n", [("a", (1700000000.0, 1.0))]),
    (b"a    1  \t 1700000000\n", [("a", (1700000000.0, 1.0))]),
    (b"   a 1 1700000000   \n", [("a", (1700000000.0, 1.0))]),
    (b"a 1 1700000000\r\n", [("a", (1700000000.0, 1.0))]),
    (b"a 1.5e3 1700000003.7\n", [("a", (1700000003.7, 1500.0))]),
    (b"a 1_000 1700000000\n", [("a", (1700000000.0, 1000.0))]),
    (b"a 1 1.7e9\n", [("a", (1.7e9, 1.0))]),
    (b"a inf 1700000000\n", [("a", (1700000000.0, math.inf))]),
    (b"a -inf 1700000000\n", [("a", (1700000000.0, -math.inf))]),
    (b"a -4 -5\n", [("a", (-5.0, -4.0))]),
    (b"a 5 -1\n", [("a", (NOW, 5.0))]),
    (b"a 5 -1.9\n", [("a", (NOW, 5.0))]),
    (b"a 5 -2\n", [("a", (-2.0, 5.0))]),
    (b"a 5 -0.5\n", [("a", (-0.5, 5.0))]),
    (b"t;b=2;a=1 8 1700000000\n", [("t;b=2;a=1", (1700000000.0, 8.0))]),
    (b"~n 9 1700000000\n", [("~n", (1700000000.0, 9.0))]),
    ("métrique 7 1700000000\n".encode(), [("métrique", (1700000000.0, 7.0))]),
    (b"a 1\x0b1700000000\x0c\n", [("a", (1700000000.0, 1.0))]),
    ("a\u20031\u30001700000000\n".encode(), [("a", (1700000000.0, 1.0))]),
]


@pytest.mark.parametrize("data,expected", ACCEPTED)
def test_accepted_rows(data, expected):
    batch, counters = parse(data)
    assert batch == expected
    assert not any(counters.values())


@pytest.mark.parametrize(
    "data",
    [b"a 1\n", b"a 1 2 3\n", b"\n", b"   \n", b"a abc 1700000000\n", b"a 0x10 1700000000\n",
     b"a 1 1700000000\rb 1 1700000001\n", b"a 1 abc\n", b"a 1,5 1700000000\n"],
)
def test_invalid_lines_are_skipped_and_counted(data):
    batch, counters = parse(data + b"ok 1 2\n")
    assert batch == [("ok", (2.0, 1.0))]
    assert counters["bad_lines"] == 1
    assert sum(counters.values()) == 1


def test_nan_value_dropped_and_counted():
    batch, counters = parse(b"a nan 1700000000\nb NaN 5\nc 1 2\n")
    assert batch == [("c", (2.0, 1.0))]
    assert counters == dict(counters, nan_values=2, bad_lines=0)


@pytest.mark.parametrize("ts", [b"nan", b"inf", b"-inf", b"Infinity"])
def test_nan_or_inf_timestamp_costs_only_that_line(ts):
    batch, counters = parse(b"a 1 " + ts + b"\nb 2 3\n")
    assert batch == [("b", (3.0, 2.0))]
    assert counters["bad_timestamps"] == 1


def test_non_utf8_costs_only_that_line():
    batch, counters = parse(b"a 1 2\n\xff\xfe 1 2\nb 3 4\nc\xc3 5 6\nd 7 8\n")
    assert batch == [("a", (2.0, 1.0)), ("b", (4.0, 3.0)), ("d", (8.0, 7.0))]
    assert counters["bad_utf8_lines"] == 2
    assert counters["bad_lines"] == 0


def test_nul_byte_in_a_line_is_handled_per_line():
    # NUL is not whitespace: carbon keeps it inside the name
    batch, counters = parse(b"a\x00b 1 2\nx \x00 y\nc 3 4\n")
    assert batch == [("a\x00b", (2.0, 1.0)), ("c", (4.0, 3.0))]
    assert counters["bad_lines"] == 1


def test_min_timestamp_resolution():
    batch, _ = parse(b"a 1 1700000007.9\nb 2 -1\nc 3 1700000010\n", min_timestamp_resolution=5)
    assert batch == [("a", (1700000005, 1.0)), ("b", (int(NOW) // 5 * 5, 2.0)),
                     ("c", (1700000010, 3.0))]
    assert all(type(ts) is int for _, (ts, _) in batch)


def test_partial_line_waits_for_the_rest():
    p = parser()
    assert p.feed(b"a 1 17000") == []
    assert p.pending_bytes == 9
    assert p.feed(b"00000\nb 2") == [("a", (1700000000.0, 1.0))]
    assert p.pending_bytes == 3
    assert p.feed(b" 3\n") == [("b", (3.0, 2.0))]
    assert p.pending_bytes == 0


MIXED = (
    b"a.b 1 1700000000\r\nbad line\nc 2.5 1700000001\n\xff 1 2\nd nan 5\n"
    b"e 1 nan\n\ny 3 -1\n  z\t4   1700000002  \nm\xc3\xa9 5 6\nlast 1 2"
)


def test_every_split_point_gives_the_same_result():
    whole = parser()
    expected = whole.feed(MIXED)
    expected_counters = whole.take_counters()
    assert len(expected) == 5
    for cut in range(len(MIXED) + 1):
        p = parser()
        got = p.feed(MIXED[:cut]) + p.feed(MIXED[cut:])
        assert got == expected, cut
        assert p.take_counters() == expected_counters, cut
        assert p.pending_bytes == len(b"last 1 2")


def test_byte_at_a_time_gives_the_same_result():
    expected = parser().feed(MIXED)
    p = parser()
    got = []
    for i in range(len(MIXED)):
        got += p.feed(MIXED[i : i + 1])
    assert got == expected


def test_oversize_line_in_one_buffer_is_skipped():
    long = b"x" * 100 + b" 1 2\n"
    batch, counters = parse(b"a 1 2\n" + long + b"b 3 4\n", max_line_bytes=50)
    assert batch == [("a", (2.0, 1.0)), ("b", (4.0, 3.0))]
    assert counters["oversize_lines"] == 1


def test_line_at_exactly_the_limit_is_accepted():
    line = b"n" * 46 + b" 1 2"  # 50 bytes without the newline
    batch, counters = parse(line + b"\n" + line + b"x\n", max_line_bytes=50)
    assert batch == [("n" * 46, (2.0, 1.0))]
    assert counters["oversize_lines"] == 1


def test_default_limit_is_16384():
    ok = b"n" * (16384 - 4) + b" 1 2\n"
    too_long = b"n" * (16385 - 4) + b" 1 2\n"
    batch, counters = parse(ok + too_long + b"a 1 2\n")
    assert [name for name, _ in batch] == ["n" * 16380, "a"]
    assert counters["oversize_lines"] == 1


def test_oversize_line_across_feeds_is_never_buffered():
    p = parser(max_line_bytes=1000)
    assert p.feed(b"a 1 2\n" + b"y" * 600) == [("a", (2.0, 1.0))]
    for _ in range(1000):
        assert p.feed(b"y" * 4096) == []
        assert p.pending_bytes <= 1000
    assert p.oversize_lines == 1
    assert p.feed(b"yyy 1 2\nb 3 4\n") == [("b", (4.0, 3.0))]
    assert p.oversize_lines == 1
    assert p.feed(b"c 5 6\n") == [("c", (6.0, 5.0))]


def test_oversize_line_split_at_every_point():
    stream = b"a 1 2\n" + b"z" * 70 + b" 1 2\n" + b"b 3 4\n" + b"c" * 51 + b"\nd 5 6\n"
    for cut in range(len(stream) + 1):
        p = parser(max_line_bytes=50)
        got = p.feed(stream[:cut]) + p.feed(stream[cut:])
        assert got == [("a", (2.0, 1.0)), ("b", (4.0, 3.0)), ("d", (6.0, 5.0))], cut
        assert p.oversize_lines == 2, cut


def test_counters_reset():
    p = parser()
    p.feed(b"bad\n")
    assert p.bad_lines == 1
    assert p.take_counters()["bad_lines"] == 1
    assert p.bad_lines == 0


# --- UDP ----------------------------------------------------------------------------------

def test_datagram_last_line_without_newline_counts():
    p = parser()
    assert p.feed_datagram(b"a 1 2\nb 3 4") == [("a", (2.0, 1.0)), ("b", (4.0, 3.0))]
    assert p.pending_bytes == 0


def test_datagram_splitlines_semantics():
    data = "a 1 2\rb 3 4\r\nc 5 6\x0bd 7 8\x1ce 9 10\u2028f 11 12\n\n".encode()
    p = parser()
    batch = p.feed_datagram(data)
    assert [name for name, _ in batch] == list("abcdef")
    assert p.bad_lines == 1  # the empty line between the two final newlines


def test_datagram_bad_lines_cost_only_themselves():
    p = parser()
    data = b"a 1 2\nbad\nb 1 inf\nc\xff 1 2\nd nan 3\ne 5 nan\nf 6 7"
    assert p.feed_datagram(data) == [("a", (2.0, 1.0)), ("f", (7.0, 6.0))]
    assert p.take_counters() == {"bad_lines": 1, "bad_utf8_lines": 1, "oversize_lines": 0,
                                 "bad_timestamps": 2, "nan_values": 1}


def test_datagrams_are_independent():
    p = parser()
    assert p.feed_datagram(b"a 1") == []
    assert p.feed_datagram(b" 2\n") == []
    assert p.bad_lines == 2


# --- against the vectors and carbon itself ------------------------------------------------

def test_relay_vector_input_lines():
    vector = load_vector("carbon_protocol_samples.json")["relay_pickle_output"]
    batch = parser().feed(vector["input_lines"].encode())
    assert repr(batch) == vector["decoded"]


TOKENS = ["a", "b.c", "x;t=1", "1", "-1", "2.5", "1e3", "nan", "inf", "-inf", "1_0", "0x1",
          "abc", "-1.5", "1700000000", "", "é", "\u00a0", "\x1c", "1.", ".5"]
SEPARATORS = [" ", " ", " ", "\t", "  ", "\r", "\x0b"]


def random_line(rng: random.Random) -> str:
    parts = [rng.choice(TOKENS) for _ in range(rng.choice([2, 3, 3, 3, 3, 4]))]
    line = ""
    for part in parts:
        line += part + rng.choice(SEPARATORS)
    return rng.choice(["", " "]) + line.rstrip(" ") + rng.choice(["", "\r"])


@pytest.fixture
def carbon_line_receiver(monkeypatch):
    """carbon's own MetricLineReceiver, its output captured instead of dispatched."""
    return capture_receiver(monkeypatch, "MetricLineReceiver", NOW)


def test_matches_carbon_on_random_lines(carbon_line_receiver):
    receiver, received = carbon_line_receiver
    rng = random.Random(7)
    lines = [random_line(rng) for _ in range(3000)]
    for line in lines:
        try:
            receiver.lineReceived(line.encode())
        except (ValueError, OverflowError):
            pass  # carbon drops the connection here; cadent skips the line
    p = parser()
    ours = p.feed("".join(line + "\n" for line in lines).encode())
    assert len(ours) > 300
    assert ours == received
