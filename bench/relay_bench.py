"""Relay benchmark: cadent-relay vs carbon-relay.py vs carbon-c-relay.

Each relay runs alone on this machine with two destinations (two counting fake
sinks), consistent hashing (carbon_ch, instances a and b) and pickle to the sinks
(carbon-c-relay can only send line protocol, so its sinks count lines). Line input
comes from bench/loadgen.py in its own process. Measured per run:

* delivered datapoints/s: points received by the sinks / (last arrival − load start)
* loss: sent − received (after all arrived, or no progress for --stall seconds)
* CPU seconds of the relay's process tree during the run, and µs of CPU per datapoint
* peak RSS: sum of each relay process's VmHWM

    python bench/relay_bench.py --names 10000 --points 2000000 [--only cadent]

carbon-relay.py is much slower, so it gets ``--carbon-points`` (default points/5):
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
from tests.peers import (CadentProcess, CarbonCRelay, CarbonDaemon, FakeCarbonSink,  # noqa: E402
                         cadent_available, free_port, write_carbon_conf)

TARGETS = ("cadent", "carbon-relay", "carbon-c-relay")


def _relay_conf(tmp: Path, sinks, *, queue: int, workers: int | None,
                protocol: str = "pickle") -> Path:
    relay = {
        "LINE_RECEIVER_INTERFACE": "127.0.0.1", "LINE_RECEIVER_PORT": free_port(),
        "PICKLE_RECEIVER_INTERFACE": "127.0.0.1", "PICKLE_RECEIVER_PORT": free_port(),
        "RELAY_METHOD": "consistent-hashing", "DESTINATION_PROTOCOL": protocol,
        "DESTINATIONS": [sinks[0].destination("a"), sinks[1].destination("b")],
        "MAX_QUEUE_SIZE": queue, "CARBON_METRIC_INTERVAL": 0,
    }
    if workers is not None:
        relay["WORKERS"] = workers
    return write_carbon_conf(tmp, {"relay": relay})


def _start_relay(target: str, tmp: Path, sinks, args):
    if target == "cadent":
        conf = _relay_conf(tmp, sinks, queue=args.cadent_queue, workers=args.workers,
                           protocol=args.sink_protocol)
        return CadentProcess(conf, "relay").start()
    if target == "carbon-relay":
        conf = _relay_conf(tmp, sinks, queue=args.queue, workers=None,
                           protocol=args.sink_protocol)
        return CarbonDaemon(conf, "relay", impl=args.carbon_impl).start()
    dests = [(s.host, s.port, inst) for s, inst in zip(sinks, ("a", "b"))]
    return CarbonCRelay(dests, workers=args.workers, queue_size=args.queue, dir=tmp).start()


def run_one(target: str, names: int, points: int, args) -> dict:
    """One bounded run of ``target``; a result row (see module doc and ``drive.measure``)."""
    sink_proto = "line" if target == "carbon-c-relay" else args.sink_protocol
    tmp = Path(tempfile.mkdtemp(prefix=f"relay-bench-{target}-"))
    sinks = [FakeCarbonSink(sink_proto, record=False).start() for _ in range(2)]
    relay = None
    try:
        relay = _start_relay(target, tmp, sinks, args)
        row = measure(relay, sinks, names=names, points=points, connections=args.connections,
                      timeout=args.timeout, stall=args.stall, rate=args.rate)
        return {"target": target, **row, "sink_proto": sink_proto}
    finally:
        if relay is not None:
            relay.stop()
        for s in sinks:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``build_parser().parse_args([])`` gives default run options."""
    ap = argparse.ArgumentParser(description="relay benchmark")
    ap.add_argument("--names", default="10000,100000",
                    help="distinct names, comma list (default 10000,100000)")
    ap.add_argument("--points", type=int, default=2_000_000,
                    help="datapoints per run for cadent and carbon-c-relay")
    ap.add_argument("--carbon-points", type=int, default=None,
                    help="datapoints per run for carbon-relay.py (default points/5)")
    ap.add_argument("--only", action="append", choices=TARGETS,
                    help="run only this target (repeatable)")
    ap.add_argument("--workers", type=int, default=1,
                    help="cadent WORKERS and carbon-c-relay -w (default 1)")
    ap.add_argument("--queue", type=int, default=1_000_000,
                    help="carbon-relay MAX_QUEUE_SIZE / carbon-c-relay -q (default 1000000: "
                         "carbon-relay drops points beyond its queue)")
    ap.add_argument("--cadent-queue", type=int, default=10_000,
                    help="cadent MAX_QUEUE_SIZE (default 10000, cadent's own default: it "
                         "applies backpressure instead of dropping)")
    ap.add_argument("--connections", type=int, default=4, help="load generator connections")
    ap.add_argument("--rate", type=float, default=None, help="fixed input rate (dp/s)")
    ap.add_argument("--stall", type=float, default=10.0,
                    help="stop waiting after this many seconds without a new datapoint")
    ap.add_argument("--timeout", type=float, default=120.0, help="hard limit per run (s)")
    ap.add_argument("--sink-protocol", choices=("pickle", "line"), default="pickle",
                    help="DESTINATION_PROTOCOL for cadent and carbon-relay (carbon-c-relay: line)")
    ap.add_argument("--carbon-impl", choices=("pypi", "debian"), default="pypi")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per target and name count; the median-rate run is reported")
    ap.add_argument("--json", action="store_true", help="also print rows as JSON lines")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    targets = list(args.only or TARGETS)
    if "cadent" in targets and not cadent_available("relay"):
        print("cadent-relay is not available yet: skipping it", file=sys.stderr)
        targets.remove("cadent")
    if "carbon-c-relay" in targets and not shutil.which("carbon-c-relay"):
        print("carbon-c-relay is not installed: skipping it", file=sys.stderr)
        targets.remove("carbon-c-relay")
    carbon_points = args.carbon_points or max(1, args.points // 5)
    rows, failed = run_targets(
        targets, [int(n) for n in args.names.split(",")],
        lambda target, names, points: run_one(target, names, points, args),
        lambda target: carbon_points if target == "carbon-relay" else args.points,
        repeat=args.repeat, json_rows=args.json)
    print_rows(rows, COLUMNS + [("sink_proto", 10)])
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
