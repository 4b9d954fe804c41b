"""statsd packets → metric updates, with statsd's validation and bad-line counting.

One call parses a whole packet (a UDP datagram, or the complete lines of a TCP read) and
returns flat update tuples that :meth:`cadent.statsd.store.MetricStore.apply` folds in:

    (COUNTER, key, increment)          increment = value * (1 / rate)
    (TIMER,   key, value, count)       count = 1 / rate
    (GAUGE,   key, value, is_delta)    is_delta: value text starts with + or -
    (SET,     key, member)

Tuples are cheap to build, can be pickled to another process (see the shard design in
:mod:`cadent.statsd.store`), and keep the per-line work to one pass over the text.

Deliberate deviation: a sample rate that passes statsd's validation but has no leading
digit or dot (``@+0.5``, ``@ 0.5``, ``@Infinity``) crashes the reference daemon; here it is
one more bad line.
"""

from __future__ import annotations

import logging
import re
from typing import NamedTuple

from cadent.statsd.numbers import INF, JS_WHITESPACE, is_js_number, js_number
from cadent.statsd.sanitize import sanitize_key

log = logging.getLogger(__name__)

COUNTER = 0
TIMER = 1
GAUGE = 2
SET = 3

_RATE_DIGITS = re.compile(r"[0-9.]+")
_KEY_CACHE_MAX = 100_000


class ParseResult(NamedTuple):
    """What one packet contributed: updates in line order, plus statsd's line counters."""

    updates: list
    metrics: int  # non-empty lines (statsd's metrics_received)
    bad: int  # rejected value segments (statsd's bad_lines_seen)


class PacketParser:
    """Parses statsd packets; holds only a cache of sanitised keys.

    ``sanitize`` is statsd's ``keyNameSanitize``.
    """

    def __init__(self, sanitize: bool = True) -> None:
        self.sanitize = sanitize
        self._keys: dict[str, str] = {}

    def _key(self, raw: str) -> str:
        if not self.sanitize:
            return raw
        key = self._keys.get(raw)
        if key is None:
            if len(self._keys) >= _KEY_CACHE_MAX:
                self._keys.clear()
            key = self._keys[raw] = sanitize_key(raw)
        return key

    def parse(self, packet: str) -> ParseResult:
        """Parse one packet (text already decoded with UTF-8, errors replaced)."""
        updates: list = []
        append = updates.append
        metrics = 0
        bad = 0
        lines = packet.split("\n")
        tagged = "#" in packet  # one memchr over the packet instead of a search in every line
        for line in lines:
            if not line:
                continue
            metrics += 1
            if tagged and "|#" in line:
                parts = line.split("|#")
                segments = parts[0].split(":")
                raw_key = segments[0]
                if parts[1]:
                    tags = [t.replace(";", "_", 1).replace(":", "=", 1) for t in parts[1].split(",")]
                    raw_key += ";" + ";".join(tags)
            else:
                segments = line.split(":")
                raw_key = segments[0]
            if len(segments) == 1:
                segments.append("1")
            key = self._key(raw_key)
            # each segment is value|type[|@rate[|...]]: found with find() and slices, which
            # costs less than a list from split() per segment
            for index in range(1, len(segments)):
                segment = segments[index]
                bar = segment.find("|")
                if bar < 0:
                    bad += 1
                    continue
                value_text = segment[:bar]
                mtype = segment[bar + 1:]
                inv_rate = 1.0
                bar = mtype.find("|")
                if bar >= 0:
                    rate_text = mtype[bar + 1:].split("|", 1)[0]
                    mtype = mtype[:bar]
                    rest = rate_text[1:]
                    if rate_text[:1] != "@" or not is_js_number(rest) or rest[:1] == "-":
                        bad += 1
                        continue
                    m = _RATE_DIGITS.match(rest)
                    if m is None:
                        log.debug("sample rate %r has no leading digits, line counted bad", rate_text)
                        bad += 1
                        continue
                    rate = js_number(m.group())
                    inv_rate = INF if rate == 0 else 1.0 / rate
                if mtype == "s":
                    append((SET, key, value_text or "0"))
                    continue
                if not value_text:
                    bad += 1
                    continue
                if value_text.isdigit() and value_text.isascii():
                    # what Number() gives for plain digits; through int() while the number is
                    # exact in a double (float's own parser costs twice as much)
                    value = float(int(value_text)) if len(value_text) < 16 else float(value_text)
                else:
                    value = js_number(value_text)
                if value != value or (mtype == "ms" and not value >= 0):
                    bad += 1
                    continue
                if mtype == "c" or mtype == "ms" or mtype == "g":
                    kind = mtype
                else:
                    kind = mtype.strip(JS_WHITESPACE)
                if kind == "ms":
                    append((TIMER, key, value, inv_rate))
                elif kind == "g":
                    append((GAUGE, key, value, value_text[0] in "+-"))
                elif kind == "s":
                    append((SET, key, value_text))
                else:
                    append((COUNTER, key, value * inv_rate))
        return ParseResult(updates, metrics, bad)


__all__ = ["PacketParser", "ParseResult", "COUNTER", "TIMER", "GAUGE", "SET"]


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.statsd._cadent_c_parse")
