import json
import os
import pickle

import pytest
import whisper

from cadent.api import create_app
from cadent.api.readers import merge_cached
from cadent.api.settings import ApiSettings

NOW = 1795300418
BASE = NOW - NOW % 10  # 1795300410


@pytest.fixture()
def wsp_dir(tmp_path):
    root = tmp_path / "whisper"
    (root / "test" / "e2e").mkdir(parents=True)
    (root / "test" / "empty").mkdir(parents=True)
    m1 = str(root / "test" / "e2e" / "m1.wsp")
    m2 = str(root / "test" / "e2e" / "m2.wsp")
    whisper.create(m1, [(10, 8640), (60, 10080)], xFilesFactor=0.0)
    whisper.create(m2, [(10, 8640)], xFilesFactor=0.0)
    whisper.update_many(m1, [(BASE - 300 + 10 * i, float(i + 1)) for i in range(30)], now=NOW)
    whisper.update_many(m2, [(BASE - 120 + 10 * i, 2.0) for i in range(12)], now=NOW)
    tagged = root / "_tagged" / "8f0" / "432"
    tagged.mkdir(parents=True)
    whisper.create(str(tagged / "8f04327b0bfad708b6195733dfdfebe49eb05e97858bc3c378a58e270428e49d.wsp"), [(10, 8640)])
    (root / ".hidden").mkdir()
    return root


@pytest.fixture()
def client(wsp_dir):
    settings = ApiSettings(whisper_dirs=(str(wsp_dir),), carbonlink_hosts=(), replication_factor=0)
    return create_app(settings).test_client()


def render(client, **params):
    params.setdefault("now", NOW)
    return client.get("/render", query_string=params)


def test_render_json_exact(client):
    rv = render(client, target="test.e2e.m1", **{"from": "-15min", "until": "now"})
    assert rv.status_code == 200 and rv.mimetype == "application/json"
    (series,) = rv.get_json()
    assert series["target"] == "test.e2e.m1"
    assert series["tags"] == {"name": "test.e2e.m1"}
    points = series["datapoints"]
    # whisper: first slot after from, until slot included
    assert points[0][1] == NOW - 900 - (NOW - 900) % 10 + 10
    assert points[-1][1] == BASE
    assert [v for v, _ in points if v is not None] == [float(i + 1) for i in range(30)]
    assert all(t2 - t1 == 10 for (_, t1), (_, t2) in zip(points, points[1:]))


def test_render_glob_pickle_echoes_path_expression(client):
    rv = client.get("/render/", query_string={"format": "pickle", "local": "1", "noCache": "1",
                                              "from": NOW - 900, "until": NOW, "now": NOW,
                                              "target": "test.e2e.{m1,m2}"})
    assert rv.mimetype == "application/pickle"
    body = pickle.loads(rv.data)
    assert [s["name"] for s in body] == ["test.e2e.m1", "test.e2e.m2"]
    for s in body:
        assert s["pathExpression"] == "test.e2e.{m1,m2}"
        assert len(s["values"]) == (s["end"] - s["start"]) // s["step"]
    assert sum(v for v in body[0]["values"] if v) == 465


def test_render_missing_series_is_empty(client):
    assert render(client, target="no.such.metric").get_json() == []
    assert render(client, target="test.e2e.nothing*").get_json() == []


def test_render_post_form_grafana_shape(client):
    body = {"target": 'aliasSub(test.e2e.m2, "(^.*$)", "\\1 A")', "from": "-15min", "until": "now",
            "format": "json", "maxDataPoints": "5"}
    rv = client.post(f"/render?now={NOW}", data=body)
    (series,) = rv.get_json()
    assert series["target"] == "test.e2e.m2 A"
    assert series["tags"] == {"name": "test.e2e.m2"}
    # 90 slots, 18 per point, start nudged to a multiple of 180 s
    assert [t for _, t in series["datapoints"]] == [BASE - 750 + 180 * i for i in range(5)]
    assert [v for v, _ in series["datapoints"]] == [None, None, None, 2.0, 2.0]


def test_constant_line_wrapped(client):
    rv = client.post(f"/render?now={NOW}", data={
        "target": 'aliasSub(constantLine(100), "(^.*$)", "\\1 A")', "from": "-1h", "until": "now",
        "format": "json", "maxDataPoints": "300"})
    (series,) = rv.get_json()
    assert series["target"] == "100.0 A"
    assert series["datapoints"] == [[100.0, NOW - 3600], [100.0, NOW - 1800], [100.0, NOW]]


def test_sum_series_name_and_tags(client):
    (series,) = render(client, target="sumSeries(test.e2e.*)", **{"from": "-15min"}).get_json()
    assert series["target"] == "sumSeries(test.e2e.*)"
    assert series["tags"] == {"name": "sumSeries(test.e2e.*)", "aggregatedBy": "sum"}
    values = [v for v, _ in series["datapoints"] if v is not None]
    assert sum(values) == 465 + 24


def test_errors_are_400_with_graphite_text(client):
    rv = render(client, target="nosuchfunc(test.e2e.m2)")
    assert rv.status_code == 400 and rv.mimetype == "text/html"
    assert rv.data.decode() == ('Invalid parameters (Received request for unknown function: nosuchfunc); '
                                'targets: "nosuchfunc(test.e2e.m2)"')
    rv = render(client, target="test.e2e.m2", **{"from": "-5m"})
    assert rv.status_code == 400 and rv.data.decode() == "Invalid parameters (Invalid offset unit 'm')"
    assert render(client, target="scale(test.e2e.m1").status_code == 400
    assert render(client, target="test.e2e.m1", **{"from": "now"}).status_code == 400


def test_raw_and_csv(client):
    raw = render(client, target="test.e2e.m2", format="raw", **{"from": "-1min"}).data.decode()
    head, values = raw.rstrip("\n").split("|")
    name, start, end, step = head.split(",")
    assert name == "test.e2e.m2" and int(step) == 10
    assert len(values.split(",")) == (int(end) - int(start)) // 10
    assert "2.0" in values and "None" in values
    csv = render(client, target="test.e2e.m2", format="csv", **{"from": "-1min"}).data.decode()
    first = csv.splitlines()[0].split(",")
    assert first[0] == "test.e2e.m2" and len(first[1]) == 19


def test_find_treejson_completer_json_pickle(client):
    rv = client.get("/metrics/find", query_string={"query": "*"})
    assert rv.get_json() == [
        {"text": "_tagged", "id": "_tagged", "allowChildren": 1, "expandable": 1, "leaf": 0},
        {"text": "test", "id": "test", "allowChildren": 1, "expandable": 1, "leaf": 0},
    ]
    rv = client.post("/metrics/find?from=-1h&until=now", data={"query": "test.e2e.*"})
    assert [i["id"] for i in rv.get_json()] == ["test.e2e.m1", "test.e2e.m2"]
    assert rv.get_json()[0]["leaf"] == 1
    rv = client.get("/metrics/find", query_string={"query": "test.e", "format": "completer"})
    assert rv.get_json() == {"metrics": [{"path": "test.e2e.", "name": "e2e", "is_leaf": "0"},
                                         {"path": "test.empty.", "name": "empty", "is_leaf": "0"}]}
    rv = client.get("/metrics/find", query_string={"query": "test.e2e.m[12]", "format": "json"})
    items = rv.get_json()
    assert [i["path"] for i in items] == ["test.e2e.m1", "test.e2e.m2"]
    assert items[0]["intervals"][0]["start"] <= items[0]["intervals"][0]["end"]
    rv = client.get("/metrics/find/", query_string={"query": "test.*", "format": "pickle", "local": "1"})
    assert pickle.loads(rv.data) == [{"path": "test.e2e", "is_leaf": False}, {"path": "test.empty", "is_leaf": False}]
    rv = client.get("/metrics/find/", query_string={"query": "test.e2e.m1", "format": "pickle", "local": "1"})
    (leaf,) = pickle.loads(rv.data)
    (start, end), = leaf["intervals"]
    assert leaf["is_leaf"] is True and start <= end
    assert client.get("/metrics/find").status_code == 400


def test_find_glob_forms(client):
    def ids(q):
        return [i["id"] for i in client.get("/metrics/find", query_string={"query": q}).get_json()]

    assert ids("test.{e2e,empty}") == ["test.e2e", "test.empty"]
    assert ids("test.e2e.m?") == ["test.e2e.m1", "test.e2e.m2"]
    assert ids("test.e2e.m[!1]") == ["test.e2e.m2"]
    assert ids("test.e2e.{m*,x}") == ["test.e2e.m1", "test.e2e.m2"]
    assert ids("test.e2e") == ["test.e2e"]
    assert ids("test") == ["test"]
    # like graphite-web, a treejson id is the query's own prefix + the node name
    assert ids("test.*.m1") == ["test.*.m1"]
    assert ids("{test,x}.e2e") == ["{test,x}.e2e"]


def test_expand_and_index(client):
    rv = client.get("/metrics/expand", query_string={"query": "test.e2e.*", "leavesOnly": "1"})
    assert rv.get_json() == {"results": ["test.e2e.m1", "test.e2e.m2"]}
    rv = client.get("/metrics/expand", query_string=[("query", "test.*"), ("query", "test.e2e.m1"), ("groupByExpr", "1")])
    assert rv.get_json() == {"results": {"test.*": ["test.e2e", "test.empty"], "test.e2e.m1": ["test.e2e.m1"]}}
    rv = client.get("/metrics/index.json", query_string={"local": "1"})
    assert rv.get_json() == ["_tagged.8f0.432.8f04327b0bfad708b6195733dfdfebe49eb05e97858bc3c378a58e270428e49d",
                             "test.e2e.m1", "test.e2e.m2"]


def test_tagged_exact_name(client):
    rv = render(client, target="test.e2e.tagged;env=prod;host=h1", **{"from": "-1min"})
    (series,) = rv.get_json()
    assert series["tags"] == {"name": "test.e2e.tagged", "env": "prod", "host": "h1"}


def test_small_endpoints(client):
    assert client.get("/version").data == b"1.1.8\n"
    assert "sumSeries" in client.get("/functions").get_json()
    assert client.get("/render", query_string={"target": "test.e2e.m1", "jsonp": "cb", "now": NOW}).mimetype == "text/javascript"


def test_merge_cached_raw_bucketing_and_consolidation():
    values = [1.0, 1.0, 1.0]
    merge_cached((100, 130, 10), values, [(111.0, 5.0), (115.0, 6.0), (129.0, 7.0), (130.0, 9.0), (95.0, 3.0)], 10, "average")
    assert values == [1.0, 6.0, 7.0]  # later point wins in a bucket; out-of-range ignored
    values = [None, None]
    merge_cached((120, 240, 60), values, [(120, 1.0), (130, 3.0), (180, 4.0), (190, None)], 10, "sum")
    assert values == [4.0, 4.0]
    values = [None, None]
    merge_cached((120, 240, 60), values, [(120, 1.0), (130, 3.0)], 10, "max")
    assert values == [3.0, None]


def _graphite_400(rv) -> str:
    assert rv.status_code == 400 and rv.mimetype == "text/html", (rv.status_code, rv.data[:300])
    text = rv.data.decode()
    assert text.startswith("Invalid parameters (")
    return text


def test_garbage_parameters_are_400(client):
    ok = {"target": "test.e2e.m1", "from": "-15min"}
    for bad in ({"from": "99999999999999999999"}, {"until": "-1000000y"}, {"from": "+1000000y"},
                {"until": "now-99999999999999999999999d"}, {"from": "1" * 5000},
                {"now": "-1000000y"}, {"now": "garbage"}, {"tz": "../../etc/passwd"},
                {"maxDataPoints": "9" * 5000}, {"format": "png"}, {"format": "<b>"},
                {"target": "f(" * 5000}, {"target": "1" * 5000}):
        _graphite_400(render(client, **{**ok, **bad}))
    counters = client.application.extensions["cadent"]["counters"]
    assert counters["badRequests"] >= 13


def test_max_data_points_garbage_is_ignored_as_graphite_web(client):
    params = {"target": "test.e2e.m1", "from": "-15min"}
    full = render(client, **params).get_json()
    assert len(full[0]["datapoints"]) == 90
    for ignored in ("-1", "abc", "1.5", "", "0"):
        assert render(client, maxDataPoints=ignored, **params).get_json() == full
    assert len(render(client, maxDataPoints="9", **params).get_json()[0]["datapoints"]) == 9


def test_jsonp_takes_only_a_javascript_name(client):
    for name in ("cb", "jQuery123_456", "$.cb", "a.b.c_$1"):
        rv = render(client, target="test.e2e.m1", jsonp=name)
        assert rv.status_code == 200 and rv.mimetype == "text/javascript"
        assert rv.data.decode().startswith(name + "([")
    for bad in ("alert(1)//", "<script>", "a..b", "1cb", "cb;x", "a.", "c\u00e9"):
        for path in ("/render", "/metrics/find"):
            rv = client.get(path, query_string={"target": "test.e2e.m1", "query": "test.*",
                                                "jsonp": bad, "now": NOW})
            assert "<script>" not in _graphite_400(rv)
    # nothing a request sends comes back as markup in an error body
    body = _graphite_400(render(client, target="nosuch(<script>x</script>)", format="<b>"))
    assert "<" not in body and "&lt;b&gt;" in body
    body = _graphite_400(render(client, target="nosuch(<img src=x>)"))
    assert body.endswith('targets: "nosuch(&lt;img src=x&gt;)"')


def test_brace_heavy_target_answers_quickly(client, wsp_dir):
    for bits in ("000000000000000", "011111111111110"):
        (wsp_dir / "b" / bits).mkdir(parents=True)
        (wsp_dir / "b" / bits / "m.wsp").hardlink_to(wsp_dir / "test" / "e2e" / "m1.wsp")
    rv = render(client, target="b." + "{0,1}" * 15 + ".m", **{"from": "-15min"})
    assert [s["target"] for s in rv.get_json()] == ["b.000000000000000.m", "b.011111111111110.m"]
    # a class straddling 14 brace groups needs 16,384 variants: refused and counted
    rv = render(client, target="b.[" + "{0,1}" * 14 + "].m")
    assert "more than 10000 variants" in _graphite_400(rv)
    rv = client.get("/metrics/find", query_string={"query": "b.[" + "{0,1}" * 14 + "]"})
    _graphite_400(rv)
    assert client.application.extensions["cadent"]["counters"]["patternsRefused"] == 2


def test_request_time_limit(wsp_dir):
    settings = ApiSettings(whisper_dirs=(str(wsp_dir),), carbonlink_hosts=(), replication_factor=0,
                           request_time_limit_s=-1.0)
    client = create_app(settings).test_client()
    assert "time limit" in _graphite_400(render(client, target="test.*.m1"))
    assert "time limit" in _graphite_400(client.get("/metrics/find", query_string={"query": "*"}))
    assert client.application.extensions["cadent"]["counters"]["findTimeouts"] == 2
