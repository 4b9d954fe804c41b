"""The Cassandra writer's own cost: rows/s, points/s and CPU per point through cassandra-driver.

    .venv/bin/python bench/cassandra_bench.py --series 10000,100000

For each series count, starts ``shared/tools/cqlstub.py`` (a CQL v4 server) as a process, and
writes ``--points`` points per series (one every 10 s from a minute that begins after the writer
started, so no row is read back) with ``--threads`` writer threads through
:class:`CassandraWriter`, schema ``10s:1d,1m:7d`` (so 6 points are 6 ten-second rows and one
minute row). Rows: rows/s, points/s, the bench process's CPU µs per point (writer + driver; the
stub runs in its own process and is reported apart). The stub is a Python program and no
performance reference for Cassandra: these figures bound the writer's cost, not a cluster's speed.
``--index`` also times the path index of every series (6 rows for a 3-node name).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cadent.compat.cassandra_settings import CassandraConfig  # noqa: E402
from cadent.compat.storage_aggregation import StorageAggregation  # noqa: E402
from cadent.compat.storage_schemas import Schema, StorageSchemas  # noqa: E402
from cadent.core.write.cassandra import CassandraWriter  # noqa: E402
from tests.cassandra_helpers import CqlStubProcess  # noqa: E402

SCHEMAS = StorageSchemas([Schema("all", ".*", ((10, 8640), (60, 10080)), re.compile(".*"))])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(series: int, points: int, threads: int, inflight: int, index: bool,
            workdir: Path) -> dict:
    """Write ``points`` points to each of ``series`` series; one result row."""
    # the stub records nothing: its file writes would slow it down
    with CqlStubProcess(None, log_path=workdir / "cqlstub.log") as stub:
        config = CassandraConfig(hosts=(("127.0.0.1", stub.port),), consistency="ONE",
                                 max_inflight=inflight, recent_bins=series * 8)
        writer = CassandraWriter(config, SCHEMAS, StorageAggregation.default())
        if not writer.runner.wait_connected(60):
            raise RuntimeError("the writer did not connect to cqlstub")
        names = [f"bench.host{i % 1000:03d}.metric{i}" for i in range(series)]
        row: dict = {"series": series, "points_per_series": points, "threads": threads,
                     "max_inflight": inflight}
        with ThreadPoolExecutor(threads) as pool:
            if index:
                start, cpu0 = time.perf_counter(), _cpu()
                list(pool.map(writer.create, names))
                seconds = time.perf_counter() - start
                row["index_rows_per_s"] = round(writer.collect_stats()["cassandra.indexRowsWritten"]
                                                / seconds)
                row["index_cpu_us_per_series"] = round((_cpu() - cpu0) / series * 1e6, 1)
            minute = (int(time.time()) // 60 + 2) * 60
            batch = [(minute + 10 * i, float(i)) for i in range(points)]
            writer.collect_stats()
            stub_cpu0 = stub.cpu_seconds()
            start, cpu0 = time.perf_counter(), _cpu()
            list(pool.map(lambda name: writer.write(name, batch), names))
            seconds = time.perf_counter() - start
            cpu = _cpu() - cpu0
            stub_cpu = stub.cpu_seconds() - stub_cpu0
        stats = writer.collect_stats()
        writer.close()
    total_points = series * points
    row.update(seconds=round(seconds, 2), rows=stats["cassandra.rowsWritten"],
               rows_per_s=round(stats["cassandra.rowsWritten"] / seconds),
               points_per_s=round(total_points / seconds),
               cpu_us_per_point=round(cpu / total_points * 1e6, 1),
               cpu_us_per_row=round(cpu / stats["cassandra.rowsWritten"] * 1e6, 1),
               stub_cpu_s=round(stub_cpu, 1), read_backs=stats["cassandra.readBacks"],
               errors=stats["cassandra.errors"])
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", default="10000,100000", help="comma list of series counts")
    parser.add_argument("--points", type=int, default=6, help="points per series")
    parser.add_argument("--threads", type=int, default=4, help="writer threads")
    parser.add_argument("--inflight", type=int, default=128, help="CASSANDRA_MAX_INFLIGHT")
    parser.add_argument("--index", action="store_true", help="also write the path index")
    parser.add_argument("--workdir", default="/tmp/cadent-cassandra-bench")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = [run_one(int(n), args.points, args.threads, args.inflight, args.index, workdir)
            for n in args.series.split(",")]
    print("| series | rows/s | points/s | CPU µs/point | CPU µs/row | stub CPU s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['series']} | {row['rows_per_s']} | {row['points_per_s']} | "
              f"{row['cpu_us_per_point']} | {row['cpu_us_per_row']} | {row['stub_cpu_s']} |")
    for row in rows:
        print(json.dumps(row))
    return 0 if all(row["errors"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
