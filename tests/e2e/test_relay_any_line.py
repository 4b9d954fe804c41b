"""cadent-relay relays any line: statsd lines beside statsd's own proxy.js, regex-keyed lines
byte for byte, on tcp://, udp://, unix:// and http:// listeners — real sockets, real processes."""

from __future__ import annotations

import http.client
import os
import random
import socket
import stat
import time

import pytest

from cadent.core.net.listen import bind_unix_socket
from cadent.core.route.destination import parse_destinations
from cadent.core.route.routers import build_router
from tests.e2e.relay_helpers import relay_conf
from tests.e2e.statsd_helpers import LOCAL, send_udp
from tests.e2e.statsd_relay_helpers import (ByteSink, StatsdNode, etsy_statsd_available,
                                            start_proxy_js, start_statsd_relay, wait_stable)
from tests.e2e.test_config_checks import assert_refused
from tests.peers import CadentProcess, free_port, wait_until

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- statsd

@pytest.mark.skipif(not etsy_statsd_available(), reason="npm statsd not installed (scripts/install-peers.sh)")
def test_statsd_lines_land_on_the_statsd_proxy_js_picks(tmp_path):
    """The same datagrams go to proxy.js and to cadent-relay, both in front of the same two
    real statsd daemons: every key's two counts must meet on one daemon."""
    nodes = [StatsdNode(tmp_path / f"statsd{i}") for i in range(2)]
    proxy = relay = None
    try:
        proxy, proxy_port = start_proxy_js(tmp_path / "proxy", nodes)
        relay, relay_port = start_statsd_relay(tmp_path / "relay", nodes)
        keys = [f"anyline.k{i}" for i in range(120)]
        rng = random.Random(3)
        packets, at = [], 0
        while at < len(keys):  # 1 to 6 lines a datagram, some with a trailing newline or \r\n
            take = rng.randint(1, 6)
            lines = [f"{key}:1|c" for key in keys[at:at + take]]
            at += take
            packet = "\n".join(lines) + rng.choice(["", "\n", "\n\n"])
            packets.append(packet.replace("\n", "\r\n", 1) if take > 2 and rng.random() < 0.3 else packet)
        for port in (proxy_port, relay_port):
            for start in range(0, len(packets), 10):
                send_udp(port, packets[start:start + 10])
                time.sleep(0.01)
        want = 2 * len(keys)
        counts = lambda: [n.counts("anyline.") for n in nodes]  # noqa: E731
        wait_until(lambda: sum(sum(t.values()) for t in counts()) >= want, 60)
        totals = wait_stable(counts, timeout=30)
        assert sum(sum(t.values()) for t in totals) == want, totals
        for key in keys:
            per_node = [t.get(key, 0) for t in totals]
            assert sorted(per_node) == [0, 2], (key, per_node)  # both copies on one daemon
        assert all(totals), "every daemon owns some keys"
    finally:
        for process in (relay, proxy):
            if process is not None:
                process.stop()
        for node in nodes:
            node.stop()


# --------------------------------------------------------------------------- regex, listeners

REGEX = r"^(?P<Timestamp>\d+) (?P<Key>[\w.]+)[ =]"


def _destinations(sinks) -> list[str]:
    return [f"{sink.destination}:{i}" for i, sink in enumerate(sinks)]


def _regex_relay(tmp_path, sinks, **overrides):
    tcp, udp, http_port = free_port(), free_port(), free_port()
    sock_path = str(tmp_path / "relay.sock")
    conf = relay_conf(
        tmp_path, _destinations(sinks), LINE_FORMAT="regex", LINE_KEY_REGEX=REGEX,
        ROUTER_HASH_TYPE="fnv1a_ch", REPLICATION_FACTOR=2, DIVERSE_REPLICAS=False,
        PICKLE_RECEIVER_PORT=0,
        LINE_RECEIVER_PORT=tcp,
        LISTEN=[f"udp://{LOCAL}:{udp}", f"unix://{sock_path}?mode=0600",
                f"http://{LOCAL}:{http_port}/lines"], **overrides)
    relay = CadentProcess(conf, ports=[(LOCAL, tcp), (LOCAL, http_port)])
    return relay, {"tcp": tcp, "udp": udp, "unix": sock_path, "http": http_port}


def _send(kind: str, where, payload: bytes) -> None:
    if kind == "tcp":
        with socket.create_connection((LOCAL, where), timeout=10) as sock:
            sock.sendall(payload)
    elif kind == "unix":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(where)
            sock.sendall(payload)
    elif kind == "udp":
        send_udp(where, [payload])
    else:
        assert _post(where, "/lines", payload)[0] == 204


def _post(port: int, path: str, body: bytes, method: str = "POST") -> tuple[int, dict]:
    conn = http.client.HTTPConnection(LOCAL, port, timeout=10)
    try:
        conn.request(method, path, body=body)
        reply = conn.getresponse()
        reply.read()
        return reply.status, dict(reply.getheaders())
    finally:
        conn.close()


def test_regex_lines_placed_by_the_configured_hash_byte_for_byte_on_every_listener(tmp_path):
    sinks = [ByteSink() for _ in range(3)]
    relay, addresses = _regex_relay(tmp_path, sinks, CARBON_METRIC_INTERVAL=1)
    good = [b"1700000000 app.web%d.req 1 extra \xff\xfe bytes" % i for i in range(40)]
    good += [b"1700000001 app.db%d=5\r" % i for i in range(20)]
    bad = [b"no timestamp here", b"1700000002 !!! key"]
    payload = b"\n".join(good[:30] + bad + good[30:]) + b"\n"
    router = build_router("consistent-hashing", parse_destinations(_destinations(sinks)),
                          replication_factor=2, diverse_replicas=False, hash_type="fnv1a_ch")
    expected = {s.destination: [] for s in sinks}
    for line in good:
        key = line.split(b" ")[1].split(b"=")[0].decode()
        for dest in router.destinations_for(key):
            expected[f"{dest.host}:{dest.port}"].append(line + b"\n")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(addresses["unix"])  # left behind by a relay that died: replaced at start
    stale.close()
    try:
        with relay:
            assert stat.S_IMODE(os.stat(addresses["unix"]).st_mode) == 0o600
            seen = 0
            for kind in ("tcp", "unix", "http", "udp"):
                _send(kind, addresses[kind], payload)
                seen += 2 * len(good)
                assert wait_until(lambda: sum(len(_data_lines(s)) for s in sinks) >= seen, 30), kind
                for sink in sinks:  # each listener delivered exactly what tcp did, in order
                    got = _data_lines(sink)
                    want = expected[sink.destination]
                    assert got[-len(want):] == want if want else True, (kind, sink.destination)
            assert all(expected.values())
            for sink in sinks:
                assert _data_lines(sink) == expected[sink.destination] * 4
            # dropped lines are counted; self-metrics reach the sinks as carbon lines
            assert wait_until(lambda: _self_metric(sinks, "unmatched_lines") == 8, 30)
        assert not os.path.exists(addresses["unix"]), "the socket file is removed at stop"
    finally:
        for sink in sinks:
            sink.close()


def _data_lines(sink: ByteSink) -> list[bytes]:
    return [line for line in sink.received_lines() if not line.startswith(b"carbon.relays.")]


def _self_metric(sinks, name: str) -> float:
    total = 0.0
    for sink in sinks:
        for line in sink.received_lines():
            fields = line.split()
            if fields and fields[0].startswith(b"carbon.relays.") and fields[0].endswith(b"." + name.encode()):
                total += float(fields[1])
    return total / 2  # REPLICATION_FACTOR 2: each self-metric reaches two sinks


def test_http_listener_answers_204_413_404_405_and_503_while_paused(tmp_path):
    dead = free_port()  # nothing listens there yet: its queue fills and pauses the receivers
    http_port, tcp = free_port(), free_port()
    conf = relay_conf(tmp_path, [f"{LOCAL}:{dead}"], LINE_FORMAT="statsd", PICKLE_RECEIVER_PORT=0,
                      LINE_RECEIVER_PORT=tcp, LISTEN=[f"http://{LOCAL}:{http_port}/lines"],
                      HTTP_MAX_BODY_BYTES=4096, MAX_QUEUE_SIZE=100, SPOOL_MAX_BYTES=0,
                      MAX_QUEUE_STALL_SECONDS=600)
    body = b"".join(b"paused.k%d:1|c\n" % i for i in range(150))
    sink = None
    try:
        with CadentProcess(conf, ports=[(LOCAL, http_port)]) as relay:
            assert _post(http_port, "/lines", b"x" * 4097)[0] == 413
            assert _post(http_port, "/other", b"a:1|c")[0] == 404
            assert _post(http_port, "/lines", b"", method="GET")[0] == 405
            assert _post(http_port, "/lines", body)[0] == 204  # queued: now over MAX_QUEUE_SIZE
            status, headers = _post(http_port, "/lines", b"late:1|c")
            assert status == 503 and headers.get("Retry-After") == "1"
            sink = ByteSink(dead)
            assert wait_until(lambda: _post(http_port, "/lines", b"late:1|c\n")[0] == 204, 30)
            assert wait_until(lambda: sink.received_lines().count(b"late:1|c\n") == 1
                              and len(sink.received_lines()) == 151, 30), len(sink.received_lines())
            assert sorted(sink.received_lines()[:150]) == sorted(body.splitlines(keepends=True))
            assert relay.alive
    finally:
        if sink is not None:
            sink.close()


# --------------------------------------------------------------------------- unix socket, config

def test_unix_socket_replaces_a_stale_file_and_refuses_a_live_one_or_a_plain_file(tmp_path):
    path = str(tmp_path / "r.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays behind, nothing listens
    live = bind_unix_socket(path, mode=0o660)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        with pytest.raises(OSError, match="another process"):
            bind_unix_socket(path)
    finally:
        live.close()
    os.unlink(path)
    with open(path, "w") as handle:
        handle.write("not a socket")
    with pytest.raises(OSError, match="not a socket"):
        bind_unix_socket(path)
    assert open(path).read() == "not a socket"


def test_check_config_refuses_a_bad_key_regex_with_file_and_line(tmp_path):
    conf = relay_conf(tmp_path, [f"{LOCAL}:2103"], LINE_FORMAT="regex",
                      LINE_KEY_REGEX="(?P<Key>[a-z", PICKLE_RECEIVER_PORT=0)
    line = next(i for i, text in enumerate(conf.read_text().splitlines(), 1)
                if text.startswith("LINE_KEY_REGEX"))
    assert_refused("relay", conf, f"{conf}:{line}", "regular expression")


def test_bench_counts_every_line_cadent_relay_relays():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "statsd_relay_bench.py"
    spec = importlib.util.spec_from_file_location("bench_statsd_relay", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = bench.run_rate("cadent-relay", rate=5000, seconds=1.0, lpp=10)
    assert row["alive"] and row["sent"] == 5000 and row["received"] == row["sent"], row
