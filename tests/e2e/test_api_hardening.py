"""A real cadent-api (gunicorn, gevent workers) against hostile requests.

* a series registered with an absolute path renders nothing from outside ``WHISPER_DIRS``;
* a target with fifteen brace groups answers with the right series, quickly;
* out-of-range times, a bad ``jsonp`` and a bad ``format`` are 400s; ``maxDataPoints=-1`` is
  ignored (graphite-web's rule), and the worker logs no traceback.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import whisper

from tests.e2e.graphite_web_helpers import CadentApi, get, post, write_api_conf
from tests.peers import LOCALHOST, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

BITS = ("000000000000000", "110011001100110", "111111111111111")


def _wsp(path, value: float, now: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    whisper.create(str(path), [(10, 8640)], xFilesFactor=0.0)
    whisper.update_many(str(path), [(now - 100 + 10 * i, value) for i in range(10)], now=now)


@pytest.fixture()
def api(tmp_path):
    now = int(time.time())
    root, outside = tmp_path / "whisper", tmp_path / "outside"
    _wsp(outside / "secret.wsp", 666.0, now)
    for bits in BITS:
        _wsp(root / "b" / bits / "m.wsp", 1.0, now)
    os.symlink(outside, root / "escape")
    port = free_port()
    conf = write_api_conf(tmp_path / "api", str(root), port, workers=1,
                          TAGDB_PATH=str(tmp_path / "tagdb.sqlite"))
    proc = CadentApi(conf, port, log_path=tmp_path / "cadent-api.log")
    proc.start()
    try:
        yield proc, str(outside / "secret")
    finally:
        proc.stop()
    assert "Traceback" not in proc.log_text()


def _series(url: str, target: str, timeout: float = 30.0, **params) -> dict:
    status, body = get(url, "/render", {"target": target, "from": "-10min", **params},
                       timeout=timeout)
    assert status == 200, body[:500]
    return {s["target"]: [v for v, _ in s["datapoints"] if v is not None] for s in json.loads(body)}


def test_hostile_requests(api):
    proc, secret = api
    url = proc.url
    status, body = post(url, "/tags/tagSeries", [("path", secret)])
    assert status == 200 and json.loads(body) == secret
    assert _series(url, f"seriesByTag('name={secret}')") == {}
    assert _series(url, secret) == {} and _series(url, "escape.secret") == {}

    # generous bound: a hang guard only (up-front expansion took 16 s here)
    got = _series(url, "b." + "{0,1}" * 15 + ".m", timeout=10.0)
    assert got == {f"b.{bits}.m": [1.0] * 10 for bits in BITS}
    assert _series(url, "b.*.m", maxDataPoints="-1") == got

    for params in ({"from": "99999999999999999999"}, {"until": "-1000000y"},
                   {"jsonp": "alert(document.cookie)//"}, {"format": "png"},
                   {"target": "f(" * 1000}):
        status, body = get(url, "/render", {"target": "b.*.m", **params})
        assert status == 400 and body.startswith(b"Invalid parameters ("), (params, body[:300])
