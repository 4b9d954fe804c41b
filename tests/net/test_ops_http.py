"""The operators' HTTP side over a real socket: stats, Prometheus, status, hashcheck, rings."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import gevent
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cadent.core.ops_http import OpsApp, OpsServer, RingError, prometheus_name, prometheus_text
from cadent.core.stats import Stats


class FakeRelay:
    role = "relay"
    instance = "a"

    def __init__(self) -> None:
        self.stats = Stats()
        self.stats.incr("metricsReceived", 12)
        self.stats.incr("destinations.127_0_0_1:2004:a.sent", 7)
        self.stats.gauge("memUsage", lambda: 1234.0)
        self.stats.gauge("broken", lambda: 1 / 0)
        self.problem: str | None = None
        self.ring = ["127.0.0.1:2004:a"]

    def health(self):
        return self.problem

    def last_report(self):
        return {"cache.size": 5.0}

    def hashcheck(self, key):
        return list(self.ring) if key else []

    def ring_add(self, server):
        if server in self.ring:
            raise RingError(f"{server} is in the ring already")
        self.ring.append(server)
        return list(self.ring)

    def ring_purge(self, server):
        self.ring.remove(server)
        return list(self.ring)


class FakeCache(FakeRelay):
    role = "cache"

    hashcheck = ring_add = ring_purge = None  # type: ignore[assignment]


@pytest.fixture
def served():
    servers = []

    def serve(source, token=None):
        server = OpsServer(("127.0.0.1", 0), OpsApp(source, token=token))
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.address[1]}"

    yield serve
    for server in servers:
        server.stop()


def _call(url, method="GET", headers=None):
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=b"" if
                                     method == "POST" else None)

    def fetch():
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.headers["Content-Type"], err.read().decode()

    # urllib blocks; run it in a real thread so the gevent server keeps serving
    return gevent.get_hub().threadpool.apply(fetch)


def test_stats_json_has_totals_gauges_and_version(served):
    base = served(FakeRelay())
    status, ctype, body = _call(base + "/stats")
    assert status == 200 and ctype.startswith("application/json")
    stats = json.loads(body)
    assert stats["counters"]["metricsReceived"] == 12
    assert stats["counters"]["destinations.127_0_0_1:2004:a.sent"] == 7
    assert stats["gauges"] == {"memUsage": 1234.0}      # the broken gauge is left out
    assert stats["last_report"] == {"cache.size": 5.0}
    assert stats["role"] == "relay" and stats["version"] and stats["uptime_s"] >= 0


def test_prometheus_text_parses_with_labels(served):
    base = served(FakeRelay())
    status, ctype, body = _call(base + "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body) for s in family.samples}
    base_labels = (("instance", "a"), ("role", "relay"))
    assert samples[("cadent_metrics_received_total", base_labels)] == 12
    dest = tuple(sorted(base_labels + (("destination", "127_0_0_1:2004:a"),)))
    assert samples[("cadent_destination_sent_total", dest)] == 7
    assert samples[("cadent_mem_usage", base_labels)] == 1234
    assert samples[("cadent_cache_size", base_labels)] == 5
    assert ("cadent_uptime_seconds", base_labels) in samples


def test_status_is_503_with_the_reason(served):
    relay = FakeRelay()
    base = served(relay)
    assert _call(base + "/ops/status")[::2] == (200, "OK\n")
    relay.problem = "every destination is down"
    assert _call(base + "/ops/status")[::2] == (503, "every destination is down\n")


def test_hashcheck_and_ring_changes(served):
    relay = FakeRelay()
    base = served(relay)
    status, _, body = _call(base + "/hashcheck?key=a.b.c")
    assert status == 200 and json.loads(body)["destinations"] == ["127.0.0.1:2004:a"]
    assert _call(base + "/hashcheck")[0] == 400
    assert _call(base + "/ring/add?server=127.0.0.1:2104:b")[0] == 405     # GET is refused
    status, _, body = _call(base + "/ring/add?server=127.0.0.1:2104:b", "POST")
    assert status == 200 and json.loads(body)["destinations"] == ["127.0.0.1:2004:a",
                                                                 "127.0.0.1:2104:b"]
    status, _, body = _call(base + "/ring/add?server=127.0.0.1:2104:b", "POST")
    assert status == 400 and "already" in json.loads(body)["error"]
    status, _, body = _call(base + "/ring/purge?server=127.0.0.1:2004:a", "POST")
    assert status == 200 and relay.ring == ["127.0.0.1:2104:b"]
    assert _call(base + "/nothing")[0] == 404


def test_token_guards_the_posts(served):
    relay = FakeRelay()
    base = served(relay, token="s3cret")
    assert _call(base + "/ring/add?server=h:1", "POST")[0] == 401
    assert _call(base + "/ring/add?server=h:1", "POST",
                 {"Authorization": "Bearer wrong"})[0] == 401
    assert _call(base + "/ring/add?server=h:1", "POST",
                 {"Authorization": "Bearer s3cret"})[0] == 200
    assert _call(base + "/ring/add?server=h:2&token=s3cret", "POST")[0] == 200
    assert _call(base + "/stats")[0] == 200                      # reads need no token
    assert relay.ring[-2:] == ["h:1", "h:2"]


def test_a_daemon_without_a_ring_says_so(served):
    base = served(FakeCache())
    status, _, body = _call(base + "/hashcheck?key=x")
    assert status == 400 and "does not route" in json.loads(body)["error"]


def test_prometheus_names():
    assert prometheus_name("metricsReceived") == "metrics_received"
    assert prometheus_name("cache.bulk_queries") == "cache_bulk_queries"
    assert prometheus_name("cpuUsage") == "cpu_usage"
    text = prometheus_text("cache", 'we"ird', {"x": 1}, {"x": 2.5}, 1.0)
    samples = {(s.name, s.labels["instance"]): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("cadent_x_total", 'we"ird')] == 1
    assert samples[("cadent_x", 'we"ird')] == 2.5


def test_daemon_ops_stopping_and_extra_gauges(served):
    from cadent.core.ops_http import DaemonOps

    stats = Stats()
    stats.incr("metricsReceived", 3)
    problem = [None]
    ops = DaemonOps("cache", "a", stats, lambda: problem[0], gauges={"cache.size": lambda: 7})
    base = served(ops)
    assert _call(base + "/ops/status")[0::2] == (200, "OK\n")
    assert json.loads(_call(base + "/stats")[2])["gauges"]["cache.size"] == 7
    problem[0] = "receivers paused: cache full"
    assert _call(base + "/ops/status")[0::2] == (503, "receivers paused: cache full\n")
    ops.stopping = True
    assert _call(base + "/ops/status")[0::2] == (503, "cadent-cache is stopping\n")


def test_output_health_needs_every_destination_down():
    from cadent.core.ops_http import output_health

    class Output:
        senders = {"a": None, "b": None}
        down: list = []

    output = Output()
    assert output_health(output) is None
    output.down = ["a"]
    assert output_health(output) is None
    output.down = ["a", "b"]
    assert output_health(output) == "every destination is down or spooling: a, b"
