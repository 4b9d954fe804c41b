"""statsd's TCP framing: packets of complete lines, over-long lines dropped in bounded memory."""

from __future__ import annotations

import random

import pytest

from cadent.statsd.config import statsd_settings
from cadent.statsd.engine import StatsdEngine
from cadent.statsd.net import MAX_LINE_BYTES, TcpLineFramer


def test_complete_lines_make_a_packet_and_the_tail_waits():
    framer = TcpLineFramer()
    assert framer.feed(b"a:1|c\nb:") == b"a:1|c\n"
    assert framer.pending_bytes == 2
    assert framer.feed(b"2|c") is None
    assert framer.feed(b"\n") == b"b:2|c\n"
    assert framer.pending_bytes == 0 and framer.too_long == 0


def test_a_line_of_exactly_the_limit_passes_one_byte_more_is_dropped():
    framer = TcpLineFramer(10)
    assert framer.feed(b"x" * 6) is None
    assert framer.feed(b"y" * 4 + b"\nok:1|c\n") == b"x" * 6 + b"y" * 4 + b"\nok:1|c\n"
    assert framer.too_long == 0
    assert framer.feed(b"x" * 6) is None
    assert framer.feed(b"y" * 5 + b"\nok:2|c\n") == b"ok:2|c\n"
    assert framer.take_too_long() == 1 and framer.too_long == 0


def test_a_line_without_newline_is_dropped_once_and_the_connection_goes_on():
    framer = TcpLineFramer()
    chunk = b"z" * 65536
    for _ in range(64 * 16):  # 64 MiB, no newline
        assert framer.feed(chunk) is None
        assert framer.pending_bytes <= MAX_LINE_BYTES
    assert framer.too_long == 1
    assert framer.feed(b"zzz\ngood:1|c\nnext:") == b"good:1|c\n"
    assert framer.feed(b"2|c\n") == b"next:2|c\n"
    assert framer.too_long == 1


def test_a_read_larger_than_the_limit_is_framed_piece_by_piece():
    framer = TcpLineFramer(8)
    assert framer.feed(b"a:1|c\n" + b"q" * 20 + b"\nb:1|c\nc:") == b"a:1|c\nb:1|c\n"
    assert framer.too_long == 1
    assert framer.feed(b"1|c\n") == b"c:1|c\n"


def _reference(stream: bytes, limit: int) -> tuple[bytes, int]:
    """Every complete line no longer than ``limit``, and how many were longer."""
    lines = stream.split(b"\n")
    tail = lines.pop()
    kept = [line + b"\n" for line in lines if len(line) <= limit]
    dropped = len(lines) - len(kept) + (len(tail) > limit)
    return b"".join(kept), dropped


@pytest.mark.parametrize("seed", range(40))
def test_random_streams_and_cuts_match_the_plain_rule(seed):
    rng = random.Random(seed)
    limit = rng.choice([1, 3, 8, 50])
    stream = b"".join(rng.choice([b"\n", b"a", b"bb", b"c" * rng.randint(1, 120)])
                      for _ in range(rng.randint(0, 200)))
    framer = TcpLineFramer(limit)
    got, at = [], 0
    while at < len(stream):
        size = rng.randint(1, 140)
        packet = framer.feed(stream[at : at + size])
        at += size
        if packet is not None:
            assert packet.endswith(b"\n")
            got.append(packet)
        assert framer.pending_bytes <= limit
    assert (b"".join(got), framer.too_long) == _reference(stream, limit)


def test_dropped_lines_are_bad_lines_with_their_own_counter():
    engine = StatsdEngine(statsd_settings({}), now=1000)
    engine.count_too_long(2)
    lines = {line.split(" ")[0]: line.split(" ")[1] for line in engine.flush(1010_000).lines}
    assert lines["stats_counts.statsd.lines_too_long"] == "2"
    assert lines["stats_counts.statsd.bad_lines_seen"] == "2"
    assert lines["stats_counts.statsd.metrics_received"] == "2"
    assert engine.stats.bad_lines_total == 2
