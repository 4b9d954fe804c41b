"""cadent-cache registers its series with cadent-api (``ENABLE_TAGS``, ``GRAPHITE_URL``).

A real cadent-cache POSTs what it creates and writes to a real cadent-api (gunicorn, two gevent
workers sharing one tag database file); the API then answers ``/tags/findSeries`` and renders
``seriesByTag()`` with the points, from the files and over CarbonLink.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.cache_helpers import cache_conf, data_dir, send_lines, wait_for
from tests.e2e.graphite_web_helpers import CadentApi, get, write_api_conf
from tests.peers import LOCALHOST, CadentProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _json(url: str, path: str, params) -> object:
    status, body = get(url, path, params)
    assert status == 200, body[:500]
    return json.loads(body)


def test_cache_registers_series_with_cadent_api(tmp_path):
    api_port = free_port()
    api_url = f"http://{LOCALHOST}:{api_port}"
    conf = cache_conf(tmp_path / "cache", ENABLE_TAGS=True, GRAPHITE_URL=api_url,
                      TAG_UPDATE_INTERVAL=1, MAX_UPDATES_PER_SECOND=1000)
    cache = CadentProcess(conf, "cache")
    api = CadentApi(write_api_conf(tmp_path / "api", str(data_dir(conf)), api_port, workers=2,
                                   carbonlink_hosts=f"{LOCALHOST}:{cache.settings['CACHE_QUERY_PORT']}:a"),
                    api_port, log_path=tmp_path / "cadent-api.log")
    try:
        api.start()
        cache.start()
        now = int(time.time()) // 10 * 10
        tagged = {"test.tags.cpu;host=h1;env=prod": 2.0, "test.tags.cpu;env=prod;host=h2": 3.0,
                  "test.tags.cpu;env=dev;host=h3": 100.0}
        lines = [f"{name} {value} {now - 60 + 10 * i}" for name, value in tagged.items()
                 for i in range(6)]
        send_lines(cache.line_port, lines + [f"test.tags.plain 1 {now - 60}"])

        want = ["test.tags.cpu;env=prod;host=h1", "test.tags.cpu;env=prod;host=h2"]

        def found():
            return _json(api_url, "/tags/findSeries", {"expr": "env=prod"})

        assert wait_for(lambda: found() == want, 30), found()
        assert wait_for(lambda: _json(api_url, "/tags/findSeries", {"expr": "name=test.tags.plain"})
                        == ["test.tags.plain"], 30)
        assert _json(api_url, "/tags/autoComplete/values", {"tag": "host"}) == ["h1", "h2", "h3"]

        def rendered():
            series = _json(api_url, "/render", {"target": "seriesByTag('env=prod')", "format": "json",
                                                "from": now - 600, "until": now + 60})
            return {s["target"]: [v for v, _ in s["datapoints"] if v is not None] for s in series}

        assert wait_for(lambda: rendered() == {want[0]: [2.0] * 6, want[1]: [3.0] * 6}, 30), rendered()
        (total,) = _json(api_url, "/render", {"target": "sumSeries(seriesByTag('name=test.tags.cpu'))",
                                              "from": now - 600, "until": now + 60})
        assert sum(v for v, _ in total["datapoints"] if v is not None) == 6 * (2.0 + 3.0 + 100.0)
        assert total["tags"] == {"name": "test.tags.cpu", "aggregatedBy": "sum"}
    finally:
        cache.stop()
        api.stop()
    assert "Traceback" not in api.log_text()
