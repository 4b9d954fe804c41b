"""Micro-benchmark of the statsd packet parser on one core, compiled vs its Python twin.

Packets are ~1400-byte datagrams of newline-joined lines over 10k names: 60% counters
(``|c``, value 1), 25% timers (``|ms``), 15% gauges (``|g``), as in bench/statsd_bench.py's
mixed traffic; then counters only. Prints lines/s of CPU time and the compiled/Python ratio
(the compiled run is skipped when the compiled module is not built).

    .venv/bin/python bench/micro_statsd.py [--lines N] [--repeat R]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.micro_parse import best_rate  # noqa: E402
from cadent.compiled import compiled_module, python_twin  # noqa: E402

MODULE = "cadent.statsd.parse"


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    twin = python_twin(MODULE)
    compiled = compiled_module(MODULE)
    for label, counters_only in (("mixed c/ms/g", False), ("counters only", True)):
        packets = make_packets(args.lines, counters_only=counters_only)
        python_rate = parse_rate(twin, packets, args.lines, args.repeat)
        if compiled is None:
            print("statsd parse (%s): Python %.2fM lines/s (compiled module not built)"
                  % (label, python_rate / 1e6))
            continue
        rate = parse_rate(compiled, packets, args.lines, args.repeat)
        print("statsd parse (%s): compiled %.2fM lines/s, Python %.2fM lines/s, %.2fx"
              % (label, rate / 1e6, python_rate / 1e6, rate / python_rate))


if __name__ == "__main__":
    main()
