"""ENABLE_TAGS registration against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import email.parser
import email.policy
import http.server
import threading

import pytest

from cadent.compat.cache_settings import tags_config
from cadent.compat.carbon_conf import read_carbon_conf
from cadent.compat.errors import ConfigError
from cadent.compat.graphite_tags import RegisteringWriter, TagRegistrar, multipart_paths
from tests.peers import free_port


class _TagDB(http.server.ThreadingHTTPServer):
    """Answers /tags/tagMultiSeries like graphite-web, recording the ``path`` fields."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[str, list[str]]] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        paths = [part.get_content().strip() for part in message.iter_parts()
                 if part.get_param("name", header="content-disposition") == "path"]
        self.server.requests.append((self.path, paths))
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def tagdb():
    server = _TagDB()
    yield server
    server.shutdown()
    server.server_close()


def test_created_series_go_first_in_batches_of_the_batch_size(tagdb):
    registrar = TagRegistrar(tagdb.url, batch_size=3, update_interval=1)
    registrar.updated("u.1")
    for name in ("c.1", "c.2", "c.3", "c.4;env=prod"):
        registrar.created(name)
    registrar.flush()
    assert tagdb.requests == [("/tags/tagMultiSeries", ["c.1", "c.2", "c.3"]),
                              ("/tags/tagMultiSeries", ["c.4;env=prod", "u.1"])]
    assert registrar.collect_stats() == {"tagsRegistered": 5, "tagsDropped": 0}


def test_one_write_in_update_interval_is_registered(tagdb):
    registrar = TagRegistrar(tagdb.url, update_interval=3)
    for i in range(7):
        registrar.updated(f"m.{i}")
    registrar.flush()
    # carbon's counter: the 1st, 4th and 7th writes
    assert tagdb.requests == [("/tags/tagMultiSeries", ["m.0", "m.3", "m.6"])]


def test_full_queues_and_refused_batches_are_counted_not_raised(tagdb):
    registrar = TagRegistrar(tagdb.url, queue_size=2)
    for name in ("a", "b", "c"):
        registrar.created(name)
    tagdb.status = 500
    registrar.flush()
    assert [paths for _, paths in tagdb.requests] == [["a", "b"]]
    assert registrar.collect_stats() == {"tagsRegistered": 0, "tagsDropped": 3}
    assert registrar.collect_stats() == {"tagsRegistered": 0, "tagsDropped": 0}


def test_a_dead_graphite_web_costs_the_batch_only():
    registrar = TagRegistrar(f"http://127.0.0.1:{free_port()}/graphite")
    registrar.created("x.y")
    assert registrar.post(registrar.take_batch()) is False
    assert registrar.collect_stats()["tagsDropped"] == 1


def test_failures_are_logged_once_a_minute_with_the_series_they_stand_for(tagdb, caplog):
    now = [1000.0]
    registrar = TagRegistrar(tagdb.url, batch_size=2, clock=lambda: now[0])
    tagdb.status = 500

    def fail(*names: str) -> None:
        for name in names:
            registrar.created(name)
        registrar.flush(now[0] + 30)

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if "registering series" in r.getMessage()]

    with caplog.at_level("WARNING", logger="cadent.compat.graphite_tags"):
        fail("a")
        fail("b", "c", "d")          # two more refused batches within the minute: not logged
        assert len(logged()) == 1 and "1 series dropped" in logged()[0]
        now[0] += 60
        fail("e")
    assert len(logged()) == 2 and "4 series dropped" in logged()[1]
    assert registrar.collect_stats()["tagsDropped"] == 5


def test_a_url_path_prefix_is_kept(tagdb):
    registrar = TagRegistrar(tagdb.url + "/graphite/")
    registrar.created("x")
    registrar.flush()
    assert tagdb.requests == [("/graphite/tags/tagMultiSeries", ["x"])]


def test_registering_writer_reports_creates_and_writes():
    calls = []

    class Recorder:
        def created(self, name):
            calls.append(("created", name))

        def updated(self, name):
            calls.append(("updated", name))

    class Store:
        def create(self, name):
            calls.append(("create", name))

        def write(self, name, points):
            return len(points)

    writer = RegisteringWriter(Store(), Recorder())
    writer.create("a.b")
    assert writer.write("a.b", [(1, 2.0), (2, 3.0)]) == 2
    assert calls == [("create", "a.b"), ("created", "a.b"), ("updated", "a.b")]


def test_multipart_body_names_every_path():
    body = multipart_paths(["a.b", "c;d=e"], "XyZ").decode()
    assert body.count('name="path"') == 2 and body.endswith("--XyZ--\r\n")


def test_tags_config(tmp_path):
    conf = tmp_path / "carbon.conf"
    conf.write_text("[cache]\nENABLE_TAGS = True\nGRAPHITE_URL = http://gw:8080\nTAG_BATCH_SIZE = 5\n")
    tags = tags_config(read_carbon_conf(str(conf), "cache"))
    assert (tags.graphite_url, tags.batch_size, tags.update_interval, tags.queue_size) == \
        ("http://gw:8080", 5, 100, 10000)
    conf.write_text("[cache]\nENABLE_TAGS = False\n")
    assert tags_config(read_carbon_conf(str(conf), "cache")) is None
    conf.write_text("[cache]\nGRAPHITE_URL = gw:8080\n")
    with pytest.raises(ConfigError, match="GRAPHITE_URL"):
        tags_config(read_carbon_conf(str(conf), "cache"))


def test_stopping_waits_for_an_unanswering_graphite_web_only_so_long(monkeypatch):
    import socket
    import time as _time

    import cadent.compat.graphite_tags as graphite_tags

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts, never answers
    try:
        monkeypatch.setattr(graphite_tags, "STOP_FLUSH_S", 0.5)
        registrar = TagRegistrar(f"http://127.0.0.1:{silent.getsockname()[1]}")
        for i in range(250):
            registrar.created(f"m.{i}")
        started = _time.monotonic()
        registrar.stop()
        assert _time.monotonic() - started < 3
        assert registrar.collect_stats()["tagsDropped"] >= 100
    finally:
        silent.close()
