"""cadent-cache → Cassandra → cadent-api through the real cassandra-driver, against cqlstub
(``shared/tools/cqlstub.py``, a CQL v4 server that records every statement and answers reads).

Real processes throughout: the stub, cadent-cache (gevent, writer threads) and cadent-api
(gunicorn, gevent workers)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cassandra_helpers import CqlStubProcess, index_rows, rows_by_bin
from tests.e2e.cache_helpers import cache_conf, send_lines
from tests.e2e.graphite_web_helpers import CadentApi, get, write_api_conf
from tests.peers import CadentProcess, free_port, wait_until

pytest.importorskip("cassandra")

SCHEMAS = "[all]\npattern = .*\nretentions = 10s:7d,1m:30d\n"
AGGREGATION = "[sums]\npattern = \\.count$\naggregationMethod = sum\n"
TTL_10S, TTL_1M = 7 * 86400, 30 * 86400


def _cache(tmp_path, stub: CqlStubProcess) -> CadentProcess:
    conf = cache_conf(tmp_path, DATABASE="cassandra", CASSANDRA_HOSTS=stub.address,
                      CASSANDRA_CONSISTENCY="ONE", CASSANDRA_RECONNECT_SECONDS=1,
                      files={"storage-schemas.conf": SCHEMAS,
                             "storage-aggregation.conf": AGGREGATION})
    return CadentProcess(conf, "cache", log_path=tmp_path / "cache.log")


def _point(stub: CqlStubProcess, key):
    return rows_by_bin(stub.records()).get(key)


def _wait_point(stub, key, count: int, timeout: float = 60.0):
    """The row of ``key`` once its aggregate counts ``count`` points."""
    assert wait_until(lambda: (_point(stub, key) or ({"count": 0},))[0]["count"] >= count,
                      timeout), (key, _point(stub, key))
    return _point(stub, key)


def _agg(*values: float) -> dict:
    return {"max": max(values), "mean": sum(values) / len(values), "min": min(values),
            "sum": float(sum(values)), "count": len(values)}


def test_cache_writes_exact_bins_ttls_index_and_merges_late_points(tmp_path):
    base = (int(time.time()) - 900) // 60 * 60        # a bin 15 minutes old: "late" points
    with CqlStubProcess(tmp_path / "calls.jsonl") as stub:
        with _cache(tmp_path, stub) as cache:
            send_lines(cache.line_port, [f"web.a.hits 1 {base + 1}", f"web.a.hits 5 {base + 15}"])
            _wait_point(stub, ("web.a.hits", 60, base), 2)
            # later batches: out of order into the same 10 s bin, and a second minute
            send_lines(cache.line_port, [f"web.a.hits 3 {base + 61}", f"web.a.hits 2 {base + 5}"])
            _wait_point(stub, ("web.a.hits", 60, base), 3)
            assert cache.stop() == 0
        rows = rows_by_bin(stub.records())
        assert rows[("web.a.hits", 10, base)] == (_agg(1, 2), TTL_10S)
        assert rows[("web.a.hits", 10, base + 10)] == (_agg(5), TTL_10S)
        assert rows[("web.a.hits", 10, base + 60)] == (_agg(3), TTL_10S)
        assert rows[("web.a.hits", 60, base)] == (_agg(1, 5, 2), TTL_1M)
        assert rows[("web.a.hits", 60, base + 60)] == (_agg(3), TTL_1M)
        segments, paths = index_rows(stub.records())
        assert segments == {(0, "web"), (1, "web.a"), (2, "web.a.hits")}
        assert paths == {((0, "web"), "web.a", 2, False), ((1, "web.a"), "web.a.hits", 3, True),
                         ((2, "web.a.hits"), "web.a.hits", 3, True)}
        index_inserts = [r for r in stub.records() if r.get("table") in ("path", "segment")]
        assert len(index_inserts) == 6          # once per series, not per point or batch

        # a restarted cache has no memory of the bin: it reads the row back and merges
        with _cache(tmp_path, stub) as cache:
            send_lines(cache.line_port, [f"web.a.hits 7 {base + 2}"])
            _wait_point(stub, ("web.a.hits", 60, base), 4)
            assert cache.stop() == 0
        rows = rows_by_bin(stub.records())
        assert rows[("web.a.hits", 10, base)] == (_agg(1, 2, 7), TTL_10S)
        assert rows[("web.a.hits", 60, base)] == (_agg(1, 5, 2, 7), TTL_1M)
        reads = [r for r in stub.records() if r["cql"].startswith("SELECT time, point")]
        assert reads and all(not r.get("error") for r in reads)


def test_unreachable_at_start_then_an_outage_lose_nothing(tmp_path):
    base = int(time.time()) // 60 * 60 - 120
    stub = CqlStubProcess(tmp_path / "calls.jsonl")
    with _cache(tmp_path, stub) as cache:
        # no cluster yet: the cache starts, says so, and keeps the points
        assert wait_until(lambda: "cannot reach Cassandra" in cache.log_text(), 30), cache.log_text()
        send_lines(cache.line_port, [f"svc.up 1 {base}"])
        stub.start()
        try:
            _wait_point(stub, ("svc.up", 60, base), 1)
            stub.stop()                                   # outage
            send_lines(cache.line_port, [f"svc.up 3 {base + 1}", f"svc.up 4 {base + 60}"])
            time.sleep(3)                                 # the outage lasts; writes fail
            stub.start()                                  # back on the same port, empty
            row = _wait_point(stub, ("svc.up", 60, base), 2)
            assert row == (_agg(1, 3), TTL_1M)            # merged with what was written before
            assert _wait_point(stub, ("svc.up", 60, base + 60), 1) == (_agg(4), TTL_1M)
            assert cache.stop() == 0
        finally:
            stub.stop()
    log = cache.log_text()
    # errors logged at most once a minute each, not once per failed write
    assert log.count("cannot reach Cassandra") <= 2, log
    assert log.count("Traceback") == 0, log


def test_api_finds_and_renders_what_the_cache_wrote(tmp_path):
    now = int(time.time())
    base = now // 60 * 60 - 180
    with CqlStubProcess(tmp_path / "calls.jsonl") as stub:
        with _cache(tmp_path, stub) as cache:
            send_lines(cache.line_port, [f"app.web1.req.count 2 {base}", f"app.web1.req.count 4 {base + 1}",
                                         f"app.web1.lat 10 {base}", f"app.web1.lat 20 {base + 5}",
                                         f"app.web2.lat 7 {base + 30}", f"top 1 {base}"])
            _wait_point(stub, ("app.web1.lat", 10, base), 2)
            _wait_point(stub, ("app.web2.lat", 10, base + 30), 1)
            _wait_point(stub, ("app.web1.req.count", 10, base), 2)
            _wait_point(stub, ("top", 10, base), 1)
            port = free_port()
            conf = write_api_conf(tmp_path / "api", str(tmp_path / "none"), port, DATABASE="cassandra",
                                  CASSANDRA_HOSTS=stub.address, CASSANDRA_CONSISTENCY="ONE")
            (conf.parent / "storage-schemas.conf").write_text(SCHEMAS)
            (conf.parent / "storage-aggregation.conf").write_text(AGGREGATION)
            with CadentApi(conf, port, log_path=tmp_path / "api.log") as api:
                def find(query, **extra):
                    status, body = get(api.url, "/metrics/find", {"query": query, **extra})
                    assert status == 200, body
                    return json.loads(body)

                assert [(n["id"], n["leaf"]) for n in find("*")] == [("app", 0), ("top", 1)]
                assert [(n["id"], n["leaf"]) for n in find("app.*")] == [("app.web1", 0), ("app.web2", 0)]
                assert [(n["path"], n["is_leaf"]) for n in find("app.web[12].{lat,req}", format="json")] == [
                    ("app.web1.lat", True), ("app.web1.req", False), ("app.web2.lat", True)]
                assert [n["path"] for n in find("app.web?.lat", format="json")] == [
                    "app.web1.lat", "app.web2.lat"]
                status, body = get(api.url, "/metrics/expand", {"query": "app.*.lat"})
                assert json.loads(body) == {"results": ["app.web1.lat", "app.web2.lat"]}
                status, body = get(api.url, "/metrics/index.json", {})
                assert json.loads(body) == ["app.web1.lat", "app.web1.req.count", "app.web2.lat", "top"]

                params = {"target": ["app.web*.lat", "app.web1.req.count", "sumSeries(app.*.lat)"],
                          "from": str(base - 10), "until": str(base + 40), "format": "json"}
                status, body = get(api.url, "/render", params)
                assert status == 200, body
                series = {s["target"]: s["datapoints"] for s in json.loads(body)}
                # 10 s resolution (its TTL covers from); slots start after from, as whisper's
                assert series["app.web1.lat"][:5] == [[15.0, base], [None, base + 10], [None, base + 20],
                                                      [None, base + 30], [None, base + 40]]
                assert series["app.web2.lat"][3] == [7.0, base + 30]
                assert series["app.web1.req.count"][0] == [6.0, base]      # sum column
                assert series["sumSeries(app.*.lat)"][0] == [15.0, base]
                assert series["sumSeries(app.*.lat)"][3] == [7.0, base + 30]
                # a range older than 7 days reads the 1-minute rows
                params = {"target": "app.web1.lat", "from": str(now - 8 * 86400),
                          "until": str(base + 60), "format": "json"}
                status, body = get(api.url, "/render", params)
                points = json.loads(body)[0]["datapoints"]
                assert points[1][1] - points[0][1] == 60 and [15.0, base] in points
            assert cache.stop() == 0


def test_bench_smoke(tmp_path):
    from tests.vectors import REPO_ROOT

    out = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "cassandra_bench.py"),
                          "--series", "300", "--index", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["series"] == 300 and row["rows"] == 300 * 7 and row["errors"] == 0
    assert row["rows_per_s"] > 0 and row["cpu_us_per_point"] > 0 and row["index_rows_per_s"] > 0


def _cache_command(conf, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "cadent-cache"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "cadent.daemons.cache"]
    return subprocess.run(argv + ["--config", str(conf), *args], capture_output=True, text=True,
                          timeout=120)


def test_create_schema_command_and_check_config(tmp_path):
    with CqlStubProcess(tmp_path / "calls.jsonl", schema=False) as stub:
        conf = cache_conf(tmp_path, DATABASE="whisper, cassandra", CASSANDRA_HOSTS=stub.address,
                          CASSANDRA_KEYSPACE="graphite", CASSANDRA_REPLICATION_FACTOR=2)
        done = _cache_command(conf, "--create-schema")
        assert done.returncode == 0, done.stderr
        assert "schema applied in keyspace graphite" in done.stdout
        created = [r["cql"] for r in stub.records() if r["cql"].startswith("CREATE")]
        assert len(created) == 7 and "'replication_factor': '2'" in created[0]
        assert all("graphite." in cql for cql in created[1:])
        again = _cache_command(conf, "--create-schema")
        assert again.returncode == 0, again.stderr
    down = _cache_command(conf, "--create-schema")
    assert down.returncode == 1 and "cannot create the schema" in down.stderr
    assert down.stderr.count("Traceback") == 0
    checked = _cache_command(conf, "--check-config")
    assert checked.returncode == 0, checked.stderr
    text = conf.read_text().replace("CASSANDRA_KEYSPACE = graphite", "CASSANDRA_KEYSPACE = no-such")
    conf.write_text(text)
    line = text.splitlines().index("CASSANDRA_KEYSPACE = no-such") + 1
    bad = _cache_command(conf, "--check-config")
    assert bad.returncode == 1 and f"carbon.conf:{line}: CASSANDRA_KEYSPACE" in bad.stderr


@pytest.mark.peers
def test_graphite_web_shows_cassandra_series_like_whisper_ones(tmp_path):
    """cadent-cache writes the same points to whisper and Cassandra; graphite-web reading the
    whisper files and graphite-web federating to cadent-api (CLUSTER_SERVERS) over Cassandra
    give the same finds and renders."""
    from tests.e2e.graphite_web_helpers import GraphiteWeb, ensure_graphite_web

    why = ensure_graphite_web()
    if why:
        pytest.skip(why)
    start = int(time.time()) // 60 * 60 - 1800
    lines = [f"fed.{host}.{metric} {(i * 7 + len(host + metric)) % 23} {start + 10 * i}"
             for host in ("a", "b") for metric in ("cpu", "mem") for i in range(150)]
    with CqlStubProcess(tmp_path / "calls.jsonl") as stub:
        conf = cache_conf(tmp_path, DATABASE="whisper, cassandra", CASSANDRA_HOSTS=stub.address,
                          CASSANDRA_CONSISTENCY="ONE",
                          files={"storage-schemas.conf": SCHEMAS,
                                 "storage-aggregation.conf": AGGREGATION})
        with CadentProcess(conf, "cache", log_path=tmp_path / "cache.log") as cache:
            send_lines(cache.line_port, lines)
            _wait_point(stub, ("fed.b.mem", 10, start + 10 * 149), 1)
            assert cache.stop() == 0
        data = str(conf.parent.parent / "storage" / "whisper")
        api_port = free_port()
        api_conf = write_api_conf(tmp_path / "api", data, api_port, DATABASE="cassandra",
                                  CASSANDRA_HOSTS=stub.address, CASSANDRA_CONSISTENCY="ONE")
        (api_conf.parent / "storage-schemas.conf").write_text(SCHEMAS)
        (api_conf.parent / "storage-aggregation.conf").write_text(AGGREGATION)
        slow = {"GW_FIND_TIMEOUT": "60", "GW_FETCH_TIMEOUT": "60"}
        local = GraphiteWeb(free_port(), tmp_path, GW_WHISPER_DIR=data, **slow)
        front = GraphiteWeb(free_port(), tmp_path, GW_WHISPER_DIR="none",
                            GW_CLUSTER_SERVERS=f"127.0.0.1:{api_port}", **slow)
        with CadentApi(api_conf, api_port, log_path=tmp_path / "api.log"):
            try:
                local.start()
                front.start()
                for query in ("*", "fed.*", "fed.*.cpu", "fed.{a,b}.m*"):
                    answers = [json.loads(get(web.url, "/metrics/find", {"query": query})[1])
                               for web in (local, front)]
                    assert answers[0] == answers[1], (query, answers)
                for target in ("fed.*.*", "sumSeries(fed.*.cpu)", "scale(fed.a.mem, 2)"):
                    params = {"target": target, "format": "json", "from": str(start - 5),
                              "until": str(start + 1500)}
                    answers = [json.loads(get(web.url, "/render", params)[1]) for web in (local, front)]
                    assert answers[0] and answers[0] == answers[1], (target, answers)
            finally:
                local.stop()
                front.stop()


def test_render_merges_points_still_in_the_cache_over_carbonlink(tmp_path):
    now = int(time.time())
    old, recent = now // 10 * 10 - 7200, now // 10 * 10 - 30
    with CqlStubProcess(tmp_path / "calls.jsonl") as stub:
        # timesorted with a one-hour lag: the recent point stays in the cache
        conf = cache_conf(tmp_path, DATABASE="cassandra", CASSANDRA_HOSTS=stub.address,
                          CASSANDRA_CONSISTENCY="ONE", CACHE_WRITE_STRATEGY="timesorted",
                          MIN_TIMESTAMP_LAG=3600,
                          files={"storage-schemas.conf": SCHEMAS,
                                 "storage-aggregation.conf": AGGREGATION})
        with CadentProcess(conf, "cache", log_path=tmp_path / "cache.log") as cache:
            send_lines(cache.line_port, [f"cl.old 4 {old}", f"cl.new 9 {recent}"])
            _wait_point(stub, ("cl.old", 10, old), 1)
            assert wait_until(lambda: ((1, "cl.new"), "cl.new", 2, True)
                              in index_rows(stub.records())[1], 30)
            carbonlink = f"127.0.0.1:{cache.settings['CACHE_QUERY_PORT']}"
            port = free_port()
            api_conf = write_api_conf(tmp_path / "api", str(tmp_path / "none"), port,
                                      carbonlink_hosts=carbonlink, DATABASE="cassandra",
                                      CASSANDRA_HOSTS=stub.address, CASSANDRA_CONSISTENCY="ONE")
            (api_conf.parent / "storage-schemas.conf").write_text(SCHEMAS)
            with CadentApi(api_conf, port, log_path=tmp_path / "api.log") as api:
                status, body = get(api.url, "/render", {"target": "cl.*", "format": "json",
                                                        "from": str(old - 1), "until": str(now)})
                assert status == 200, body
                series = {s["target"]: {ts: v for v, ts in s["datapoints"] if v is not None}
                          for s in json.loads(body)}
                assert series == {"cl.old": {old: 4.0}, "cl.new": {recent: 9.0}}
            # cl.new was never written: its point came from the cache
            assert not [key for key in rows_by_bin(stub.records()) if key[0] == "cl.new"]
