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

Compiled (see :mod:`cadent.compiled`), an ASCII buffer first goes through ``_scan_ascii``, one
pass over the bytes that makes a str only for each name, converts plain decimal numbers itself
and applies the receiver checks of :func:`~cadent.core.parse._checks.assemble` point by point,
so the datapoints are built without intermediate columns; whatever it does not accept takes the
path above, so results are the same.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from cadent.core.parse._checks import assemble
from cadent.core.point import Batch

try:
    import cython

    _COMPILED = cython.compiled  # True in the compiled twin, False when run as Python
except ImportError:  # Cython is needed only to build the compiled twin
    _COMPILED = False

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
        if _COMPILED and complete.__class__ is bytes and complete.isascii():
            scanned = _scan_ascii(complete, self.clock(), self.min_timestamp_resolution)
            if scanned is not None:
                return self._counted(*scanned)
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
        return self._finish(tokens[0::4], timestamps, values)

    def _finish(self, names: list, timestamps: list, values: list) -> Batch:
        """The receiver checks over the columns of lines that all had three good fields."""
        return self._counted(*assemble(
            names, timestamps, values, self.clock(), self.min_timestamp_resolution
        ))

    def _counted(self, batch: Batch, nan_values: int, bad_timestamps: int) -> Batch:
        """``batch`` after counting (and logging) the datapoints the checks dropped."""
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


_NEWLINE = 10
_MAX_PLAIN_DIGITS = 15  # a decimal integer of at most 15 digits is exact in a double


def _is_space(c: int) -> bool:
    """Whether byte ``c`` is whitespace to ``str.split()``, the newline aside."""
    return c == 32 or 9 <= c <= 13 and c != 10 or 28 <= c <= 31


def _plain_number(data: bytes, start: int, end: int) -> float | None:
    """``float(data[start:end])``, or None when that raises ValueError.

    A plain decimal (optional sign, digits, optional fraction, at most 15 digits in all) is
    converted here: digits and a power of ten both exact, their quotient is the correctly
    rounded value ``float()`` gives. Anything else goes to ``float()`` itself.
    """
    pos = start
    negative = False
    if pos < end and (data[pos] == 45 or data[pos] == 43):  # - +
        negative = data[pos] == 45
        pos += 1
    mantissa = 0
    digits = 0
    scale = -1
    while pos < end:
        c = data[pos]
        if 48 <= c <= 57:
            digits += 1
            if digits <= _MAX_PLAIN_DIGITS:  # so the mantissa stays below 10**15
                mantissa = mantissa * 10 + (c - 48)
            if scale >= 0:
                scale += 1
        elif c == 46 and scale < 0:  # the first dot
            scale = 0
        else:
            break
        pos += 1
    if pos == end and 0 < digits <= _MAX_PLAIN_DIGITS:
        number = float(mantissa)
        if scale > 0:
            power = 1.0
            for _ in range(scale):
                power *= 10.0  # exact: every power of ten up to 1e15 is a double
            number = number / power
        return -number if negative else number
    try:
        return float(data[start:end])
    except ValueError:
        return None


def _scan_ascii(data: bytes, now: float, resolution: int) -> tuple[list, int, int] | None:
    """``(batch, nan_values, bad_timestamps)`` for ASCII ``data`` made of complete lines, as
    :func:`assemble` gives it for the lines' columns, or None as soon as a line is not three
    fields with two numbers (the caller then re-parses).

    Each datapoint gets the receiver checks as it is scanned, so no column lists are built.
    """
    batch: list = []
    nan_values = bad_timestamps = 0
    end = len(data)
    pos = 0
    while pos < end:
        fields = 0
        name_start = name_end = value_start = value_end = ts_start = ts_end = 0
        while True:
            while pos < end and _is_space(data[pos]):
                pos += 1
            if pos >= end or data[pos] == _NEWLINE:
                break
            start = pos
            while pos < end and data[pos] != _NEWLINE and not _is_space(data[pos]):
                pos += 1
            if fields == 0:
                name_start, name_end = start, pos
            elif fields == 1:
                value_start, value_end = start, pos
            elif fields == 2:
                ts_start, ts_end = start, pos
            else:
                return None
            fields += 1
        if fields != 3:
            return None
        value_number = _plain_number(data, value_start, value_end)
        ts_number = _plain_number(data, ts_start, ts_end)
        if value_number is None or ts_number is None:
            return None
        pos += 1  # the newline
        value = value_number
        ts = ts_number
        if value != value:
            nan_values += 1
            continue
        if ts - ts != 0.0:
            bad_timestamps += 1
            continue
        if -2.0 < ts <= -1.0:
            ts_number = now
        if resolution:
            ts_number = int(ts_number) // resolution * resolution
        batch.append((data[name_start:name_end].decode("ascii"), (ts_number, value_number)))
    return batch, nan_values, bad_timestamps


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.core.parse._cadent_c_plaintext")
