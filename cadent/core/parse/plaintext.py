"""carbon's plaintext protocol: ``name value timestamp`` lines → Batch.

A line is UTF-8, split on runs of any whitespace into exactly three fields; value and timestamp
follow Python's ``float()`` grammar (``1_000``, ``inf``, ``1e3`` and surrounding whitespace all
work). Lines that fail are skipped and counted. Where carbon drops the whole connection (a
NaN/infinite timestamp, bytes that are not UTF-8, a line longer than the limit) only the
offending line is lost here.

The common buffer is parsed without a Python-level loop per line: the decoded text is split
into one flat token list with a sentinel token standing for each newline, the sentinel
positions prove every line had three fields, and the numeric columns are converted by
``map(float, ...)``. Any buffer that fails those bulk checks is re-parsed line by line.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from cadent.core.parse._checks import assemble
from cadent.core.point import Batch

logger = logging.getLogger(__name__)

DEFAULT_MAX_LINE_BYTES = 16384

# Stands for a newline in the flat token list. Buffers that contain it take the line-by-line
# path, so in the fast path a token equal to it can only be a sentinel.
_SENTINEL = "\x00"
_SPACED_SENTINEL = " \x00 "

_LOGGED_LINE_CHARS = 400


def _shorten(line: object) -> str:
    text = repr(line)
    if len(text) > _LOGGED_LINE_CHARS:
        text = text[:_LOGGED_LINE_CHARS] + "..."
    return text


class LineParser:
    """Stateful parser for one plaintext TCP connection (or for any number of datagrams).

    ``feed`` takes the bytes of a stream read and returns the datapoints of the lines it
    completed; an incomplete last line waits for the next read (``pending_bytes`` tells how
    much is waiting; whatever remains at close is discarded by the caller). A line longer than
    ``max_line_bytes`` (not counting its ``\\n``) is skipped without being buffered: bytes are
    discarded up to the next newline.

    Counters are plain ints the receiver reads and resets (or use ``take_counters``):

    * ``bad_lines``: not three fields, or a field that is not a number (carbon's "invalid line")
    * ``bad_utf8_lines``: lines that are not valid UTF-8
    * ``oversize_lines``: lines longer than ``max_line_bytes``
    * ``bad_timestamps``: NaN or infinite timestamps
    * ``nan_values``: datapoints dropped for a NaN value (carbon drops these silently)
    """

    COUNTERS = ("bad_lines", "bad_utf8_lines", "oversize_lines", "bad_timestamps", "nan_values")

    def __init__(
        self,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        min_timestamp_resolution: int = 0,
        clock: Callable[[], float] = time.time,
        peer: str = "-",
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self.min_timestamp_resolution = int(min_timestamp_resolution or 0)
        self.clock = clock
        self.peer = peer
        self._tail = b""
        self._discarding = False
        # A line longer than the limit must contain a whole aligned block of this many bytes
        # with no newline; a block that has one rules such a line out cheaply.
        self._block = max(1, (max_line_bytes + 1) // 2)
        self.bad_lines = 0
        self.bad_utf8_lines = 0
        self.oversize_lines = 0
        self.bad_timestamps = 0
        self.nan_values = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete line held for the next ``feed``."""
        return len(self._tail)

    def take_counters(self) -> dict[str, int]:
        """Return the counters and reset them to zero."""
        taken = {name: getattr(self, name) for name in self.COUNTERS}
        for name in self.COUNTERS:
            setattr(self, name, 0)
        return taken

    def feed(self, data: bytes) -> Batch:
        """Parse one read of a TCP stream; return the datapoints of the lines it completed."""
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                return []
            data = data[newline + 1 :]
            self._discarding = False
        buf = self._tail + data if self._tail else data
        last = buf.rfind(b"\n")
        if last < 0:
            tail = buf
            complete = b""
        else:
            tail = buf[last + 1 :]
            complete = buf[: last + 1]
        if len(tail) > self.max_line_bytes:
            self.oversize_lines += 1
            logger.info(
                "line from %s longer than %d bytes, skipping it: %s",
                self.peer, self.max_line_bytes, _shorten(tail[:_LOGGED_LINE_CHARS]),
            )
            tail = b""
            self._discarding = True
        self._tail = tail
        if not complete:
            return []
        if len(complete) > self.max_line_bytes + 1 and self._may_have_oversize(complete):
            return self._parse_lines(complete.split(b"\n")[:-1], check_length=True)
        try:
            text = complete.decode("utf-8")
        except UnicodeDecodeError:
            return self._parse_lines(complete.split(b"\n")[:-1], check_length=False)
        batch = None
        if _SENTINEL not in text:
            batch = self._parse_fast(text.replace("\n", _SPACED_SENTINEL), text.count("\n"))
        if batch is None:
            return self._parse_lines(text.split("\n")[:-1], check_length=False)
        return batch

    def feed_datagram(self, data: bytes) -> Batch:
        """Parse one UDP datagram: every line counts, the last one even without a newline.

        Lines are cut by ``str.splitlines`` as carbon does (so ``\\r``, ``\\v``, ``\\f``,
        ``\\x1c``-``\\x1e``, ``\\x85``, U+2028 and U+2029 end a line too). No line-length limit
        applies: the datagram bounds it. A line that is not UTF-8 costs only that line.
        """
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            lines = data.decode("utf-8", "surrogateescape").splitlines()
            return self._parse_lines(lines, check_length=False, escaped=True)
        lines = text.splitlines()
        batch = None
        if _SENTINEL not in text:
            batch = self._parse_fast(
                _SPACED_SENTINEL.join(lines) + _SPACED_SENTINEL if lines else "", len(lines)
            )
        if batch is None:
            return self._parse_lines(lines, check_length=False)
        return batch

    def _may_have_oversize(self, complete: bytes) -> bool:
        find = complete.find
        block = self._block
        end = len(complete)
        for start in range(0, end - block + 1, block):
            if find(b"\n", start, start + block) < 0:
                return True
        return False

    def _parse_fast(self, marked: str, line_count: int) -> Batch | None:
        """Parse text whose lines each end in a sentinel token; None if any line is not clean."""
        tokens = marked.split()
        if len(tokens) != 4 * line_count or tokens[3::4].count(_SENTINEL) != line_count:
            return None
        try:
            values = list(map(float, tokens[1::4]))
            timestamps = list(map(float, tokens[2::4]))
        except ValueError:
            return None
        batch, nan_values, bad_timestamps = assemble(
            tokens[0::4], timestamps, values, self.clock(), self.min_timestamp_resolution
        )
        if nan_values:
            self.nan_values += nan_values
        if bad_timestamps:
            self.bad_timestamps += bad_timestamps
            logger.info(
                "%d line(s) from %s with a NaN or infinite timestamp skipped",
                bad_timestamps, self.peer,
            )
        return batch

    def _parse_lines(self, lines: list, check_length: bool, escaped: bool = False) -> Batch:
        """Line-by-line parse of a buffer holding at least one unusual line.

        ``lines`` are bytes (decoded here, one at a time) or str; with ``escaped`` they are str
        decoded with ``surrogateescape`` and a line holding an escaped byte is not UTF-8.
        """
        max_len = self.max_line_bytes
        names: list[str] = []
        timestamps: list[float] = []
        values: list[float] = []
        bad = bad_utf8 = oversize = 0
        first_problem = None
        for line in lines:
            if check_length and len(line) > max_len:
                oversize += 1
                first_problem = first_problem or ("longer than %d bytes" % max_len, line)
                continue
            if line.__class__ is bytes:
                try:
                    line = line.decode("utf-8")
                except UnicodeDecodeError:
                    bad_utf8 += 1
                    first_problem = first_problem or ("not UTF-8", line)
                    continue
            elif escaped:
                try:
                    line.encode("utf-8")
                except UnicodeEncodeError:
                    bad_utf8 += 1
                    first_problem = first_problem or (
                        "not UTF-8", line.encode("utf-8", "surrogateescape"))
                    continue
            try:
                name, value, timestamp = line.split()
                timestamps.append(float(timestamp))
            except ValueError:
                bad += 1
                first_problem = first_problem or ("invalid", line.strip())
                continue
            try:
                values.append(float(value))
            except ValueError:
                timestamps.pop()
                bad += 1
                first_problem = first_problem or ("invalid", line.strip())
                continue
            names.append(name)
        if first_problem is not None:
            self.bad_lines += bad
            self.bad_utf8_lines += bad_utf8
            self.oversize_lines += oversize
            reason, sample = first_problem
            logger.info(
                "skipped %d line(s) from %s (first one %s: %s)",
                bad + bad_utf8 + oversize, self.peer, reason, _shorten(sample),
            )
        batch, nan_values, bad_timestamps = assemble(
            names, timestamps, values, self.clock(), self.min_timestamp_resolution
        )
        self.nan_values += nan_values
        if bad_timestamps:
            self.bad_timestamps += bad_timestamps
            logger.info(
                "%d line(s) from %s with a NaN or infinite timestamp skipped",
                bad_timestamps, self.peer,
            )
        return batch
