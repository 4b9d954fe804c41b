"""cadent-cache and cadent-api against a real Cassandra or ScyllaDB cluster.

Runs only when ``CADENT_TEST_CASSANDRA=host:port`` names one: creates a throwaway keyspace with
``cadent-cache --create-schema`` (replication factor 1), writes through cadent-cache, reads
through cadent-api, and drops the keyspace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.cache_helpers import cache_conf, send_lines
from tests.e2e.graphite_web_helpers import CadentApi, get, write_api_conf
from tests.peers import CadentProcess, free_port, wait_until

ADDRESS = os.environ.get("CADENT_TEST_CASSANDRA", "")
pytestmark = pytest.mark.skipif(not ADDRESS, reason="set CADENT_TEST_CASSANDRA=host:port to run")

SCHEMAS = "[all]\npattern = .*\nretentions = 10s:1d,1m:7d\n"


@pytest.fixture
def keyspace():
    from cassandra.cluster import Cluster

    from cadent.compat.cassandra_settings import parse_host

    name = "cadent_test_" + uuid.uuid4().hex[:10]
    yield name
    cluster = Cluster([parse_host(ADDRESS)], protocol_version=4)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)
    finally:
        cluster.shutdown()


def test_live_cluster_round_trip(tmp_path, keyspace):
    settings = {"DATABASE": "cassandra", "CASSANDRA_HOSTS": ADDRESS, "CASSANDRA_KEYSPACE": keyspace,
                "CASSANDRA_REPLICATION_FACTOR": 1, "CASSANDRA_CONSISTENCY": "ONE"}
    conf = cache_conf(tmp_path, files={"storage-schemas.conf": SCHEMAS}, **settings)
    script = Path(sys.executable).parent / "cadent-cache"
    created = subprocess.run([str(script), "--config", str(conf), "--create-schema"],
                             capture_output=True, text=True, timeout=180)
    assert created.returncode == 0, created.stderr
    base = int(time.time()) // 60 * 60 - 120
    port = free_port()
    api_conf = write_api_conf(tmp_path / "api", str(tmp_path / "none"), port, **settings)
    (api_conf.parent / "storage-schemas.conf").write_text(SCHEMAS)
    with CadentProcess(conf, "cache", log_path=tmp_path / "cache.log") as cache, \
            CadentApi(api_conf, port, log_path=tmp_path / "api.log") as api:
        send_lines(cache.line_port, [f"live.a.x 1 {base}", f"live.a.x 3 {base + 5}",
                                     f"live.a.y 2 {base}"])
        time.sleep(1)
        send_lines(cache.line_port, [f"live.a.x 5 {base + 2}"])     # a later batch, same bin

        def rendered():
            status, body = get(api.url, "/render", {"target": "live.a.*", "from": str(base - 1),
                                                    "until": str(base + 9), "format": "json"})
            return status == 200 and {s["target"]: s["datapoints"][0] for s in json.loads(body)}

        expected = {"live.a.x": [3.0, base], "live.a.y": [2.0, base]}
        assert wait_until(lambda: rendered() == expected, 120, interval=1), rendered()
        status, body = get(api.url, "/metrics/find", {"query": "live.*", "format": "json"})
        assert [(n["path"], n["is_leaf"]) for n in json.loads(body)] == [("live.a", False)]
        assert cache.stop() == 0
