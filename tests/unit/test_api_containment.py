"""No name given to cadent-api resolves to a file outside its whisper roots.

A secret whisper file sits beside the root; every way of naming it (absolute paths, ``..``,
empty nodes, symlinks that leave the root, tagged names whose readable file name is absolute)
through the finder and through the HTTP endpoints finds nothing, while the same shapes pointing
inside the root keep working.
"""

from __future__ import annotations

import os

import pytest
import whisper

from cadent.api import create_app
from cadent.api.finders.whisper import WhisperFinder, tagged_relpaths
from cadent.api.settings import ApiSettings

NOW = 1795300418
BASE = NOW - NOW % 10


def _wsp(path, value: float) -> str:
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    whisper.create(path, [(10, 8640)], xFilesFactor=0.0)
    whisper.update_many(path, [(BASE - 100 + 10 * i, value) for i in range(10)], now=NOW)
    return path


@pytest.fixture()
def tree(tmp_path):
    """``root`` with srv/cpu.wsp and in-root links; ``outside`` holding the secret."""
    root, outside = tmp_path / "whisper", tmp_path / "outside"
    _wsp(root / "srv" / "cpu.wsp", 1.0)
    _wsp(outside / "secret.wsp", 666.0)
    _wsp(outside / "deep" / "secret.wsp", 666.0)
    os.symlink(outside, root / "escape")                      # directory link leaving the root
    os.symlink(outside / "secret.wsp", root / "srv" / "leak.wsp")  # leaf link leaving the root
    os.symlink(root / "srv", root / "alias")                   # directory link inside the root
    os.symlink(root / "srv" / "cpu.wsp", root / "srv" / "same.wsp")  # leaf link inside the root
    os.symlink(root, root / "srv" / "loop")                    # a loop inside the root
    return root, outside


def test_exact_names_never_leave_the_root(tree):
    root, outside = tree
    finder = WhisperFinder([str(root)])
    secret = str(outside / "secret")
    for name in (secret, secret + ".wsp", "../outside/secret", "..outside.secret", "srv..cpu",
                 ".srv.cpu", "srv.cpu.", "escape.secret", "escape.deep.secret", "srv.leak",
                 "srv/../../outside/secret", "srv.cpu\0"):
        assert finder.find_exact(name) is None, name
    assert finder.counters["refused"] >= 10
    assert finder.find_exact("srv.cpu").fs_path == str(root / "srv" / "cpu.wsp")
    assert finder.find_exact("alias.cpu") is not None and finder.find_exact("srv.same") is not None


def test_globs_never_leave_the_root(tree):
    root, outside = tree
    finder = WhisperFinder([str(root)])

    def paths(pattern):
        return sorted(n.path for n in finder.find(pattern))

    assert paths("*") == ["alias", "srv"]
    assert paths("srv.*") == ["srv.cpu", "srv.loop", "srv.same"]
    assert paths("escape.*") == [] and paths("escape.deep.secret") == []
    assert paths("srv.leak") == [] and paths(str(outside / "secret")) == []
    assert paths("**.secret") == []
    # ** lists an in-root symlinked directory but does not descend it (so the loop ends)
    assert paths("**.cpu") == ["srv.cpu"]
    assert paths("srv.loop.srv.cpu") == ["srv.loop.srv.cpu"]  # an explicit in-root path works
    assert [n.fs_path for n in finder.find("alias.cpu")] == [str(root / "alias" / "cpu.wsp")]


def test_index_lists_the_root_only(tree):
    root, _ = tree
    leaves = WhisperFinder([str(root)]).all_leaves()
    assert leaves == ["alias.cpu", "alias.same", "srv.cpu", "srv.same"]


def test_tagged_names_never_leave_the_root(tree, tmp_path):
    root, outside = tree
    finder = WhisperFinder([str(root)])
    name = str(outside / "x") + ";env=prod"
    readable = tagged_relpaths(name)[1]
    # the readable layout of this name is an absolute path; plant the secret there
    assert os.path.isabs(os.path.join(str(root), readable))
    _wsp(os.path.join(str(root), readable), 666.0)
    assert finder.find_exact(name) is None
    assert list(finder.find_tagged(name)) == []
    # a well-formed tagged file is found
    ok = "srv.cpu;env=prod"
    _wsp(os.path.join(str(root), tagged_relpaths(ok)[0]), 2.0)
    assert finder.find_exact(ok).path == ok


@pytest.fixture()
def client(tree, tmp_path):
    root, _ = tree
    settings = ApiSettings(whisper_dirs=(str(root),), carbonlink_hosts=(), replication_factor=0,
                           tagdb_path=str(tmp_path / "tagdb.sqlite"))
    return create_app(settings).test_client()


def _values(rv) -> list[float]:
    assert rv.status_code == 200, rv.data[:300]
    return [v for s in rv.get_json() for v, _ in s["datapoints"] if v is not None]


def test_http_tag_series_cannot_read_outside(client, tree):
    _, outside = tree
    secret = str(outside / "secret")
    # graphite-web registers such a path (it is a valid series name) ...
    rv = client.post("/tags/tagSeries", data={"path": secret})
    assert rv.status_code == 200 and rv.get_json() == secret
    assert client.post("/tags/tagSeries", data={"path": "srv.cpu"}).status_code == 200
    # ... but rendering it never reads a file outside the root
    for target in (f"seriesByTag('name={secret}')", secret, "escape.secret", "srv.leak",
                   "seriesByTag('name=~.+')"):
        values = _values(client.get("/render", query_string={"target": target, "now": NOW,
                                                             "from": "-10min"}))
        assert 666.0 not in values, target
    assert _values(client.get("/render", query_string={"target": "seriesByTag('name=srv.cpu')",
                                                       "now": NOW, "from": "-10min"})) == [1.0] * 10
    for query in ("escape.*", str(outside / "*"), "**"):
        rv = client.get("/metrics/find", query_string={"query": query, "format": "json"})
        assert all("secret" not in item["path"] for item in rv.get_json())
    assert client.get("/metrics/index.json").get_json() == ["alias.cpu", "alias.same", "srv.cpu",
                                                            "srv.same"]


def test_carbonlink_is_asked_only_for_names_inside(tree, tmp_path):
    from tests.net.test_api_carbonlink import FakeCache

    root, outside = tree
    cache = FakeCache({})
    try:
        settings = ApiSettings(whisper_dirs=(str(root),), carbonlink_hosts=(f"127.0.0.1:{cache.port}",),
                               tagdb_path=str(tmp_path / "tagdb.sqlite"))
        client = create_app(settings).test_client()
        secret = str(outside / "secret")
        client.post("/tags/tagSeries", data={"path": secret})
        for target in (f"seriesByTag('name={secret}')", secret, "escape.secret", "srv.leak",
                       "escape.*", "srv.cpu"):
            client.get("/render", query_string={"target": target, "now": NOW, "from": "-10min"})
        assert {r["metric"] for r in cache.requests} == {"srv.cpu"}
    finally:
        cache.close()
