"""statsd lines relayed by cadent-relay (LINE_FORMAT = statsd) vs Etsy's proxy.js, side by side.

For each front end and each offered rate: a fresh front end over two counting destinations,
one load process sending ``--seconds`` worth of UDP datagrams (``--lines-per-packet`` statsd
lines each over 10k keys, paced to the rate, the load of ``bench/statsd_bench.py``), then the
lines that reach the destinations are counted until two seconds pass without one. proxy.js
sends every line as its own UDP datagram (its only output); cadent-relay sends lines over TCP.
Loss = 1 - received / sent; the loss-free rate is the highest offered rate with loss < 0.1 %.
Both front ends read with a 4 MiB socket receive buffer (``net.core.rmem_default`` is raised
for proxy.js's runs and restored afterwards, as statsd_bench does for statsd).

    python bench/statsd_relay_bench.py [--rates 50000,100000,...] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from multiprocessing import Process, Value
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

from statsd_bench import RMEM, _blast  # noqa: E402
from tests.e2e.statsd_relay_helpers import (STATSD_DIR, NodeProcess,  # noqa: E402
                                            etsy_statsd_available)
from tests.e2e.relay_helpers import relay_conf  # noqa: E402
from tests.peers import CadentProcess, free_port  # noqa: E402

LOCAL = "127.0.0.1"


def _answer_health(adminport: int) -> None:
    """statsd's management port as far as proxy.js's health check goes."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOCAL, adminport))
    listener.listen(16)
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"health: up\n")


def _count_udp(port: int, adminport: int, counter) -> None:
    threading.Thread(target=_answer_health, args=(adminport,), daemon=True).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind((LOCAL, port))
    while True:
        data = sock.recv(65536)
        with counter.get_lock():
            counter.value += data.count(b"\n") + (not data.endswith(b"\n"))


def _count_tcp(port: int, adminport: int, counter) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOCAL, port))
    listener.listen(4)
    conn, _ = listener.accept()  # cadent-relay keeps one connection per destination
    while True:
        data = conn.recv(1 << 20)
        if not data:
            conn, _ = listener.accept()
            continue
        with counter.get_lock():
            counter.value += data.count(b"\n")


class Destinations:
    """Two counting destinations in a process each: UDP datagrams or TCP lines."""

    def __init__(self, kind: str) -> None:
        self.ports = [free_port() for _ in range(2)]
        self.adminports = [free_port() for _ in range(2)]
        self.counters = [Value("q", 0) for _ in self.ports]
        target = _count_udp if kind == "udp" else _count_tcp
        self.procs = [Process(target=target, args=args, daemon=True)
                      for args in zip(self.ports, self.adminports, self.counters)]
        for proc in self.procs:
            proc.start()
        time.sleep(0.3)

    def received(self) -> int:
        return sum(counter.value for counter in self.counters)

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.join(5)


def start_front(kind: str, tmp: Path, destinations: Destinations):
    """proxy.js or cadent-relay on a fresh UDP port; (process, port)."""
    port = free_port()
    if kind == "proxy.js":
        mgmt = free_port()
        nodes = [{"host": LOCAL, "port": p, "adminport": a}
                 for p, a in zip(destinations.ports, destinations.adminports)]
        config = {"nodes": nodes, "address": LOCAL, "port": port, "mgmt_address": LOCAL,
                  "mgmt_port": mgmt, "checkInterval": 10000, "forkCount": 0}
        return NodeProcess(tmp, "proxy.js", config, wait_port=mgmt).start(), port
    conf = relay_conf(tmp, [f"{LOCAL}:{p}:{i}" for i, p in enumerate(destinations.ports)],
                      LINE_FORMAT="statsd", LINE_RECEIVER_PORT=0, PICKLE_RECEIVER_PORT=0,
                      LISTEN=[f"udp://{LOCAL}:{port}", f"tcp://{LOCAL}:{port}"])
    return CadentProcess(conf, ports=[(LOCAL, port)]).start(), port


def run_rate(kind: str, rate: float, seconds: float, lpp: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="statsd-relay-bench-"))
    destinations = Destinations("udp" if kind == "proxy.js" else "tcp")
    front, port = start_front(kind, tmp, destinations)
    try:
        cpu0 = front.cpu_seconds()
        result = tmp / "sent"
        sender = Process(target=_blast, args=(port, rate, seconds, "lines", lpp, str(result)))
        started = time.perf_counter()
        sender.start()
        sender.join()
        elapsed = time.perf_counter() - started
        sent = int(result.read_text())
        last, since = -1, time.monotonic()
        while time.monotonic() - since < 2.0:
            got = destinations.received()
            if got != last:
                last, since = got, time.monotonic()
            time.sleep(0.1)
        cpu = front.cpu_seconds() - cpu0
        return {"front": kind, "offered": rate, "achieved_send": round(sent / elapsed),
                "sent": sent, "received": last, "loss_pct": round(100 * (1 - last / sent), 3),
                "cpu_us_per_line": round(1e6 * cpu / max(last, 1), 2),
                "peak_rss_mb": round(front.peak_rss() / 2**20, 1), "alive": front.alive}
    finally:
        front.stop()
        destinations.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="25000,50000,100000,150000,200000,300000,400000")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--lines-per-packet", type=int, default=10)
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    fronts = ["cadent-relay"]
    if etsy_statsd_available():
        fronts.insert(0, "proxy.js")
    else:
        print(f"proxy.js not found under {STATSD_DIR} (scripts/install-peers.sh); cadent only",
              file=sys.stderr)
    results, best = [], {}
    for kind in fronts:
        saved = None
        if kind == "proxy.js":
            saved = Path(RMEM).read_text()
            Path(RMEM).write_text(str(4 << 20))
        try:
            best[kind] = 0.0
            for rate in (float(r) for r in args.rates.split(",")):
                row = run_rate(kind, rate, args.seconds, args.lines_per_packet)
                results.append(row)
                print(json.dumps(row), flush=True)
                if row["loss_pct"] < 0.1:
                    best[kind] = max(best[kind], rate)
                elif row["loss_pct"] > 5:
                    break
        finally:
            if saved is not None:
                Path(RMEM).write_text(saved)
    for kind, rate in best.items():
        print(f"== {kind}: loss-free (<0.1%) up to {rate:,.0f} lines/s")
    if len(best) == 2 and best["proxy.js"]:
        print(f"== cadent-relay / proxy.js: x{best['cadent-relay'] / best['proxy.js']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
