"""Cache benchmark: cadent-cache vs Debian's carbon-cache, same schemas, same disk.

Each daemon runs alone with its own whisper tree under one temp directory, storage schema
``60s:6h`` for everything (``1s:10m`` for its own ``carbon.*`` self-metrics, reported every
second), MAX_UPDATES_PER_SECOND and MAX_CREATES_PER_MINUTE set to 1e9 (no limit in practice),
CACHE_WRITE_STRATEGY sorted. Pickle input is sent from this process.

Per metric count N:

1. create phase: one point for each of N new metrics; time until every point is committed
   (files created + first update);
2. update phase: ``--points`` more points per metric into the existing files; persisted
   points/s = points / (time from first byte sent until the ``committedPoints`` self-metric,
   read back from the daemon's own whisper files, covers them all); meanwhile a CarbonLink
   client queries random metrics back to back (latency p50/p99);
3. peak RSS (VmHWM) of the daemon.

    python bench/cache_bench.py --names 10000 100000 --points 10 [--only cadent]
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

import whisper  # noqa: E402

from tests.peers import CadentProcess, CarbonDaemon, free_port, write_carbon_conf  # noqa: E402

TARGETS = ("cadent", "carbon-cache")
SCHEMAS = """\
[carbon]
pattern = ^carbon\\.
retentions = 1s:10m

[default]
pattern = .*
retentions = 60s:6h
"""
UNLIMITED = 1_000_000_000
FRAME_POINTS = 1000


def _conf(tmp: Path) -> Path:
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


def _committed(data_dir: Path, since: float) -> float:
    total = 0.0
    for path in data_dir.glob("carbon/agents/*/committedPoints.wsp"):
        (_start, _end, _step), values = whisper.fetch(str(path), since - 2)
        total += sum(v for v in values if v is not None)
    return total


def _wait_committed(data_dir: Path, since: float, target: float, timeout: float,
                    stall: float) -> tuple[float, float]:
    """(committed points, time of the last increase) once ``target`` is reached or stalled."""
    deadline = time.monotonic() + timeout
    last, last_change = -1.0, time.time()
    while time.monotonic() < deadline:
        value = _committed(data_dir, since)
        if value > last:
            last, last_change = value, time.time()
        if value >= target or time.time() - last_change > stall:
            break
        time.sleep(0.25)
    return last, last_change


class _Querier(threading.Thread):
    """Back-to-back CarbonLink cache-query of random names; records latencies (s)."""

    def __init__(self, port: int, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.names = names
        self.latencies: list[float] = []
        self.errors = 0
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        except OSError:
            self.errors += 1
            return
        with sock:
            while not self._halt.is_set():
                body = pickle.dumps({"type": "cache-query",
                                     "metric": random.choice(self.names)}, protocol=2)
                started = time.perf_counter()
                try:
                    sock.sendall(struct.pack("!L", len(body)) + body)
                    size = struct.unpack("!L", _exact(sock, 4))[0]
                    _exact(sock, size)
                except OSError:
                    self.errors += 1
                    return
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.002)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


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


def run_one(target: str, names_count: int, points: int, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"cache-bench-{target}-", dir=args.tmp))
    conf = _conf(tmp)
    data_dir = tmp / "storage" / "whisper"
    if target == "cadent":
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
        frames = _frames(names, [now - 60 * (points + 2)])
        started = time.time()
        _send(port, frames)
        done, last = _wait_committed(data_dir, started, names_count, args.timeout, args.stall)
        result["create_seconds"] = round(last - started, 2)
        result["create_committed"] = int(done)
        base = done
        # 2. updates, with CarbonLink queries alongside
        frames = _frames(names, [now - 60 * k for k in range(points, 0, -1)])
        total = names_count * points
        querier = _Querier(query_port, names)
        querier.start()
        started = time.time()
        _send(port, frames)
        result["send_seconds"] = round(time.time() - started, 2)
        done, last = _wait_committed(data_dir, started, base + total, args.timeout, args.stall)
        querier.stop()
        # committedPoints also counts the self-metric updates: only the data points count here
        persisted = min(done - base, total)
        elapsed = max(last - started, 1e-3)
        result.update({
            "persisted_points": int(persisted),
            "update_seconds": round(elapsed, 2),
            "persisted_points_per_s": round(persisted / elapsed),
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
    parser.add_argument("--only", choices=TARGETS, action="append")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--stall", type=float, default=30,
                        help="give up when committedPoints does not grow for this long")
    parser.add_argument("--tmp", default=None, help="directory for the whisper trees")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    results = []
    for count in args.names:
        for target in args.only or TARGETS:
            result = run_one(target, count, args.points, args)
            print(json.dumps(result), flush=True)
            results.append(result)
    print(f"{'target':14} {'metrics':>8} {'create s':>9} {'persist pts/s':>14} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'RSS MB':>7}")
    for r in results:
        print(f"{r['target']:14} {r['metrics']:>8} {r['create_seconds']:>9} "
              f"{r.get('persisted_points_per_s', '-'):>14} {r.get('carbonlink_p50_ms') or '-':>7} "
              f"{r.get('carbonlink_p99_ms') or '-':>7} {r.get('peak_rss_mb', '-'):>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
