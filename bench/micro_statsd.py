"""Micro-benchmarks of statsd's packet parser and flush on one core, compiled vs Python twins.

Packets are ~1400-byte datagrams of newline-joined lines over 10k names: 60% counters
(``|c``, value 1), 25% timers (``|ms``), 15% gauges (``|g``), as in bench/statsd_bench.py's
mixed traffic; then counters only. The parser part prints lines/s of CPU time and the
compiled/Python ratio. The flush part fills a :class:`~cadent.statsd.engine.StatsdEngine`
with the same packets and times ``flush()`` alone (the graphite lines of every key), the
compiled engine and a copy run wholly from Python source (``python_twin``) taking turns, and
prints the median CPU ms per flush with the range over the rounds. The compiled runs are
skipped when the compiled modules are not built.

    .venv/bin/python bench/micro_statsd.py [--lines N] [--repeat R] [--part parse|flush|both]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.micro_parse import best_rate  # noqa: E402
from cadent.compiled import compiled_module, python_twin  # noqa: E402

MODULE = "cadent.statsd.parse"
FLUSH_MODULES = ("cadent.statsd.graphite", "cadent.statsd.numbers")
ENGINE = "cadent.statsd.engine"


def make_packets(lines: int, names: int = 10_000, counters_only: bool = False,
                 size: int = 1400, seed: int = 1) -> list[str]:
    """Datagram texts of whole lines, each at most ``size`` bytes."""
    rng = random.Random(seed)
    packets: list[str] = []
    current: list[str] = []
    length = 0
    for i in range(lines):
        key = i % names
        name = "stats.app%03d.host%02d.metric%d" % (key % 97, key % 13, key)
        kind = 0 if counters_only else rng.random()
        if kind < 0.60:
            line = name + ":1|c"
        elif kind < 0.85:
            line = "%s:%d|ms" % (name, rng.randint(0, 2000))
        else:
            line = "%s:%s|g" % (name, round(rng.uniform(0, 100), 2))
        if current and length + len(line) + 1 > size:
            packets.append("\n".join(current))
            current, length = [], 0
        current.append(line)
        length += len(line) + 1
    if current:
        packets.append("\n".join(current))
    return packets


def parse_rate(module, packets: list[str], lines: int, repeat: int) -> float:
    def parse_all() -> None:
        parser = module.PacketParser()
        total = 0
        for packet in packets:
            total += parser.parse(packet).metrics
        assert total == lines, total

    return best_rate(parse_all, lines, repeat)


def flush_cpu_s(engine_module, packets: list[str], now_s: float) -> tuple[float, int]:
    """CPU seconds of one ``flush()`` after the packets went in, and the lines it made."""
    from cadent.statsd.config import statsd_settings

    engine = engine_module.StatsdEngine(statsd_settings({"flushInterval": 1000}), now=now_s)
    for packet in packets:
        engine.ingest(packet, now=now_s)
    engine.flush(now_s * 1000)  # the first flush creates every key's names
    for packet in packets:
        engine.ingest(packet, now=now_s + 1)
    start = time.process_time()
    result = engine.flush((now_s + 1) * 1000)
    return time.process_time() - start, len(result.lines)


def bench_flush(lines: int, repeat: int) -> None:
    import cadent.statsd.engine as engine

    compiled = all(compiled_module(name) is not None for name in FLUSH_MODULES)
    twin = python_twin(ENGINE)
    for label, counters_only in (("mixed c/ms/g", False), ("counters only", True)):
        packets = make_packets(lines, counters_only=counters_only)
        times: dict[str, list[float]] = {"python": [], "compiled": []}
        made = 0
        for _ in range(repeat):  # interleaved: load on a shared machine hits both alike
            cpu, made = flush_cpu_s(twin, packets, 1_700_000_000.0)
            times["python"].append(cpu)
            if compiled:
                cpu, _ = flush_cpu_s(engine, packets, 1_700_000_000.0)
                times["compiled"].append(cpu)
        py = times["python"]
        text = "statsd flush (%s, %d lines): Python %.1f ms [%.1f-%.1f]" % (
            label, made, 1e3 * statistics.median(py), 1e3 * min(py), 1e3 * max(py))
        if compiled:
            c = times["compiled"]
            ratios = [p / q for p, q in zip(py, c)]
            text += ", compiled %.1f ms [%.1f-%.1f], %.2fx [%.2f-%.2f]" % (
                1e3 * statistics.median(c), 1e3 * min(c), 1e3 * max(c),
                statistics.median(ratios), min(ratios), max(ratios))
        else:
            text += " (compiled modules not built)"
        print(text, flush=True)


def bench_parse(lines: int, repeat: int) -> None:
    twin = python_twin(MODULE)
    compiled = compiled_module(MODULE)
    for label, counters_only in (("mixed c/ms/g", False), ("counters only", True)):
        packets = make_packets(lines, counters_only=counters_only)
        python_rate = parse_rate(twin, packets, lines, repeat)
        if compiled is None:
            print("statsd parse (%s): Python %.2fM lines/s (compiled module not built)"
                  % (label, python_rate / 1e6))
            continue
        rate = parse_rate(compiled, packets, lines, repeat)
        print("statsd parse (%s): compiled %.2fM lines/s, Python %.2fM lines/s, %.2fx"
              % (label, rate / 1e6, python_rate / 1e6, rate / python_rate))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--part", choices=("parse", "flush", "both"), default="both")
    args = ap.parse_args()
    if args.part in ("parse", "both"):
        bench_parse(args.lines, args.repeat)
    if args.part in ("flush", "both"):
        bench_flush(args.lines, args.repeat)


if __name__ == "__main__":
    main()
