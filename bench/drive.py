"""What the relay and aggregator benchmarks share: drive a running daemon with
``bench/loadgen.py`` into counting fake sinks, measure it, run every target for every name
count, and print the rows with the ratios of cadent to each peer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from tests.peers import wait_until  # noqa: E402

REFERENCE = "cadent"


def measure(daemon, sinks: Sequence, *, names: int, points: int, connections: int,
            timeout: float, stall: float, rate: float | None = None) -> dict:
    """Send ``points`` lines over ``names`` names to ``daemon``'s line port; a result row.

    Waits until the sinks have ``points`` datapoints after the load generator finished, or
    no new datapoint arrived for ``stall`` seconds, or ``timeout`` passed. Row: sent,
    received, lost (sent − received), seconds (load start → last arrival), rate (received /
    seconds), send_rate, cpu_s and cpu_us_per_dp of the daemon's process tree, peak_rss_mb,
    alive (the daemon survived), split (datapoints per sink).
    """
    # hashing relays connect at start; give them a moment (carbon-c-relay connects lazily)
    wait_until(lambda: all(s.stats()["connections"] for s in sinks), timeout=3)
    cpu0 = daemon.cpu_seconds()
    gen = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "loadgen.py"), "--port", str(daemon.line_port),
         "--names", str(names), "--points", str(points), "--connections", str(connections),
         "--prefix", f"bench{names}"] + (["--rate", str(rate)] if rate else []),
        stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    last_total, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        total = sum(s.count() for s in sinks)
        now = time.monotonic()
        if total != last_total:
            last_total, last_change = total, now
        if gen.poll() is not None and (total >= points or now - last_change > stall):
            break
        time.sleep(0.1)
    cpu = daemon.cpu_seconds() - cpu0
    rss = daemon.peak_rss()
    alive = daemon.alive
    if gen.poll() is None:
        gen.kill()
    out, _ = gen.communicate(timeout=10)
    load = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    stats = [s.stats() for s in sinks]
    received = sum(st["count"] for st in stats)
    last = max((st["last_time"] or 0) for st in stats)
    start = load.get("start_time", 0.0)
    secs = last - start if last and start else float("nan")
    sent = load.get("sent", 0)
    return {
        "names": names, "sent": sent, "received": received, "lost": sent - received,
        "seconds": round(secs, 3),
        "rate": round(received / secs, 1) if secs and secs > 0 else 0.0,
        "send_rate": load.get("rate", 0.0), "cpu_s": round(cpu, 2),
        "cpu_us_per_dp": round(cpu / received * 1e6, 3) if received else float("nan"),
        "peak_rss_mb": round(rss / 2**20, 1), "alive": alive,
        "split": [st["count"] for st in stats],
    }


def run_targets(targets: Sequence[str], name_counts: Sequence[int],
                run_one: Callable[[str, int, int], dict], points_for: Callable[[str], int],
                repeat: int = 1, json_rows: bool = False) -> tuple[list[dict], bool]:
    """``run_one(target, names, points)`` for every name count and target (``repeat`` times,
    keeping the median-rate run); (rows, whether any run failed or lost its daemon)."""
    rows: list[dict] = []
    failed = False
    for names in name_counts:
        for target in targets:
            points = points_for(target)
            print(f"running {target} names={names} points={points} ...", file=sys.stderr,
                  flush=True)
            try:
                runs = [run_one(target, names, points) for _ in range(repeat)]
            except Exception as exc:        # one broken target must not hide the others
                print(f"{target} names={names} failed: {exc}", file=sys.stderr)
                failed = True
                continue
            row = sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]
            if not row["alive"]:
                print(f"{target} names={names}: daemon died during the run", file=sys.stderr)
                failed = True
            rows.append(row)
            if json_rows:
                print(json.dumps(row), flush=True)
    return rows, failed


def print_rows(rows: Sequence[dict], columns: Sequence[tuple[str, int]]) -> None:
    """The table, then for each name count cadent's rate and CPU per datapoint against each
    other target's."""
    print(" ".join(f"{c:>{w}}" for c, w in columns))
    for r in rows:
        print(" ".join(f"{r[c]:>{w}}" for c, w in columns))
    by = {(r["target"], r["names"]): r for r in rows}
    for names in sorted({r["names"] for r in rows}):
        ours = by.get((REFERENCE, names))
        if not ours:
            continue
        for peer in dict.fromkeys(r["target"] for r in rows if r["target"] != REFERENCE):
            theirs = by.get((peer, names))
            if theirs and theirs["rate"] and ours["cpu_us_per_dp"]:
                print(f"names={names}: {REFERENCE}/{peer} rate x{ours['rate'] / theirs['rate']:.2f}, "
                      f"CPU per datapoint x{theirs['cpu_us_per_dp'] / ours['cpu_us_per_dp']:.2f} less")


COLUMNS = [("target", 18), ("names", 7), ("sent", 9), ("received", 9), ("lost", 8),
           ("seconds", 8), ("rate", 11), ("cpu_s", 7), ("cpu_us_per_dp", 13), ("peak_rss_mb", 11)]

__all__ = ["COLUMNS", "measure", "print_rows", "run_targets"]
