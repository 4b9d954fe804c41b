"""CarbonLink client against a tiny in-test cache server (4-byte length + pickle frames)."""

import pickle
import socket
import struct
import threading

import pytest
import whisper

from cadent.api import create_app
from cadent.api.carbonlink import CarbonLinkPool
from cadent.api.settings import ApiSettings

NOW = 1795300418
BASE = NOW - NOW % 10


class FakeCache:
    def __init__(self, points):
        self.points = points
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        conn.settimeout(5)
        with conn:
            while True:
                head = conn.recv(4, socket.MSG_WAITALL)
                if len(head) < 4:
                    return
                (size,) = struct.unpack("!L", head)
                req = pickle.loads(conn.recv(size, socket.MSG_WAITALL))
                self.requests.append(req)
                reply = pickle.dumps({"datapoints": self.points.get(req["metric"], [])}, protocol=2)
                conn.sendall(struct.pack("!L", len(reply)) + reply)

    def close(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@pytest.fixture()
def wsp_root(tmp_path):
    root = tmp_path / "whisper"
    (root / "test" / "e2e").mkdir(parents=True)
    path = str(root / "test" / "e2e" / "m1.wsp")
    whisper.create(path, [(10, 8640)], xFilesFactor=0.0)
    whisper.update_many(path, [(BASE - 300, 100.0), (BASE - 200, 5.0)], now=NOW)
    return root


def test_cache_points_override_disk(wsp_root):
    cache = FakeCache({"test.e2e.m1": [(float(BASE - 200 + 3), 50.0), (float(BASE - 100), 7.0), (float(BASE - 100 + 4), 8.0)]})
    try:
        settings = ApiSettings(whisper_dirs=(str(wsp_root),), carbonlink_hosts=(f"127.0.0.1:{cache.port}:a",))
        client = create_app(settings).test_client()
        for _ in range(3):
            rv = client.get("/render", query_string={"target": "test.e2e.m1", "from": "-10min", "now": NOW})
            points = {t: v for v, t in rv.get_json()[0]["datapoints"] if v is not None}
            assert points == {BASE - 300: 100.0, BASE - 200: 50.0, BASE - 100: 8.0}
        assert cache.requests[0] == {"type": "cache-query", "metric": "test.e2e.m1"}
        assert len(cache.requests) == 3 and cache.connections == 1  # one pooled connection
    finally:
        cache.close()


def test_dead_host_degrades_to_disk(wsp_root):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here any more
    settings = ApiSettings(whisper_dirs=(str(wsp_root),), carbonlink_hosts=(f"127.0.0.1:{port}",),
                           carbonlink_timeout_s=0.5)
    app = create_app(settings)
    client = app.test_client()
    rv = client.get("/render", query_string={"target": "test.e2e.m1", "from": "-10min", "now": NOW})
    assert rv.status_code == 200
    points = {t: v for v, t in rv.get_json()[0]["datapoints"] if v is not None}
    assert points == {BASE - 300: 100.0, BASE - 200: 5.0}
    pool = app.extensions["cadent"]["carbonlink"]
    assert pool.counters["errors"] == 1
    client.get("/render", query_string={"target": "test.e2e.m1", "from": "-10min", "now": NOW})
    assert pool.counters["errors"] == 1 and pool.counters["skipped"] == 1  # retry delay


def test_ring_choice_matches_vectors_and_self_metrics_go_everywhere():
    from tests.vectors import load_vector

    for case in load_vector("carbonlink_hash_ring.json")["cases"]:
        hosts = [f"{h}:7002:{i}" if i else f"{h}:7002" for h, i in case["nodes"]]
        pool = CarbonLinkPool(hosts, hash_type=case["hash_type"], carbon_prefix="nomatch")
        for metric, node in case["metric_to_node"].items():
            assert pool.hosts_for(metric) == [tuple(node)], (case["hash_type"], metric)
    pool = CarbonLinkPool(["127.0.0.1:7002:a", "127.0.0.1:7102:b"])
    assert len(pool.hosts_for("carbon.agents.x.cpuUsage")) == 2
