"""The tag database (graphite-web's LocalDatabaseTagDB semantics) and the /tags endpoints.

Expected answers, ids included, are what Debian's graphite-web 1.1.8 gives for the same
registrations (checked against it; tests/e2e/test_api_graphite_web.py repeats the comparison
live). Departure, on purpose: a malformed path or regex is a 400 (graphite-web: mostly 500).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import re
import sqlite3
import subprocess
import sys
import threading

import pytest
import whisper

from cadent.api import create_app
from cadent.api.settings import ApiSettings
from cadent.api.tagdb import TagDB, TagQueryError, parse_tagspec
from cadent.compat.api_settings import read_api_settings
from cadent.core.tags import TagParseError
from cadent.core.write.layout import path_for

SERIES = [
    "cpu.load;host=h1;env=prod",
    "cpu.load;env=dev;host=h2",
    "cpu.load;env=prod;host=h3;dc=eu",
    "mem.free;env=prod",
    "~disk.io;env=staging",
    "plain.metric",
]
H1, H2, H3 = "cpu.load;env=prod;host=h1", "cpu.load;env=dev;host=h2", "cpu.load;dc=eu;env=prod;host=h3"
MEM, DISK = "mem.free;env=prod", "disk.io;env=staging"


@pytest.fixture()
def db(tmp_path):
    tags = TagDB(str(tmp_path / "sub" / "tagdb.sqlite"))
    assert tags.tag_multi_series(SERIES) == [H1, H2, H3, MEM, DISK, "plain.metric"]
    yield tags
    tags.close()


# -- registration ----------------------------------------------------------------------------

@pytest.mark.parametrize("path,normalised", [
    ("cpu.load;host=h1;env=prod", "cpu.load;env=prod;host=h1"),
    ("~disk.io;env=staging", "disk.io;env=staging"),
    ('m{b="2",a="1"}', "m;a=1;b=2"),
    ('m{a="x\\"y"}', 'm;a=x"y'),
    ("m;a=1;name=x", "m;a=1"),            # the metric is the name tag
    ("m;a.b=1;a=2", "m;a.b=1;a=2"),       # pairs sorted as whole strings, as graphite does
    ("m;a=x=y", "m;a=x=y"),
    ("m;a=1;a=2", "m;a=2"),               # a later duplicate wins
    ("plain.metric", "plain.metric"),
])
def test_tag_series_normalises_like_graphite(tmp_path, path, normalised):
    tags = TagDB(str(tmp_path / "t.sqlite"))
    assert tags.tag_series(path) == normalised
    assert tags.find_series([f"name={normalised.split(';')[0]}"]) == [normalised]


@pytest.mark.parametrize("path", ["", "~", "m;=1", "m;a=", "m;a", "m;a=b;c", "m;a!b=1", "m;a^b=1",
                                  "m;a;b=1", "m;a=~x", "m;a=b;c=d;e", 'm{a="1"}{b="2"}', '{a="1"}'])
def test_malformed_paths_are_refused(tmp_path, path):
    tags = TagDB(str(tmp_path / "t.sqlite"))
    with pytest.raises(TagParseError):
        tags.tag_series(path)


def test_a_malformed_path_keeps_the_ones_before_it(tmp_path):
    tags = TagDB(str(tmp_path / "t.sqlite"))
    with pytest.raises(TagParseError):
        tags.tag_multi_series(["a;k=1", "b;k=", "c;k=1"])
    assert tags.find_series(["k=1"]) == ["a;k=1"]


def test_registering_again_changes_nothing(db):
    before = db.get_tag("env")
    assert db.tag_multi_series(SERIES[:2]) == [H1, H2]
    assert db.get_tag("env") == before


def test_del_series_keeps_tags_and_values_known(db):
    assert db.del_series([MEM.replace("mem.free", "~mem.free"), "never.seen;a=b"]) is True
    assert db.find_series(["env=prod"]) == [H3, H1]
    assert db.get_tag("env")["values"][1] == {"id": 2, "value": "prod", "count": 2}
    assert db.del_series([H2]) is True
    assert db.get_tag("env")["values"] == [{"id": 2, "value": "prod", "count": 2},
                                           {"id": 13, "value": "staging", "count": 1}]
    assert [t["tag"] for t in db.list_tags()] == ["dc", "env", "host", "name"]
    with pytest.raises(TagParseError):
        db.del_series(["x;y="])


# -- findSeries ------------------------------------------------------------------------------

FIND = [
    (["env=prod"], [H3, H1, MEM]),
    (["env=prod", "dc="], [H1, MEM]),                    # an empty spec: series without dc
    (["env=prod", "host!=h1"], [H3, MEM]),               # no host counts as "not h1"
    (["env!=prod", "name=cpu.load"], [H2]),
    (["host!="], [H3, H2, H1]),                          # "has a host"
    (["env=~pro"], [H3, H1, MEM]),                       # anchored at the start ...
    (["env=~rod"], []),                                  # ... only there
    (["env=~prod$"], [H3, H1, MEM]),
    (["env=~[p]rod"], [H3, H1, MEM]),
    (["env=~^s|v"], [H2, DISK]),                         # starts with ^: kept as written
    (["name=~cpu", "host!=~h[12]"], [H3]),
    (["env=prod", "dc!=~e.*"], [H1, MEM]),
    (["dc!=~.*"], []),
    (["name=plain.metric"], ["plain.metric"]),
    (["name=disk.io"], [DISK]),
    (["env=nope"], []),
    (["nosuchtag=x"], []),
    (["env=prod", "env=prod"], [H3, H1, MEM]),
    (["host=h1", "env=prod", "name=cpu.load"], [H1]),
]


@pytest.mark.parametrize("exprs,expected", FIND, ids=[" & ".join(e) for e, _ in FIND])
def test_find_series(db, exprs, expected):
    assert db.find_series(exprs) == expected


@pytest.mark.parametrize("exprs,message", [
    ([], "At least one tagspec must not match the empty string"),
    (["env!=prod"], "At least one tagspec must not match the empty string"),
    (["env="], "At least one tagspec must not match the empty string"),
    (["env=~.*", "dc!=x"], "At least one tagspec must not match the empty string"),
    (["env"], "Invalid tagspec env"),
    (["=prod"], "Invalid tagspec =prod"),
    (["env=a;b"], "Invalid tagspec env=a;b"),
    (["env=~[p", "env=prod"], "invalid regular expression '^([p)' in env=~[p"),
    (["env=prod", "dc!=~("], "invalid regular expression '^(()' in dc!=~("),
])
def test_find_series_errors(db, exprs, message):
    with pytest.raises(TagQueryError, match=re.escape(message)):
        db.find_series(exprs)


@pytest.mark.parametrize("expr,parsed", [
    ("a=b", ("a", "=", "b")), ("a!=b", ("a", "!=", "b")), ("a=~b", ("a", "=~", "b")),
    ("a!=~b", ("a", "!=~", "b")), ("a==b", ("a", "=", "=b")), ("a~=b", ("a~", "=", "b")),
    ("a=", ("a", "=", "")),
])
def test_parse_tagspec(expr, parsed):
    assert parse_tagspec(expr) == parsed


# -- /tags, /tags/<tag> ----------------------------------------------------------------------

@pytest.mark.parametrize("tag_filter,limit,expected", [
    (None, None, [(9, "dc"), (2, "env"), (1, "host"), (3, "name")]),
    ("e", None, [(2, "env")]),
    ("n|h", None, [(1, "host"), (3, "name")]),
    ("^(d|h)", None, [(9, "dc"), (1, "host")]),
    (None, "2", [(9, "dc"), (2, "env")]),
    (None, "0", []),                 # graphite-web: a limit given as text, even "0", applies
    (None, 0, [(9, "dc"), (2, "env"), (1, "host"), (3, "name")]),
    ("", "", [(9, "dc"), (2, "env"), (1, "host"), (3, "name")]),
])
def test_list_tags(db, tag_filter, limit, expected):
    assert db.list_tags(tag_filter, limit) == [{"id": i, "tag": t} for i, t in expected]


def test_get_tag(db):
    assert db.get_tag("env") == {"id": 2, "tag": "env", "values": [
        {"id": 4, "value": "dev", "count": 1}, {"id": 2, "value": "prod", "count": 3},
        {"id": 13, "value": "staging", "count": 1}]}
    assert db.get_tag("env", "p")["values"] == [{"id": 2, "value": "prod", "count": 3}]
    assert db.get_tag("env", None, "1")["values"] == [{"id": 4, "value": "dev", "count": 1}]
    assert [v["value"] for v in db.get_tag("name")["values"]] == [
        "cpu.load", "disk.io", "mem.free", "plain.metric"]
    assert db.get_tag("nope") is None


@pytest.mark.parametrize("call", [
    lambda db: db.list_tags("["), lambda db: db.get_tag("env", "(x"),
    lambda db: db.list_tags(None, "ten"), lambda db: db.get_tag("env", None, "1.5"),
    lambda db: db.auto_complete_tags([], None, ""), lambda db: db.auto_complete_values([], "env", None, "x"),
])
def test_bad_filters_and_limits(db, call):
    with pytest.raises(TagQueryError):
        call(db)


# -- autoComplete ----------------------------------------------------------------------------

AUTO_TAGS = [
    ([], None, None, ["dc", "env", "host", "name"]),
    ([], "h", None, ["host"]),
    ([], "e", "1", ["env"]),
    ([], "x.", None, []),                                # the prefix is literal, not a regex
    (["env=prod"], None, None, ["dc", "host", "name"]),  # tags the exprs name are left out
    (["env=prod"], "h", None, ["host"]),
    (["env=prod", "name=cpu.load"], None, None, ["dc", "host"]),
    (["env=prod"], None, "2", ["dc", "host"]),
    (["env=prod"], None, "0", []),
    ([], None, "0", []),
    ([], None, "-1", ["dc", "env", "host"]),             # graphite-web's final [:limit]
    (["env=nope"], None, None, []),
]


@pytest.mark.parametrize("exprs,prefix,limit,expected", AUTO_TAGS)
def test_auto_complete_tags(db, exprs, prefix, limit, expected):
    assert db.auto_complete_tags(exprs, prefix, limit) == expected


AUTO_VALUES = [
    ([], "env", None, None, ["dev", "prod", "staging"]),
    ([], "env", "p", None, ["prod"]),
    ([], "env", "s", "1", ["staging"]),
    ([], "env", ".", None, []),
    (["name=cpu.load"], "host", None, None, ["h1", "h2", "h3"]),
    (["name=cpu.load"], "host", "h", "2", ["h1", "h2"]),
    (["env=prod"], "dc", None, None, ["eu"]),
    (["env=prod"], "nope", None, None, []),
    ([], "nope", None, None, []),
    (["name=cpu.load"], "env", None, "0", []),
    (["env!=prod"], "host", None, None, ["h2"]),         # "host!=" is added: now allowed
    ([], "env", None, "-1", ["dev", "prod"]),
]


@pytest.mark.parametrize("exprs,tag,prefix,limit,expected", AUTO_VALUES)
def test_auto_complete_values(db, exprs, tag, prefix, limit, expected):
    assert db.auto_complete_values(exprs, tag, prefix, limit) == expected


def test_auto_complete_default_limit_is_100(tmp_path):
    tags = TagDB(str(tmp_path / "t.sqlite"))
    tags.tag_multi_series([f"m;k{i:03d}=v{i:03d};g=x" for i in range(150)])
    assert len(tags.auto_complete_tags([])) == 100
    assert tags.auto_complete_tags(["g=x"])[-1] == "k099"   # name sorts after k*: cut off
    assert tags.auto_complete_values(["g=x"], "k149") == ["v149"]
    assert len(tags.auto_complete_values([], "g")) == 1
    assert len(tags.auto_complete_tags([], None, "120")) == 120


# -- the file: created lazily, shared by workers -----------------------------------------------

def test_created_lazily_with_wal(tmp_path):
    path = tmp_path / "deep" / "dir" / "tagdb.sqlite"
    tags = TagDB(str(path))
    assert not path.parent.exists()
    assert tags.list_tags() == []
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tags.close()


def test_two_connections_see_each_others_writes(tmp_path):
    path = str(tmp_path / "tagdb.sqlite")
    a, b = TagDB(path), TagDB(path)
    a.tag_series("x;k=1")
    assert b.find_series(["k=1"]) == ["x;k=1"]
    b.tag_series("y;k=1")
    assert a.find_series(["k=1"]) == ["x;k=1", "y;k=1"]
    b.del_series(["x;k=1"])
    assert a.find_series(["k=1"]) == ["y;k=1"]


def test_concurrent_writers_in_threads_and_another_process(tmp_path):
    path = str(tmp_path / "tagdb.sqlite")
    script = ("import sys; from cadent.api.tagdb import TagDB\n"
              "db = TagDB(sys.argv[1])\n"
              "for i in range(40): db.tag_multi_series([f'p.{i}.{j};w=proc' for j in range(10)])\n")
    child = subprocess.Popen([sys.executable, "-c", script, path], cwd=os.getcwd())
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        db = TagDB(path)
        try:
            for i in range(40):
                db.tag_multi_series([f"t.{i}.{j};w={name}" for j in range(10)])
                db.find_series([f"w={name}"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert child.wait(60) == 0
    assert not errors and not any(t.is_alive() for t in threads)
    reader = TagDB(path)
    assert [len(reader.find_series([f"w={w}"])) for w in ("t0", "t1", "t2", "proc")] == [400] * 4
    assert reader.auto_complete_values([], "w") == ["proc", "t0", "t1", "t2"]


def _register_in_child(tags: TagDB) -> None:
    tags.tag_series("forked;k=child")


def test_a_forked_worker_opens_its_own_connection(tmp_path):
    tags = TagDB(str(tmp_path / "tagdb.sqlite"))
    tags.tag_series("parent;k=parent")  # the parent holds an open connection now
    child = multiprocessing.get_context("fork").Process(target=_register_in_child, args=(tags,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert tags.auto_complete_values([], "k") == ["child", "parent"]


@pytest.mark.parametrize("lines,expected", [
    ("WHISPER_DIRS = {d}/data/whisper, /other", "{d}/data/tagdb.sqlite"),
    ("STORAGE_DIR = {d}/storage", "{d}/storage/tagdb.sqlite"),
    ("WHISPER_DIRS = {d}/w\nTAGDB_PATH = tags/db.sqlite", "{d}/tags/db.sqlite"),
    ("WHISPER_DIRS = {d}/w\nTAGDB_PATH = /srv/tags.sqlite", "/srv/tags.sqlite"),
])
def test_tagdb_path_setting(tmp_path, lines, expected):
    conf = tmp_path / "carbon.conf"
    conf.write_text("[api]\n" + lines.format(d=tmp_path) + "\n")
    assert read_api_settings(str(conf)).tagdb_path == expected.format(d=tmp_path)


# -- the HTTP endpoints ----------------------------------------------------------------------

NOW = 1795300418


@pytest.fixture()
def client(tmp_path):
    data = tmp_path / "whisper"
    for i, name in enumerate(["cpu.load;env=prod;host=h1", "cpu.load;env=dev;host=h2", "plain.metric"]):
        path = path_for(str(data), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        whisper.create(path, [(10, 8640)], xFilesFactor=0.0)
        whisper.update_many(path, [(NOW - 100 + 10 * k, float(i * 10 + k)) for k in range(10)], now=NOW)
    settings = ApiSettings(whisper_dirs=(str(data),), carbonlink_hosts=(), replication_factor=0,
                           tagdb_path=str(tmp_path / "tagdb.sqlite"))
    return create_app(settings).test_client()


def _multipart(paths: list[str], field: str = "path") -> tuple[bytes, str]:
    boundary = "b0undary"
    body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n{p}\r\n'
                   for p in paths) + f"--{boundary}--\r\n"
    return body.encode(), f"multipart/form-data; boundary={boundary}"


def test_registration_endpoints(client):
    body, ctype = _multipart(["cpu.load;host=h1;env=prod", "cpu.load;env=dev;host=h2"])
    rv = client.post("/tags/tagMultiSeries", data=body, content_type=ctype)
    assert rv.status_code == 200 and rv.mimetype == "application/json"
    assert rv.get_json() == ["cpu.load;env=prod;host=h1", "cpu.load;env=dev;host=h2"]
    rv = client.post("/tags/tagMultiSeries", data={"path[]": ["plain.metric", "x;a=1"]})
    assert rv.get_json() == ["plain.metric", "x;a=1"]
    assert client.post("/tags/tagSeries", data={"path": "~y;b=2"}).data == b'"y;b=2"'
    assert client.post("/tags/delSeries", data={"path": ["x;a=1", "y;b=2"]}).data == b"true"
    assert client.get("/tags/findSeries", query_string={"expr": "name!="}).get_json() == [
        "cpu.load;env=dev;host=h2", "cpu.load;env=prod;host=h1", "plain.metric"]


@pytest.mark.parametrize("method,url,data,status,error", [
    ("get", "/tags/tagSeries", None, 405, None),
    ("get", "/tags/tagMultiSeries", None, 405, None),
    ("get", "/tags/delSeries", None, 405, None),
    ("post", "/tags", None, 405, None),
    ("post", "/tags/env", None, 405, None),
    ("put", "/tags/findSeries", None, 405, None),
    ("post", "/tags/tagSeries", {}, 400, "no path specified"),
    ("post", "/tags/tagMultiSeries", {}, 400, "no paths specified"),
    ("post", "/tags/delSeries", {}, 400, "no path specified"),
    ("get", "/tags/findSeries", None, 400, "no tag expressions specified"),
    ("get", "/tags/autoComplete/values", None, 400, "no tag specified"),
    ("post", "/tags/tagSeries", {"path": "a;b="}, 400, "empty value for tag 'b'"),
    ("get", "/tags/findSeries?expr=env!=x", None, 400, "At least one tagspec must not match the empty string"),
    ("get", "/tags/findSeries?expr=env=~(", None, 400, "invalid regular expression '^(()' in env=~("),
    ("get", "/tags?filter=[", None, 400, "invalid regular expression '^([)' in filter"),
    ("get", "/tags?limit=lots", None, 400, "limit must be an integer, not 'lots'"),
])
def test_endpoint_errors(client, method, url, data, status, error):
    rv = getattr(client, method)(url, data=data)
    assert rv.status_code == status
    if error is None:
        assert rv.data == b""
    else:
        assert rv.mimetype == "application/json" and list(rv.get_json()) == ["error"]
        assert rv.get_json()["error"].startswith(error)


def test_query_endpoints(client):
    client.post("/tags/tagMultiSeries", data={"path": ["cpu.load;host=h1;env=prod",
                                                       "cpu.load;env=dev;host=h2", "mem;env=prod"]})
    get = client.get
    assert get("/tags").get_json() == [{"id": 2, "tag": "env"}, {"id": 1, "tag": "host"},
                                       {"id": 3, "tag": "name"}]
    assert get("/tags/").get_json() == get("/tags").get_json()
    assert get("/tags?filter=h&filter=n").get_json() == [{"id": 3, "tag": "name"}]  # the last wins
    assert get("/tags/env?filter=p").get_json() == {"id": 2, "tag": "env", "values": [
        {"id": 2, "value": "prod", "count": 2}]}
    assert get("/tags/nope").data == b"null"
    assert get("/tags/findSeries?expr=env=prod&expr=name=cpu.load").get_json() == ["cpu.load;env=prod;host=h1"]
    assert get("/tags/findSeries?expr[]=env=dev").get_json() == ["cpu.load;env=dev;host=h2"]
    assert client.post("/tags/findSeries", data={"expr": "host=h2"}).get_json() == ["cpu.load;env=dev;host=h2"]
    assert get("/tags/autoComplete/tags?expr=env=prod").get_json() == ["host", "name"]
    assert get("/tags/autoComplete/tags?tagPrefix=&limit=100&local=1").get_json() == ["env", "host", "name"]
    assert client.post("/tags/autoComplete/values", data={"tag": "env", "valuePrefix": "d"}).get_json() == ["dev"]
    rv = get("/tags/autoComplete/values?tag=host&expr=name=cpu.load&pretty=1")
    assert rv.data == json.dumps(["h1", "h2"], indent=2).encode()
    rv = get("/tags/env?pretty=1")
    assert rv.data.decode().startswith('{\n  "id": 2,\n  "tag": "env",\n  "values": [')


def test_render_series_by_tag(client):
    client.post("/tags/tagMultiSeries", data={"path": ["cpu.load;env=prod;host=h1", "cpu.load;env=dev;host=h2",
                                                       "plain.metric", "gone;env=prod"]})
    params = {"from": NOW - 120, "until": NOW, "now": NOW}
    rv = client.get("/render", query_string={"target": "seriesByTag('name=cpu.load')", **params})
    series = rv.get_json()
    assert [s["target"] for s in series] == ["cpu.load;env=dev;host=h2", "cpu.load;env=prod;host=h1"]
    assert series[1]["tags"] == {"name": "cpu.load", "env": "prod", "host": "h1"}
    assert [v for v, _ in series[1]["datapoints"] if v is not None] == [float(k) for k in range(10)]
    (total,) = client.get("/render", query_string={"target": 'sumSeries(seriesByTag("env=prod"))', **params}).get_json()
    assert total["target"] == 'sumSeries(seriesByTag("env=prod"))'
    # federation: the call comes verbatim and is echoed as every series' pathExpression
    target = "seriesByTag('env=~prod|dev', 'name!=mem')"
    rv = client.get("/render/", query_string={"target": target, "format": "pickle", "local": "1", **params})
    body = pickle.loads(rv.data)
    assert [(s["name"], s["pathExpression"]) for s in body] == [
        ("cpu.load;env=dev;host=h2", target), ("cpu.load;env=prod;host=h1", target)]
    assert client.get("/render", query_string={"target": "seriesByTag('name=plain.metric')", **params}).get_json()[0]["target"] == "plain.metric"
    assert client.get("/render", query_string={"target": "seriesByTag('env=nope')", **params}).get_json() == []
    rv = client.get("/render", query_string={"target": "seriesByTag('env!=prod')", **params})
    assert rv.status_code == 400 and b"At least one tagspec" in rv.data
    rv = client.get("/render", query_string={"target": "seriesByTag('env=~[')", **params})
    assert rv.status_code == 400 and b"invalid regular expression" in rv.data
