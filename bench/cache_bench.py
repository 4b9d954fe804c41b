"""Cache benchmark: cadent-cache vs Debian's carbon-cache, same schemas, same disk.

Each daemon runs alone with its own whisper tree under one temp directory, storage schema
``60s:12h`` for everything (``1s:10m`` for its own ``carbon.*`` self-metrics, reported every
second), MAX_UPDATES_PER_SECOND and MAX_CREATES_PER_MINUTE set to 1e9 (no limit in practice),
CACHE_WRITE_STRATEGY sorted. Pickle input is sent from this process.

Per metric count N:

1. create phase: one point for each of N new metrics; time until every point is committed
   (files created + first update);
2. update phase (after ``sync``, so that the new files' pages are on disk): ``--points``
   more points per metric into the existing files; persisted
   points/s = points / (time from the first byte sent until the newest data file's mtime),
   once the ``committedPoints`` self-metric (read back from the daemon's own whisper files)
   covers them all and ``cache.size`` reports 0;
3. the same again while a CarbonLink client (a process of its own) queries random metrics back to back (a 2 ms pause
   between queries): persisted points/s under query load, query latency p50/p99;
4. peak RSS (VmHWM) of the daemon over the whole run;
5. accepted points/s of the update phase: points / seconds until the daemon had read the last
   byte (MAX_CACHE_SIZE is unlimited, so this is the receive path's own speed);
6. CPU µs per point of the update phase: the daemon's user+system CPU (its whole process
   tree) from the first byte sent until the written check passed, over the points persisted.
   It includes the idle tail of that check (self-metrics written every second), and it is
   the figure to compare on a loaded machine, where wall-clock rates swing by tens of %.

``--rounds N`` runs every (metric count, target) N times, the targets interleaved round by
round, and prints the median and range of each figure.

Targets: ``cadent`` (its defaults: write-ahead log on, synced every second), ``cadent-no-wal``
(ENABLE_WAL false), ``cadent-wal-0`` (WAL_SYNC_INTERVAL 0: fsync before caching) and
``carbon-cache``; ``--only cadent-writers-2`` (WRITER_THREADS 2) runs only when asked for.

    python bench/cache_bench.py --names 10000 100000 --points 10 [--only cadent] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import queue
import random
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

import whisper  # noqa: E402

from tests.peers import CadentProcess, CarbonDaemon, free_port, write_carbon_conf  # noqa: E402

TARGETS = ("cadent", "cadent-no-wal", "cadent-wal-0", "carbon-cache")
#: carbon.conf settings of each cadent variant
VARIANTS = {"cadent": {}, "cadent-no-wal": {"ENABLE_WAL": False},
            "cadent-wal-0": {"WAL_SYNC_INTERVAL": 0},
            "cadent-writers-2": {"WRITER_THREADS": 2}}
#: what ``--only`` accepts; without it, TARGETS run
CHOICES = TARGETS + ("cadent-writers-2",)
SCHEMAS = """\
[carbon]
pattern = ^carbon\\.
retentions = 1s:10m

[default]
pattern = .*
retentions = 60s:12h
"""
UNLIMITED = 1_000_000_000
FRAME_POINTS = 1000


def _conf(tmp: Path, extra: dict | None = None) -> Path:
    cache = {
        "LINE_RECEIVER_INTERFACE": "127.0.0.1", "LINE_RECEIVER_PORT": free_port(),
        "PICKLE_RECEIVER_INTERFACE": "127.0.0.1", "PICKLE_RECEIVER_PORT": free_port(),
        "CACHE_QUERY_INTERFACE": "127.0.0.1", "CACHE_QUERY_PORT": free_port(),
        "MAX_UPDATES_PER_SECOND": UNLIMITED, "MAX_CREATES_PER_MINUTE": UNLIMITED,
        "MAX_CACHE_SIZE": "inf", "CACHE_WRITE_STRATEGY": "sorted",
        "CARBON_METRIC_INTERVAL": 1, "LOG_UPDATES": False, "LOG_CREATES": False,
        "LOG_CACHE_HITS": False, "LOG_LISTENER_CONN_SUCCESS": False,
        "USE_FLOW_CONTROL": True,
    }
    cache.update(extra or {})
    return write_carbon_conf(tmp, {"cache": cache}, files={"storage-schemas.conf": SCHEMAS})


def _frames(names: list[str], timestamps: list[int]) -> list[bytes]:
    out = []
    batch = []
    for ts in timestamps:
        for i, name in enumerate(names):
            batch.append((name, (float(ts), float(i))))
            if len(batch) >= FRAME_POINTS:
                body = pickle.dumps(batch, protocol=2)
                out.append(struct.pack("!L", len(body)) + body)
                batch = []
    if batch:
        body = pickle.dumps(batch, protocol=2)
        out.append(struct.pack("!L", len(body)) + body)
    return out


def _send(port: int, frames: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        for frame in frames:
            sock.sendall(frame)


def _self_metric(data_dir: Path, leaf: str, since: float) -> list[float]:
    """Values (oldest first) of the self-metric ``leaf`` reported after ``since``."""
    out: list[float] = []
    for path in data_dir.glob(f"carbon/agents/*/{leaf}.wsp"):
        (_start, _end, _step), values = whisper.fetch(str(path), since)
        out.extend(v for v in values if v is not None)
    return out


def _wait_written(data_dir: Path, since: float, target: float, timeout: float,
                  stall: float) -> float:
    """Wait until ``committedPoints`` reported after ``since`` add up to ``target`` and the
    cache reports itself empty; return the points committed (self-metric updates included)."""
    deadline = time.monotonic() + timeout
    last, last_change = -1.0, time.monotonic()
    since -= 1  # the report in the second the phase started counts (fetch starts one later)
    while time.monotonic() < deadline:
        value = sum(_self_metric(data_dir, "committedPoints", since))
        if value > last + 1000:  # more than the self-metrics' own updates
            last_change = time.monotonic()
        last = max(last, value)
        sizes = _self_metric(data_dir, "cache/size", since)
        if value >= target and sizes and sizes[-1] == 0:
            break
        if time.monotonic() - last_change > stall:
            break
        time.sleep(0.25)
    return last


def _count_files(data_dir: Path) -> int:
    return sum(1 for _ in (data_dir / "bench").rglob("*.wsp")) if (data_dir / "bench").exists() else 0


def _last_write(data_dir: Path, prefix: str) -> float:
    """The newest modification time of the data files (the moment the last point landed)."""
    return max(p.stat().st_mtime for p in (data_dir / prefix).rglob("*.wsp"))


class _Querier:
    """Back-to-back CarbonLink cache-query of random names from a process of its own (a thread
    would share this process's GIL with the sender, and its waits would be counted as the
    daemon's); ``latencies`` (s) and ``errors`` once stopped."""

    def __init__(self, port: int, names: list[str]) -> None:
        self.port = port
        self.names = names
        self.latencies: list[float] = []
        self.errors = 0
        self._halt = multiprocessing.Event()
        self._results = multiprocessing.Queue()
        self._process = multiprocessing.Process(
            target=_query_loop, args=(port, names, self._halt, self._results), daemon=True)

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._halt.set()
        try:
            self.latencies, self.errors = self._results.get(timeout=30)
        except queue.Empty:
            self.errors += 1
        self._process.join(10)


def _query_loop(port: int, names: list[str], halt, results) -> None:
    latencies: list[float] = []
    errors = 0
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    except OSError:
        results.put((latencies, 1))
        return
    with sock:
        while not halt.is_set():
            body = pickle.dumps({"type": "cache-query", "metric": random.choice(names)},
                                protocol=2)
            started = time.perf_counter()
            try:
                sock.sendall(struct.pack("!L", len(body)) + body)
                size = struct.unpack("!L", _exact(sock, 4))[0]
                _exact(sock, size)
            except OSError:
                errors += 1
                break
            latencies.append(time.perf_counter() - started)
            time.sleep(0.002)
    results.put((latencies, errors))


def _exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def _update_phase(port: int, frames: list[bytes], data_dir: Path, total: int,
                  args, proc=None) -> tuple[float, float, float, float]:
    """Send ``frames`` (``total`` points); (points persisted, seconds until the last landed,
    seconds until the last byte was read, the daemon's CPU seconds over the phase)."""
    cpu = proc.cpu_seconds() if proc is not None else 0.0
    started = time.time()
    _send(port, frames)
    accepted = time.time() - started
    done = _wait_written(data_dir, started, total, args.timeout, args.stall)
    if proc is not None:
        cpu = proc.cpu_seconds() - cpu
    return min(done, total), max(_last_write(data_dir, "bench") - started, 1e-3), accepted, cpu


def run_one(target: str, names_count: int, points: int, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"cache-bench-{target}-", dir=args.tmp))
    conf = _conf(tmp, VARIANTS.get(target))
    data_dir = tmp / "storage" / "whisper"
    if target in VARIANTS:
        proc = CadentProcess(conf, "cache", startup_timeout=60)
    else:
        proc = CarbonDaemon(conf, "cache", impl="debian", startup_timeout=60)
    names = [f"bench.n{i % 100}.m{i}" for i in range(names_count)]
    now = int(time.time()) // 60 * 60
    result: dict = {"target": target, "metrics": names_count, "points_per_metric": points}
    proc.start()
    try:
        port = int(proc.settings["PICKLE_RECEIVER_PORT"])
        query_port = int(proc.settings["CACHE_QUERY_PORT"])
        # 1. creates
        frames = _frames(names, [now - 60 * (2 * points + 2)])
        started = time.time()
        _send(port, frames)
        _wait_written(data_dir, started, names_count, args.timeout, args.stall)
        deadline = time.monotonic() + args.timeout
        while _count_files(data_dir) < names_count and time.monotonic() < deadline:
            time.sleep(1)
        result["create_seconds"] = round(_last_write(data_dir, "bench") - started, 2)
        result["created"] = _count_files(data_dir)
        # The new files' pages go to disk now: the first fsync of the update phase (the
        # write-ahead log's) would otherwise pay for all of them inside the timed window.
        os.sync()
        time.sleep(2)  # let the last phase's self-metrics be reported
        # 2. updates into existing files, nothing else going on
        total = names_count * points
        frames = _frames(names, [now - 60 * k for k in range(2 * points, points, -1)])
        persisted, elapsed, accepted, cpu = _update_phase(port, frames, data_dir, total, args,
                                                          proc)
        result.update({"persisted_points": int(persisted), "update_seconds": round(elapsed, 2),
                       "persisted_points_per_s": round(persisted / elapsed),
                       "accepted_points_per_s": round(total / max(accepted, 1e-3)),
                       "update_cpu_us_per_point": round(cpu / max(persisted, 1) * 1e6, 2)})
        time.sleep(2)
        # 3. the same again with a CarbonLink client querying back to back
        frames = _frames(names, [now - 60 * k for k in range(points, 0, -1)])
        querier = _Querier(query_port, names)
        querier.start()
        persisted, elapsed, _, _ = _update_phase(port, frames, data_dir, total, args)
        querier.stop()
        result.update({
            "persisted_points_per_s_while_queried": round(persisted / elapsed),
            "carbonlink_queries": len(querier.latencies),
            "carbonlink_p50_ms": _pct(querier.latencies, 0.5),
            "carbonlink_p99_ms": _pct(querier.latencies, 0.99),
            "carbonlink_errors": querier.errors,
            "peak_rss_mb": round(proc.peak_rss() / 2 ** 20, 1),
        })
        for key in ("carbonlink_p50_ms", "carbonlink_p99_ms"):
            if result[key] is not None:
                result[key] = round(result[key], 2)
    finally:
        proc.stop(timeout=120)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--points", type=int, default=10, help="points per metric, update phase")
    parser.add_argument("--only", choices=CHOICES, action="append")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--stall", type=float, default=120,
                        help="give up when committedPoints does not grow for this long")
    parser.add_argument("--tmp", default=None, help="directory for the whisper trees")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs per (count, target), targets interleaved round by round")
    args = parser.parse_args(argv)
    results = []
    for count in args.names:
        for _ in range(max(1, args.rounds)):
            for target in args.only or TARGETS:
                result = run_one(target, count, args.points, args)
                print(json.dumps(result), flush=True)
                results.append(result)
    _table(results, args.rounds > 1)
    return 0


_COLUMNS = (("create_seconds", "create s", 9), ("persisted_points_per_s", "persist pts/s", 14),
            ("accepted_points_per_s", "accept pts/s", 13),
            ("update_cpu_us_per_point", "CPU us/pt", 10), ("carbonlink_p50_ms", "p50 ms", 7),
            ("carbonlink_p99_ms", "p99 ms", 7), ("peak_rss_mb", "RSS MB", 7))


def _num(value: float) -> str:
    return str(round(value)) if abs(value) >= 1000 else f"{value:g}"


def _table(results: list[dict], spread: bool) -> None:
    """One line per run, or with ``spread`` one per (count, target): median [min-max]."""
    widths = [w + (14 if spread else 0) for _, _, w in _COLUMNS]
    print(f"{'target':14} {'metrics':>8} " + " ".join(
        f"{title:>{w}}" for (_, title, _), w in zip(_COLUMNS, widths)))
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["metrics"], r["target"]), []).append(r)
    rows = list(groups.items()) if spread else [((r["metrics"], r["target"]), [r])
                                                for r in results]
    for (metrics, target), runs in rows:
        cells = []
        for (key, _, _), w in zip(_COLUMNS, widths):
            values = sorted(r[key] for r in runs if r.get(key) is not None)
            if not values:
                text = "-"
            elif spread:
                text = (f"{_num(statistics.median(values))} "
                        f"[{_num(values[0])}-{_num(values[-1])}]")
            else:
                text = _num(values[0])
            cells.append(f"{text:>{w}}")
        print(f"{target:14} {metrics:>8} " + " ".join(cells))


if __name__ == "__main__":
    raise SystemExit(main())
