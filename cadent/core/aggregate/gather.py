"""The aggregator's per-point work, done a batch at a time.

:func:`group_by_output` walks a batch once: each point's rule matches come from the per-name
cache (``match`` fills it for a new name), its ``(timestamp, value)`` pair is appended to the
group of every output it feeds, and it is kept for raw forwarding unless its match says not to.
:func:`take_groups` then hands each group to its output's live buffer in one step when the
group lies in one aggregation interval (:func:`take_group`, :func:`common_interval`), and stops
at the first group that needs the buffers' general path (a new buffer, a rule reload, more than
one interval, the point bound), so groups are still added strictly in order.

This module is the reference; when built, its compiled twin ``_cadent_c_gather`` (the same
source through Cython, types in ``_cadent_c_gather.pxd``) is used instead, with identical
results (``tests/unit/test_aggregate_gather.py`` compares the two).
"""

from __future__ import annotations

from collections.abc import Callable

from cadent.core.point import Batch

# per name: ((output, frequency, method), ...) in rule order, and whether to forward it raw
Match = tuple[tuple[tuple[str, int, str], ...], bool]
Pair = tuple[float, float]

# ints below this convert to a C double exactly
_EXACT = 2**53


def group_by_output(
    batch: Batch, matches: dict[str, Match], match: Callable[[str], Match],
) -> tuple[dict[str, list[Pair]], list[tuple[str, int, str]], Batch]:
    """``(groups, firsts, forwarded)`` for ``batch``.

    ``groups`` maps each output to its pairs in arrival order (a point matching two rules with
    the same output is in its group twice); ``firsts`` lists each output once, as the
    ``(output, frequency, method)`` of the first match that reached it, in the order outputs
    were first reached; ``forwarded`` holds the points to forward raw, in order (``batch``
    itself when that is every point).
    """
    groups: dict[str, list[Pair]] = {}
    firsts: list[tuple[str, int, str]] = []
    forwarded: Batch | None = None
    index = 0
    for item in batch:
        name = item[0]
        entry = matches.get(name)
        if entry is None:
            entry = match(name)
        outputs = entry[0]
        if outputs:
            pair = item[1]
            for out in outputs:
                output = out[0]
                group = groups.get(output)
                if group is None:
                    groups[output] = [pair]
                    firsts.append(out)
                else:
                    group.append(pair)
        if entry[1]:
            if forwarded is not None:
                forwarded.append(item)
        elif forwarded is None:
            forwarded = batch[:index]
        index += 1
    return groups, firsts, batch if forwarded is None else forwarded


def take_groups(
    buffers: dict, generation: int, groups: dict[str, list[Pair]],
    firsts: list[tuple[str, int, str]], start: int, room: int,
) -> tuple[int, int]:
    """Add ``groups`` to their buffers in the order of ``firsts``, from index ``start``, while
    each group's buffer is in ``buffers`` and of ``generation``, the group fits in ``room``
    values and :func:`take_group` takes it; ``(index of the first group not taken, values
    added)``. The index is ``len(firsts)`` when every group was taken.
    """
    added = 0
    index = start
    end = len(firsts)
    while index < end:
        output = firsts[index][0]
        pairs = groups[output]
        count = len(pairs)
        buf = buffers.get(output)
        if buf is None or buf.generation != generation or count > room - added:
            break
        if not take_group(buf, pairs):
            break
        added += count
        index += 1
    return index, added


def take_group(buf, pairs: list[Pair]) -> bool:
    """Append the values of ``pairs`` to the one interval of ``buf`` they all fall in and mark
    it active; False (``buf`` untouched) when there is no such interval."""
    interval = common_interval(pairs, buf.frequency)
    if interval is None:
        return False
    intervals = buf.intervals
    held = intervals.get(interval)
    if len(pairs) == 1:
        if held is None:
            intervals[interval] = [pairs[0][1]]
        else:
            held.append(pairs[0][1])
    elif held is None:
        intervals[interval] = [pair[1] for pair in pairs]
    else:
        held.extend([pair[1] for pair in pairs])
    buf.active.add(interval)
    return True


def common_interval(pairs: list[Pair], frequency: int) -> float | None:
    """The start of the one interval of ``frequency`` seconds that holds every timestamp of
    ``pairs``, computed as a buffer computes it from the first; None when they span more than
    one, when any is NaN or infinite, or when ``pairs`` is empty."""
    if not pairs:
        return None
    first = pairs[0][0]
    if type(first) is float and type(frequency) is int and first > 0 and 0 < frequency < _EXACT:
        # a positive float stamp and an int period: the float arithmetic Python itself does
        # (the remainder of positive operands needs no sign correction), in C doubles
        seconds = first
        period = frequency
        low = seconds - seconds % period
        high = low + period
        interval = low
        end = high
    else:
        interval = first - first % frequency
        end = interval + frequency
    if type(interval) is float and type(end) is float:
        # floats compare as the C doubles they hold (the compiled twin's fast loop)
        low = interval
        high = end
        for pair in pairs:
            stamp = pair[0]
            if type(stamp) is float:
                seconds = stamp
                if not (low <= seconds < high):
                    return None
            elif not (interval <= stamp < end):
                return None
        return interval
    for pair in pairs:
        stamp = pair[0]
        if not (interval <= stamp < end):
            return None
    return interval


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.core.aggregate._cadent_c_gather")
