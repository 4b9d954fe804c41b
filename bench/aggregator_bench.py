"""Aggregator benchmark: cadent-aggregator vs carbon-aggregator.py, same rules.

Each aggregator runs alone with one destination (a counting fake sink, pickle unless
``--sink-protocol line``), FORWARD_ALL
on and the three rules of :data:`RULES`, which every input name matches (three buffer
updates per datapoint). Line input comes from bench/loadgen.py in its own process. As every
raw point is forwarded once, the sink's count measures datapoints accepted *and* processed.
Rules use a 60 s frequency, so a run shorter than a minute sees no aggregate in its count;
a longer one adds at most 1 101 aggregates a minute (reported as ``received``).

* rate: datapoints received by the sink / (last arrival − load start)
* loss: sent − received (after all arrived, or no progress for --stall seconds)
* CPU seconds of the aggregator during the run, µs of CPU per datapoint, peak RSS
* ``busy``: the aggregator's CPU seconds per second of the run. Well below 1 means it was not
  the bottleneck (a slow load generator or sink, or a machine shared with other work): the
  rate then measures the harness, and CPU per datapoint is the figure to compare. The load
  generator's and the sink's CPU seconds (``gen_cpu_s``, ``sink_cpu_s``) show where the
  rest went.

    python bench/aggregator_bench.py --names 10000 --points 1000000 --rounds 3

``--rounds N`` runs every target N times, interleaved (cadent, carbon, cadent, carbon, ...),
so a change in the machine's load hits both alike; it prints each round's ratios (rate and
CPU per datapoint) and their minimum, median and maximum.

carbon-aggregator.py is much slower, so it gets ``--carbon-points`` (default points/10):
compare rates, not totals.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from bench.drive import COLUMNS, measure, print_rows  # noqa: E402
from tests.peers import (CadentProcess, CarbonDaemon, FakeCarbonSink,  # noqa: E402
                         cadent_available, free_port, write_carbon_conf)

TARGETS = ("cadent", "carbon-aggregator")
EXTRA_COLUMNS = [("busy", 5), ("gen_cpu_s", 9), ("sink_cpu_s", 10), ("round", 5)]

# loadgen names are <prefix>.host<NNN>.svc<NN>.metric<N>
RULES = """\
agg.<p>.<host>.sum (60) = sum <p>.<host>.*.*
agg.<p>.<svc>.avg (60) = avg <p>.*.<svc>.*
agg.<p>.all.p90 (60) = p90 <p>.*.*.*
"""


def _conf(tmp: Path, sink: FakeCarbonSink, queue: int, protocol: str = "pickle") -> Path:
    section = {
        "LINE_RECEIVER_INTERFACE": "127.0.0.1", "LINE_RECEIVER_PORT": free_port(),
        "PICKLE_RECEIVER_INTERFACE": "127.0.0.1", "PICKLE_RECEIVER_PORT": free_port(),
        "DESTINATIONS": [sink.destination()], "DESTINATION_PROTOCOL": protocol,
        "MAX_QUEUE_SIZE": queue, "CARBON_METRIC_INTERVAL": 0, "FORWARD_ALL": True,
        "LOG_AGGREGATOR_MISSES": False,
    }
    return write_carbon_conf(tmp, {"aggregator": section}, files={"aggregation-rules.conf": RULES})


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    """CPU seconds of this process's reaped children (the load generator, once it exits)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(target: str, names: int, points: int, args) -> dict:
    """One bounded run of ``target``; a result row (see module doc and ``drive.measure``)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"aggregator-bench-{target}-"))
    sink = FakeCarbonSink(args.sink_protocol, record=False).start()
    daemon = None
    try:
        conf = _conf(tmp, sink, args.cadent_queue if target == "cadent" else args.queue,
                     args.sink_protocol)
        if target == "cadent":
            daemon = CadentProcess(conf, "aggregator").start()
        else:
            daemon = CarbonDaemon(conf, "aggregator", impl=args.carbon_impl).start()
        sink_cpu0, gen_cpu0 = _process_cpu_s(sink.proc.pid), _children_cpu_s()
        row = measure(daemon, [sink], names=names, points=points, connections=args.connections,
                      timeout=args.timeout, stall=args.stall)
        row["sink_cpu_s"] = round(_process_cpu_s(sink.proc.pid) - sink_cpu0, 2)
        row["gen_cpu_s"] = round(_children_cpu_s() - gen_cpu0, 2)
        secs = row["seconds"]
        row["busy"] = round(row["cpu_s"] / secs, 2) if secs == secs and secs > 0 else float("nan")
        row["lost"] = max(0, row["lost"])  # aggregates arrive on top of the forwarded points
        return {"target": target, **row}
    finally:
        if daemon is not None:
            daemon.stop()
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run_rounds(targets: list[str], name_counts: list[int], rounds: int, args,
               carbon_points: int) -> tuple[list[dict], bool]:
    """Every target for every name count, ``rounds`` times interleaved; (rows, any failed)."""
    rows: list[dict] = []
    failed = False
    for round_no in range(1, rounds + 1):
        for names in name_counts:
            for target in targets:
                points = carbon_points if target == "carbon-aggregator" else args.points
                print(f"round {round_no}: {target} names={names} points={points} ...",
                      file=sys.stderr, flush=True)
                try:
                    row = run_one(target, names, points, args)
                except Exception as exc:    # one broken target must not hide the others
                    print(f"{target} names={names} failed: {exc}", file=sys.stderr)
                    failed = True
                    continue
                if not row["alive"]:
                    print(f"{target} names={names}: daemon died during the run", file=sys.stderr)
                    failed = True
                row["round"] = round_no
                rows.append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
    return rows, failed


def print_ratios(rows: list[dict]) -> None:
    """Per round and name count: cadent's rate over carbon's and carbon's CPU per datapoint
    over cadent's; then the minimum, median and maximum of each."""
    by = {(r["round"], r["names"], r["target"]): r for r in rows}
    for names in sorted({r["names"] for r in rows}):
        rate_x, cpu_x = [], []
        for round_no in sorted({r["round"] for r in rows}):
            ours = by.get((round_no, names, "cadent"))
            theirs = by.get((round_no, names, "carbon-aggregator"))
            if not (ours and theirs and theirs["rate"] and ours["cpu_us_per_dp"]):
                continue
            rate_x.append(ours["rate"] / theirs["rate"])
            cpu_x.append(theirs["cpu_us_per_dp"] / ours["cpu_us_per_dp"])
            print(f"names={names} round {round_no}: rate x{rate_x[-1]:.2f}, "
                  f"CPU per datapoint x{cpu_x[-1]:.2f} less")
        if rate_x:
            for label, xs in (("rate", rate_x), ("CPU per datapoint", cpu_x)):
                print(f"names={names} {label} ratio over {len(xs)} rounds: min x{min(xs):.2f} "
                      f"median x{statistics.median(xs):.2f} max x{max(xs):.2f}")


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
    ap.add_argument("--sink-protocol", choices=("pickle", "line"), default="pickle",
                    help="DESTINATION_PROTOCOL of both aggregators (the sink unpickles pickle, "
                         "which costs it about half a cadent's CPU per datapoint; it only "
                         "counts newlines of line)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="interleaved runs of every target (default 1)")
    ap.add_argument("--json", action="store_true", help="also print rows as JSON lines")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    targets = list(args.only or TARGETS)
    if "cadent" in targets and not cadent_available("aggregator"):
        print("cadent-aggregator is not available: skipping it", file=sys.stderr)
        targets.remove("cadent")
    carbon_points = args.carbon_points or max(1, args.points // 10)
    rows, failed = run_rounds(targets, [int(n) for n in args.names.split(",")],
                              max(1, args.rounds), args, carbon_points)
    print_rows(rows, COLUMNS + EXTRA_COLUMNS)
    if args.rounds > 1:
        print_ratios(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
