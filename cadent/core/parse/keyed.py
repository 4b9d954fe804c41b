"""Lines relayed as they are, placed by a key taken from each line: statsd and regex formats.

A keyed point keeps the line's exact bytes: ``(key, (timestamp, line))`` where ``line`` is
the line with its ``\\n`` (added when the line arrived without one, as the last line of a
datagram or an HTTP body does). Routers hash ``key``; :func:`encode_raw_lines` in
:mod:`cadent.core.net.preformatted` writes the lines back out byte for byte.

* :class:`StatsdLineParser` splits as statsd's proxy.js does: a datagram without a newline
  is one line, otherwise every non-empty ``\\n``-separated line is one (a ``\\r`` stays); the
  key is the text before the first ``:`` (the whole line without one), not sanitised, and a
  line that is not valid statsd still goes through (proxy.js forwards it too; the statsd
  daemon that receives it counts it as a bad line).
* :class:`RegexLineParser` searches each line with ``LINE_KEY_REGEX``; its ``Key`` group is
  the key, its optional ``Timestamp`` group is checked (``LINE_TIMESTAMP_FORMAT`` for
  :func:`time.strptime`, else a number of seconds). Lines without a match are counted
  (``unmatched_lines``) and dropped, and so are lines whose timestamp does not parse
  (``bad_timestamps``); a log line says so at most once a minute per receiver.

Both parsers take a stream (``feed``: an incomplete last line waits for more bytes; a line
longer than ``max_line_bytes`` is skipped and counted as ``oversize_lines``) or whole
datagrams (``feed_datagram``), like :class:`cadent.core.parse.plaintext.LineParser`.
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from dataclasses import dataclass

from cadent.core.parse.plaintext import DEFAULT_MAX_LINE_BYTES
from cadent.core.point import Batch
from cadent.core.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

FORMATS = ("graphite", "statsd", "regex")


@dataclass(frozen=True)
class LineFormat:
    """How a receiver reads lines: carbon's ``graphite`` lines, or lines relayed unchanged
    and keyed the ``statsd`` way or by ``key_regex`` (LINE_FORMAT, LINE_KEY_REGEX,
    LINE_TIMESTAMP_FORMAT)."""

    kind: str = "graphite"
    key_regex: re.Pattern[str] | None = None
    timestamp_format: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FORMATS:
            raise ValueError(f"line format must be one of {', '.join(FORMATS)}, not {self.kind!r}")
        if self.kind == "regex":
            if self.key_regex is None or "Key" not in self.key_regex.groupindex:
                raise ValueError("the key regex needs a (?P<Key>...) group")

    @property
    def keyed(self) -> bool:
        """True for the formats relayed unchanged (statsd, regex)."""
        return self.kind != "graphite"


def compile_key_regex(text: str) -> re.Pattern[str]:
    """``LINE_KEY_REGEX`` compiled; ValueError says why it cannot be used."""
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    if "Key" not in pattern.groupindex:
        raise ValueError("needs a (?P<Key>...) group naming the part of the line to hash")
    return pattern


class _KeyedParser:
    """Stream framing and counters shared by the keyed parsers; subclasses key the lines."""

    COUNTERS: tuple[str, ...] = ("oversize_lines",)

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, peer: str = "-",
                 problems: RateLimitedLog | None = None, **_ignored: object) -> None:
        self.max_line_bytes = max_line_bytes
        self.peer = peer
        self.problems = problems or RateLimitedLog(log)
        self._tail = b""
        self._discarding = False
        self.oversize_lines = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete line held for the next ``feed``."""
        return len(self._tail)

    def feed(self, data: bytes) -> Batch:
        """Parse one read of a stream; the points of the lines it completed."""
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                return []
            data = data[newline + 1:]
            self._discarding = False
        buf = self._tail + data if self._tail else data
        last = buf.rfind(b"\n")
        tail = buf[last + 1:]
        if len(tail) > self.max_line_bytes:
            self._oversize(1)
            tail, self._discarding = b"", True
        self._tail = tail
        if last < 0:
            return []
        lines = buf[:last].split(b"\n")
        limit = self.max_line_bytes
        if last > limit and max(map(len, lines)) > limit:
            kept = [line for line in lines if len(line) <= limit]
            self._oversize(len(lines) - len(kept))
            lines = kept
        return self._points(lines)

    def feed_datagram(self, data: bytes) -> Batch:
        """One datagram: its ``\\n``-separated lines, the last one even without a newline."""
        return self._points(data.split(b"\n"))

    def _oversize(self, count: int) -> None:
        self.oversize_lines += count
        self.problems(logging.INFO, "line(s) from %s longer than %d bytes skipped",
                      self.peer, self.max_line_bytes)

    def _points(self, lines: list[bytes]) -> Batch:
        raise NotImplementedError


class StatsdLineParser(_KeyedParser):
    """statsd lines keyed as proxy.js keys them (see the module doc); timestamps are 0."""

    def feed_datagram(self, data: bytes) -> Batch:
        if b"\n" not in data:  # proxy.js forwards such a datagram whole, even when empty
            return self._points([data]) if data else []
        return self._points(data.split(b"\n"))

    def _points(self, lines: list[bytes]) -> Batch:
        out: Batch = []
        append = out.append
        for line in lines:
            if line:
                append((line.split(b":", 1)[0].decode("utf-8", "replace"), (0, line + b"\n")))
        return out


class RegexLineParser(_KeyedParser):
    """Lines keyed by the ``Key`` group of a regex (see the module doc)."""

    COUNTERS = ("oversize_lines", "unmatched_lines", "bad_timestamps")

    def __init__(self, key_regex: re.Pattern[str], timestamp_format: str | None = None,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.search = key_regex.search
        self.has_timestamp = "Timestamp" in key_regex.groupindex
        self.timestamp_format = timestamp_format
        self.unmatched_lines = 0
        self.bad_timestamps = 0

    def _timestamp(self, text: str) -> float:
        if self.timestamp_format is None:
            return _finite(float(text))
        parsed = time.strptime(text, self.timestamp_format)
        return float(calendar.timegm(parsed))  # no zone in the text: UTC

    def _points(self, lines: list[bytes]) -> Batch:
        out: Batch = []
        unmatched = bad_ts = 0
        sample = b""
        for line in lines:
            if not line:
                continue
            match = self.search(line.decode("utf-8", "surrogateescape"))
            if match is None or not match.group("Key"):
                unmatched += 1
                sample = sample or line
                continue
            ts = 0.0
            if self.has_timestamp:
                try:
                    ts = self._timestamp(match.group("Timestamp") or "")
                except (ValueError, OverflowError):
                    bad_ts += 1
                    sample = sample or line
                    continue
            out.append((match.group("Key"), (ts, line + b"\n")))
        if unmatched or bad_ts:
            self.unmatched_lines += unmatched
            self.bad_timestamps += bad_ts
            self.problems(logging.WARNING,
                          "%d line(s) from %s dropped: no key match (%d) or bad timestamp (%d); "
                          "first: %r", unmatched + bad_ts, self.peer, unmatched, bad_ts,
                          sample[:200])
        return out


def _finite(number: float) -> float:
    if number - number != 0.0:
        raise ValueError("not a finite number")
    return number


def keyed_parser_class(kind: str) -> type[_KeyedParser]:
    """The parser class of a keyed line format."""
    return {"statsd": StatsdLineParser, "regex": RegexLineParser}[kind]


__all__ = ["FORMATS", "LineFormat", "RegexLineParser", "StatsdLineParser", "compile_key_regex",
           "keyed_parser_class"]
