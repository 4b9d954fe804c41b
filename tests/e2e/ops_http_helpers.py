"""Talking to a daemon's HTTP side in the process tests."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.peers import LOCALHOST, wait_until


def http(port: int, path: str, method: str = "GET", token: str | None = None,
         timeout: float = 30.0) -> tuple[int, str]:
    """(status, body) of one request to 127.0.0.1:``port``."""
    request = urllib.request.Request(f"http://{LOCALHOST}:{port}{path}", method=method,
                                     data=b"" if method == "POST" else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get_json(port: int, path: str) -> dict:
    status, body = http(port, path)
    assert status == 200, (status, body)
    return json.loads(body)


def prometheus_samples(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of ``/metrics``, read by prometheus_client's own parser."""
    status, body = http(port, "/metrics")
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def wait_status(port: int, code: int, timeout: float = 30.0) -> str:
    """Poll ``/ops/status`` until it answers ``code`` (waiting for the daemon to listen);
    its body."""
    seen: list[tuple[int, str]] = []

    def check() -> bool:
        try:
            seen.append(http(port, "/ops/status"))
        except urllib.error.URLError as exc:     # not listening yet
            seen.append((0, str(exc)))
        return seen[-1][0] == code

    assert wait_until(check, timeout, interval=0.2), seen[-1:]
    return seen[-1][1]


def test_output(program: str, conf, names: list[str]) -> dict[str, list[str]]:
    """name → destinations, as ``cadent-<program> --test`` prints them."""
    done = subprocess.run([sys.executable, "-m", f"cadent.daemons.{program}", "--config",
                           str(conf), "--test"], input="\n".join(names) + "\n",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return {line.split("\t")[0]: line.split("\t")[1:] for line in done.stdout.splitlines()}


def hashchecks(port: int, names: list[str]) -> dict[str, list[str]]:
    return {name: get_json(port, f"/hashcheck?key={name}")["destinations"] for name in names}


test_output.__test__ = False  # a helper, not a test
