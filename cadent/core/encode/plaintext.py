"""Batch → carbon's plaintext output: ``name value timestamp`` CRLF-terminated, UTF-8.

Numbers are written as carbon-relay writes them: a float value as ``%.10f`` with trailing
zeros and then a trailing ``.`` removed (``1e-12`` → ``0``, ``-0.0`` → ``-0``, ``inf`` →
``inf``), any other value with ``%d``; the timestamp with ``%d``, truncating toward zero.
"""

from __future__ import annotations

import logging

from cadent.core.point import Batch

logger = logging.getLogger(__name__)


def encode_lines(batch: Batch) -> bytes:
    """Return the plaintext lines for ``batch``.

    A datapoint that cannot be written (NaN/infinite or non-numeric timestamp, a name that is
    not encodable as UTF-8) is left out and logged; the rest of the batch is still written.
    """
    try:
        return "".join([
            "%s %s %d\r\n" % (
                name,
                ("%.10f" % value).rstrip("0").rstrip(".")
                if isinstance(value, float) else "%d" % value,
                ts,
            )
            for name, (ts, value) in batch
        ]).encode("utf-8")
    except (TypeError, ValueError, OverflowError):
        return _encode_checked(batch)


def _encode_checked(batch: Batch) -> bytes:
    out = []
    skipped = 0
    first = None
    for point in batch:
        try:
            name, (ts, value) = point
            if isinstance(value, float):
                text = ("%.10f" % value).rstrip("0").rstrip(".")
            else:
                text = "%d" % value
            out.append(("%s %s %d\r\n" % (name, text, ts)).encode("utf-8"))
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
