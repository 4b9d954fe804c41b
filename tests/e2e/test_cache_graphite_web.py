"""Acceptance with the real client: Debian's graphite-web reading cadent-cache.

graphite-web reads the whisper tree (LOCAL_DATA_DIR) and asks CarbonLink for what is still in
memory. Points kept in the cache by CACHE_WRITE_STRATEGY=timesorted + MIN_TIMESTAMP_LAG must
show up through CarbonLink; after SIGTERM the same points must come from the files alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.cache_helpers import (CarbonLink, cache_conf, data_dir, send_lines, stored, wait_for,
                                     wsp)
from tests.peers import LOCALHOST, CadentProcess, free_port

pytestmark = pytest.mark.slow

HARNESS = Path(os.environ.get("CADENT_SHARED", "/work/shared")) / "harness" / "graphite_web"


def _run(script: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(HARNESS / script)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _check(url: str, target: str, points: int, total: float, wait: float = 20) -> None:
    out = subprocess.run([sys.executable, str(HARNESS / "check.py"), "--web", url, "--target",
                          target, "--from", "-15min", "--expect-points", str(points),
                          "--expect-sum", str(total), "--wait", str(wait)],
                         capture_output=True, text=True, timeout=wait + 60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def graphite_web_env(tmp_path):
    if not HARNESS.is_dir():
        pytest.skip(f"graphite-web harness not found at {HARNESS}")
    install = _run("install.sh", dict(os.environ), timeout=900)
    if install.returncode != 0:
        pytest.skip(f"graphite-web cannot be installed: {install.stderr[-500:]}")
    port = free_port()
    env = dict(os.environ, GW_PORT=str(port), GW_DIR=str(tmp_path / "gw"))
    yield env
    _run("down.sh", env, timeout=60)


def test_graphite_web_sees_cached_points_then_the_same_points_on_disk(tmp_path, graphite_web_env):
    conf = cache_conf(tmp_path, CACHE_WRITE_STRATEGY="timesorted", MIN_TIMESTAMP_LAG=3600)
    now = int(time.time()) // 10 * 10
    points = [(now - 300 + 10 * i, float(i + 1)) for i in range(30)]
    name = "test.gw.cached"
    total = sum(v for _, v in points)
    cache = CadentProcess(conf, "cache").start()
    try:
        s = cache.settings
        send_lines(int(s["LINE_RECEIVER_PORT"]), [f"{name} {v} {ts}" for ts, v in points])
        with CarbonLink(int(s["CACHE_QUERY_PORT"])) as link:
            deadline = time.monotonic() + 10
            while len(link.query(name)) < 30 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(link.query(name)) == 30
        path = wsp(conf, name)
        assert wait_for(path.exists, 5)                  # the file is made at once ...
        assert stored(path, now - 900) == {}             # ... but no point is on disk

        env = dict(graphite_web_env, GW_WHISPER_DIR=str(data_dir(conf)),
                   GW_CARBONLINK_HOSTS=f"{LOCALHOST}:{s['CACHE_QUERY_PORT']}:a")
        up = _run("up.sh", env)
        assert up.returncode == 0, up.stdout + up.stderr
        url = f"http://127.0.0.1:{env['GW_PORT']}"
        _check(url, name, 30, total)                     # only in cadent-cache's memory
        assert stored(path, now - 900) == {}

        cache.proc.send_signal(signal.SIGTERM)
        assert cache.proc.wait(60) == 0
        assert stored(path, now - 900) == {ts: v for ts, v in points}
        _check(url, name, 30, total)                     # the same points, from the file
    finally:
        cache.stop()


def _find_series(url: str, expr: str) -> list:
    query = urllib.parse.urlencode({"expr": expr})
    with urllib.request.urlopen(f"{url}/tags/findSeries?{query}", timeout=30) as reply:
        return json.loads(reply.read())


def test_enable_tags_registers_series_so_series_by_tag_works(tmp_path, graphite_web_env):
    # graphite-web's own TagDB only knows what a cache registers with it (carbon's ENABLE_TAGS)
    url = f"http://127.0.0.1:{graphite_web_env['GW_PORT']}"
    conf = cache_conf(tmp_path, ENABLE_TAGS=True, GRAPHITE_URL=url, TAG_UPDATE_INTERVAL=1,
                      MAX_UPDATES_PER_SECOND=1000)
    cache = CadentProcess(conf, "cache").start()
    try:
        s = cache.settings
        env = dict(graphite_web_env, GW_WHISPER_DIR=str(data_dir(conf)),
                   GW_CARBONLINK_HOSTS=f"{LOCALHOST}:{s['CACHE_QUERY_PORT']}:a")
        up = _run("up.sh", env)
        assert up.returncode == 0, up.stdout + up.stderr
        now = int(time.time()) // 10 * 10
        tagged = {"test.tags.cpu;env=prod;host=h1": 2.0, "test.tags.cpu;env=prod;host=h2": 3.0,
                  "test.tags.cpu;env=dev;host=h3": 100.0}
        lines = [f"{name} {value} {now - 60 + 10 * i}" for name, value in tagged.items()
                 for i in range(6)]
        send_lines(int(s["LINE_RECEIVER_PORT"]), lines + [f"test.tags.plain 1 {now - 60}"])
        want = sorted(n for n in tagged if "env=prod" in n)
        assert wait_for(lambda: _find_series(url, "env=prod") == want, 30), \
            _find_series(url, "env=prod")
        # untagged series are registered too, as carbon does (graphite-web files them as name=...)
        assert wait_for(lambda: _find_series(url, "name=test.tags.plain") == ["test.tags.plain"], 30)
        _check(url, "seriesByTag('env=prod')", 12, 6 * (2.0 + 3.0))
    finally:
        cache.stop()
