"""cadent-statsd vs Etsy statsd: loss-free UDP line rate, side by side, and RSS at 100k keys.

For every daemon and every offered rate, a fresh daemon is started with a 1 s flush
interval and a line sink as its carbon; one load process sends ``--seconds`` worth of
datagrams (``--lines-per-packet`` statsd lines each, a mix of counters, timers and gauges
over 10k keys) paced to the rate; then the bench sums ``statsd.metrics_received`` over the
flushes that reach the sink (so a line counts only if it was received, parsed *and*
flushed). Loss = 1 - counted / sent. The loss-free rate is the highest offered rate with
loss < 0.1 %.

Etsy statsd runs with a 4 MiB socket receive buffer (``net.core.rmem_default`` is raised
to 4 MiB for its runs and restored afterwards); cadent-statsd runs with its defaults plus
the worker counts given by ``--cadent-workers``.

``--traffic mixed`` sends ~1400-byte datagrams of 60% counters (value 1), 25% timers and 15%
gauges over 10k names, ``--traffic counters`` counters only (``bench/micro_statsd.py`` makes
both); the default ``lines`` keeps ``--lines-per-packet`` lines of c/ms/g/c. The last line
prints each cadent run's loss-free rate as a ratio to Etsy statsd's; ``--rounds N`` repeats
the whole comparison (daemons taking turns) and prints the median ratio and its range, which
is what to quote from a shared, loaded machine.

    python bench/statsd_bench.py [--rates 200000,400000,...] [--seconds 4] [--traffic mixed]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Process
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.statsd_helpers import RawCarbonSink, js_literal  # noqa: E402
from tests.peers import free_port, wait_for_port  # noqa: E402

STATSD_JS = REPO / "peers" / "node_modules" / "statsd" / "stats.js"
RMEM = "/proc/sys/net/core/rmem_default"


def _packets(lines_per_packet: int, keys: int = 10000, count: int = 2000, prefix: str = "bench") -> list[bytes]:
    kinds = ("c", "ms", "g", "c")
    out = []
    n = 0
    for _ in range(count):
        lines = []
        for _ in range(lines_per_packet):
            lines.append(f"{prefix}.k{n % keys}:{n % 97}|{kinds[n % 4]}")
            n += 1
        out.append("\n".join(lines).encode())
    return out


def _traffic(traffic: str, lines_per_packet: int) -> list[bytes]:
    """The datagrams to cycle through."""
    if traffic == "lines":
        return _packets(lines_per_packet)
    from bench.micro_statsd import make_packets

    return [t.encode() for t in make_packets(100_000, counters_only=traffic == "counters")]


def _blast(port: int, rate: float, seconds: float, traffic: str, lines_per_packet: int,
           result_path: str) -> None:
    """Send paced datagrams; write how many lines went out."""
    packets = _traffic(traffic, lines_per_packet)
    lines_in = [packet.count(b"\n") + 1 for packet in packets]
    lines_per_packet = sum(lines_in) / len(packets)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    per_s = rate / lines_per_packet
    start = time.perf_counter()
    sent = 0
    total = int(per_s * seconds)
    i = 0
    lines = 0
    while sent < total:
        due = start + sent / per_s
        now = time.perf_counter()
        if due > now + 0.001:
            time.sleep(due - now)
        burst = min(64, total - sent)
        for _ in range(burst):
            try:
                sock.sendto(packets[i], ("127.0.0.1", port))
            except OSError:
                pass
            lines += lines_in[i]
            i = (i + 1) % len(packets)
        sent += burst
    Path(result_path).write_text(str(lines))


class Daemon:
    def __init__(self, kind: str, workers: int, tmp: Path, sink_port: int) -> None:
        self.kind = kind
        self.port = free_port()
        self.mgmt = free_port()
        config = {"port": self.port, "address": "127.0.0.1", "mgmt_port": self.mgmt,
                  "mgmt_address": "127.0.0.1", "flushInterval": 1000, "graphiteHost": "127.0.0.1",
                  "graphitePort": sink_port, "automaticConfigReload": False}
        if kind == "cadent":
            config["workers"] = workers
            conf = tmp / "cadent.js"
            conf.write_text(js_literal(config))
            argv = [sys.executable, "-m", "cadent.daemons.statsd", "--config", str(conf), "--nodaemon",
                    "--pidfile", str(tmp / "cadent.pid")]
        else:
            conf = tmp / "statsd.js"
            conf.write_text(js_literal(config))
            argv = ["node", str(STATSD_JS), str(conf)]
        self.log = open(tmp / f"{kind}.log", "ab")
        self.proc = subprocess.Popen(argv, cwd=str(REPO), stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
        wait_for_port("127.0.0.1", self.mgmt, 20, self.proc)

    def rss(self) -> int:
        import psutil

        proc = psutil.Process(self.proc.pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])

    def cpu_seconds(self) -> float:
        import psutil

        proc = psutil.Process(self.proc.pid)
        times = [p.cpu_times() for p in [proc, *proc.children(recursive=True)]]
        return sum(t.user + t.system for t in times)

    def stop(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.log.close()


def _counted(sink: RawCarbonSink, before: int) -> tuple[float, int]:
    """Lines the daemon reported received since ``before``, and the newest flush's timestamp."""
    total, newest = 0.0, 0
    for line in sink.all_lines()[before:]:
        if line.startswith("stats_counts.statsd.metrics_received "):
            _, value, ts = line.split()
            total += float(value)
            newest = max(newest, int(ts))
    return total, newest


def run_rate(kind: str, workers: int, rate: float, seconds: float, lpp: int,
             traffic: str = "lines") -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="statsd-bench-"))
    sink = RawCarbonSink()
    daemon = Daemon(kind, workers, tmp, sink.port)
    try:
        sink.flush(15)
        before = len(sink.all_lines())
        cpu_before = daemon.cpu_seconds()
        result = tmp / "sent"
        sender = Process(target=_blast, args=(daemon.port, rate, seconds, traffic, lpp, str(result)))
        started = time.perf_counter()
        sender.start()
        sender.join()
        elapsed = time.perf_counter() - started
        sent = int(result.read_text())
        # Until two flushes add nothing and a flush stamped 2 s after the last send has
        # arrived: a daemon still delivering earlier flushes (~160k lines each with mixed
        # traffic) must not have them counted as lost. At most 60 s.
        sent_until = int(time.time()) + 2
        last, stable_since = -1.0, time.monotonic()
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            got, newest = _counted(sink, before)
            if got != last:
                last, stable_since = got, time.monotonic()
            elif time.monotonic() - stable_since >= 2.5 and newest >= sent_until:
                break
            time.sleep(0.2)
        cpu = daemon.cpu_seconds() - cpu_before
        return {"daemon": kind, "workers": workers, "offered": rate, "achieved_send": sent / elapsed,
                "sent": sent, "counted": int(last), "loss_pct": round(100 * (1 - last / sent), 3),
                "cpu_us_per_line": round(1e6 * cpu / max(1, last), 2)}
    finally:
        daemon.stop()
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)


def rss_at_keys(kind: str, workers: int, keys: int = 100_000) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="statsd-bench-"))
    sink = RawCarbonSink()
    daemon = Daemon(kind, workers, tmp, sink.port)
    try:
        sink.flush(15)
        idle = daemon.rss()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        kinds = ("c", "ms", "g", "s")
        for start in range(0, keys, 20):
            body = "\n".join(f"rss.key{n}:{n % 13}|{kinds[n % 4]}" for n in range(start, min(keys, start + 20)))
            sock.sendto(body.encode(), ("127.0.0.1", daemon.port))
            if start % 2000 == 0:
                time.sleep(0.002)
        time.sleep(2.5)
        return {"daemon": kind, "workers": workers, "keys": keys, "rss_idle_mib": round(idle / 2**20, 1),
                "rss_mib": round(daemon.rss() / 2**20, 1)}
    finally:
        daemon.stop()
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)


def one_round(runs: list[tuple[str, int]], rates: list[float], args: argparse.Namespace,
              results: list[dict]) -> dict[tuple[str, int], float]:
    """Every daemon through the rising rates once; the loss-free rate of each."""
    best_of: dict[tuple[str, int], float] = {}
    for kind, workers in runs:
        saved = None
        if kind == "statsd":
            saved = Path(RMEM).read_text()
            Path(RMEM).write_text(str(4 << 20))
        try:
            best = 0.0
            for rate in rates:
                row = run_rate(kind, workers, rate, args.seconds, args.lines_per_packet,
                               args.traffic)
                results.append(row)
                print(json.dumps(row), flush=True)
                if row["loss_pct"] < 0.1:
                    best = max(best, rate)
                elif row["loss_pct"] > 5:
                    break
            best_of[kind, workers] = best
            if not args.no_rss:
                results.append(rss_at_keys(kind, workers))
                print(json.dumps(results[-1]), flush=True)
            print(f"== {kind} workers={workers}: loss-free (<0.1%) up to {best:,.0f} lines/s", flush=True)
        finally:
            if saved is not None:
                Path(RMEM).write_text(saved)
    return best_of


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="200000,300000,400000,500000,600000,800000,1000000")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--lines-per-packet", type=int, default=50)
    parser.add_argument("--traffic", choices=("lines", "mixed", "counters"), default="lines")
    parser.add_argument("--cadent-workers", default="1,2")
    parser.add_argument("--skip-statsd", action="store_true")
    parser.add_argument("--no-rss", action="store_true", help="skip the RSS at 100k keys runs")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the whole comparison; each round gives one ratio (shared machines)")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    runs: list[tuple[str, int]] = [("cadent", int(w)) for w in args.cadent_workers.split(",")]
    if not args.skip_statsd:
        if not STATSD_JS.exists():
            print("Etsy statsd not installed (scripts/install-peers.sh); skipping it", file=sys.stderr)
        else:
            runs.insert(0, ("statsd", 1))
    results: list[dict] = []
    ratios: dict[int, list[float]] = {}
    for round_no in range(1, args.rounds + 1):
        best_of = one_round(runs, rates, args, results)
        peer = best_of.get(("statsd", 1))
        for (kind, workers), best in best_of.items():
            if kind == "cadent" and peer:
                ratios.setdefault(workers, []).append(best / peer)
                print(f"== round {round_no}: ratio cadent workers={workers} / statsd: {best / peer:.2f}x",
                      flush=True)
    for workers, values in ratios.items():
        print(f"== ratio cadent workers={workers} / statsd over {len(values)} round(s): median "
              f"{statistics.median(values):.2f}x, range {min(values):.2f}-{max(values):.2f}x", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
