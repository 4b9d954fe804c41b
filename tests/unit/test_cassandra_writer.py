"""CassandraWriter through the real cassandra-driver against an in-process cqlstub: exact bins and
TTLs per resolution, merges of batches that arrive out of order, late or again after a failure,
the path index, the in-flight bound, an outage, and the self-metrics."""

from __future__ import annotations

import math
import re
import time

import pytest

from cadent.compat.cassandra_settings import CassandraConfig
from cadent.compat.storage_aggregation import AggregationRule, StorageAggregation
from cadent.compat.storage_schemas import Schema, StorageSchemas
from cadent.core.write.base import Writer
from cadent.core.write.cassandra import CassandraWriter
from cadent.core.write.cassandra_io import CassandraUnavailable, CqlRunner, RowBatch
from tests.cassandra_helpers import cqlstub_module, index_rows, rows_by_bin, started_stub, SCHEMA_FILE
from tests.peers import wait_until

pytest.importorskip("cassandra")

SCHEMAS = StorageSchemas([Schema("all", ".*", ((10, 60480), (60, 43200)), re.compile(".*"))])
AGGREGATIONS = StorageAggregation([AggregationRule("max", r"\.max$", None, "max", re.compile(r"\.max$"))])
TTL_10S, TTL_1M = 7 * 86400, 30 * 86400
BASE = (int(time.time()) - 3600) // 60 * 60


def _agg(*values: float) -> dict:
    return {"max": max(values), "mean": sum(values) / len(values), "min": min(values),
            "sum": float(sum(values)), "count": len(values)}


@pytest.fixture
def stub():
    server = started_stub()
    yield server
    server.stop()


def _writer(stub, clock=time.time, runner=None, **config) -> CassandraWriter:
    settings = CassandraConfig(hosts=(("127.0.0.1", stub.port),), consistency="ONE", **config)
    writer = CassandraWriter(settings, SCHEMAS, AGGREGATIONS, runner=runner, clock=clock)
    assert writer.runner.wait_connected(30)
    return writer


def test_is_a_writer_and_takes_metadata_from_the_rules(stub):
    writer = _writer(stub)
    try:
        assert isinstance(writer, Writer)
        assert writer.get_metadata("a.max", "aggregationMethod") == "max"
        assert writer.get_metadata("a.b", "aggregationMethod") == "average"
        with pytest.raises(ValueError):
            writer.set_metadata("a.b", "aggregationMethod", "sum")
    finally:
        writer.close()


def test_every_resolution_rolled_up_from_raw_points_with_its_ttl(stub):
    writer = _writer(stub)
    try:
        assert not writer.exists("s.x")
        writer.create("s.x")
        assert writer.exists("s.x")
        points = [(BASE + 1, 1.0), (BASE + 9, 3.0), (BASE + 12, 8.0), (BASE + 65, -2.0),
                  (BASE + 66, math.nan)]
        assert writer.write("s.x", points) == 5
    finally:
        writer.close()
    rows = rows_by_bin(stub.records)
    assert rows == {
        ("s.x", 10, BASE): (_agg(1, 3), TTL_10S),
        ("s.x", 10, BASE + 10): (_agg(8), TTL_10S),
        ("s.x", 10, BASE + 60): (_agg(-2), TTL_10S),
        # the minute is rolled up from the raw points: mean 4, not the mean of 2 and 8
        ("s.x", 60, BASE): (_agg(1, 3, 8), TTL_1M),
        ("s.x", 60, BASE + 60): (_agg(-2), TTL_1M),
    }
    assert all(r["ttl"] in (TTL_10S, TTL_1M) for r in stub.records if r.get("table") == "metric"
               and r["cql"].startswith("INSERT"))
    assert index_rows(stub.records) == (
        {(0, "s"), (1, "s.x")}, {((0, "s"), "s.x", 2, True), ((1, "s.x"), "s.x", 2, True)})


def test_batches_out_of_order_late_and_after_a_restart_are_merged(stub):
    writer = _writer(stub)
    try:
        writer.write("m", [(BASE + 30, 5.0)])
        writer.write("m", [(BASE + 2, 1.0), (BASE + 31, 7.0)])      # earlier bin, same minute
    finally:
        writer.close()
    assert rows_by_bin(stub.records)[("m", 60, BASE)] == (_agg(5, 1, 7), TTL_1M)
    # a new process knows nothing of the bin: it reads the row back before merging
    writer = _writer(stub)
    try:
        writer.write("m", [(BASE + 40, 2.0)])
        stats = writer.collect_stats()
    finally:
        writer.close()
    rows = rows_by_bin(stub.records)
    assert rows[("m", 60, BASE)] == (_agg(5, 1, 7, 2), TTL_1M)
    assert rows[("m", 10, BASE + 30)] == (_agg(5, 7), TTL_10S)
    assert rows[("m", 10, BASE + 40)] == (_agg(2), TTL_10S)
    assert stats["cassandra.readBacks"] == 2


def test_bins_leave_memory_after_the_window_and_are_read_back(stub):
    now = [time.time()]
    writer = _writer(stub, clock=lambda: now[0], bin_window_s=600)
    try:
        recent = int(now[0]) // 60 * 60 + 60          # a bin begun after the writer started
        now[0] = recent + 1
        writer.write("w", [(recent, 1.0)])
        writer.write("w", [(recent + 1, 2.0)])
        assert writer.collect_stats()["cassandra.readBacks"] == 0
        now[0] += 60 + 600 + 1                       # the minute ended over 10 minutes ago
        writer.write("w", [(now[0], 0.0)])           # evicts the old bins
        writer.write("w", [(recent + 2, 4.0)])       # a late point for them
        assert writer.collect_stats()["cassandra.readBacks"] == 2     # one per resolution
    finally:
        writer.close()
    assert rows_by_bin(stub.records)[("w", 60, recent)] == (_agg(1, 2, 4), TTL_1M)


def test_memory_bound_holds_and_evicted_series_stay_exact(stub):
    writer = _writer(stub, recent_bins=4)
    try:
        for round_ in range(3):
            for name in ("b1", "b2", "b3"):
                writer.write(name, [(BASE + 1, float(round_))])
                assert writer._recent_count <= 4
    finally:
        writer.close()
    rows = rows_by_bin(stub.records)
    for name in ("b1", "b2", "b3"):
        assert rows[(name, 60, BASE)] == (_agg(0, 1, 2), TTL_1M)


class _FailHalfway:
    """A runner that, once armed, applies only the first half of a write's rows (the 10 s
    ones), then fails: what an unlogged batch may leave behind."""

    def __init__(self, runner: CqlRunner) -> None:
        self.runner = runner
        self.armed = False

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def run(self, statements):
        rows = [row for item in statements
                for row in (item if isinstance(item, RowBatch) else [item])]
        if self.armed and rows and rows[0][0].startswith("INSERT INTO metric.metric"):
            self.armed = False
            self.runner.run(rows[: len(rows) // 2])
            raise TimeoutError("lost the answers")
        return self.runner.run(statements)


@pytest.mark.parametrize("case", ["bins in memory", "bins read back", "rows of an earlier process"])
def test_a_retried_write_never_double_counts(stub, case):
    settings = CassandraConfig(hosts=(("127.0.0.1", stub.port),), consistency="ONE")
    # recent bins stay in memory; an hour-old one is past the window and read back each time
    base = int(time.time()) // 60 * 60 if case == "bins in memory" else BASE
    earlier = []
    if case == "rows of an earlier process":
        seed = _writer(stub)
        seed.write("r", [(base + 1, 10.0), (base + 11, 20.0)])
        seed.close()
        earlier = [10.0]
    flaky = _FailHalfway(CqlRunner(settings))
    writer = CassandraWriter(settings, SCHEMAS, AGGREGATIONS, runner=flaky)
    assert writer.runner.wait_connected(30)
    try:
        writer.write("r", [(base + 2, 1.0)])
        flaky.armed = True
        batch = [(base + 3, 2.0), (base + 12, 3.0)]
        with pytest.raises(TimeoutError):
            writer.write("r", batch)
        # the cache hands the same points back, perhaps with new ones
        writer.write("r", batch + [(base + 4, 4.0)])
        assert writer.collect_stats()["cassandra.errors"] == 1
    finally:
        writer.close()
    rows = rows_by_bin(stub.records)
    assert rows[("r", 10, base)] == (_agg(*earlier, 1, 2, 4), TTL_10S)
    minute = earlier + ([20.0] if earlier else [])
    assert rows[("r", 60, base)] == (_agg(*minute, 1, 2, 3, 4), TTL_1M)


def test_in_flight_statements_are_bounded(stub):
    writer = _writer(stub, max_inflight=3)
    try:
        points = [(BASE + 10 * i, float(i)) for i in range(200)]
        writer.write("many", points)
        assert 1 <= writer.runner.peak_inflight <= 3
    finally:
        writer.close()
    assert len([k for k in rows_by_bin(stub.records) if k[1] == 10]) == 200


def test_an_outage_fails_writes_until_the_cluster_is_back(stub):
    port = stub.port
    writer = _writer(stub, reconnect_s=0.5, request_timeout_s=2.0)
    recent = int(time.time()) // 60 * 60          # in memory: the revived stub starts empty
    try:
        writer.write("o", [(recent, 1.0)])
        stub.stop()
        with pytest.raises(Exception):
            writer.write("o", [(recent + 1, 2.0)])
        revived = cqlstub_module().CqlStub("127.0.0.1", port)
        revived.execute(SCHEMA_FILE.read_text())
        revived.start()
        try:
            def written() -> bool:
                try:
                    writer.write("o", [(recent + 1, 2.0)])
                    return True
                except Exception:
                    return False
            assert wait_until(written, 60, interval=0.5)
        finally:
            revived.stop()
        stats = writer.collect_stats()
    finally:
        writer.close()
    assert rows_by_bin(revived.records)[("o", 60, recent)] == (_agg(1, 2), TTL_1M)
    assert stats["cassandra.errors"] >= 1


def test_unreachable_cluster_fails_fast_and_self_metrics_say_so():
    from tests.peers import free_port

    settings = CassandraConfig(hosts=(("127.0.0.1", free_port()),), connect_timeout_s=0.5,
                               reconnect_s=0.5)
    writer = CassandraWriter(settings, SCHEMAS, AGGREGATIONS)
    try:
        started = time.monotonic()
        with pytest.raises(CassandraUnavailable):
            writer.write("u", [(BASE, 1.0)])
        assert time.monotonic() - started < 5
        with pytest.raises(CassandraUnavailable):
            writer.create("u")
        stats = writer.collect_stats()
    finally:
        writer.close()
    assert stats["cassandra.connected"] == 0 and stats["cassandra.errors"] == 2
    assert set(stats) >= {"cassandra.rowsWritten", "cassandra.errors", "cassandra.inflight",
                          "cassandra.recentBins", "cassandra.readBacks", "cassandra.indexRowsWritten"}


def test_self_metrics_after_writes(stub):
    writer = _writer(stub)
    try:
        writer.create("st.a")
        writer.write("st.a", [(BASE, 1.0), (BASE + 20, 2.0)])
        stats = writer.collect_stats()
        again = writer.collect_stats()
    finally:
        writer.close()
    assert stats["cassandra.rowsWritten"] == 3 and stats["cassandra.pointsWritten"] == 2
    assert stats["cassandra.indexRowsWritten"] == 4 and stats["cassandra.seriesIndexed"] == 1
    assert stats["cassandra.avgWriteTime"] > 0 and stats["cassandra.avgStatementLatency"] > 0
    assert stats["cassandra.inflight"] == 0 and stats["cassandra.connected"] == 1
    assert again["cassandra.rowsWritten"] == 0 and "cassandra.avgWriteTime" not in again
