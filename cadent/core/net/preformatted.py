"""Datapoints whose wire text is already formatted, for senders that must not re-format.

Some producers (statsd) own the exact text of every value: JavaScript number formatting,
string values in pickles. They queue Batches whose points carry that text instead of a
float: ``(name, (timestamp, line))`` where ``line`` is the complete plaintext line,
newline included. Routers hash on ``name`` as usual; queues count, bound and requeue these
points like any other, so backpressure, reconnects and retries are the sender's own.

Lines relayed unchanged (statsd or regex-keyed lines, :mod:`cadent.core.parse.keyed`) are
points ``(key, (timestamp, line))`` whose ``line`` is bytes; :func:`encode_raw_lines` writes
them out as they came.

Pass :func:`encode_preformatted_lines` (or another encoder over such points) as the
``protocol`` of :class:`cadent.core.net.output.RoutedOutput` /
:class:`cadent.core.net.sender.DestinationSender`.
"""

from __future__ import annotations

from typing import Iterable

from cadent.core.point import Batch


def preformatted_batch(lines: Iterable[str]) -> Batch:
    """``"name value ts\\n"`` lines → points ``(name, (ts, line))`` (names may hold spaces)."""
    batch = []
    append = batch.append
    for line in lines:
        cut = line.rfind(" ")
        name_end = line.rfind(" ", 0, cut)
        append((line[:name_end], (int(line[cut + 1 :]), line)))
    return batch


def encode_preformatted_lines(batch: Batch) -> bytes:
    """The points' own lines, concatenated, UTF-8."""
    return "".join([point[1][1] for point in batch]).encode("utf-8")


def encode_raw_lines(batch: Batch) -> bytes:
    """The points' own bytes lines, concatenated unchanged."""
    return b"".join([point[1][1] for point in batch])  # type: ignore[misc]


def raw_self_metrics(batch: Batch, kind: str) -> Batch:
    """Self-metrics as lines for a relay of keyed lines: statsd gauges (``name:value|g``) for
    ``kind`` statsd, else carbon plaintext lines; keyed on the metric name."""
    if kind == "statsd":
        return [(name, (ts, f"{name}:{_number(value)}|g\n".encode())) for name, (ts, value) in batch]
    return [(name, (ts, f"{name} {_number(value)} {int(ts)}\n".encode()))
            for name, (ts, value) in batch]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


__all__ = ["preformatted_batch", "encode_preformatted_lines", "encode_raw_lines", "raw_self_metrics"]
