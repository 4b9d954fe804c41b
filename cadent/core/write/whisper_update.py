"""A faster ``whisper.file_update_many``: the same bytes on disk, less Python per call.

``update_many(handle, points, now)`` leaves exactly the bytes ``whisper.file_update_many``
leaves for the same file, points and ``now`` (``None`` means ``int(time.time())``): the
same archive per point (the archive pointer only moves forward; once a point is older than
every archive, it and every later point are dropped), the same runs of contiguous
intervals (of adjacent duplicate intervals the last one in the reversed input wins), the
same base point rule (a fresh archive is based on its first run), the same wrap-around,
and the same propagation to lower archives (xFilesFactor, every aggregation method,
intervals visited in the same order). ``update_file(fd, path, points, now)`` is the same on a
bare descriptor open read/write, as the whisper writer opens its files: no file object, so
one ``open`` and one ``close`` syscall per update (whisper itself, when it is called, gets an
unbuffered handle on that descriptor named ``path``).

It is faster because it works on the descriptor with ``os.pread``/``os.pwrite`` (after
flushing the handle; a buffered handle's read buffer is dropped on return): the header and
the first archive's base point come from one read, the header is parsed once per distinct
header (memoised by its raw bytes, so a changed file is never served a stale header), each
base point is read at most once and tracked in memory afterwards, points are packed with
one precompiled ``struct.Struct`` per run, an oldest-first run (whisper writes it point by
point, to distinct slots) goes out as one write, each propagation level reads its higher
slices in one read before any lower write, and writes to adjacent slots are joined. A file
shorter than its header says is handled step by step as whisper does, raising the same
``CorruptWhisperFile`` after the same writes.

Anything unusual is handed to ``whisper.file_update_many`` before a single byte is written,
so the result (or the exception) is whisper's own: an empty or non-list input, a point
that is not a (timestamp, value) pair, a handle without a descriptor or not opened
read/write without append, a header whisper would reject or that does not have
whisper.create's layout (contiguous archives, strictly increasing precision, each archive
holding enough points to consolidate into the next), a timestamp below the coarsest
precision (whisper treats interval 0 specially), a point that does not pack (non-int or
out-of-range timestamp, non-numeric value), a run of contiguous points longer than its
archive (whisper then writes past the archive end), or whisper's global
LOCK/AUTOFLUSH/CACHE_HEADERS switches being on.
"""

from __future__ import annotations

import os
import struct
import time
from io import FileIO
from itertools import chain
from operator import itemgetter
from typing import Any, Callable, Sequence

import whisper

_META = struct.Struct("!2LfL")
_POINT = struct.Struct("!Ld")
_LONG = struct.Struct("!L")
_POINT_SIZE = 12
_HEAD_READ = 64  # metadata + 3 archive infos + archive 0's base point
_READ_WRITE_MODES = frozenset(("rb+", "r+b"))
_MAX_ARCHIVES = 1024  # a bigger count is a corrupt header: whisper reports it

_Archive = tuple[int, int, int, int]  # offset, seconds per point, points, size in bytes
_Aggregator = Callable[[list, list], Any]


def _avg(known: list, neighbors: list) -> float:
    return float(sum(known)) / float(len(known))


def _avg_zero(known: list, neighbors: list) -> float:
    values = [x or 0 for x in neighbors]
    return float(sum(values)) / float(len(values))


_AGGREGATORS: dict[int, _Aggregator] = {
    1: _avg,
    2: lambda known, neighbors: float(sum(known)),
    3: lambda known, neighbors: known[-1],
    4: lambda known, neighbors: max(known),
    5: lambda known, neighbors: min(known),
    6: _avg_zero,
    7: lambda known, neighbors: max(known, key=abs),
    8: lambda known, neighbors: min(known, key=abs),
}

_structs: dict[int, struct.Struct] = {}
_headers: dict[bytes, tuple | None] = {}
_HEADER_MEMO_MAX = 4096


def _points_struct(count: int) -> struct.Struct:
    """The struct of ``count`` consecutive (interval, value) points."""
    packer = _structs.get(count)
    if packer is None:
        packer = _structs[count] = struct.Struct("!" + "Ld" * count)
    return packer


def _parse_header(raw: bytes, count: int) -> tuple | None:
    """(archives, xff, aggregator, coarsest precision) or None to fall back."""
    agg_type, _max_retention, xff, _count = _META.unpack_from(raw)
    aggregator = _AGGREGATORS.get(agg_type)
    if aggregator is None or not 0 <= xff <= 1 or count == 0:
        return None
    fields = struct.unpack_from("!" + "3L" * count, raw, _META.size)
    archives: list[_Archive] = []
    expected_offset = _META.size + 12 * count
    for i in range(0, 3 * count, 3):
        offset, step, points = fields[i], fields[i + 1], fields[i + 2]
        if offset != expected_offset or step < 1 or points < 1:
            return None
        if archives:
            previous = archives[-1]
            if step <= previous[1] or previous[2] < step // previous[1]:
                return None
        size = points * _POINT_SIZE
        archives.append((offset, step, points, size))
        expected_offset += size
    return tuple(archives), xff, aggregator, archives[-1][1]


def _header(fd: int) -> tuple | None:
    """((archives, xff, aggregator, coarsest precision), [base points]) or None."""
    raw = os.pread(fd, _HEAD_READ, 0)
    if len(raw) < _META.size:
        return None
    count = _LONG.unpack_from(raw, 12)[0]
    if count > _MAX_ARCHIVES:
        return None
    need = _META.size + 12 * count
    if len(raw) < need:
        raw = os.pread(fd, need, 0)
        if len(raw) < need:
            return None
    key = raw[:need]
    parsed = _headers.get(key, False)
    if parsed is False:
        parsed = _parse_header(key, count)
        if len(_headers) >= _HEADER_MEMO_MAX:
            _headers.clear()
        _headers[key] = parsed
    if parsed is None:
        return None
    bases: list = [None] * count
    if len(raw) >= need + _POINT_SIZE:
        bases[0] = _LONG.unpack_from(raw, need)[0]
    return parsed, bases


def _base(fd: int, path: Any, archives: tuple, bases: list, index: int) -> int:
    """The interval in an archive's first slot, read when first needed, then tracked."""
    base = bases[index]
    if base is None:
        raw = os.pread(fd, _POINT_SIZE, archives[index][0])
        if len(raw) != _POINT_SIZE:
            raise whisper.CorruptWhisperFile("Unable to read base datapoint", path)
        base = bases[index] = _LONG.unpack_from(raw)[0]
    return base


def _groups(points: Sequence, archives: tuple, now: Any) -> list:
    """Split points per archive as whisper does: [(archive index, reversed points)]."""
    groups = []
    index = 0
    retention = archives[0][1] * archives[0][2]
    current: list = []
    for point in points:
        age = now - point[0]
        while retention < age:
            if current:
                current.reverse()
                groups.append((index, current))
                current = []
            index += 1
            if index == len(archives):
                return groups
            retention = archives[index][1] * archives[index][2]
        current.append(point)
    if current:
        current.reverse()
        groups.append((index, current))
    return groups


def _plan(archive: _Archive, pts: list) -> tuple | None:
    """(aligned intervals, anchor, [(start, count, packed)]) for one archive; None: fall back.

    ``pts`` is in whisper's write order (the input reversed). ``anchor`` is the interval
    whisper bases a fresh archive on (its first run's start).
    """
    step = archive[1]
    timestamps, values = zip(*pts)
    aligned = [t - t % step for t in timestamps]
    count = len(aligned)
    first = aligned[0]
    if count == 1 or aligned == list(range(first, first + count * step, step)):
        if count > archive[2]:
            return None
        flat = [None] * (2 * count)
        flat[0::2] = aligned
        flat[1::2] = values
        return aligned, first, [(first, count, _points_struct(count).pack(*flat))]
    oldest = first - (count - 1) * step
    if count <= archive[2] and aligned == list(range(first, oldest - step, -step)):
        # One point per interval, newest first: whisper writes each point on its own to
        # distinct slots, which is the same bytes as one ascending run.
        flat = [None] * (2 * count)
        flat[0::2] = aligned[::-1]
        flat[1::2] = values[::-1]
        return aligned, first, [(oldest, count, _points_struct(count).pack(*flat))]
    runs = []
    flat = None
    previous = 0
    last = count - 1
    for i, interval in enumerate(aligned):
        if i < last and interval == aligned[i + 1]:
            continue
        if flat is not None and interval == previous + step:
            flat.append(interval)
            flat.append(values[i])
        else:
            flat = [interval, values[i]]
            runs.append(flat)
        previous = interval
    packed = []
    for flat in runs:
        n = len(flat) // 2
        if n > archive[2]:
            return None
        packed.append((flat[0], n, _points_struct(n).pack(*flat)))
    return aligned, runs[0][0], packed


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    written = os.pwrite(fd, data, offset)
    while written < len(data):  # a short write (rare on a regular file): write the rest
        data = data[written:]
        offset += written
        written = os.pwrite(fd, data, offset)


def _write_joined(fd: int, offset: int, pieces: list) -> None:
    """Write (relative position, bytes) pieces, sorted and non-overlapping, adjacent ones joined."""
    chunk_start = chunk_end = -1
    chunk: list[bytes] = []
    for rel, packed in pieces:
        if rel != chunk_end:
            if chunk:
                _pwrite(fd, b"".join(chunk), offset + chunk_start)
            chunk_start = rel
            chunk = []
        chunk.append(packed)
        chunk_end = rel + len(packed)
    _pwrite(fd, b"".join(chunk), offset + chunk_start)


def _write_runs(fd: int, archive: _Archive, anchor: int, runs: list, base: int) -> int:
    """Write the runs where whisper puts them; answer the interval now in slot 0.

    When no two runs share a slot their order cannot matter, so adjacent pieces are joined
    and written once; otherwise they are written in whisper's order.
    """
    offset, step, _points, size = archive
    pieces = []
    for start, n, packed in runs:
        rel = (start - anchor) // step * _POINT_SIZE % size
        beyond = rel + n * _POINT_SIZE - size
        if beyond > 0:
            pieces.append((rel, packed[:-beyond]))
            pieces.append((0, packed[-beyond:]))
        else:
            pieces.append((rel, packed))
    for rel, packed in pieces:
        if rel == 0:
            base = _LONG.unpack_from(packed)[0]
    ordered = sorted(pieces, key=itemgetter(0))
    end = -1
    for rel, packed in ordered:
        if rel < end:  # overlapping slots: keep whisper's write order
            for rel, packed in pieces:
                _pwrite(fd, packed, offset + rel)
            return base
        end = rel + len(packed)
    _write_joined(fd, offset, ordered)
    return base


def _plans(points: list, archives: tuple, min_timestamp: int, now: Any) -> list | None:
    """[(archive index, (aligned, anchor, runs))] in whisper's order, or None to fall back."""
    try:
        timestamps = [point[0] for point in points if len(point) == 2]
        count = len(timestamps)
        if count != len(points):
            return None
        oldest = min(timestamps)
        if oldest < min_timestamp:
            return None
        first = archives[0]
        start = timestamps[0]
        step = first[1]
        if first[1] * first[2] < now - oldest:
            plans = []
            for index, pts in _groups(points, archives, now):
                plan = _plan(archives[index], pts)
                if plan is None:
                    return None
                plans.append((index, plan))
        elif count <= first[2] and timestamps == list(range(start, start + count * step, step)):
            # Oldest first, one point per interval (what a cache drain hands over): whisper
            # writes each point alone to distinct slots, the same bytes as this one
            # ascending run; it bases a fresh archive on the newest point.
            shift = start % step
            if shift:
                ascending = list(range(start - shift, start - shift + count * step, step))
                flat = [None] * (2 * count)
                flat[0::2] = ascending
                flat[1::2] = [point[1] for point in points]
                packed = _points_struct(count).pack(*flat)
            else:
                ascending = timestamps
                packed = _points_struct(count).pack(*chain.from_iterable(points))
            aligned = ascending[::-1]
            plans = [(0, (aligned, aligned[0], [(ascending[0], count, packed)]))]
        else:
            plan = _plan(first, points[::-1])
            if plan is None:
                return None
            plans = [(0, plan)]
    except Exception:  # nothing is written yet: whisper gets the input and says what is wrong
        return None
    return plans


def whisper_switches_on() -> bool:
    """True when one of whisper's module settings this writer does not follow (locking,
    autoflush, cached headers) is on: every update then goes to whisper itself."""
    return bool(whisper.LOCK or whisper.AUTOFLUSH or whisper.CACHE_HEADERS)


def _whisper_must_update(points: Any) -> bool:
    """True when whisper itself must take the call: nothing or no list to write, or
    ``whisper_switches_on``."""
    return not points or type(points) is not list or whisper_switches_on()


def update_many(handle: Any, points: Sequence[tuple[int, float]], now: Any = None) -> None:
    """Apply ``points`` to the whisper file open as ``handle`` (r+b): whisper.file_update_many's
    contract and bytes (see the module docstring for when whisper itself is called)."""
    if _whisper_must_update(points) or getattr(handle, "mode", None) not in _READ_WRITE_MODES:
        return whisper.file_update_many(handle, points, now)
    try:
        fd = handle.fileno()
    except (AttributeError, OSError, ValueError):
        return whisper.file_update_many(handle, points, now)
    handle.flush()
    try:
        applied = _apply(fd, getattr(handle, "name", None), points, now)
    except BaseException:
        _drop_read_buffer(handle)
        raise
    if not applied:
        return whisper.file_update_many(handle, points, now)
    _drop_read_buffer(handle)
    return None


def _drop_read_buffer(handle: Any) -> None:
    """Make a buffered handle forget what it read before our writes."""
    if type(handle) is not FileIO:
        handle.seek(0, 2)


def update_file(fd: int, path: str, points: Sequence[tuple[int, float]], now: Any = None) -> None:
    """``update_many`` on a descriptor open read/write (``os.open(path, os.O_RDWR)``), without
    a file object: the same bytes, the same fallback to whisper (given an unbuffered handle
    on ``fd`` named ``path``) and the same exceptions."""
    if _whisper_must_update(points) or not _apply(fd, path, points, now):
        handle = FileIO(fd, "r+", closefd=False)
        handle.name = path
        whisper.file_update_many(handle, points, now)


def _apply(fd: int, path: Any, points: list, now: Any) -> bool:
    """Write ``points`` through ``fd``; False (nothing written) when whisper must do it."""
    header = _header(fd)
    if header is None:
        return False
    (archives, xff, aggregator, min_timestamp), bases = header
    if now is None:
        now = int(time.time())
    plans = _plans(points, archives, min_timestamp, now)
    if plans is None:
        return False
    for index, (aligned, anchor, runs) in plans:
        base = _base(fd, path, archives, bases, index)
        archive = archives[index]
        if len(runs) == 1:
            start, n, packed = runs[0]
            offset, step, _n, size = archive
            rel = (start - (base or anchor)) // step * _POINT_SIZE % size
            beyond = rel + n * _POINT_SIZE - size
            if beyond > 0:
                _pwrite(fd, packed[:-beyond], offset + rel)
                _pwrite(fd, packed[-beyond:], offset)
                bases[index] = start + (size - rel) // _POINT_SIZE * step
            else:
                _pwrite(fd, packed, offset + rel)
                if rel == 0:
                    bases[index] = start
        else:
            bases[index] = _write_runs(fd, archive, base or anchor, runs, base)
        _propagate_down(fd, path, archives, bases, index, aligned, xff, aggregator)
    return True


def _propagate_down(fd: int, path: Any, archives: tuple, bases: list, index: int,
                    aligned: list, xff: float, aggregator: _Aggregator) -> None:
    """Propagate the intervals ``aligned`` just written to archive ``index`` to the lower
    archives, as far as each level writes something."""
    higher = index
    for lower in range(index + 1, len(archives)):
        if not _propagate(fd, path, archives, bases, higher, lower, aligned, xff, aggregator):
            break
        higher = lower


def propagate_first(fd: int, path: str, aligned: list[int]) -> None:
    """Finish an update whose points are already in the first archive: propagate the
    intervals ``aligned`` (newest first, as whisper visits them) to the lower archives,
    exactly as ``update_file`` does after writing them. For a caller that wrote the first
    archive itself with whisper's placement (the compiled batch writer); the file must have
    a header ``update_file`` accepts."""
    header = _header(fd)
    if header is None:
        raise whisper.CorruptWhisperFile("Unexpected header after the first archive's write", path)
    (archives, xff, aggregator, _min_timestamp), bases = header
    _base(fd, path, archives, bases, 0)  # past the header's read when there are many archives
    _propagate_down(fd, path, archives, bases, 0, aligned, xff, aggregator)


def _propagate(
    fd: int,
    path: Any,
    archives: tuple,
    bases: list,
    higher: int,
    lower: int,
    aligned: list,
    xff: float,
    aggregator: _Aggregator,
) -> bool:
    """One propagation level; True when at least one lower point was written.

    Every higher slice is read (and aggregated) before any lower write: the archives do not
    overlap, so this reads what whisper's interleaved reads and writes read.
    """
    h_offset, h_step, _h_points, h_size = archives[higher]
    l_offset, l_step, _l_points, l_size = archives[lower]
    h_base = bases[higher]
    per = l_step // h_step
    span = per * _POINT_SIZE
    firsts = [
        (interval, (interval - h_base) // h_step * _POINT_SIZE % h_size if h_base else 0)
        for interval in set([t - t % l_step for t in aligned])
    ]
    low = min(firsts, key=itemgetter(1))[1]
    high = max(firsts, key=itemgetter(1))[1] + span
    window = os.pread(fd, high - low, h_offset + low) if high <= h_size else b""
    if len(window) != high - low:  # a slice wraps, or a short file: whisper's own steps
        return _propagate_each(fd, path, archives, bases, higher, lower, firsts, xff, aggregator)
    results = []
    unpack_from = _points_struct(per).unpack_from
    reach = per * h_step
    for interval, first in firsts:
        series = unpack_from(window, first - low)
        if series[0::2] == tuple(range(interval, interval + reach, h_step)):
            if 1.0 >= xff:
                known = list(series[1::2])
                results.append((interval, aggregator(known, known)))
        else:
            _aggregate_gaps(results, interval, series, per, h_step, xff, aggregator)
    if not results:
        return False
    l_base = _base(fd, path, archives, bases, lower)
    writes: dict[int, bytes] = {}
    for interval, value in results:
        if l_base == 0:
            position = 0
            l_base = interval
        else:
            position = (interval - l_base) // l_step * _POINT_SIZE % l_size
            if position == 0:
                l_base = interval
        writes[position] = _POINT.pack(interval, value)
    bases[lower] = l_base
    if len(writes) == 1:
        for position, packed in writes.items():
            _pwrite(fd, packed, l_offset + position)
    else:
        _write_joined(fd, l_offset, sorted(writes.items()))
    return True


def _propagate_each(
    fd: int,
    path: Any,
    archives: tuple,
    bases: list,
    higher: int,
    lower: int,
    firsts: list,
    xff: float,
    aggregator: _Aggregator,
) -> bool:
    """One propagation level, one lower interval after the other, each written at once."""
    h_offset, h_step, _h_points, h_size = archives[higher]
    l_offset, l_step, _l_points, l_size = archives[lower]
    span = l_step // h_step * _POINT_SIZE
    written = False
    for interval, first in firsts:
        last = (first + span) % h_size
        if first < last:
            raw = os.pread(fd, last - first, h_offset + first)
        else:
            raw = os.pread(fd, h_size - first, h_offset + first)
            raw += os.pread(fd, last, h_offset)
        n, rest = divmod(len(raw), _POINT_SIZE)
        if rest:
            raise whisper.CorruptWhisperFile("Unable to read datapoints", path)
        results: list = []
        series = _points_struct(n).unpack(raw)
        _aggregate_gaps(results, interval, series, n, h_step, xff, aggregator)
        if not results:
            continue
        l_base = _base(fd, path, archives, bases, lower)
        if l_base == 0:
            position = 0
            bases[lower] = interval
        else:
            position = (interval - l_base) // l_step * _POINT_SIZE % l_size
            if position == 0:
                bases[lower] = interval
        _pwrite(fd, _POINT.pack(interval, results[0][1]), l_offset + position)
        written = True
    return written


def _aggregate_gaps(
    results: list,
    interval: int,
    series: tuple,
    n: int,
    h_step: int,
    xff: float,
    aggregator: _Aggregator,
) -> None:
    """Aggregate a higher slice in which some slots hold another interval, if xff allows."""
    expected = range(interval, interval + n * h_step, h_step)
    neighbors = [v if t == e else None for t, v, e in zip(series[0::2], series[1::2], expected)]
    known = [v for v in neighbors if v is not None]
    if known and float(len(known)) / float(n) >= xff:
        results.append((interval, aggregator(known, neighbors)))


__all__ = ["propagate_first", "update_file", "update_many", "whisper_switches_on"]
