"""cassandra-driver under gevent's monkey patching, from the cache's writer threads.

The case runs in a fresh monkey-patched interpreter (as cadent-cache runs) against cqlstub as a
process. Under patching the driver picks GeventConnection, whose sessions belong to the loop
that connected them; a writer thread (gevent's ThreadPool: real OS threads) waiting on one
connected on the daemon's loop may fail with LoopExit or hang, depending on timing. So the
:class:`CqlRunner` keeps the session in a thread with a hub of its own, and this shows it
working: four writer threads at once, the gevent loop kept running.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cassandra_helpers import CqlStubProcess
from tests.vectors import REPO_ROOT

pytest.importorskip("cassandra")

RUNNER = r'''
from gevent import monkey; monkey.patch_all()
import json, sys, time, gevent
from gevent.threadpool import ThreadPool
from cadent.compat.cassandra_settings import CassandraConfig
from cadent.core.write.cassandra_io import CqlRunner
runner = CqlRunner(CassandraConfig(hosts=(("127.0.0.1", int(sys.argv[1])),), consistency="ONE",
                                   max_inflight=8))
runner.start()
ticks, gaps = [0], [0.0]
def ticker():
    last = time.monotonic()
    while True:
        gevent.sleep(0.01)
        now = time.monotonic()
        gaps[0], last = max(gaps[0], now - last), now
        ticks[0] += 1
gevent.spawn(ticker)
with gevent.Timeout(30):
    while not runner.connected:
        gevent.sleep(0.05)
def write(thread):
    stmts = [("INSERT INTO metric.segment (pos, segment) VALUES (?, ?)", (thread, "s%d" % i))
             for i in range(200)]
    for _ in range(5):
        runner.run(stmts)
    return thread
before = ticks[0]
pool = ThreadPool(4)
with gevent.Timeout(120):
    done = sorted(r.get() for r in [pool.spawn(write, t) for t in range(4)])
print(json.dumps({"done": done, "ticks": ticks[0] - before, "max_gap": gaps[0],
                  "statements": runner.statements, "errors": runner.errors,
                  "peak_inflight": runner.peak_inflight, "gevent": runner.use_gevent}), flush=True)
runner.close()
'''


def _run(script: str, stub: CqlStubProcess) -> dict:
    out = subprocess.run([sys.executable, "-c", script, str(stub.port)], capture_output=True,
                         text=True, timeout=180, cwd=REPO_ROOT)
    lines = out.stdout.strip().splitlines()
    assert lines, out.stderr[-3000:]
    return json.loads(lines[-1])


def test_the_runner_serves_writer_threads_without_blocking_the_loop(tmp_path):
    with CqlStubProcess(tmp_path / "calls.jsonl") as stub:
        result = _run(RUNNER, stub)
        recorded = stub.records()
    assert result["gevent"] is True
    assert result["done"] == [0, 1, 2, 3]
    assert result["statements"] == 4 * 5 * 200 and result["errors"] == 0
    assert 1 <= result["peak_inflight"] <= 8
    # the loop kept turning while four threads wrote (a generous bound: liveness, not speed)
    assert result["ticks"] > 10 and result["max_gap"] < 5.0, result
    assert len([r for r in recorded if r.get("table") == "segment" and not r.get("error")]) == 4000


def test_errors_from_many_threads_are_logged_once_a_minute(caplog):
    import logging
    import threading

    from cadent.compat.cassandra_settings import CassandraConfig
    from cadent.core.write.cassandra_io import CqlRunner

    runner = CqlRunner(CassandraConfig(hosts=(("127.0.0.1", 9042),)), use_gevent=False)
    with caplog.at_level(logging.ERROR, logger="cadent.core.write.cassandra_io"):
        threads = [threading.Thread(target=lambda: [runner.note_error("write failed: %s", "x")
                                                    for _ in range(50)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert [r.getMessage() for r in caplog.records] == ["write failed: x"]
