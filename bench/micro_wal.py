"""Micro-benchmark of the write-ahead log's cost on cadent-cache's receive path.

Batches of ``--batch`` points over ``--names`` metrics are stored into a MetricCache directly,
then through ``WriteAheadLog.store`` (sync interval 1 s, and 0) into a fresh cache with the log
in a temp directory (its own thread writing and fsyncing). The three are run in turn,
``--repeat`` rounds, and each prints the loop thread's CPU µs per point, the whole process's
(the log's thread included) and wall µs per point: median [min-max] over the rounds, and the
median's ratio to the run without the log. On a shared machine compare the CPU columns.

    .venv/bin/python bench/micro_wal.py [--points N] [--batch B] [--names K] [--repeat R]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gevent  # noqa: E402

from cadent.core.cache import MetricCache  # noqa: E402
from cadent.core.wal import WalConfig, WriteAheadLog  # noqa: E402


def make_batches(points: int, batch: int, names: int) -> list[list]:
    out, now = [], 1_700_000_000
    for start in range(0, points, batch):
        out.append([(f"bench.app{i % 97}.m{i % names}", (float(now + i // names), float(i)))
                    for i in range(start, min(points, start + batch))])
    return out


def run(batches: list[list], sync: float | None, directory: str) -> tuple[float, float, float]:
    """(loop CPU s, process CPU s, wall s) to store every batch (and log it unless sync is
    None), including the log's final write."""
    cache = MetricCache()
    wal = None
    if sync is not None:
        shutil.rmtree(directory, ignore_errors=True)
        wal = WriteAheadLog(WalConfig(directory, sync_interval_s=sync),
                            barrier=lambda: (cache.stores,),
                            unwritten=lambda: (cache.oldest_unwritten(),))
        wal.replay(cache.store_batch)
        wal.start()
    t0, c0, w0 = time.thread_time(), time.process_time(), time.perf_counter()
    if wal is None:
        for b in batches:
            cache.store_batch(b)
    elif sync == 0:
        # receivers: several connections at once, each waiting for its batch's fsync
        per = 16
        greenlets = [gevent.spawn(lambda part: [wal.store(b, cache.store_batch) for b in part],
                                  batches[i::per]) for i in range(per)]
        gevent.joinall(greenlets, raise_error=True)
    else:
        for b in batches:
            wal.store(b, cache.store_batch)
    loop_cpu = time.thread_time() - t0
    if wal is not None:
        wal.close(written=False)
    return loop_cpu, time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--names", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="directory for the log (default: a temp dir)")
    args = parser.parse_args()
    batches = make_batches(args.points, args.batch, args.names)
    tmp = tempfile.mkdtemp(prefix="micro-wal-", dir=args.dir)
    variants = (("no log", None), ("log, 1 s", 1.0), ("log, 0 s", 0.0))
    runs: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _ in variants}
    try:
        for _ in range(args.repeat):                 # interleaved: load drifts hit all alike
            for label, sync in variants:
                runs[label].append(run(batches, sync, str(Path(tmp) / "wal")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_point = 1e6 / args.points
    base = [statistics.median(r[k] for r in runs["no log"]) for k in range(3)]
    print(f"{'':10} {'loop CPU us/pt':>26} {'process CPU us/pt':>26} {'wall us/pt':>26}")
    for label, rows in runs.items():
        cells = []
        for k in range(3):
            values = sorted(r[k] for r in rows)
            median = statistics.median(values)
            cells.append(f"{median * per_point:.2f} [{values[0] * per_point:.2f}-"
                         f"{values[-1] * per_point:.2f}] ({median / base[k]:.2f})")
        print(f"{label:10} {cells[0]:>26} {cells[1]:>26} {cells[2]:>26}")


if __name__ == "__main__":
    main()
