"""cadent-api against Debian's real graphite-web 1.1.

One whisper tree (plain, brace-able and ``_tagged`` series, laid out as carbon does) is read by:

* ``local``  — graphite-web reading the tree itself (the reference);
* ``front``  — graphite-web with no data and ``CLUSTER_SERVERS`` = cadent-api;
* ``plugin`` — graphite-web with ``STORAGE_FINDERS = (cadent.compat.graphite_finder.CadentFinder,)``;
* ``api``    — cadent-api itself (functions evaluated by cadent).

Every render and find must give identical answers. A last test checks that points held only
in a carbon-compatible cache's memory show up through cadent-api's /render (CarbonLink merge).
"""

from __future__ import annotations

import json
import os
import socket
import sysconfig
import time
import urllib.parse
from pathlib import Path

import pytest
import whisper

from cadent.core.write.layout import path_for
from tests.e2e.graphite_web_helpers import (
    CadentApi, GraphiteWeb, ensure_graphite_web, get, post, write_api_conf,
)
from tests.peers import LOCALHOST, CadentProcess, CarbonDaemon, free_port, wait_until, write_carbon_conf

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RETENTIONS = [(10, 6 * 360), (60, 30 * 1440)]  # 10s:6h, 1min:30d
PLAIN = ["test.api.a", "test.api.b", "test.api.c", "test.other.x", "test.other.y.deep"]
TAGGED_HASHED = ["tag.metric;env=prod;host=a", "tag.metric;env=dev;host=b"]
TAGGED_READABLE = ["tag.readable;env=prod"]


def _value(name: str, i: int) -> float:
    return float((i * 7 + len(name) * 3) % 23) - 5.0


def _seed(root: str, now: int) -> None:
    """Every series gets 2 h of 10 s points and every other minute of the last 3 days."""
    for name in PLAIN + TAGGED_HASHED + TAGGED_READABLE:
        path = path_for(root, name, tag_hash_filenames=name not in TAGGED_READABLE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        whisper.create(path, RETENTIONS, xFilesFactor=0.0, aggregationMethod="average")
        old = [(now - 3 * 86400 + m * 120, _value(name, m)) for m in range(0, 3 * 720 - 60)]
        recent = [(now - i * 10, _value(name, i)) for i in range(1, 720) if i % 13]
        whisper.update_many(path, old)
        whisper.update_many(path, recent)


def _extra_settings(path: Path, finders: bool) -> Path:
    repo = Path(__file__).resolve().parents[2]
    # appended after Debian's paths: only cadent and what Debian lacks (mmh3) come from here
    extra = [str(repo), sysconfig.get_paths()["purelib"]]
    lines = ["import sys as _sys",
             f"for _p in {tuple(extra)!r}:",
             "    if _p not in _sys.path:",
             "        _sys.path.append(_p)"]
    if finders:
        lines.append("STORAGE_FINDERS = ('cadent.compat.graphite_finder.CadentFinder',)")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    why = ensure_graphite_web()
    if why:
        pytest.skip(why)
    work = tmp_path_factory.mktemp("api-gw")
    data = str(work / "whisper")
    now = int(time.time())
    _seed(data, now)
    api_port = free_port()
    api = CadentApi(write_api_conf(work / "api", data, api_port), api_port,
                    log_path=work / "cadent-api.log")
    # generous remote timeouts: a slow answer on a loaded machine must not read as "no data"
    slow = {"GW_FIND_TIMEOUT": "60", "GW_FETCH_TIMEOUT": "60"}
    webs = {
        "local": GraphiteWeb(free_port(), work, GW_WHISPER_DIR=data, **slow),
        "front": GraphiteWeb(free_port(), work, GW_WHISPER_DIR="none",
                             GW_CLUSTER_SERVERS=f"{LOCALHOST}:{api_port}", **slow),
        # STORAGE_FINDERS goes through the extra settings file: the harness's GW_FINDERS
        # turns a single finder into a bare string
        "plugin": GraphiteWeb(free_port(), work, GW_WHISPER_DIR=data, **slow,
                              GW_EXTRA_SETTINGS=str(_extra_settings(work / "plugin.py", True))),
    }
    try:
        api.start()
        for web in webs.values():
            web.start()
        urls = {name: web.url for name, web in webs.items()}
        urls["api"] = api.url
        yield {"urls": urls, "now": now, "webs": webs, "api": api, "data": data}
    finally:
        for web in webs.values():
            web.stop()
        api.stop()


def _render(url: str, targets, **params) -> list:
    query = [("format", "json")] + [("target", t) for t in targets] + list(params.items())
    status, body = get(url, "/render", query)
    assert status == 200, body[:500]
    return json.loads(body)


def _find(url: str, query: str, **params):
    status, body = get(url, "/metrics/find", [("query", query)] + list(params.items()))
    assert status == 200, body[:500]
    return json.loads(body)


def _same_everywhere(stack, fetch, names=("front", "plugin", "api")):
    reference = fetch(stack["urls"]["local"])
    for name in names:
        got = fetch(stack["urls"][name])
        assert got == reference, f"{name} differs from local graphite-web: {_diff(got, reference)}"
    return reference


def _diff(got, want) -> str:
    """The first difference, short enough to read."""
    if not (isinstance(got, list) and isinstance(want, list)):
        return f"{str(got)[:800]} != {str(want)[:800]}"
    if len(got) != len(want):
        return f"{len(got)} items != {len(want)}: {str(got)[:600]} != {str(want)[:600]}"
    for g, w in zip(got, want):
        if g == w:
            continue
        if isinstance(g, dict) and isinstance(w, dict) and "datapoints" in g and "datapoints" in w:
            head = {k: v for k, v in g.items() if k != "datapoints"}
            want_head = {k: v for k, v in w.items() if k != "datapoints"}
            if head != want_head:
                return f"{head} != {want_head}"
            gp, wp = g["datapoints"], w["datapoints"]
            if len(gp) != len(wp):
                return f"{len(gp)} points != {len(wp)}: first {gp[:2]} vs {wp[:2]}, last {gp[-2:]} vs {wp[-2:]}"
            i = next(i for i, (a, b) in enumerate(zip(gp, wp)) if a != b)
            return f"{g.get('target')}: point {i}: {gp[i:i + 3]} != {wp[i:i + 3]}"
        return f"{str(g)[:600]} != {str(w)[:600]}"
    return "?"


RAW_TARGETS = [
    ["test.api.*"],
    ["test.{api,other}.{a,x}"],
    ["test.api.[ab]", "test.other.x"],
    ["test.*.*"],
    ["test.other.y.deep"],
    ["tag.metric;env=prod;host=a"],
    ["tag.readable;env=prod"],
    ["no.such.metric"],
    ["test.{a,o}{p,t}{i,h}{*,e}{*,r}{*,x}{*,y}.{a,b,x,[xy]}"],  # 128 variants: the automaton
]


@pytest.mark.parametrize("targets", RAW_TARGETS, ids=[",".join(t) for t in RAW_TARGETS])
@pytest.mark.parametrize("span", [600, 5 * 3600, 2 * 86400 + 1234])
def test_render_matches_local_graphite_web(stack, targets, span):
    until = stack["now"] - 5
    frm = until - span
    result = _same_everywhere(stack, lambda url: _render(url, targets, **{"from": frm, "until": until}))
    if targets != ["no.such.metric"]:
        assert result and any(v is not None for s in result for v, _ in s["datapoints"])


def test_render_max_data_points_and_relative_times(stack):
    _same_everywhere(stack, lambda url: _render(url, ["test.api.*"], **{
        "from": stack["now"] - 86400, "until": stack["now"], "maxDataPoints": "37"}))
    # relative times are resolved by each server at request time: compare only the shape
    got = {n: _render(stack["urls"][n], ["test.api.a"], **{"from": "-1h"}) for n in stack["urls"]}
    assert {n: [s["target"] for s in r] for n, r in got.items()} == {n: ["test.api.a"] for n in got}


def test_garbage_parameters_match_local_graphite_web(stack):
    until = stack["now"] - 5
    window = {"from": until - 3600, "until": until}
    for ignored in ("-1", "abc", "1.5"):  # graphite-web takes digits only and ignores the rest
        _same_everywhere(stack, lambda url: _render(url, ["test.api.*"], maxDataPoints=ignored, **window))
    for params in ({"from": "99999999999999999999"}, {"until": "-1000000y"}, {"now": "garbage"}):
        for name in ("local", "api"):
            status, body = get(stack["urls"][name], "/render", {"target": "test.api.a", **params})
            assert status == 400 and body.startswith(b"Invalid parameters ("), (name, params, body[:200])


FUNCTION_TARGETS = [
    "sumSeries(test.api.*)",
    "averageSeries(test.{api,other}.{a,x})",
    "aliasByNode(test.api.*, 2)",
    "scale(test.api.a, 2.5)",
    "maxSeries(test.api.*)",
    "summarize(test.api.a, '10min', 'sum')",
    "movingAverage(test.api.b, 5)",
    "perSecond(test.api.c)",
    "nonNegativeDerivative(test.api.c)",
    "aliasSub(test.api.a, '(^.*$)', '\\1 A')",
    "transformNull(test.api.*, 0)",
    "keepLastValue(test.api.a)",
    "timeShift(test.api.a, '1h')",
    "sortByName(test.*.*)",
]


@pytest.mark.parametrize("offset", [0, 7], ids=["until-on-minute", "until-off-step"])
@pytest.mark.parametrize("target", FUNCTION_TARGETS)
def test_functions_match_local_graphite_web(stack, target, offset):
    # a request ending exactly on a step boundary and one ending between steps: functions
    # that fetch a range of their own (timeShift, movingAverage) must agree in both
    now = stack["now"]
    until = now - 60 - now % 60 + offset
    _same_everywhere(stack, lambda url: _render(url, [target], **{"from": until - 3 * 3600, "until": until}))


FIND_QUERIES = ["*", "test.*", "test.api.*", "test.{api,other}.*", "test.*.[ax]", "_tagged.*",
                "test.other.*", "no.such.*", "test.{a,o}{p,t}{i,h}{*,e}{*,r}{*,x}{*,y}.*"]


@pytest.mark.parametrize("query", FIND_QUERIES)
def test_find_matches_local_graphite_web(stack, query):
    _same_everywhere(stack, lambda url: _find(url, query))
    _same_everywhere(stack, lambda url: _find(url, query, format="completer"))

    def paths(url):
        return [(n["path"], n["is_leaf"], [round(i["end"]) for i in n.get("intervals", [])])
                for n in _find(url, query, format="json")]

    _same_everywhere(stack, paths)


def test_expand_matches_local_graphite_web(stack):
    _same_everywhere(stack, lambda url: json.loads(
        get(url, "/metrics/expand", [("query", "test.*.*"), ("query", "test.{api,other}.a")])[1]))


# --------------------------------------------------------------------------- CarbonLink merge

def _cache_daemon(work: Path):
    """A running cache with MAX_UPDATES_PER_SECOND=1: cadent-cache if it runs, else carbon's."""
    line, query = free_port(), free_port()
    conf = write_carbon_conf(work, {"cache": {
        "LINE_RECEIVER_INTERFACE": LOCALHOST, "LINE_RECEIVER_PORT": line,
        "ENABLE_UDP_LISTENER": False, "PICKLE_RECEIVER_INTERFACE": LOCALHOST,
        "PICKLE_RECEIVER_PORT": free_port(), "CACHE_QUERY_INTERFACE": LOCALHOST,
        "CACHE_QUERY_PORT": query, "MAX_UPDATES_PER_SECOND": 1, "MAX_CREATES_PER_MINUTE": "inf",
        "CACHE_WRITE_STRATEGY": "max", "CARBON_METRIC_INTERVAL": 0, "ENABLE_TAGS": False,
        "ENABLE_LOGROTATION": False,
    }}, files={"storage-schemas.conf": "[all]\npattern = .*\nretentions = 10s:6h,1m:30d\n"})
    ports = [(LOCALHOST, line), (LOCALHOST, query)]
    errors = []
    for make in (lambda: CadentProcess(conf, program="cache", ports=ports),
                 lambda: CarbonDaemon(conf, program="cache", ports=ports)):
        proc = make()
        try:
            proc.start()
            print(f"cache daemon for the CarbonLink test: {' '.join(proc.argv[:2])}")
            return proc, line, query, Path(conf).parent.parent / "storage" / "whisper"
        except RuntimeError as exc:
            errors.append(str(exc)[-1500:])
    pytest.fail("no cache daemon started:\n" + "\n".join(errors))


def test_cached_points_merge_through_carbonlink(tmp_path):
    cache, line_port, query_port, data = _cache_daemon(tmp_path)
    api = None
    try:
        now = int(time.time())
        target = "merge.target.series"
        fillers = [f"merge.filler.s{i:02d}" for i in range(40)]
        # the target's file exists (with old points) so the API finds it; its recent points
        # go to the cache only, behind fillers holding more points (written first by "max")
        path = path_for(str(data), target)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        whisper.create(path, RETENTIONS, xFilesFactor=0.0, aggregationMethod="average")
        whisper.update_many(path, [(now - 3600 + i * 10, 1.0) for i in range(60)])
        lines = [f"{name} {k} {now - 200 + k * 10}\n" for name in fillers for k in range(10)]
        lines += [f"{target} {v} {now - 50 + k * 10}\n" for k, v in enumerate((41.0, 42.0, 43.0))]
        with socket.create_connection((LOCALHOST, line_port), timeout=5) as sock:
            sock.sendall("".join(lines).encode())
        api_port = free_port()
        conf = write_api_conf(tmp_path / "api", str(data), api_port,
                              carbonlink_hosts=f"{LOCALHOST}:{query_port}:a")
        api = CadentApi(conf, api_port, log_path=tmp_path / "cadent-api.log").start()

        def recent():
            series = _render(api.url, [target], **{"from": now - 120, "until": now + 30})
            return [v for s in series for v, _ in s["datapoints"] if v is not None]

        assert wait_until(lambda: recent() == [41.0, 42.0, 43.0], timeout=15), recent()
        on_disk = [v for v in whisper.fetch(path, now - 120, now + 30)[1] if v is not None]
        assert on_disk == [], f"points reached disk before the check; the test proves nothing ({on_disk})"
        # old disk points are still served next to the cached ones
        older = _render(api.url, [target], **{"from": now - 3700, "until": now + 30})
        values = [v for s in older for v, _ in s["datapoints"] if v is not None]
        assert values.count(1.0) == 60 and values[-3:] == [41.0, 42.0, 43.0]
    finally:
        if api is not None:
            api.stop()
        cache.stop()


# --------------------------------------------------------------------------- tag database

TAG_REGISTRATIONS = [
    # as carbon-cache registers (multipart ``path`` fields), files or not, tagged or not
    TAGGED_HASHED + TAGGED_READABLE + [
        "tag.metric;host=c;env=prod;dc=eu", "~tag.other;env=staging", 'om.metric{rack="r1",env="prod"}',
        "tag.metric;env=qa;host=a.b", "test.api.a", "test.other.x"],
    # again (nothing changes), plus new ones
    TAGGED_HASHED + ["tag.late;env=prod;zone=z1", "tag.gone;env=prod;host=z"],
]
TAG_DELETIONS = ["tag.gone;env=prod;host=z"]
TAG_WEBS = ("local", "plugin", "api")  # each keeps its own tag database


@pytest.fixture(scope="module")
def tagged(stack):
    """Every tag database of the stack holds the same registrations, made in the same order."""
    for name in TAG_WEBS:
        url = stack["urls"][name]
        for batch in TAG_REGISTRATIONS:
            status, body = post(url, "/tags/tagMultiSeries", [("path", p) for p in batch], multipart=True)
            assert status == 200, (name, body[:500])
        status, body = post(url, "/tags/delSeries", [("path", p) for p in TAG_DELETIONS])
        assert (status, body) == (200, b"true"), name
    return stack


def _tags_json(url: str, path: str, params) -> tuple[int, object]:
    status, body = get(url, path, params)
    return status, json.loads(body) if body else None


TAG_QUERIES = [  # each compared as (status, JSON)
    "/tags/findSeries?expr=env=prod",
    "/tags/findSeries?expr=env=prod&expr=host!=a",
    "/tags/findSeries?expr=name=~tag",
    "/tags/findSeries?expr=name=~tag\\.m&expr=env=~^(prod|dev)$",
    "/tags/findSeries?expr=env!=prod&expr=name=tag.metric",
    "/tags/findSeries?expr=dc=&expr=env=prod",
    "/tags/findSeries?expr=host!=",
    "/tags/findSeries?expr=env!=~d.*&expr=name!=",
    "/tags/findSeries?expr=name=test.api.a",
    "/tags/findSeries?expr[]=rack=r1",
    "/tags/findSeries?expr=env!=prod",
    "/tags/findSeries",
    "/tags",
    "/tags?filter=e",
    "/tags?filter=^(h|n)",
    "/tags?limit=2",
    "/tags?limit=0",
    "/tags?pretty=1",
    "/tags/env",
    "/tags/name",
    "/tags/host?filter=a",
    "/tags/env?limit=1",
    "/tags/nosuchtag",
    "/tags/autoComplete/tags",
    "/tags/autoComplete/tags?tagPrefix=e",
    "/tags/autoComplete/tags?limit=2",
    "/tags/autoComplete/tags?limit=0",
    "/tags/autoComplete/tags?expr=env=prod",
    "/tags/autoComplete/tags?expr=env=prod&tagPrefix=h",
    "/tags/autoComplete/tags?expr=name=tag.metric&expr=env!=dev&limit=2",
    "/tags/autoComplete/tags?expr=env=nope",
    "/tags/autoComplete/values?tag=env",
    "/tags/autoComplete/values?tag=env&valuePrefix=p",
    "/tags/autoComplete/values?tag=env&limit=1",
    "/tags/autoComplete/values?tag=host&expr=env=prod",
    "/tags/autoComplete/values?tag=name&expr=env!=",
    "/tags/autoComplete/values?tag=host&expr=env!=prod",
    "/tags/autoComplete/values?tag=name&expr=env=prod&valuePrefix=tag.&limit=2",
    "/tags/autoComplete/values?tag=nosuchtag",
    "/tags/autoComplete/values",
    "/tags/autoComplete/tags?limit=-1",
    "/tags/autoComplete/values?tag=env&limit=-1",
    "/tags?filter=n|h&limit=1",
]


@pytest.mark.parametrize("query", TAG_QUERIES)
def test_tag_queries_match_local_graphite_web(tagged, query):
    path, _, text = query.partition("?")
    params = urllib.parse.parse_qsl(text, keep_blank_values=True)
    names = ("plugin", "api")
    if path.startswith("/tags/autoComplete/") and dict(params).get("tag", "x") and "-" not in text:
        # a front asks its CLUSTER_SERVERS for completions (not findSeries), then cuts the union
        # at limit again: with a negative limit it differs from its own remote by design
        names += ("front",)
    _same_everywhere(tagged, lambda url: _tags_json(url, path, params), names)


def test_tag_registration_answers_match(tagged):
    batch = [("path", p) for p in TAG_REGISTRATIONS[0][:3] + ["x.y;b=2;a=1"]]
    answers = {name: post(tagged["urls"][name], "/tags/tagMultiSeries", batch, multipart=True)
               for name in TAG_WEBS}
    assert answers["api"] == answers["local"] == answers["plugin"]
    single = {name: post(tagged["urls"][name], "/tags/tagSeries", [("path", "x.y;b=2;a=1")])
              for name in TAG_WEBS}
    assert single["api"] == single["local"] == (200, b'"x.y;a=1;b=2"')
    for name in TAG_WEBS:
        assert post(tagged["urls"][name], "/tags/delSeries", [("path", "x.y;a=1;b=2")])[0] == 200
    # graphite-web's other answers: a refused method is an empty 405, a missing field a 400
    for path, status in (("/tags/tagMultiSeries", 405), ("/tags/findSeries", 400)):
        got = {name: get(tagged["urls"][name], path, [])[0] for name in TAG_WEBS}
        assert set(got.values()) == {status}, got


SERIES_BY_TAG_TARGETS = [
    ["seriesByTag('env=prod')"],
    ["seriesByTag('name=tag.metric')"],
    ['seriesByTag("name=~tag", "env!=dev")'],
    ["seriesByTag('host!=')", "seriesByTag('env=dev')"],
    ["sumSeries(seriesByTag('env=prod'))"],
    ["sumSeries(seriesByTag('name=tag.metric'))"],         # the inputs' common tags are kept
    ["maxSeries(seriesByTag('env=prod'), seriesByTag('env=dev'))"],
    ["seriesByTag('rack=r1')", "seriesByTag('env=staging')"],  # registered, no file: nothing
    ["seriesByTag('name=test.api.a')"],
    ["seriesByTag('env=nope')"],
]


@pytest.mark.parametrize("targets", SERIES_BY_TAG_TARGETS, ids=[",".join(t) for t in SERIES_BY_TAG_TARGETS])
def test_series_by_tag_renders_match_local_graphite_web(tagged, targets):
    now = tagged["now"]
    until = now - 60 - now % 60
    result = _same_everywhere(tagged, lambda url: _render(url, targets, **{"from": until - 3 * 3600,
                                                                           "until": until}))
    if "nope" not in targets[0] and "r1" not in targets[0]:
        assert result and any(v is not None for s in result for v, _ in s["datapoints"])
