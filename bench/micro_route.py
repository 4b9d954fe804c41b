"""Micro-benchmark of batch routing with a warm placement cache, on one core.

Routes 5000-point batches drawn from a working set of distinct names through each hashing
router (8 destinations on 4 hosts) and prints datapoints/s, best of several rounds.

    .venv/bin/python bench/micro_route.py [--names N] [--batches B] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.core.route.destination import parse_destinations
from cadent.core.route.routers import build_router

CASES = [
    ("consistent-hashing", 1, False),
    ("consistent-hashing", 2, False),
    ("consistent-hashing", 1, True),
    ("fast-hashing", 1, False),
    ("aggregated-consistent-hashing", 1, False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(1)
    dests = parse_destinations(
        [f"10.0.0.{h}:{p}:{i}" for h in range(1, 5) for p, i in ((2004, "a"), (2104, "b"))]
    )
    kinds = ["cpu", "mem", "net"]
    names = [f"servers.host{i % 5000:04d}.{rng.choice(kinds)}.m{i // 5000}" for i in range(args.names)]
    batches = [[(rng.choice(names), (1700000000.0, 1.0)) for _ in range(5000)] for _ in range(args.batches)]
    rules = parse_aggregation_rules("servers.all.<m> (60) = avg servers.*.<m>")
    points = sum(map(len, batches))
    gc.freeze()
    for method, rf, normalized in CASES:
        router = build_router(method, dests, replication_factor=rf, tag_relay_normalized=normalized,
                              aggregation_rules=rules)
        started = time.perf_counter()
        for i in range(0, len(names), 5000):
            router.route_batch([(n, (0.0, 0.0)) for n in names[i:i + 5000]])
        cold = time.perf_counter() - started
        best = float("inf")
        for _ in range(args.rounds):
            started = time.perf_counter()
            for batch in batches:
                router.route_batch(batch)
            best = min(best, time.perf_counter() - started)
        print(
            f"{method:31} rf={rf} normalized={normalized!s:5}"
            f"  cold {args.names / cold / 1e3:7.0f} k names/s"
            f"  cached {points / best / 1e6:5.2f} M points/s"
        )


if __name__ == "__main__":
    main()
