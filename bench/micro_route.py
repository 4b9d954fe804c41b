"""Micro-benchmark of batch routing with a warm placement cache, on one core.

Routes 5000-point batches drawn from a working set of distinct names through each hashing
router (8 destinations on 4 hosts, and the relay benchmark's 2 destinations) and prints
datapoints per CPU second, best of several rounds. When the compiled twin of the routers is
built, it and the Python source (``python_twin``) run interleaved in the same process, round
by round, and the ratio is printed with its spread over the rounds (the machine may be busy).

    .venv/bin/python bench/micro_route.py [--names N] [--batches B] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.compiled import compiled_module, python_twin
from cadent.core.route.destination import parse_destinations

ROUTERS = "cadent.core.route.routers"

CASES = [
    ("consistent-hashing", 1, False, 2),
    ("consistent-hashing", 1, False, 8),
    ("consistent-hashing", 2, False, 8),
    ("consistent-hashing", 1, True, 8),
    ("fast-hashing", 1, False, 8),
    ("aggregated-consistent-hashing", 1, False, 8),
]


def _cpu_rate(router, batches: list, points: int) -> float:
    started = time.process_time()
    for batch in batches:
        router.route_batch(batch)
    return points / max(time.process_time() - started, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(1)
    eight = parse_destinations(
        [f"10.0.0.{h}:{p}:{i}" for h in range(1, 5) for p, i in ((2004, "a"), (2104, "b"))]
    )
    dests = {8: eight, 2: parse_destinations(["127.0.0.1:2004:a", "127.0.0.1:2104:b"])}
    kinds = ["cpu", "mem", "net"]
    names = [f"servers.host{i % 5000:04d}.{rng.choice(kinds)}.m{i // 5000}" for i in range(args.names)]
    batches = [[(rng.choice(names), (1700000000.0, 1.0)) for _ in range(5000)] for _ in range(args.batches)]
    rules = parse_aggregation_rules("servers.all.<m> (60) = avg servers.*.<m>")
    points = sum(map(len, batches))
    twins = {"python": python_twin(ROUTERS)}
    compiled = compiled_module(ROUTERS)
    if compiled is not None:
        twins["compiled"] = compiled
    gc.freeze()
    for method, rf, normalized, count in CASES:
        routers = {}
        for label, module in twins.items():
            router = module.build_router(method, dests[count], replication_factor=rf,
                                         tag_relay_normalized=normalized, aggregation_rules=rules)
            for i in range(0, len(names), 5000):
                router.route_batch([(n, (0.0, 0.0)) for n in names[i:i + 5000]])
            routers[label] = router
        rates: dict[str, list[float]] = {label: [] for label in routers}
        for _ in range(args.rounds):
            for label, router in routers.items():
                rates[label].append(_cpu_rate(router, batches, points))
        line = f"{method:31} rf={rf} normalized={normalized!s:5} dests={count}"
        for label, values in rates.items():
            line += f"  {label} {max(values) / 1e6:5.2f} M points/CPU-s"
        if "compiled" in rates:
            ratios = sorted(c / p for c, p in zip(rates["compiled"], rates["python"]))
            line += f"  ratio x{ratios[len(ratios) // 2]:.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
