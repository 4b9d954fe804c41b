"""Shared pieces of the cadent-relay process tests."""

from __future__ import annotations

import pickle
import socket
import struct
import time

from tests.peers import LOCALHOST, free_port, write_carbon_conf

BASE_TS = 1700000000


def relay_conf(tmp_path, destinations, **overrides):
    """A carbon.conf whose [relay] listens on fresh ports and sends to ``destinations``."""
    relay = {
        "LINE_RECEIVER_INTERFACE": LOCALHOST,
        "LINE_RECEIVER_PORT": free_port(),
        "PICKLE_RECEIVER_INTERFACE": LOCALHOST,
        "PICKLE_RECEIVER_PORT": free_port(),
        "RELAY_METHOD": "consistent-hashing",
        "DESTINATIONS": list(destinations),
        "DESTINATION_PROTOCOL": "pickle",
        "CARBON_METRIC_INTERVAL": 0,
        "SHUTDOWN_DRAIN_SECONDS": 20,
    }
    files = overrides.pop("files", None)
    relay.update(overrides)
    return write_carbon_conf(tmp_path, {"relay": relay}, files=files)


def lines(n, prefix="m", start=0, ts=BASE_TS):
    return [f"{prefix}.{i} {i} {ts + i}" for i in range(start, start + n)]


def send_lines(port, text_lines, chunk=5000):
    with socket.create_connection((LOCALHOST, port), timeout=30) as sock:
        for i in range(0, len(text_lines), chunk):
            sock.sendall(("\n".join(text_lines[i:i + chunk]) + "\n").encode())


def send_raw(port, data: bytes):
    with socket.create_connection((LOCALHOST, port), timeout=30) as sock:
        sock.sendall(data)


def pickle_frame(points, protocol=2) -> bytes:
    body = pickle.dumps(points, protocol=protocol)
    return struct.pack("!L", len(body)) + body


def wait_total(sinks, n, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total = sum(s.count() for s in sinks)
        if total >= n:
            return total
        time.sleep(0.05)
    return sum(s.count() for s in sinks)


def self_metric_counters(sink, kind="relays", instance="a"):
    """Sum of every self-metric the sink received, by metric name after ``<host>-<instance>.``."""
    counters = {}
    for name, _, value in sink.points():
        if name.startswith(f"carbon.{kind}."):
            key = name.rsplit(f"-{instance}.", 1)[1]
            counters[key] = counters.get(key, 0) + value
    return counters


def wait_counters(sink, done, timeout=10.0, **kw):
    """Poll :func:`self_metric_counters` until ``done(counters)`` or the timeout; the last counters."""
    deadline = time.monotonic() + timeout
    counters = self_metric_counters(sink, **kw)
    while not done(counters) and time.monotonic() < deadline:
        time.sleep(0.3)
        counters = self_metric_counters(sink, **kw)
    return counters
