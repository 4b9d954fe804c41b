"""cadent-cache SIGKILLed under load, then restarted: its write-ahead log brings back every point
it had accepted more than WAL_SYNC_INTERVAL before the kill, read through a real cadent-api
(whisper files plus CarbonLink). The same run without the log loses points, so the check can
fail."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.e2e.cache_helpers import CarbonLink, cache_conf, data_dir, stored, wait_for, wsp
from tests.e2e.graphite_web_helpers import CadentApi, get, write_api_conf
from tests.peers import LOCALHOST, CadentProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

METRICS = [f"test.wal.m{i:03d}" for i in range(100)]
STEPS = 40            # timestamps every 10 s: 4000 points accepted before the kill is checked


class Load:
    """Lines sent without pause on one connection (later timestamps) until the kill."""

    def __init__(self, port: int, base: int) -> None:
        self.sock = socket.create_connection((LOCALHOST, port), timeout=30)
        self.base = base
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def send(self, lines: list[str]) -> None:
        self.sock.sendall(("\n".join(lines) + "\n").encode())

    def _run(self) -> None:
        step = STEPS
        while not self._stop.is_set() and step < 1000:
            try:
                self.send([f"{m} {step} {self.base + 10 * step}" for m in METRICS])
            except OSError:
                return
            self.sent += len(METRICS)
            step += 1
            time.sleep(0.01)

    def start(self) -> "Load":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(30)


def _accepted(conf, port: int, expected: dict[int, float]) -> bool:
    """Every metric has every expected point, in the cache (CarbonLink) or on disk."""
    cached = _cached(port)
    for m in METRICS:
        seen = dict(cached.get(m, {}))
        if wsp(conf, m).exists():
            seen.update(stored(wsp(conf, m), min(expected) - 10))
        if any(seen.get(t) != v for t, v in expected.items()):
            return False
    return True


def _render(url: str, base: int) -> dict[str, dict[int, float]]:
    status, body = get(url, "/render", {"target": "test.wal.*", "format": "json",
                                        "from": base - 60, "until": base + 10 * 1000})
    assert status == 200, body[:500]
    return {s["target"]: {t: v for v, t in s["datapoints"] if v is not None}
            for s in json.loads(body)}


def _cached(port: int) -> dict[str, dict[int, float]]:
    with CarbonLink(port) as link:
        cached = link.request(type="cache-query-bulk", metrics=METRICS)["datapointsByMetric"]
    return {m: {int(t): v for t, v in points} for m, points in cached.items()}


@pytest.mark.parametrize("wal, interval", [(True, 1.0), (True, 0.0), (False, 1.0)],
                         ids=["wal", "wal-sync-0", "no-wal"])
def test_sigkill_under_load_loses_nothing_accepted_before_the_sync_interval(tmp_path, wal,
                                                                           interval):
    conf = cache_conf(tmp_path, MAX_UPDATES_PER_SECOND=2, ENABLE_WAL=wal,
                      WAL_SYNC_INTERVAL=interval, WAL_SEGMENT_BYTES=1 << 16)
    base = int(time.time()) // 10 * 10 - 9000
    expected = {base + 10 * j: float(j) for j in range(STEPS)}
    cache = CadentProcess(conf, "cache", log_path=tmp_path / "cache-1.log").start()
    try:
        s = cache.settings
        load = Load(int(s["LINE_RECEIVER_PORT"]), base)
        load.send([f"{m} {j} {base + 10 * j}" for j in range(STEPS) for m in METRICS])
        assert wait_for(lambda: _accepted(conf, int(s["CACHE_QUERY_PORT"]), expected), 60), \
            cache.log_text()[-3000:]
        load.start()
        time.sleep(interval + 1.5)           # accepted more than WAL_SYNC_INTERVAL ago
        # with WAL_SYNC_INTERVAL = 0, whatever the cache holds is already fsynced
        last_seen = _cached(int(s["CACHE_QUERY_PORT"]))
        assert load.sent > 0 and cache.alive
        cache.proc.kill()                    # SIGKILL, by PID
        cache.proc.wait(30)
    finally:
        cache.stop()
    load.stop()
    on_disk = sum(len(stored(wsp(conf, m), base - 10).keys() & expected.keys())
                  for m in METRICS if wsp(conf, m).exists())
    assert on_disk < len(METRICS) * STEPS / 2, "most points reached disk: the kill proves little"

    cache = CadentProcess(conf, "cache", log_path=tmp_path / "cache-2.log").start()
    api = None
    try:
        s = cache.settings
        api_port = free_port()
        api_conf = write_api_conf(tmp_path / "api", str(data_dir(conf)), api_port,
                                  carbonlink_hosts=f"{LOCALHOST}:{s['CACHE_QUERY_PORT']}:a")
        api = CadentApi(api_conf, api_port, log_path=tmp_path / "cadent-api.log").start()
        wanted = {(m, t): v for m in METRICS for t, v in expected.items()}
        if wal and interval == 0:
            # nothing the cache held before the kill may be missing: it was fsynced first
            late = {(m, t): v for m, points in last_seen.items() for t, v in points.items()
                    if t not in expected}
            assert late, "the load's points were not seen before the kill"
            wanted.update(late)

        def missing() -> list:
            # a render reads the files, then CarbonLink: a point written in between is in
            # neither, so a point is missing only if no render within the timeout had it
            series = _render(api.url, base)
            for (m, t), v in list(wanted.items()):
                if series.get(m, {}).get(t) == v:
                    del wanted[(m, t)]
            return list(wanted)

        if not wal:
            assert missing()                   # the check can fail: without the log it does
            return
        assert wait_for(lambda: not missing(), 60), (wanted, cache.log_text()[-3000:])
        assert "replayed" in cache.log_text()
    finally:
        if api is not None:
            api.stop()
        cache.stop()
