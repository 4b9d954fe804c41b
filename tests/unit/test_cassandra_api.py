"""cadent-api with ``DATABASE = cassandra``: find/expand/index from the path index, render from
the rows (resolution by ``from``, column by aggregation method, nulls, CarbonLink merge), through
the real driver against an in-process cqlstub filled by the CassandraWriter."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest

from cadent.api.app import create_app
from cadent.api.finders.cassandra import CassandraFetcher, column_value
from cadent.api.readers import fetch_window
from cadent.api.settings import ApiSettings
from cadent.compat.cassandra_settings import CassandraConfig
from cadent.compat.storage_aggregation import load_storage_aggregation
from cadent.compat.storage_schemas import load_storage_schemas
from cadent.core.write.cassandra import CassandraWriter
from tests.cassandra_helpers import started_stub

pytest.importorskip("cassandra")

SCHEMAS = "[all]\npattern = .*\nretentions = 10s:1d,1m:30d\n"
AGGREGATION = ("[sum]\npattern = \\.count$\naggregationMethod = sum\n"
               "[max]\npattern = \\.max$\naggregationMethod = max\n"
               "[min]\npattern = \\.min$\naggregationMethod = min\n"
               "[last]\npattern = \\.last$\naggregationMethod = last\n"
               "[absmax]\npattern = \\.absmax$\naggregationMethod = absmax\n")
NOW = int(time.time())
BASE = NOW // 60 * 60 - 300
SERIES = ("app.web1.lat", "app.web1.req.count", "app.web2.lat", "app.web2", "top",
          "v.max", "v.min", "v.last", "v.absmax", "v.avg")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    conf_dir = tmp_path_factory.mktemp("conf")
    (conf_dir / "storage-schemas.conf").write_text(SCHEMAS)
    (conf_dir / "storage-aggregation.conf").write_text(AGGREGATION)
    stub = started_stub()
    config = CassandraConfig(hosts=(("127.0.0.1", stub.port),), consistency="ONE",
                             conf_dir=str(conf_dir))
    writer = CassandraWriter(config, load_storage_schemas(str(conf_dir / "storage-schemas.conf")),
                             load_storage_aggregation(str(conf_dir / "storage-aggregation.conf")))
    assert writer.runner.wait_connected(30)
    for name in SERIES:
        writer.create(name)
        writer.write(name, [(BASE, 2.0), (BASE + 5, -6.0), (BASE + 30, 1.0)])
    writer.close()
    app = create_app(ApiSettings(cassandra=config, carbonlink_hosts=(),
                                 whisper_dirs=(str(conf_dir),),
                                 tagdb_path=str(conf_dir / "tagdb.sqlite")))
    yield app.test_client(), app
    app.extensions["cadent"]["finder"].index.close()
    stub.stop()


def _find(client, query, **extra):
    reply = client.get("/metrics/find", query_string={"query": query, "format": "json", **extra})
    assert reply.status_code == 200, reply.data
    return [(n["path"], n["is_leaf"]) for n in reply.get_json()]


def test_find_with_graphite_globs_and_flags(api):
    client, _ = api
    assert _find(client, "*") == [("app", False), ("top", True), ("v", False)]
    assert _find(client, "app.*") == [("app.web1", False), ("app.web2", False)]
    assert _find(client, "app.web?.lat") == [("app.web1.lat", True), ("app.web2.lat", True)]
    assert _find(client, "app.web[12].{lat,req}") == [("app.web1.lat", True), ("app.web1.req", False),
                                                      ("app.web2.lat", True)]
    assert _find(client, "app.web[!1]") == [("app.web2", False)]
    assert _find(client, "v.*", leavesOnly="1") == [("v.absmax", True), ("v.avg", True), ("v.last", True),
                                                    ("v.max", True), ("v.min", True)]
    assert _find(client, "nothing.*") == [] and _find(client, "app.nothing") == []
    tree = client.get("/metrics/find", query_string={"query": "app.*"}).get_json()
    assert [(n["id"], n["leaf"]) for n in tree] == [("app.web1", 0), ("app.web2", 0)]
    intervals = client.get("/metrics/find", query_string={"query": "top", "format": "json"}).get_json()
    start, end = intervals[0]["intervals"][0]["start"], intervals[0]["intervals"][0]["end"]
    assert abs(end - start - 30 * 86400) < 5
    assert client.get("/metrics/find", query_string={"query": "app.**"}).status_code == 400


def test_expand_and_index(api):
    client, _ = api
    assert client.get("/metrics/expand", query_string={"query": "app.*.lat"}).get_json() == {
        "results": ["app.web1.lat", "app.web2.lat"]}
    assert client.get("/metrics/index.json").get_json() == sorted(SERIES)


def _render(client, target, start, end):
    reply = client.get("/render", query_string={"target": target.split("|"), "from": str(start),
                                                "until": str(end), "format": "json"})
    assert reply.status_code == 200, reply.data
    return {s["target"]: s["datapoints"] for s in reply.get_json()}


def test_render_picks_the_column_by_aggregation_method(api):
    client, _ = api
    got = _render(client, "app.web1.*|app.web1.req.*|v.*", BASE - 1, BASE + 29)
    first = {name: points[0] for name, points in got.items()}
    assert first == {"app.web1.lat": [-2.0, BASE], "app.web1.req.count": [-4.0, BASE],
                     "v.max": [2.0, BASE], "v.min": [-6.0, BASE], "v.last": [-2.0, BASE],
                     "v.absmax": [-6.0, BASE], "v.avg": [-2.0, BASE]}
    assert got["v.avg"] == [[-2.0, BASE], [None, BASE + 10], [None, BASE + 20]]


def test_render_uses_the_finest_resolution_covering_from(api):
    client, _ = api
    fine = _render(client, "top", BASE - 1, BASE + 59)["top"]
    assert [p[1] for p in fine][:2] == [BASE, BASE + 10] and fine[3] == [1.0, BASE + 30]
    coarse = _render(client, "top", NOW - 2 * 86400, BASE + 59)["top"]
    assert coarse[1][1] - coarse[0][1] == 60
    assert [-1.0, BASE] in coarse                      # (2 - 6 + 1) / 3 over the minute
    assert _render(client, "sumSeries(app.*.lat)", BASE - 1, BASE + 9) == {
        "sumSeries(app.*.lat)": [[-4.0, BASE]]}
    assert _render(client, "top", NOW - 90 * 86400, NOW - 60 * 86400) == {}


def test_cached_points_are_merged_over_the_rows(api):
    _, app = api
    finder = app.extensions["cadent"]["finder"]
    cached = {"top": [(BASE + 31, 9.0), (BASE + 45, 4.0)]}
    fetch = CassandraFetcher(finder, NOW, lambda name: cached.get(name, []))
    (series,) = fetch("top", BASE - 1, BASE + 49)
    assert series.values == [-2.0, None, None, 9.0, 4.0]          # cache beats the row
    fetch = CassandraFetcher(finder, NOW, lambda name: cached.get(name, []))
    (series,) = fetch("top", NOW - 2 * 86400, BASE + 59)
    assert series.step == 60 and series.values[-1] == pytest.approx(6.5)   # average of 9 and 4


def test_helpers():
    point = SimpleNamespace(max=3.0, mean=1.0, min=-5.0, sum=2.0, count=2)
    assert [column_value(point, m) for m in ("average", "sum", "max", "min", "last", "absmax", "absmin")] \
        == [1.0, 2.0, 3.0, -5.0, 1.0, -5.0, 3.0]
    plan = ((10, 3600), (60, 86400))
    assert fetch_window(plan, 1000, 1100, 2000) == (1010, 1110, 10, 0)
    assert fetch_window(plan, 2000 - 7200, 2000, 2000).time_info == \
        (2000 - 7200 + 60 - (2000 - 7200) % 60, 2040, 60)
    assert fetch_window(plan, 0, 10, 200000) is None


def test_an_unreachable_cluster_is_a_500_not_a_hang(tmp_path):
    from tests.peers import free_port

    (tmp_path / "storage-schemas.conf").write_text(SCHEMAS)
    config = CassandraConfig(hosts=(("127.0.0.1", free_port()),), connect_timeout_s=0.5,
                             reconnect_s=0.5, conf_dir=str(tmp_path))
    app = create_app(ApiSettings(cassandra=config, carbonlink_hosts=(),
                                 whisper_dirs=(str(tmp_path),), tagdb_path=str(tmp_path / "t.sqlite")))
    client = app.test_client()
    try:
        started = time.monotonic()
        assert client.get("/metrics/find", query_string={"query": "a.*"}).status_code == 500
        assert client.get("/render", query_string={"target": "a.b"}).status_code == 500
        assert time.monotonic() - started < 10
    finally:
        app.extensions["cadent"]["finder"].index.close()
