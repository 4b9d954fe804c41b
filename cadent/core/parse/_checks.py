"""The per-datapoint checks every receiver applies after parsing, done a whole batch at a time.

Order and meaning follow carbon's receiver: a NaN value is dropped; a timestamp whose integer
part is -1 means "now"; MIN_TIMESTAMP_RESOLUTION floors the timestamp to a multiple of itself
(making it an int). A NaN or infinite timestamp, which carbon cannot handle, costs that
datapoint only.
"""

from __future__ import annotations

from typing import Sequence

from cadent.core.point import Batch


def clean(timestamps: Sequence[float], values: Sequence[float]) -> bool:
    """True when no datapoint needs a check: no NaN/infinite value or timestamp, no -1 timestamp.

    Whole-column sums are finite only when no member is NaN or infinite (a finite overflow
    just sends the batch to the careful path), so this is two C-level passes and a min().
    """
    value_sum = sum(values)
    ts_sum = sum(timestamps)
    return (
        value_sum - value_sum == 0.0
        and ts_sum - ts_sum == 0.0
        and (not timestamps or min(timestamps) > -1.0)
    )


def assemble(
    names: Sequence[str],
    timestamps: Sequence[float],
    values: Sequence[float],
    now: float,
    resolution: int,
) -> tuple[Batch, int, int]:
    """Zip parallel columns into a Batch, applying the receiver checks.

    Returns ``(batch, nan_values, bad_timestamps)``: the accepted datapoints and how many were
    dropped for a NaN value and for a NaN/infinite timestamp.
    """
    if clean(timestamps, values):
        if resolution:
            timestamps = [int(ts) // resolution * resolution for ts in timestamps]
        return list(zip(names, zip(timestamps, values))), 0, 0
    return _assemble_checked(names, timestamps, values, now, resolution)


def _assemble_checked(
    names: Sequence[str],
    timestamps: Sequence[float],
    values: Sequence[float],
    now: float,
    resolution: int,
) -> tuple[Batch, int, int]:
    out: Batch = []
    append = out.append
    nan_values = bad_timestamps = 0
    for name, ts, value in zip(names, timestamps, values):
        if value != value:
            nan_values += 1
            continue
        if ts - ts != 0.0:
            bad_timestamps += 1
            continue
        if -2.0 < ts <= -1.0:
            ts = now
        if resolution:
            ts = int(ts) // resolution * resolution
        append((name, (ts, value)))
    return out, nan_values, bad_timestamps
