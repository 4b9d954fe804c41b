"""Micro-benchmark of one whisper update call: whisper.file_update_many vs cadent's update_many.

Warm (already written, page-cached) files, 10 points per call at the first archive's step,
moving forward each round so the two-archive case propagates. Each side opens its files as
WhisperWriter does for it: buffered for whisper (its writes coalesce in the buffer), unbuffered
for update_many (it works on the descriptor). Prints µs per call for the
update alone (the time of open + close on the same files subtracted) and for open+update+close.

    .venv/bin/python bench/micro_whisper.py [--files N] [--rounds R] [--points P] [--offset S]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import whisper  # noqa: E402

from cadent.core.write.whisper_update import update_many  # noqa: E402

SCHEMAS = {
    "1 archive (10s:1d)": [(10, 8640)],
    "2 archives (10s:6h,60s:7d)": [(10, 2160), (60, 10080)],
}
NOW = 1_700_000_000
OFFSET = 0


def make_files(directory: str, archives, count: int) -> list[str]:
    paths = []
    for i in range(count):
        path = os.path.join(directory, f"m{i}.wsp")
        whisper.create(path, list(archives), 0.5, "average", sparse=True)
        paths.append(path)
    return paths


def run(paths, function, start: int, step: int, points: int, buffering: int) -> float:
    batch = [(start + OFFSET + i * step, float(i)) for i in range(points)]
    now = start + points * step
    begin = time.perf_counter()
    for path in paths:
        with open(path, "r+b", buffering) as handle:
            function(handle, list(batch), now)
    return time.perf_counter() - begin


def open_close(paths, buffering: int) -> float:
    begin = time.perf_counter()
    for path in paths:
        with open(path, "r+b", buffering):
            pass
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--offset", type=int, default=0, help="seconds past each step boundary")
    args = parser.parse_args()
    global OFFSET
    OFFSET = args.offset
    directory = tempfile.mkdtemp(prefix="micro_whisper_")
    try:
        for label, archives in SCHEMAS.items():
            step = archives[0][0]
            sides = {"whisper": whisper.file_update_many, "cadent": update_many}
            buffering = {"whisper": -1, "cadent": 0}
            paths = {}
            for name in sides:
                sub = os.path.join(directory, name + label[0])
                os.makedirs(sub)
                paths[name] = make_files(sub, archives, args.files)
            start = NOW
            for name, function in sides.items():  # warm: page cache, base points
                run(paths[name], function, start, step, args.points, buffering[name])
            best = {name: float("inf") for name in sides}
            baseline = {name: float("inf") for name in sides}
            for _ in range(args.rounds):  # alternate, so drift hits both sides alike
                start += args.points * step
                for name, function in sides.items():
                    best[name] = min(best[name], run(paths[name], function, start, step, args.points, buffering[name]))
                    baseline[name] = min(baseline[name], open_close(paths[name], buffering[name]))
            w_full, c_full = (best[n] / args.files * 1e6 for n in sides)
            w_upd, c_upd = ((best[n] - baseline[n]) / args.files * 1e6 for n in sides)
            print(
                f"{label}, {args.points} points/call, {args.files} files: "
                f"update whisper {w_upd:.1f} µs, cadent {c_upd:.1f} µs ({w_upd / c_upd:.2f}x); "
                f"open+update+close whisper {w_full:.1f} µs, cadent {c_full:.1f} µs "
                f"({w_full / c_full:.2f}x)"
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
