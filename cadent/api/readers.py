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
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import whisper

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


@dataclass(frozen=True)
class FileInfo:
    """What the API takes from a whisper header."""

    aggregation_method: str
    max_retention: int
    raw_step: int
    x_files_factor: float
    mtime: float


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def file_info(path: str) -> FileInfo:
    """Header facts of ``path`` (``.wsp`` or ``.wsp.gz``); raises on unreadable files."""
    with _open(path) as fh:
        info = _info(fh)
    return FileInfo(
        info["aggregationMethod"],
        int(info["maxRetention"]),
        int(info["archives"][0]["secondsPerPoint"]),
        float(info["xFilesFactor"]),
        os.stat(path).st_mtime,
    )


def _info(fh) -> dict:
    # whisper.info() takes a path; its header reader takes an open file (also gzip).
    return getattr(whisper, "__readHeader")(fh)


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


def read_series(
    path: str,
    name: str,
    start: int,
    end: int,
    now: int | None = None,
    cache_query: Callable[[str], Sequence[tuple[float, float]]] | None = None,
) -> tuple[tuple[int, int, int], list] | None:
    """``((start, end, step), values)`` for one whisper file, cache merged; None if no data."""
    try:
        with _open(path) as fh:
            header = _info(fh)
            result = whisper.file_fetch(fh, start, end, now)
    except (OSError, whisper.WhisperException, EOFError, ValueError) as exc:
        log.warning("cannot read %s: %r", path, exc)
        return None
    if result is None:
        return None
    time_info, values = result
    time_info = tuple(int(t) for t in time_info)
    values = [None if v is not None and math.isnan(v) else v for v in values]
    if cache_query is not None:
        cached = cache_query(name)
        merge_cached(
            time_info, values, cached, int(header["archives"][0]["secondsPerPoint"]), header["aggregationMethod"]
        )
    return time_info, values


__all__ = ["AGGREGATORS", "FileInfo", "file_info", "merge_cached", "read_series"]
