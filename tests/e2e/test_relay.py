"""cadent-relay as a real process: real sockets in, fake carbon sinks out."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from tests.e2e.relay_helpers import (BASE_TS, lines, pickle_frame, relay_conf, send_lines,
                                     send_raw, wait_counters, wait_total)
from tests.peers import LOCALHOST, CadentProcess, FakeCarbonSink, free_port, wait_until

pytestmark = pytest.mark.slow


def relay_cli(conf, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "cadent.daemons.relay", "--config", str(conf), *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def placement(conf, names):
    """name -> first destination 'host:port:instance' as `cadent-relay --test` prints it."""
    out = relay_cli(conf, "--test", stdin="\n".join(names) + "\n")
    assert out.returncode == 0, out.stderr
    return {line.split("\t")[0]: line.split("\t")[1:] for line in out.stdout.splitlines()}


@pytest.mark.parametrize("protocol", ["pickle", "line"])
def test_points_reach_the_destination_the_ring_picks(tmp_path, protocol):
    with FakeCarbonSink(protocol) as a, FakeCarbonSink(protocol) as b:
        conf = relay_conf(tmp_path, [a.destination("a"), b.destination("b")], DESTINATION_PROTOCOL=protocol)
        text = lines(2000) + ["float.value 0.1 1700000000.9", "neg.value -3 1700000001"]
        with CadentProcess(conf) as relay:
            send_lines(relay.line_port, text)
            assert wait_total([a, b], len(text)) == len(text)
        where = placement(conf, [t.split()[0] for t in text])
        got = {}
        for sink in (a, b):
            for name, ts, value in sink.points():
                got[name] = (sink.destination(), ts, value)
        assert len(got) == len(text)
        for t in text:
            name, value, ts = t.split()
            dest, got_ts, got_value = got[name]
            assert where[name] == [dest + (":a" if dest == a.destination() else ":b")]
            assert got_value == float(value)
            if protocol == "pickle":
                assert got_ts == float(ts)
            else:
                assert got_ts == int(float(ts))


def test_pickle_input_and_self_metrics(tmp_path):
    with FakeCarbonSink("pickle") as sink:
        conf = relay_conf(tmp_path, [sink.destination("a")], CARBON_METRIC_INTERVAL=1)
        points = [(f"p.{i}", (BASE_TS + i, float(i))) for i in range(3000)]
        with CadentProcess(conf) as relay:
            send_raw(relay.pickle_port, b"".join(pickle_frame(points[i:i + 500]) for i in range(0, 3000, 500)))
            assert sink.wait_for_count(3000, timeout=20) >= 3000
            deadline = time.monotonic() + 10
            names = set()
            while time.monotonic() < deadline and not any(n.endswith(".metricsReceived") for n in names):
                names = {n for n, _, _ in sink.points() if n.startswith("carbon.relays.")}
                time.sleep(0.2)
        received = {(n, ts, v) for n, ts, v in sink.points() if n.startswith("p.")}
        assert received == {(n, float(ts), v) for n, (ts, v) in points}
        assert any(n.endswith("-a.metricsReceived") for n in names), names
        assert any(".destinations.127_0_0_1:%d:a.sent" % sink.port in n for n in names), names


def test_bad_input_costs_only_the_bad_items(tmp_path):
    marker = tmp_path / "pwned"
    with FakeCarbonSink("pickle") as sink:
        conf = relay_conf(tmp_path, [sink.destination("a")], CARBON_METRIC_INTERVAL=1)
        with CadentProcess(conf) as relay:
            evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
            stream = (pickle_frame([("ok.before", (BASE_TS, 1.0))])
                      + struct.pack("!L", len(evil)) + evil
                      + struct.pack("!L", 12) + b"not a pickle"
                      + pickle_frame([("ok.after", (BASE_TS, 2.0))]))
            send_raw(relay.pickle_port, stream + struct.pack("!L", 100) + b"truncated")
            garbage = (b"good.one 1 1700000000\n"
                       b"garbage line without numbers\n"
                       + b"x" * 100_000 + b" 1 1700000000\n"
                       + b"\xff\xfe\xfd 1 1700000000\n"
                       b"nan.value nan 1700000000\n"
                       b"a 1\n"
                       b"good.two 2 1700000000\n")
            send_raw(relay.line_port, garbage)
            assert sink.wait_for_count(4, timeout=15) >= 4
            counters = wait_counters(sink, lambda c: c.get("bad_lines", 0) >= 2 and c.get("oversize_lines")
                                     and c.get("bad_utf8_lines") and c.get("bad_frames", 0) >= 2)
            assert relay.alive
        names = {n for n, _, _ in sink.points() if not n.startswith("carbon.")}
        assert names == {"ok.before", "ok.after", "good.one", "good.two"}
        assert not marker.exists()
        assert counters.get("bad_lines", 0) >= 2, counters
        assert counters.get("oversize_lines") == 1, counters
        assert counters.get("bad_utf8_lines") == 1, counters
        assert counters.get("nan_values") == 1, counters
        assert counters.get("bad_frames") == 2, counters
        assert counters.get("incompleteAtClose") == 1, counters


def test_stalled_destination_slows_the_client_and_loses_nothing(tmp_path):
    """A destination that stops reading makes the relay stop reading: the client blocks."""
    stalled = socket.socket()
    stalled.bind((LOCALHOST, 0))
    stalled.listen(1)
    port = stalled.getsockname()[1]
    conf = relay_conf(tmp_path, [f"{LOCALHOST}:{port}:a"], DESTINATION_PROTOCOL="line",
                      MAX_QUEUE_SIZE=1000, MAX_QUEUE_STALL_SECONDS=600)
    total, chunk = 1_500_000, 50_000   # ~100 MB: far more than the kernel buffers can hide
    pad = "padding.to.make.every.line.long.enough.to.fill.buffers"
    sent = threading.Event()

    def client(relay_port):
        with socket.create_connection((LOCALHOST, relay_port), timeout=120) as sock:
            for start in range(0, total, chunk):
                sock.sendall("".join(f"{pad}.m{i} {i} {BASE_TS}\n"
                                     for i in range(start, start + chunk)).encode())
        sent.set()

    with CadentProcess(conf) as relay:
        sender = threading.Thread(target=client, args=(relay.line_port,), daemon=True)
        sender.start()
        conn, _ = stalled.accept()
        time.sleep(3)
        assert not sent.is_set(), "the client was never slowed down"
        received = 0
        conn.settimeout(30)
        deadline = time.monotonic() + 120
        while received < total and time.monotonic() < deadline:
            data = conn.recv(1 << 20)
            if not data:
                break
            received += data.count(b"\n")
        assert sent.wait(10)
        conn.close()
    stalled.close()
    assert received == total


def test_destination_restart_loses_nothing(tmp_path):
    port = free_port()
    first = FakeCarbonSink("pickle", port=port).start()
    conf = relay_conf(tmp_path, [f"{LOCALHOST}:{port}:a"])
    try:
        with CadentProcess(conf) as relay:
            send_lines(relay.line_port, lines(1000))
            assert first.wait_for_count(1000, timeout=15) == 1000
            first_names = {n for n, _, _ in first.points()}
            first.stop()
            send_lines(relay.line_port, lines(1000, start=1000))
            time.sleep(1.0)
            second = FakeCarbonSink("pickle", port=port).start()
            try:
                send_lines(relay.line_port, lines(1000, start=2000))
                second.wait_for_count(2000, timeout=30)
                names = first_names | {n for n, _, _ in second.points()}
            finally:
                second.stop()
    finally:
        first.stop()
    assert names == {f"m.{i}" for i in range(3000)}


def test_sigterm_delivers_what_was_queued(tmp_path):
    port = free_port()
    conf = relay_conf(tmp_path, [f"{LOCALHOST}:{port}:a"])
    relay = CadentProcess(conf).start()
    try:
        send_lines(relay.line_port, lines(5000))
        time.sleep(0.5)                      # queued: the destination is down
        with FakeCarbonSink("pickle", port=port) as sink:
            os.kill(relay.pid, signal.SIGTERM)
            code = relay.proc.wait(timeout=30)
            assert code == 0
            assert sink.wait_for_count(5000, timeout=5) == 5000
    finally:
        relay.stop()


def test_cli_test_mode_and_check_config(tmp_path):
    conf = relay_conf(tmp_path, ["10.0.0.1:2004:a", "10.0.0.2:2004:b", "[::1]:2104"],
                      REPLICATION_FACTOR=2)
    out = relay_cli(conf, "--test", stdin="foo.bar\nservers.web01.cpu.user\n")
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == ["foo.bar", "servers.web01.cpu.user"]
    for row in rows:
        assert len(row) == 3 and len(set(row[1:])) == 2
        assert set(row[1:]) <= {"10.0.0.1:2004:a", "10.0.0.2:2004:b", "::1:2104:"}
    ok = relay_cli(conf, "--check-config")
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = relay_conf(tmp_path / "bad", ["h:2004:a"], RELAY_METHOD="no-such-method")
    out = relay_cli(bad, "--check-config")
    assert out.returncode == 1 and "no-such-method" in out.stderr


def test_sighup_reloads_relay_rules(tmp_path):
    with FakeCarbonSink("pickle") as a, FakeCarbonSink("pickle") as b:
        rules = ("[to_a]\npattern = ^app\\.\ndestinations = {a}\n\n"
                 "[default]\ndefault = true\ndestinations = {b}\n")
        conf = relay_conf(tmp_path, [a.destination("a"), b.destination("b")], RELAY_METHOD="rules",
                          files={"relay-rules.conf": rules.format(a=a.destination("a"), b=b.destination("b"))})
        with CadentProcess(conf) as relay:
            with socket.create_connection((LOCALHOST, relay.line_port)) as client:
                client.sendall(b"app.one 1 1700000000\nother.one 1 1700000000\n")
                assert wait_total([a, b], 2, timeout=10) == 2
                swapped = rules.format(a=b.destination("b"), b=a.destination("a"))
                (conf.parent / "relay-rules.conf").write_text(swapped)
                os.kill(relay.pid, signal.SIGHUP)
                time.sleep(1.0)
                client.sendall(b"app.two 1 1700000000\nother.two 1 1700000000\n")
                assert wait_total([a, b], 4, timeout=10) == 4
        assert {n for n, _, _ in a.points()} == {"app.one", "other.two"}
        assert {n for n, _, _ in b.points()} == {"other.one", "app.two"}


def test_workers_share_the_ports(tmp_path):
    with FakeCarbonSink("pickle") as a, FakeCarbonSink("pickle") as b:
        conf = relay_conf(tmp_path, [a.destination("a"), b.destination("b")], WORKERS=2)
        with CadentProcess(conf) as relay:
            assert wait_until(lambda: len(relay.tree()) >= 3, timeout=10), "expected a supervisor and two workers"
            threads = [threading.Thread(target=send_lines, args=(relay.line_port, lines(5000, prefix=f"w{k}")))
                       for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert wait_total([a, b], 20000, timeout=30) == 20000


def test_blacklist_whitelist_and_rewrites(tmp_path):
    with FakeCarbonSink("pickle") as sink:
        files = {
            "whitelist.conf": "# only these\n^app\\.\n^sys\\.\n",
            "blacklist.conf": "\\.secret\\.\n",
            "rewrite-rules.conf": "[pre]\n^app\\.old\\. = app.new.\n[post]\n\\.count$ = .total\n",
        }
        conf = relay_conf(tmp_path, [sink.destination("a")], USE_WHITELIST=True,
                          RELAY_REWRITE_RULES=True, CARBON_METRIC_INTERVAL=1, files=files)
        with CadentProcess(conf) as relay:
            send_lines(relay.line_port, [
                "app.old.hits.count 1 1700000000", "app.x.secret.y 2 1700000000",
                "other.metric 3 1700000000", "sys.load 4 1700000000"])
            assert sink.wait_for_count(2, timeout=10) >= 2
            (conf.parent / "blacklist.conf").write_text("^sys\\.\n")
            os.kill(relay.pid, signal.SIGHUP)
            time.sleep(1.0)
            send_lines(relay.line_port, ["sys.load 5 1700000001", "app.x.secret.y 6 1700000001"])
            counters = wait_counters(sink, lambda c: c.get("blacklistMatches", 0) >= 2
                                     and c.get("whitelistRejects", 0) >= 1)
        got = sorted((n, v) for n, _, v in sink.points() if not n.startswith("carbon."))
        assert got == [("app.new.hits.total", 1.0), ("app.x.secret.y", 6.0), ("sys.load", 4.0)]
        assert counters.get("blacklistMatches") == 2 and counters.get("whitelistRejects") == 1, counters


def test_udp_datagrams_up_to_64k(tmp_path):
    with FakeCarbonSink("pickle") as sink:
        udp_port = free_port()
        conf = relay_conf(tmp_path, [sink.destination("a")], ENABLE_UDP_LISTENER=True,
                          UDP_RECEIVER_INTERFACE=LOCALHOST, UDP_RECEIVER_PORT=udp_port)
        with CadentProcess(conf) as relay:
            datagram = "\n".join(lines(2500, prefix="udp")).encode()
            assert 60_000 < len(datagram) < 65_507
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(datagram, (LOCALHOST, udp_port))
                sock.sendto(b"udp.tail 1 1700000000\ngarbage\n", (LOCALHOST, udp_port))
            assert sink.wait_for_count(2501, timeout=10) == 2501
        assert {n for n, _, _ in sink.points()} == {f"udp.{i}" for i in range(2500)} | {"udp.tail"}


def test_daemon_start_status_stop_verbs(tmp_path):
    with FakeCarbonSink("pickle") as sink:
        conf = relay_conf(tmp_path, [sink.destination("a")])
        pidfile = tmp_path / "relay.pid"
        try:
            started = relay_cli(conf, "--pidfile", str(pidfile), "start")
            assert started.returncode == 0, started.stderr
            assert wait_until(lambda: pidfile.exists(), timeout=10)
            status = relay_cli(conf, "--pidfile", str(pidfile), "status")
            assert status.returncode == 0 and "is running" in status.stdout
            (conf.parent / "carbon.conf").write_text("[relay]\nRELAY_METHOD = broken-now\n")
            stopped = relay_cli(conf, "--pidfile", str(pidfile), "stop")
            assert stopped.returncode == 0 and "stopped" in stopped.stdout
            assert relay_cli(conf, "--pidfile", str(pidfile), "status").returncode == 1
        finally:
            pid = int(pidfile.read_text()) if pidfile.exists() else None
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
