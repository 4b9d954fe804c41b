"""Render latency of cadent-api vs the real graphite-web over the same whisper files.

    .venv/bin/python bench/api_bench.py [--series 1,100,1000] [--ranges 1d,30d]
        [--budget 20] [--max-requests 50] [--workers 2] [--data-dir DIR] [--json OUT]

Builds ``max(series)`` whisper files (``10s:1d,1m:30d``, full of data: 1 day at 10 s and
30 days at 1 min, average aggregation) under ``bench.gNN.sNNN``, starts cadent-api (gunicorn
with gevent workers) and Debian's graphite-web (the shared harness, Django's threaded server)
on loopback, then times ``/render?format=json&maxDataPoints=1000`` one request at a time,
alternating servers, for every (series count, range) pair: a warm-up request each, then
requests until ``--budget`` seconds per server or ``--max-requests``. Both replies are
compared once per case (same JSON). Prints p50/p99/mean in milliseconds per case.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

import whisper  # noqa: E402

from tests.e2e.graphite_web_helpers import (  # noqa: E402
    CadentApi, GraphiteWeb, ensure_graphite_web, get, write_api_conf,
)
from tests.peers import free_port  # noqa: E402

RETENTIONS = [(10, 8640), (60, 43200)]
# a little under each retention, so both servers read the same archive even if a request
# lands a few seconds later than the other one
RANGES = {"1h": 3600, "1d": 86400 - 600, "30d": 30 * 86400 - 3600}
PER_DIR = 100


def series_name(i: int) -> str:
    return f"bench.g{i // PER_DIR:02d}.s{i % PER_DIR:03d}"


def pattern_for(n: int) -> str:
    """A glob matching exactly the first ``n`` series (n = 1, a multiple of 100, or < 100)."""
    if n == 1:
        return series_name(0)
    if n % PER_DIR == 0:
        groups = [f"g{g:02d}" for g in range(n // PER_DIR)]
        return f"bench.{groups[0]}.*" if len(groups) == 1 else "bench.{%s}.*" % ",".join(groups)
    return "bench.g00.{%s}" % ",".join(f"s{i:03d}" for i in range(n))


def build_tree(root: Path, count: int, now: int) -> None:
    """``count`` identical full whisper files (one built, the rest copied)."""
    template = root / "template.wsp"
    if not template.exists():
        whisper.create(str(template), RETENTIONS, xFilesFactor=0.0, aggregationMethod="average")
        old = [(now - 30 * 86400 + 60 * i, float(i % 97)) for i in range(1, 43200 - 1440)]
        recent = [(now - 86400 + 10 * i, float(i % 89)) for i in range(1, 8640)]
        for chunk in range(0, len(old), 5000):
            whisper.update_many(str(template), old[chunk:chunk + 5000])
        for chunk in range(0, len(recent), 5000):
            whisper.update_many(str(template), recent[chunk:chunk + 5000])
    for i in range(count):
        path = root / "whisper" / (series_name(i).replace(".", "/") + ".wsp")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template, path)


def timed_get(url: str, params) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    status, body = get(url, "/render", params, timeout=600)
    elapsed = time.perf_counter() - t0
    if status != 200:
        raise RuntimeError(f"{url} answered {status}: {body[:300]!r}")
    return elapsed, body


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = pct / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def run_case(servers: dict[str, str], n: int, span: int, budget: float, max_requests: int) -> dict:
    until = int(time.time())
    params = [("format", "json"), ("target", pattern_for(n)), ("from", until - span),
              ("until", until), ("maxDataPoints", 1000)]
    bodies = {name: timed_get(url, params)[1] for name, url in servers.items()}  # warm-up
    same = len({b for b in bodies.values()}) == 1
    if not same:
        parsed = {name: json.loads(b) for name, b in bodies.items()}
        same = len({json.dumps(p, sort_keys=True) for p in parsed.values()}) == 1
    samples: dict[str, list[float]] = {name: [] for name in servers}
    spent = {name: 0.0 for name in servers}
    while any(spent[s] < budget and len(samples[s]) < max_requests for s in servers):
        for name, url in servers.items():
            if spent[name] < budget and len(samples[name]) < max_requests:
                elapsed, _ = timed_get(url, params)
                samples[name].append(elapsed)
                spent[name] += elapsed
    out = {"series": n, "range": span, "same_reply": same, "reply_bytes": len(next(iter(bodies.values())))}
    for name, values in samples.items():
        out[name] = {"n": len(values), "p50_ms": round(percentile(values, 50) * 1000, 1),
                     "p99_ms": round(percentile(values, 99) * 1000, 1),
                     "mean_ms": round(statistics.fmean(values) * 1000, 1)}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", default="1,100,1000")
    parser.add_argument("--ranges", default="1d,30d", help=f"comma list of {', '.join(RANGES)}")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per server per case")
    parser.add_argument("--max-requests", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="cadent-api gunicorn workers")
    parser.add_argument("--data-dir", help="keep/reuse the whisper tree here")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.series.split(",")]
    spans = [(r, RANGES[r]) for r in args.ranges.split(",")]

    why = ensure_graphite_web()
    if why:
        print(f"api_bench: {why}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="cadent-api-bench-"))
    data = Path(args.data_dir) if args.data_dir else work / "data"
    data.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    t0 = time.time()
    build_tree(data, max(counts), now)
    print(f"whisper tree: {max(counts)} files in {time.time() - t0:.1f}s ({data / 'whisper'})", flush=True)

    api_port = free_port()
    api = CadentApi(write_api_conf(work / "api", str(data / "whisper"), api_port, workers=args.workers),
                    api_port, log_path=work / "cadent-api.log")
    # the harness defaults FETCH_TIMEOUT to 6 s; the big cases take longer on graphite-web
    web = GraphiteWeb(free_port(), work, GW_WHISPER_DIR=str(data / "whisper"),
                      GW_FETCH_TIMEOUT="900", GW_FIND_TIMEOUT="900")
    results = []
    try:
        api.start()
        web.start()
        servers = {"cadent": api.url, "graphite-web": web.url}
        print(f"{'series':>6} {'range':>5} {'server':>12} {'n':>4} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}  same")
        for n in counts:
            for label, span in spans:
                try:
                    res = run_case(servers, n, span, args.budget, args.max_requests)
                except RuntimeError as exc:
                    print(f"{n:>6} {label:>5} failed: {str(exc)[:200]}\n{web.log_tail(1500)}", flush=True)
                    results.append({"series": n, "range": label, "error": str(exc)[:500]})
                    continue
                res["range"] = label
                results.append(res)
                for name in servers:
                    r = res[name]
                    print(f"{n:>6} {label:>5} {name:>12} {r['n']:>4} {r['p50_ms']:>9} {r['p99_ms']:>9} "
                          f"{r['mean_ms']:>9}  {res['same_reply']}", flush=True)
    finally:
        web.stop()
        api.stop()
        shutil.rmtree(work, ignore_errors=True)  # a --data-dir lives outside it
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
