"""Read one whisper file and overlay the CarbonLink cache exactly as graphite-web does.

Merge rule for cached ``(ts, value)`` points, given the fetch ``(start, end, step)``:
1. with a raw step > 1, each point moves to ``ts - ts % raw_step``; later points in the reply
   win inside a bucket;
2. if the fetch came from a coarser archive, raw buckets are grouped by ``ts - ts % step`` and
   consolidated with the file's aggregation method (non-None values only);
3. every bucket in ``[start, end)`` overwrites the disk value: cache beats disk.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

log = logging.getLogger(__name__)

def _avg(vals: Sequence[float]) -> float:
    return sum(vals) / len(vals)


AGGREGATORS: dict[str, Callable[[Sequence[float]], float]] = {
    "average": _avg,
    "avg": _avg,
    "sum": sum,
    "last": lambda vals: vals[-1],
    "max": max,
    "min": min,
    "avg_zero": _avg,  # only non-None values reach the aggregator
    "absmax": lambda vals: max(vals, key=abs),
    "absmin": lambda vals: min(vals, key=abs),
}


_METADATA = struct.Struct("!2LfL")  # aggregation type, max retention, xFilesFactor, archive count
_ARCHIVE = struct.Struct("!3L")  # offset, seconds per point, points
POINT_SIZE = 12
_BLOCK = 256
_METHODS = {1: "average", 2: "sum", 3: "last", 4: "max", 5: "min", 6: "avg_zero", 7: "absmax", 8: "absmin"}


class CorruptFile(ValueError):
    """A whisper header or archive that cannot be what it claims."""


@dataclass(frozen=True)
class Header:
    """A whisper header; ``archives`` are ``(offset, seconds_per_point, points)``, finest first."""

    aggregation_method: str
    max_retention: int
    x_files_factor: float
    archives: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class FileInfo:
    """What the API takes from a whisper header."""

    aggregation_method: str
    max_retention: int
    raw_step: int
    x_files_factor: float
    mtime: float


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb", buffering=0)


def read_header(fh) -> Header:
    """Parse the header at the start of an open whisper file."""
    data = fh.read(_METADATA.size)
    if len(data) != _METADATA.size:
        raise CorruptFile("short header")
    agg, max_retention, xff, count = _METADATA.unpack(data)
    if not 0 < count < 1000:
        raise CorruptFile(f"bad archive count {count}")
    raw = fh.read(_ARCHIVE.size * count)
    if len(raw) != _ARCHIVE.size * count:
        raise CorruptFile("short archive table")
    archives = tuple(_ARCHIVE.iter_unpack(raw))
    if any(step <= 0 or points <= 0 for _, step, points in archives):
        raise CorruptFile("archive with no step or no points")
    return Header(_METHODS.get(agg, "average"), max_retention, xff, archives)


def file_info(path: str) -> FileInfo:
    """Header facts of ``path`` (``.wsp`` or ``.wsp.gz``); raises on unreadable files."""
    with _open(path) as fh:
        header = read_header(fh)
    return FileInfo(
        header.aggregation_method,
        int(header.max_retention),
        int(header.archives[0][1]),
        float(header.x_files_factor),
        os.stat(path).st_mtime,
    )


def file_interval(path: str, now: float | None = None) -> tuple[float, float]:
    """The interval graphite-web advertises for a whisper file: from the start of its
    retention (or its mtime, if that is earlier) to its mtime. Raises as :func:`file_info`."""
    info = file_info(path)
    now = time.time() if now is None else now
    return min(now - info.max_retention, info.mtime), info.mtime


class Window(NamedTuple):
    """What a fetch reads: slots ``first, first + step, ... < last`` of archive ``archive``."""

    first: int
    last: int
    step: int
    archive: int            # index into the archives the window was chosen from

    @property
    def time_info(self) -> tuple[int, int, int]:
        """graphite's ``(from, until, step)``."""
        return self.first, self.last, self.step


def fetch_window(archives: Sequence[tuple[int, int]], start: int, end: int, now: int,
                 max_retention: int | None = None) -> Window | None:
    """whisper's choice of archive and slots, or None when the range lies outside the retention.

    ``archives`` are ``(step, retention)`` in seconds, finest first; ``max_retention`` (the
    header's, for a whisper file) defaults to the longest retention. The range is clamped to
    that retention and to ``now``; the finest archive whose retention covers ``now - start``
    is chosen (else the coarsest); the first slot is the one after ``start``'s, the last the
    one holding ``end``. ValueError when ``start`` is after ``end``.
    """
    if start > end:
        raise ValueError(f"invalid time interval: from {start} is after until {end}")
    if max_retention is None:
        max_retention = max(retention for _, retention in archives)
    oldest = now - max_retention
    if start > now or end < oldest:
        return None
    start, end = max(start, oldest), min(end, now)
    age = now - start
    archive = next((i for i, (_, retention) in enumerate(archives) if retention >= age),
                   len(archives) - 1)
    step = archives[archive][0]
    first = start - start % step + step
    last = end - end % step + step
    if first == last:
        last += step
    return Window(first, last, step, archive)


def fetch_file(fh, start: int, end: int, now: int | None = None,
               header: Header | None = None) -> tuple[tuple[int, int, int], list] | None:
    """whisper's fetch over an open file: ``((from, until, step), values)`` or None.

    Same rules as python-whisper: the range is clamped to the retention and to ``now``; the
    finest archive whose retention covers ``now - from`` is read; the first slot is the one
    after ``from``'s, the last the one holding ``until``; a slot counts only if its stored
    timestamp is the expected one. NaN values come back as None.
    """
    if header is None:
        header = read_header(fh)
    if now is None:
        now = int(time.time())
    window = fetch_window([(step, step * points) for _, step, points in header.archives],
                          int(start), int(end), now, header.max_retention)
    if window is None:
        return None
    first, last, step, archive = window
    offset, _, points = header.archives[archive]
    count = (last - first) // step
    fh.seek(offset)
    base = fh.read(POINT_SIZE)
    if len(base) != POINT_SIZE:
        raise CorruptFile("archive beyond the end of the file")
    base_ts = struct.unpack("!L", base[:4])[0]
    if base_ts == 0:
        return (first, last, step), [None] * count
    size = points * POINT_SIZE
    from_off = offset + ((first - base_ts) // step * POINT_SIZE) % size
    until_off = offset + ((last - base_ts) // step * POINT_SIZE) % size
    fh.seek(from_off)
    if from_off < until_off:
        data = fh.read(until_off - from_off)
    else:
        data = fh.read(offset + size - from_off)
        fh.seek(offset)
        data += fh.read(until_off - offset)
    n = len(data) // POINT_SIZE
    stamps, raw = _decode(data[: n * POINT_SIZE], n)
    values = raw.tolist() if _NATIVE else list(raw)
    expected = _expected_stamps(first, step, n)
    # compare timestamps a block at a time in C; only blocks with stale slots go point by point
    if stamps != expected:
        for i in range(0, n, _BLOCK):
            j = min(n, i + _BLOCK)
            if stamps[i:j] != expected[i:j]:
                for k in range(i, j):
                    if stamps[k] != expected[k]:
                        values[k] = None
    total = sum(raw)  # stale slots included: they can only cause a needless NaN sweep
    if total != total:  # a NaN somewhere (or inf - inf): clear NaNs one by one
        values = [None if v is None or v != v else v for v in values]
    return (first, last, step), values


# On a little-endian host with a 4-byte array("I") the 12-byte big-endian points are split
# into words, reordered and byte-swapped with array slicing, all in C.
_NATIVE = sys.byteorder == "little" and array("I").itemsize == 4


@lru_cache(maxsize=16)
def _expected_stamps(first: int, step: int, n: int):
    """The aligned timestamps a fetch expects (every file of one render shares them)."""
    stamps = range(first, first + n * step, step)
    return array("I", stamps) if _NATIVE else tuple(stamps)


def _decode(data: bytes, n: int):
    """``(timestamps, values)`` of ``n`` packed points: arrays (or tuples)."""
    if not _NATIVE:
        flat = struct.unpack("!" + "Ld" * n, data)
        return flat[0::2], flat[1::2]
    words = array("I", data)
    stamps = words[0::3]
    stamps.byteswap()
    halves = array("I", bytes(8 * n))
    halves[0::2] = words[2::3]  # low word of the big-endian double first, then the high one
    halves[1::2] = words[1::3]
    halves.byteswap()
    return stamps, array("d", halves.tobytes())


def merge_cached(
    time_info: tuple[int, int, int],
    values: list,
    cached: Sequence[tuple[float, float]],
    raw_step: int,
    aggregation_method: str,
) -> list:
    """Overlay ``cached`` points on ``values`` in place (see the module doc) and return it."""
    if not cached:
        return values
    start, end, step = time_info
    raw: dict[int, float] = {}
    for ts, value in cached:
        ts = int(ts)
        raw[ts - ts % raw_step if raw_step > 1 else ts] = value
    if step != raw_step:
        grouped: dict[int, list[float]] = {}
        for ts in sorted(raw):
            if raw[ts] is not None:
                grouped.setdefault(ts - ts % step, []).append(raw[ts])
        agg = AGGREGATORS.get(aggregation_method, _avg)
        buckets = {ts: agg(vals) for ts, vals in grouped.items()}
    else:
        buckets = raw
    for ts, value in buckets.items():
        if ts < start or ts >= end:
            continue
        values[(ts - start) // step] = value
    return values


def read_file(path: str, start: int, end: int, now: int | None = None):
    """``(header, ((start, end, step), values))`` from disk only; None if no data or unreadable."""
    try:
        with _open(path) as fh:
            header = read_header(fh)
            result = fetch_file(fh, start, end, now, header)
    except (OSError, CorruptFile, EOFError, ValueError, struct.error) as exc:
        log.warning("cannot read %s: %r", path, exc)
        return None
    return None if result is None else (header, result)


def read_files(paths: Sequence[str], start: int, end: int, now: int | None = None) -> list:
    """:func:`read_file` for every path (one call, so a caller can run it in one thread)."""
    return [read_file(path, start, end, now) for path in paths]


def overlay_cache(header: Header, result, name: str, cache_query) -> tuple[tuple[int, int, int], list]:
    """Merge ``cache_query(name)`` into a :func:`read_file` result (in place) and return it."""
    time_info, values = result
    if cache_query is not None:
        merge_cached(time_info, values, cache_query(name), int(header.archives[0][1]), header.aggregation_method)
    return time_info, values


def read_series(
    path: str,
    name: str,
    start: int,
    end: int,
    now: int | None = None,
    cache_query: Callable[[str], Sequence[tuple[float, float]]] | None = None,
) -> tuple[tuple[int, int, int], list] | None:
    """``((start, end, step), values)`` for one whisper file, cache merged; None if no data."""
    found = read_file(path, start, end, now)
    if found is None:
        return None
    return overlay_cache(found[0], found[1], name, cache_query)


__all__ = ["AGGREGATORS", "CorruptFile", "FileInfo", "Header", "Window", "fetch_file", "fetch_window",
           "file_info", "file_interval", "merge_cached", "overlay_cache", "read_file", "read_files",
           "read_header", "read_series"]
