"""Hostile pickle input to real cadent-relay and cadent-cache processes: the connection
survives, no line is injected downstream, no file is named after a broken name."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.e2e.cache_helpers import cache_conf, data_dir, stored, wait_for, wsp
from tests.e2e.relay_helpers import BASE_TS, pickle_frame, relay_conf, wait_counters
from tests.peers import LOCALHOST, CadentProcess, FakeCarbonSink

pytestmark = pytest.mark.slow

DEPTH = 300001
NESTED_LISTS = b"\x80\x02" + b"]" * DEPTH + b"a" * (DEPTH - 1) + b"."
NESTED_TUPLES = b"\x80\x02])" + b"\x85" * DEPTH + b"a."


def raw_frame(body: bytes) -> bytes:
    return struct.pack("!L", len(body)) + body


def test_deeply_nested_frames_cost_only_themselves(tmp_path):
    with FakeCarbonSink("pickle") as sink:
        conf = relay_conf(tmp_path, [sink.destination("a")], CARBON_METRIC_INTERVAL=1,
                          PICKLE_RECEIVER_MAX_LENGTH=4 * DEPTH)
        with CadentProcess(conf) as relay:
            with socket.create_connection((LOCALHOST, relay.pickle_port), timeout=30) as client:
                for i, body in enumerate([NESTED_LISTS, NESTED_TUPLES]):
                    client.sendall(raw_frame(body) + pickle_frame([(f"after.{i}", (BASE_TS, 1.0))]))
                    assert sink.wait_for_count(i + 1, timeout=30) >= i + 1
                counters = wait_counters(sink, lambda c: c.get("bad_items", 0) >= 2, timeout=20)
            assert relay.alive
        names = [n for n, _, _ in sink.points() if not n.startswith("carbon.")]
        assert names == ["after.0", "after.1"]
        assert counters.get("bad_items") == 2, counters


HOSTILE_NAMES = ["evil\nstats.injected 666 1700000000", "two words", "tab\tbed", "cr\rname",
                 "", "nbsp\xa0name", "sep\u2028name", "fs\x1cname"]


def test_pickled_names_cannot_inject_lines(tmp_path):
    hostile = HOSTILE_NAMES
    points = [(name, (BASE_TS, 1.0)) for name in hostile]
    good = [("ok.one", (BASE_TS, 2.0)), ("ok.two", (BASE_TS, 3.0))]
    with FakeCarbonSink("line") as sink:
        conf = relay_conf(tmp_path, [sink.destination("a")], DESTINATION_PROTOCOL="line",
                          CARBON_METRIC_INTERVAL=1)
        with CadentProcess(conf) as relay:
            with socket.create_connection((LOCALHOST, relay.pickle_port), timeout=30) as client:
                client.sendall(pickle_frame(points + good[:1], protocol=0)
                               + pickle_frame(good[1:] + points, protocol=2))
                counters = wait_counters(sink, lambda c: c.get("bad_names", 0) >= 2 * len(hostile),
                                         timeout=20)
            assert relay.alive
            log = relay.log_text()
        assert counters.get("bad_names") == 2 * len(hostile), counters
        assert sink.stats()["errors"] == 0
        received = {n: v for n, _, v in sink.points() if not n.startswith("carbon.")}
        assert received == {"ok.one": 2.0, "ok.two": 3.0}
        assert log.count("line protocol cannot carry") == 1, log


def test_cache_names_no_file_after_a_broken_name_and_survives_nesting(tmp_path):
    conf = cache_conf(tmp_path, CARBON_METRIC_INTERVAL=1)
    ts = float(int(time.time()) // 10 * 10 - 600)
    hostile = [(name.replace("stats.", "test."), (ts, 1.0)) for name in HOSTILE_NAMES]
    with CadentProcess(conf, "cache") as cache:
        with socket.create_connection((LOCALHOST, int(cache.settings["PICKLE_RECEIVER_PORT"])),
                                      timeout=30) as client:
            client.sendall(raw_frame(NESTED_LISTS) + pickle_frame(hostile + [("test.ok", (ts, 5.0))]))
            assert wait_for(lambda: wsp(conf, "test.ok").exists(), 20), cache.log_text()[-3000:]
            client.sendall(raw_frame(NESTED_TUPLES) + pickle_frame([("test.still", (ts, 6.0))]))
            assert wait_for(lambda: wsp(conf, "test.still").exists(), 20), cache.log_text()[-3000:]
        agents = data_dir(conf) / "carbon" / "agents"

        def counted(name):
            return sum(v for f in agents.glob(f"*-a/{name}.wsp")
                       for v in stored(f, time.time() - 900).values())
        assert wait_for(lambda: counted("bad_names") >= len(hostile)
                        and counted("bad_items") >= 2, 30), cache.log_text()[-3000:]
        assert cache.alive
    files = {str(p.relative_to(data_dir(conf))) for p in data_dir(conf).rglob("*.wsp")}
    assert {f for f in files if not f.startswith("carbon/")} == {"test/ok.wsp", "test/still.wsp"}
    assert counted("bad_names") == len(hostile) and counted("bad_items") == 2
