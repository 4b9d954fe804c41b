"""Batch → carbon's plaintext output: ``name value timestamp`` CRLF-terminated, UTF-8.

Numbers are written as carbon-relay writes them: a float value as ``%.10f`` with trailing
zeros and then a trailing ``.`` removed (``1e-12`` → ``0``, ``-0.0`` → ``-0``, ``inf`` →
``inf``), any other value with ``%d``; the timestamp with ``%d``, truncating toward zero.

Compiled (see :mod:`cadent.compiled`), a list batch first goes through ``_encode_direct``,
which writes the lines straight into one buffer: the digits of whole numbers (the common
case: counters, integral gauges, every parsed timestamp) without making a str, anything else
through the same ``%`` formatting as below. A batch it does not accept (a point that cannot be
written) takes the path below, so results and log lines are the same.
"""

from __future__ import annotations

import logging
from itertools import islice

from cadent.core.point import Batch

try:
    import cython

    _COMPILED = cython.compiled  # True in the compiled twin, False when run as Python
except ImportError:  # Cython is needed only to build the compiled twin
    _COMPILED = False

# named for this module even in the compiled twin, whose __name__ is the extension's
logger = logging.getLogger("cadent.core.encode.plaintext")

# Formats are names, not literals, so the compiled twin formats (and fails) through Python's
# own ``%`` operator exactly as the Python twin does.
_LINE = "%s %s %d\r\n"
_FLOAT = "%.10f"
_INT = "%d"


def encode_lines(batch: Batch) -> bytes:
    """Return the plaintext lines for ``batch``.

    A datapoint that cannot be written (NaN/infinite or non-numeric timestamp, a name that is
    not encodable as UTF-8) is left out and logged; the rest of the batch is still written.
    """
    if _COMPILED and type(batch) is list:
        out = _encode_direct(batch)
        if out is not None:
            return out
    try:
        return "".join([
            _LINE % (
                name,
                (_FLOAT % value).rstrip("0").rstrip(".")
                if isinstance(value, float) else _INT % value,
                ts,
            )
            for name, (ts, value) in batch
        ]).encode("utf-8")
    except (TypeError, ValueError, OverflowError):
        return _encode_checked(batch)


def _pair(item: object) -> tuple:
    """``item``'s two elements, as ``a, b = item`` takes them, with an error message that
    does not depend on whether this module runs compiled."""
    items = tuple(islice(item, 3))
    if len(items) != 2:
        raise ValueError("expected 2 elements, got %s" % ("more" if len(items) > 2 else len(items)))
    return items


def _encode_checked(batch: Batch) -> bytes:
    out = []
    skipped = 0
    first = None
    for point in batch:
        try:
            name, pair = _pair(point)
            ts, value = _pair(pair)
            if isinstance(value, float):
                text = (_FLOAT % value).rstrip("0").rstrip(".")
            else:
                text = _INT % value
            out.append((_LINE % (name, text, ts)).encode("utf-8"))
        except (TypeError, ValueError, OverflowError) as exc:
            skipped += 1
            if first is None:
                first = (point, exc)
    if skipped:
        logger.warning(
            "left %d unwritable datapoint(s) out of line output (first: %r: %s)",
            skipped, first[0], first[1],
        )
    return b"".join(out)


# --- the direct writer (used only compiled) ----------------------------------------------------

_LINE_SLACK = 64  # bytes per line reserved beyond the name: two numbers of at most 20 digits
_EXACT_LIMIT = 1e15  # a whole float below this prints as the digits of its integer value
_TS_LIMIT = 1e18  # a finite float timestamp below this truncates into a 64-bit integer


def _put_digits(out: bytearray, pos: int, number: int) -> int:
    """Write ``number`` (|number| < 10**18) in decimal at ``out[pos:]``; the end position."""
    if number < 0:
        out[pos] = 45  # -
        pos += 1
        number = -number
    rest = number  # unsigned when compiled: C's division is then Python's
    width = 1
    scale = 10
    while scale <= rest:
        width += 1
        scale *= 10
    end = pos + width
    index = end - 1
    while index >= pos:
        out[index] = 48 + rest % 10
        rest //= 10
        index -= 1
    return end


def _put_text(out: bytearray, pos: int, text: str) -> int:
    """Write ASCII ``text`` at ``out[pos:]``; the end position."""
    for char in text:
        out[pos] = ord(char)
        pos += 1
    return pos


def _put_bytes(out: bytearray, pos: int, data: bytes) -> int:
    """Write ``data`` at ``out[pos:]``; the end position."""
    for index in range(len(data)):
        out[pos + index] = data[index]
    return pos + len(data)


def _float_value_text(value: float) -> str | None:
    """carbon's text for float ``value`` when it is not a whole number the writer prints
    itself, else None."""
    if -_EXACT_LIMIT < value < _EXACT_LIMIT:
        whole = int(value)
        if value == whole:
            return None
    return (_FLOAT % value).rstrip("0").rstrip(".")


def _utf8(name: str) -> bytes | None:
    """``name`` in UTF-8, or None when it holds a lone surrogate."""
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _line_bytes(point: object) -> bytes | None:
    """The line for a point of unusual types, formatted as :func:`encode_lines` does it, or
    None when it cannot be written."""
    try:
        name, (ts, value) = point
        text = (_FLOAT % value).rstrip("0").rstrip(".") \
            if isinstance(value, float) else _INT % value
        return (_LINE % (name, text, ts)).encode("utf-8")
    except (TypeError, ValueError, OverflowError):
        return None


def _encode_direct(batch: list) -> bytes | None:
    """The lines of ``batch`` written into one buffer, or None if a point cannot be written."""
    out = bytearray(len(batch) * (_LINE_SLACK + 32) + _LINE_SLACK)
    size = len(out)
    pos = 0
    for point in batch:
        if type(point) is tuple and len(point) == 2:
            name = point[0]
            pair = point[1]
        else:
            name = pair = None
        usual = type(name) is str and type(pair) is tuple and len(pair) == 2
        if usual:
            ts = pair[0]
            value = pair[1]
            ts_float = type(ts) is float
            value_float = type(value) is float
            usual = (ts_float or type(ts) is int) and (value_float or type(value) is int)
        if not usual:
            line = _line_bytes(point)
            if line is None:
                return None
            if pos + len(line) > size:
                out.extend(bytes(len(line) + size))
                size = len(out)
            pos = _put_bytes(out, pos, line)
            continue
        text = name
        encoded = None
        if not text.isascii():
            encoded = _utf8(text)
            if encoded is None:
                return None
        value_text = _float_value_text(value) if value_float else _INT % value
        ts_text = None
        if ts_float:
            number = ts
            if not -_TS_LIMIT < number < _TS_LIMIT:
                return None  # NaN or infinite (or a far future the Python path writes)
        else:
            ts_text = _INT % ts
        need = (len(text) if encoded is None else len(encoded)) + _LINE_SLACK
        if value_text is not None:
            need += len(value_text)
        if ts_text is not None:
            need += len(ts_text)
        if pos + need > size:
            out.extend(bytes(need + size))
            size = len(out)
        pos = _put_text(out, pos, text) if encoded is None else _put_bytes(out, pos, encoded)
        out[pos] = 32
        pos += 1
        if value_text is None:
            number = value
            if number == 0.0 and str(value)[0] == "-":
                out[pos] = 45  # -0
                pos += 1
            whole = int(number)
            pos = _put_digits(out, pos, whole)
        else:
            pos = _put_text(out, pos, value_text)
        out[pos] = 32
        pos += 1
        if ts_text is None:
            number = ts
            whole = int(number)
            pos = _put_digits(out, pos, whole)
        else:
            pos = _put_text(out, pos, ts_text)
        out[pos] = 13
        out[pos + 1] = 10
        pos += 2
    return bytes(memoryview(out)[:pos])


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.core.encode._cadent_c_plaintext")
