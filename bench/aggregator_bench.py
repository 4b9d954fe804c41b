"""Aggregator benchmark: cadent-aggregator vs carbon-aggregator.py, same rules.

Each aggregator runs alone with one destination (a counting fake sink, pickle), FORWARD_ALL
on and the three rules of :data:`RULES`, which every input name matches (three buffer
updates per datapoint). Line input comes from bench/loadgen.py in its own process. As every
raw point is forwarded once, the sink's count measures datapoints accepted *and* processed.
Rules use a 60 s frequency, so a run shorter than a minute sees no aggregate in its count;
a longer one adds at most 1 101 aggregates a minute (reported as ``received``).

* rate: datapoints received by the sink / (last arrival − load start)
* loss: sent − received (after all arrived, or no progress for --stall seconds)
* CPU seconds of the aggregator during the run, µs of CPU per datapoint, peak RSS

    python bench/aggregator_bench.py --names 10000 --points 1000000

carbon-aggregator.py is much slower, so it gets ``--carbon-points`` (default points/10):
compare rates, not totals.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from bench.drive import COLUMNS, measure, print_rows, run_targets  # noqa: E402
from tests.peers import (CadentProcess, CarbonDaemon, FakeCarbonSink,  # noqa: E402
                         cadent_available, free_port, write_carbon_conf)

TARGETS = ("cadent", "carbon-aggregator")

# loadgen names are <prefix>.host<NNN>.svc<NN>.metric<N>
RULES = """\
agg.<p>.<host>.sum (60) = sum <p>.<host>.*.*
agg.<p>.<svc>.avg (60) = avg <p>.*.<svc>.*
agg.<p>.all.p90 (60) = p90 <p>.*.*.*
"""


def _conf(tmp: Path, sink: FakeCarbonSink, queue: int) -> Path:
    section = {
        "LINE_RECEIVER_INTERFACE": "127.0.0.1", "LINE_RECEIVER_PORT": free_port(),
        "PICKLE_RECEIVER_INTERFACE": "127.0.0.1", "PICKLE_RECEIVER_PORT": free_port(),
        "DESTINATIONS": [sink.destination()], "DESTINATION_PROTOCOL": "pickle",
        "MAX_QUEUE_SIZE": queue, "CARBON_METRIC_INTERVAL": 0, "FORWARD_ALL": True,
        "LOG_AGGREGATOR_MISSES": False,
    }
    return write_carbon_conf(tmp, {"aggregator": section}, files={"aggregation-rules.conf": RULES})


def run_one(target: str, names: int, points: int, args) -> dict:
    """One bounded run of ``target``; a result row (see module doc and ``drive.measure``)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"aggregator-bench-{target}-"))
    sink = FakeCarbonSink("pickle", record=False).start()
    daemon = None
    try:
        conf = _conf(tmp, sink, args.cadent_queue if target == "cadent" else args.queue)
        if target == "cadent":
            daemon = CadentProcess(conf, "aggregator").start()
        else:
            daemon = CarbonDaemon(conf, "aggregator", impl=args.carbon_impl).start()
        row = measure(daemon, [sink], names=names, points=points, connections=args.connections,
                      timeout=args.timeout, stall=args.stall)
        row["lost"] = max(0, row["lost"])  # aggregates arrive on top of the forwarded points
        return {"target": target, **row}
    finally:
        if daemon is not None:
            daemon.stop()
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="aggregator benchmark")
    ap.add_argument("--names", default="10000", help="distinct names, comma list (default 10000)")
    ap.add_argument("--points", type=int, default=1_000_000, help="datapoints per cadent run")
    ap.add_argument("--carbon-points", type=int, default=None,
                    help="datapoints per carbon-aggregator run (default points/10)")
    ap.add_argument("--only", action="append", choices=TARGETS, help="run only this target")
    ap.add_argument("--queue", type=int, default=2_000_000,
                    help="carbon-aggregator MAX_QUEUE_SIZE (it drops beyond its queue)")
    ap.add_argument("--cadent-queue", type=int, default=10_000,
                    help="cadent MAX_QUEUE_SIZE (default: cadent's own; it applies backpressure)")
    ap.add_argument("--connections", type=int, default=4, help="load generator connections")
    ap.add_argument("--stall", type=float, default=10.0,
                    help="stop waiting after this many seconds without a new datapoint")
    ap.add_argument("--timeout", type=float, default=300.0, help="hard limit per run (s)")
    ap.add_argument("--carbon-impl", choices=("pypi", "debian"), default="pypi")
    ap.add_argument("--json", action="store_true", help="also print rows as JSON lines")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    targets = list(args.only or TARGETS)
    if "cadent" in targets and not cadent_available("aggregator"):
        print("cadent-aggregator is not available: skipping it", file=sys.stderr)
        targets.remove("cadent")
    carbon_points = args.carbon_points or max(1, args.points // 10)
    rows, failed = run_targets(
        targets, [int(n) for n in args.names.split(",")],
        lambda target, names, points: run_one(target, names, points, args),
        lambda target: carbon_points if target == "carbon-aggregator" else args.points,
        json_rows=args.json)
    print_rows(rows, COLUMNS)
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
