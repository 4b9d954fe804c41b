"""The same input into the real carbon-relay and into cadent-relay: identical deliveries.

Both relays hash on (host, instance) only, so two sets of sinks on different ports but with
the same instances (a, b, c) form the same ring. Every destination of cadent must receive
exactly the datapoints the matching destination of carbon received.
"""

from __future__ import annotations

import random
import socket
import time
from collections import Counter

import pytest

from tests.e2e.relay_helpers import BASE_TS, pickle_frame
from tests.peers import LOCALHOST, CadentProcess, CarbonDaemon, FakeCarbonSink, free_port, write_carbon_conf

pytestmark = [pytest.mark.slow, pytest.mark.peers]

INSTANCES = ("a", "b", "c")
RULES = ("[servers]\npattern = ^servers\\.\ndestinations = {a}\n\n"
         "[pickled]\npattern = ^PICKLED\ndestinations = {b}, {c}\ncontinue = true\n\n"
         "[web]\npattern = web01\ndestinations = {b}\n\n"
         "[default]\ndefault = true\ndestinations = {c}\n")


def make_lines(seed=7, count=900):
    rng = random.Random(seed)
    words = ["servers", "web01", "db.main", "cpu", "load", "μs", "metrik", "disk;mount=/var", "x-y_z"]
    lines = []
    for i in range(count):
        name = ".".join(rng.choice(words) for _ in range(rng.randint(1, 4))) + f".n{i % 300}"
        value = rng.choice([i, i + 0.25, -i, 1e-12, 123456789.123456789, 0.1])
        lines.append(f"{name} {value!r} {BASE_TS + rng.randint(0, 600)}")
    return lines + ["not a metric", "a.b 1", "nan.value nan 1700000000"]


def settle(sinks, quiet_s=1.5, timeout_s=30):
    """Wait until the sinks' total stops growing."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        total = sum(s.count() for s in sinks)
        if total != last:
            last, since = total, time.monotonic()
        time.sleep(0.1)


def deliveries(tmp_path, daemon_cls, relay_settings, protocol, lines, pickled):
    """Run one relay on fresh sinks; per destination, the multiset of datapoints received."""
    sinks = [FakeCarbonSink(protocol, port=free_port()).start() for _ in INSTANCES]
    try:
        dest = {i: s.destination(i) for s, i in zip(sinks, INSTANCES)}
        relay = {
            "LINE_RECEIVER_INTERFACE": LOCALHOST, "LINE_RECEIVER_PORT": free_port(),
            "PICKLE_RECEIVER_INTERFACE": LOCALHOST, "PICKLE_RECEIVER_PORT": free_port(),
            "DESTINATION_PROTOCOL": protocol, "DESTINATIONS": list(dest.values()),
            "MAX_QUEUE_SIZE": 100000, "CARBON_METRIC_INTERVAL": 0, **relay_settings,
        }
        files = {"relay-rules.conf": RULES.format(**dest)}
        conf = write_carbon_conf(tmp_path, {"relay": relay}, files=files)
        with daemon_cls(conf, "relay") as proc:
            with socket.create_connection((LOCALHOST, proc.line_port), timeout=10) as sock:
                sock.sendall(("\n".join(lines) + "\n").encode())
            with socket.create_connection((LOCALHOST, proc.pickle_port), timeout=10) as sock:
                sock.sendall(b"".join(pickle_frame(pickled[i:i + 100]) for i in range(0, len(pickled), 100)))
            settle(sinks)
        return [Counter((n, float(ts), float(v)) for n, ts, v in s.points()) for s in sinks]
    finally:
        for sink in sinks:
            sink.stop()


@pytest.mark.parametrize("protocol,relay_settings", [
    ("pickle", {"RELAY_METHOD": "consistent-hashing"}),
    ("line", {"RELAY_METHOD": "consistent-hashing", "REPLICATION_FACTOR": 2, "DIVERSE_REPLICAS": False}),
    ("pickle", {"RELAY_METHOD": "consistent-hashing", "ROUTER_HASH_TYPE": "fnv1a_ch"}),
    ("pickle", {"RELAY_METHOD": "rules"}),
], ids=["carbon_ch-pickle", "rf2-line", "fnv1a_ch", "rules"])
def test_cadent_relay_delivers_what_carbon_relay_delivers(tmp_path, protocol, relay_settings):
    lines = make_lines()
    pickled = [(f"pickled.m{i}", (BASE_TS + i, i * 1.5)) for i in range(300)]
    carbon = deliveries(tmp_path / "carbon", CarbonDaemon, relay_settings, protocol, lines, pickled)
    cadent = deliveries(tmp_path / "cadent", CadentProcess, relay_settings, protocol, lines, pickled)
    assert sum(sum(c.values()) for c in carbon) >= 900
    for instance, want, got in zip(INSTANCES, carbon, cadent):
        assert got == want, f"destination {instance} differs"
