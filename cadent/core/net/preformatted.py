"""Datapoints whose wire text is already formatted, for senders that must not re-format.

Some producers (statsd) own the exact text of every value: JavaScript number formatting,
string values in pickles. They queue Batches whose points carry that text instead of a
float: ``(name, (timestamp, line))`` where ``line`` is the complete plaintext line,
newline included. Routers hash on ``name`` as usual; queues count, bound and requeue these
points like any other, so backpressure, reconnects and retries are the sender's own.

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


__all__ = ["preformatted_batch", "encode_preformatted_lines"]
