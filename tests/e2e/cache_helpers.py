"""Shared pieces of the cadent-cache process tests: config, senders, CarbonLink, whisper reads."""

from __future__ import annotations

import pickle
import socket
import struct
import time
from pathlib import Path

import whisper

from tests.peers import LOCALHOST, free_port, write_carbon_conf

SCHEMAS = """\
# first match wins
[carbon]
pattern = ^carbon\\.
retentions = 1s:10m

[fine]
pattern = ^test\\.fine\\.
retentions = 1s:10m,10s:1h

[default]
pattern = .*
retentions = 10s:6h,1m:1d
"""

AGGREGATION = """\
[counts]
pattern = \\.count$
xFilesFactor = 0.1
aggregationMethod = sum

[max]
pattern = \\.max$
aggregationMethod = max
"""


def cache_conf(tmp_path, section: str = "cache", files: dict | None = None, **settings) -> Path:
    """A carbon.conf with one ``[cache]`` on fresh ports (line, pickle, UDP, CarbonLink)."""
    cache = {
        "LINE_RECEIVER_INTERFACE": LOCALHOST,
        "LINE_RECEIVER_PORT": free_port(),
        "PICKLE_RECEIVER_INTERFACE": LOCALHOST,
        "PICKLE_RECEIVER_PORT": free_port(),
        "ENABLE_UDP_LISTENER": True,
        "UDP_RECEIVER_INTERFACE": LOCALHOST,
        "UDP_RECEIVER_PORT": free_port(),
        "CACHE_QUERY_INTERFACE": LOCALHOST,
        "CACHE_QUERY_PORT": free_port(),
        "CARBON_METRIC_INTERVAL": 0,
        "SHUTDOWN_DRAIN_SECONDS": 30,
    }
    cache.update(settings)
    all_files = {"storage-schemas.conf": SCHEMAS, "storage-aggregation.conf": AGGREGATION}
    all_files.update(files or {})
    return write_carbon_conf(tmp_path, {section: cache}, files=all_files)


def data_dir(conf: Path) -> Path:
    return conf.parent.parent / "storage" / "whisper"


def wsp(conf: Path, name: str) -> Path:
    return data_dir(conf) / (name.replace(".", "/") + ".wsp")


def send_lines(port: int, text_lines: list[str]) -> None:
    with socket.create_connection((LOCALHOST, port), timeout=30) as sock:
        sock.sendall(("\n".join(text_lines) + "\n").encode())


def send_pickle(port: int, points: list) -> None:
    body = pickle.dumps(points, protocol=2)
    with socket.create_connection((LOCALHOST, port), timeout=30) as sock:
        sock.sendall(struct.pack("!L", len(body)) + body)


def send_udp(port: int, text_lines: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(("\n".join(text_lines) + "\n").encode(), (LOCALHOST, port))


class CarbonLink:
    """A persistent CarbonLink client, as graphite-web speaks it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((LOCALHOST, port), timeout=10)

    def raw(self, body: bytes) -> dict:
        self.sock.sendall(struct.pack("!L", len(body)) + body)
        return self._reply()

    def request(self, **req) -> dict:
        return self.raw(pickle.dumps(req, protocol=2))

    def query(self, name: str) -> list:
        return self.request(type="cache-query", metric=name)["datapoints"]

    def _reply(self) -> dict:
        header = self._exact(4)
        return pickle.loads(self._exact(struct.unpack("!L", header)[0]))

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("CarbonLink closed the connection")
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def stored(path: Path, since: float, until: float | None = None) -> dict[int, float]:
    """Non-null (timestamp → value) of the finest archive of a whisper file."""
    (start, _end, step), values = whisper.fetch(str(path), since, until)
    return {start + i * step: v for i, v in enumerate(values) if v is not None}


def wait_for(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
