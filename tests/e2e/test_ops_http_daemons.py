"""Every daemon's HTTP side as a real process: /stats, /metrics, /ops/status, /hashcheck and
live ring changes on cadent-relay (checked against ``--test`` with the new DESTINATIONS)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.e2e.ops_http_helpers import (get_json, hashchecks, http, prometheus_samples,
                                        test_output, wait_status)
from tests.e2e.relay_helpers import lines, relay_conf, send_lines, wait_total
from tests.peers import LOCALHOST, CadentProcess, FakeCarbonSink, free_port, wait_until

pytestmark = pytest.mark.slow

TOKEN = "s3cret"
NAMES = [f"servers.host{i:03d}.cpu.load" for i in range(150)]


def _http_conf(tmp_path, destinations, **overrides):
    port = free_port()
    conf = relay_conf(tmp_path, destinations, HTTP_INTERFACE=LOCALHOST, HTTP_PORT=port,
                      **overrides)
    return conf, port


def _conf_for(tmp_path, name, destinations):
    """A carbon.conf in its own directory whose [relay] sends to ``destinations``."""
    directory = tmp_path / name
    directory.mkdir()
    return relay_conf(directory, destinations)


def test_relay_pages_and_live_ring(tmp_path):
    with FakeCarbonSink() as a, FakeCarbonSink() as b, FakeCarbonSink() as c:
        da, db, dc = a.destination("a"), b.destination("b"), c.destination("c")
        conf, port = _http_conf(tmp_path, [da, db], HTTP_TOKEN=TOKEN)
        with CadentProcess(conf) as relay:
            send_lines(relay.line_port, lines(1000))
            assert wait_total([a, b], 1000) == 1000
            assert http(port, "/ops/status") == (200, "OK\n")

            stats = get_json(port, "/stats")
            assert stats["role"] == "relay" and stats["instance"] == "a"
            assert stats["version"] and stats["uptime_s"] > 0 and stats["status"] == "OK"
            assert stats["counters"]["metricsReceived"] == 1000
            sent = {dest: stats["counters"][f"destinations.{dest.replace('.', '_')}.sent"]
                    for dest in (da, db)}
            assert sum(sent.values()) == 1000 and all(sent.values())
            assert "memUsage" in stats["gauges"]

            samples = prometheus_samples(port)
            base = (("instance", "a"), ("role", "relay"))
            assert samples[("cadent_metrics_received_total", base)] == 1000
            for dest, count in sent.items():
                labels = tuple(sorted(base + (("destination", dest.replace(".", "_")),)))
                assert samples[("cadent_destination_sent_total", labels)] == count
            assert samples[("cadent_uptime_seconds", base)] > 0

            assert hashchecks(port, NAMES) == test_output("relay", conf, NAMES)

            assert http(port, f"/ring/add?server={dc}", "POST")[0] == 401
            status, body = http(port, f"/ring/add?server={dc}", "POST", TOKEN)
            assert status == 200, body
            assert json.loads(body)["destinations"] == [da, db, dc]
            assert hashchecks(port, NAMES) == test_output(
                "relay", _conf_for(tmp_path, "abc", [da, db, dc]), NAMES)
            assert http(port, f"/ring/add?server={dc}", "POST", TOKEN)[0] == 400

            status, body = http(port, f"/ring/purge?server={da}", "POST", TOKEN)
            assert status == 200, body
            fresh = test_output("relay", _conf_for(tmp_path, "bc", [db, dc]), NAMES)
            assert hashchecks(port, NAMES) == fresh

            os.kill(relay.pid, signal.SIGHUP)          # a reload keeps the live ring
            assert wait_until(lambda: "routing rules reloaded" in relay.log_text(), 30)
            assert hashchecks(port, NAMES) == fresh
            assert "purge" in relay.log_text() and "until restart" in relay.log_text()

            status, body = http(port, f"/ring/purge?server={da}", "POST", TOKEN)
            assert status == 400 and "not a destination" in body
            assert http(port, "/hashcheck")[0] == 400

            b.stop()
            c.stop()
            send_lines(relay.line_port, lines(200, prefix="late"))
            assert "every destination is down" in wait_status(port, 503)


def test_relay_rules_method_refuses_ring_changes(tmp_path):
    with FakeCarbonSink() as a:
        rules = "[default]\ndefault = true\ndestinations = %s\n" % a.destination("a")
        conf, port = _http_conf(tmp_path, [a.destination("a")], RELAY_METHOD="rules",
                                files={"relay-rules.conf": rules})
        with CadentProcess(conf):
            assert wait_status(port, 200) == "OK\n"
            status, body = http(port, "/ring/add?server=127.0.0.1:1:z", "POST")
            assert status == 400 and "no ring" in json.loads(body)["error"]
            assert hashchecks(port, ["x.y"]) == {"x.y": [a.destination("a")]}


def test_relay_ring_changes_under_load_lose_nothing(tmp_path):
    """cadent-blast sends at a modest rate while a third destination joins and the first is
    purged (its queue re-routed): every line sent reaches some destination."""
    total = 30000
    with FakeCarbonSink(record=False) as a, FakeCarbonSink(record=False) as b, \
            FakeCarbonSink(record=False) as c:
        da, dc = a.destination("a"), c.destination("c")
        conf, port = _http_conf(tmp_path, [da, b.destination("b")])
        with CadentProcess(conf) as relay:
            blast = subprocess.Popen(
                [sys.executable, "-m", "cadent.tools.blast", "--port", str(relay.line_port),
                 "--rate", "5000", "--names", "2000", "--count", str(total)],
                stdout=subprocess.PIPE, text=True)
            try:
                assert wait_until(lambda: a.count() + b.count() > total // 5, 60)
                assert http(port, f"/ring/add?server={dc}", "POST")[0] == 200
                assert wait_until(lambda: c.count() > 0 and a.count() + b.count() + c.count()
                                  > total // 2, 60)
                assert http(port, f"/ring/purge?server={da}", "POST")[0] == 200
                summary = json.loads(blast.communicate(timeout=120)[0].strip().splitlines()[-1])
            finally:
                if blast.poll() is None:
                    blast.kill()
                    blast.wait(10)
            assert summary["sent"] == total
            assert wait_total([a, b, c], total, timeout=60) >= total
            stats = get_json(port, "/stats")["counters"]
            assert stats["metricsReceived"] == total
        assert c.count() > 0


def test_aggregator_pages_and_hashcheck(tmp_path):
    from tests.e2e.test_aggregator import aggregator_conf

    with FakeCarbonSink() as a, FakeCarbonSink() as b:
        dests = [a.destination("a"), b.destination("b")]
        port = free_port()
        conf = aggregator_conf(tmp_path, dests, HTTP_INTERFACE=LOCALHOST, HTTP_PORT=port)
        with CadentProcess(conf, "aggregator") as daemon:
            send_lines(daemon.line_port, [f"fwd.x.{i} 1 1700000000" for i in range(50)])
            assert wait_total([a, b], 50) == 50
            stats = get_json(port, "/stats")
            assert stats["role"] == "aggregator" and stats["counters"]["metricsReceived"] == 50
            assert http(port, "/ops/status") == (200, "OK\n")
            assert prometheus_samples(port)[
                ("cadent_metrics_received_total", (("instance", "a"), ("role", "aggregator")))] == 50
            expected = {name: [field for field in fields if ":" in field and "=" not in field]
                        for name, fields in test_output("aggregator", conf, NAMES).items()}
            assert hashchecks(port, NAMES) == expected
            status, body = http(port, f"/ring/purge?server={dests[0]}", "POST")
            assert status == 200, body
            assert all(where == [dests[1]] for where in hashchecks(port, NAMES[:20]).values())


def test_cache_pages_and_503_while_full(tmp_path):
    from tests.e2e.cache_helpers import cache_conf

    port = free_port()
    conf = cache_conf(tmp_path, HTTP_INTERFACE=LOCALHOST, HTTP_PORT=port, MAX_CACHE_SIZE=100,
                      MAX_UPDATES_PER_SECOND=1, MAX_CREATES_PER_MINUTE=1)
    with CadentProcess(conf, "cache") as cache:
        assert wait_status(port, 200) == "OK\n"
        assert http(port, "/hashcheck?key=a")[0] == 400     # a cache routes nothing
        send_lines(cache.line_port, [f"full.m{i} 1 1700000000" for i in range(20)])
        assert wait_until(lambda: get_json(port, "/stats")["counters"].get(
            "metricsReceived", 0) == 20, 30)
        samples = prometheus_samples(port)
        base = (("instance", "a"), ("role", "cache"))
        assert samples[("cadent_metrics_received_total", base)] == 20
        assert ("cadent_cache_size", base) in samples
        assert "writer.whisper.cache.size" in get_json(port, "/stats")["gauges"]
        sender = subprocess.Popen([sys.executable, "-m", "cadent.tools.blast", "--port",
                                   str(cache.line_port), "--names", "5000", "--count", "5000"],
                                  stdout=subprocess.DEVNULL)
        try:
            assert "receivers paused" in wait_status(port, 503)
        finally:
            sender.kill()
            sender.wait(10)


@pytest.mark.parametrize("form", ["config.js", "statsd-section"])
def test_statsd_pages_and_503_when_graphite_fails(tmp_path, form):
    from tests.e2e.statsd_helpers import StatsdDaemon, base_config, send_udp

    port = free_port()
    with FakeCarbonSink("line") as sink:
        config = base_config(sink.port, flush_ms=300)
        if form == "config.js":
            daemon = StatsdDaemon(tmp_path, {**config, "http": {"port": port, "address": LOCALHOST}})
        else:
            text = "[statsd]\n" + "".join(f"{key} = {value}\n" for key, value in config.items()) \
                + f"HTTP_PORT = {port}\nHTTP_INTERFACE = {LOCALHOST}\n"
            daemon = StatsdDaemon(tmp_path, text, filename="statsd.conf", wait_mgmt=False)
        with daemon:
            assert wait_status(port, 200) == "OK\n"
            send_udp(config["port"], ["a.b:1|c"] * 5)
            sent = f"destinations.127_0_0_1:{sink.port}:None.sent"
            assert wait_until(lambda: get_json(port, "/stats")["counters"].get(sent, 0) > 0, 30)
            stats = get_json(port, "/stats")
            assert stats["role"] == "statsd" and "statsd.bad_lines_total" in stats["gauges"]
            assert ("cadent_graphite_last_flush", (("instance", "0"), ("role", "statsd"))) \
                in prometheus_samples(port)
            sink.stop()
            send_udp(config["port"], ["a.b:1|c"] * 5)
            assert "graphite backend fails" in wait_status(port, 503)
