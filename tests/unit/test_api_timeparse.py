from datetime import datetime, timezone

import pytest

from cadent.api.timeparse import TimeParseError, parse_range, parse_time

NOW = int(datetime(2026, 11, 21, 22, 33, 38, tzinfo=timezone.utc).timestamp())  # a Saturday


@pytest.mark.parametrize(
    "text, delta",
    [
        ("now", 0), ("-1h", -3600), ("-5min", -300), ("-1h30min", -5400), ("-2d", -172800),
        ("-1w", -604800), ("-1mon", -30 * 86400), ("-1y", -365 * 86400), ("+10s", 10),
        ("-30seconds", -30), ("-3hours", -3 * 3600),
    ],
)
def test_relative(text, delta):
    assert parse_time(text, NOW) == NOW + delta


def utc(*args):
    return int(datetime(*args, tzinfo=timezone.utc).timestamp())


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1795300000", 1795300000),
        ("20260101", utc(2026, 1, 1)),
        ("12:30_20260102", utc(2026, 1, 2, 12, 30)),
        ("01/02/2026", utc(2026, 1, 2)),
        ("01/02/26", utc(2026, 1, 2)),
        ("midnight", utc(2026, 11, 21)),
        ("noon", utc(2026, 11, 21, 12)),
        ("teatime", utc(2026, 11, 21, 16)),
        ("yesterday", utc(2026, 11, 20)),
        ("tomorrow", utc(2026, 11, 22)),
        ("midnight-1d", utc(2026, 11, 20)),
        ("noon+2h", utc(2026, 11, 21, 14)),
        ("jan1", utc(2026, 1, 1)),
        ("monday", utc(2026, 11, 16)),
    ],
)
def test_absolute(text, expected):
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["-5m", "-1x", "bogus", "-h", "25:00_20260101", "20261340x"])
def test_rejected(text):
    with pytest.raises(TimeParseError):
        parse_time(text, NOW)


def test_bare_m_message():
    with pytest.raises(TimeParseError, match="Invalid offset unit 'm'"):
        parse_time("-5m", NOW)


def test_range_defaults_swap_and_empty():
    assert parse_range(None, None, NOW) == (NOW - 86400, NOW)
    assert parse_range("now", "-1h", NOW) == (NOW - 3600, NOW)
    with pytest.raises(TimeParseError, match="Invalid empty time range"):
        parse_range("now", "now", NOW)
