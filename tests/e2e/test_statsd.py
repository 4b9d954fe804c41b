"""cadent-statsd as a running process: golden vectors over real sockets, mgmt, SIGTERM,
bad input, huge datagrams, carbon outages, the proxy, the repeater and several workers."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.statsd_helpers import (
    LOCAL,
    RawCarbonSink,
    StatsdDaemon,
    base_config,
    mgmt,
    send_tcp,
    send_udp,
)
from tests.peers import REPO_ROOT, free_port, wait_until
from tests.vectors import load_vector, normalise_statsd_lines as normalise

pytestmark = pytest.mark.slow
GOLDEN = load_vector("statsd_golden.json")
SCENARIOS = {s["name"]: s for s in GOLDEN["scenarios"]}


def _scenario_config(scenario: dict, sink_port: int) -> tuple[dict, dict[int, int]]:
    """effective_config with every port moved to a free one; returns (config, old→new)."""
    config = dict(scenario["effective_config"])
    moved: dict[int, int] = {}

    def move(port: int) -> int:
        if port not in moved:
            moved[port] = free_port()
        return moved[port]

    config["port"] = move(config.get("port", 8125))
    config["mgmt_port"] = move(config.get("mgmt_port", 8126))
    for key in ("graphitePort", "graphitePicklePort"):
        if key in config:
            moved[config[key]] = sink_port
            config[key] = sink_port
    if "servers" in config:
        config["servers"] = [dict(s, port=move(s["port"])) for s in config["servers"]]
    return config, moved


def _run_scenario(name: str, tmp_path) -> list[str]:
    """Replay one scenario against a fresh daemon; returns a list of mismatch descriptions."""
    scenario = SCENARIOS[name]
    protocol = "pickle" if scenario["effective_config"].get("graphiteProtocol") == "pickle" else "line"
    sink = RawCarbonSink(protocol)
    config, moved = _scenario_config(scenario, sink.port)
    suffix = config.get("graphite", {}).get("globalSuffix", "")
    problems = []
    udp_port = config["port"]
    tcp_ports = [s["port"] for s in config.get("servers", []) if s["server"] == "./servers/tcp"]
    if "servers" in config:
        udp_port = next(s["port"] for s in config["servers"] if s["server"] == "./servers/udp")
    # generous bounds: start-up and the first flush may be slow on a busy machine
    with StatsdDaemon(tmp_path / name, config, startup_timeout=60):
        got = normalise(sink.flush(30), suffix)
        if got != scenario["warmup_flush"]["lines"]:
            problems.append(f"{name} warmup: {got} != {scenario['warmup_flush']['lines']}")
        for n, step in enumerate(scenario["steps"]):
            send_udp(udp_port, step["packets"])
            for payload in step.get("tcp_payloads", []):
                send_tcp(tcp_ports[0], payload)
            for expected in step.get("mgmt_replies", []):
                command, want = expected["command"], expected["reply"]
                until = "<EOF>" if want.endswith("<EOF>") else ("END\n\n" if want.endswith("END\n\n") else want[-1:])
                reply = mgmt(config["mgmt_port"], command, None if until == "<EOF>" else until,
                             timeout=10)
                if command == "config":
                    for old, new in moved.items():
                        want = want.replace(f": {old}\n", f": {new}\n")
                if command == "stats":
                    pattern = re.sub(r"\d+", r"\\d+", re.escape(want))
                    if not re.fullmatch(pattern, reply):
                        problems.append(f"{name} mgmt stats: {reply!r}")
                elif reply != want:
                    problems.append(f"{name} mgmt {command!r}: {reply!r} != {want!r}")
            got = normalise(sink.flush(30), suffix)
            if got != step["flush"]["lines"]:
                problems.append(f"{name} step {n}: {got} != {step['flush']['lines']}")
    sink.close()
    return problems


# Scenarios running at once. Each step's packets must reach its daemon within one flush
# interval (1 s for most), so on a loaded 2-core machine only a few daemons run side by side.
GOLDEN_AT_ONCE = 2


def test_golden_scenarios_through_running_daemons(tmp_path):
    """Every recorded scenario, each on its own daemon (one flush clock each), a few at a time."""
    with ThreadPoolExecutor(max_workers=GOLDEN_AT_ONCE) as pool:
        results = list(pool.map(lambda name: _run_scenario(name, tmp_path), sorted(SCENARIOS)))
    problems = [p for r in results for p in r]
    assert not problems, "\n".join(problems[:10])


def _counts(lines: list[str]) -> dict[str, str]:
    return {line.split(" ")[0]: line.split(" ")[1] for line in lines}


def test_config_js_startup_warns_and_fails_cleanly(tmp_path):
    sink = RawCarbonSink()
    config = base_config(sink.port, 1000)
    text = "/* statsd config */\n{\n  " + ",\n  ".join(
        f"{k}: {v!r}".replace("'", '"') for k, v in config.items()) + ",\n  mysteryKey: 3, // unknown\n}\n"
    with StatsdDaemon(tmp_path / "ok", text, wait_mgmt=False) as daemon:
        assert sink.flush(10)
        assert "unknown statsd setting 'mysteryKey'" in daemon.log_text()
    bad = dict(config, flushInterval="soon")
    path = tmp_path / "bad.js"
    path.write_text("(" + repr(bad).replace("'", '"') + ")")
    run = subprocess.run([sys.executable, "-m", "cadent.daemons.statsd", "--config", str(path), "--check-config"],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=30)
    assert run.returncode == 1
    assert "flushInterval" in run.stderr and "configuration error" in run.stderr
    ini = tmp_path / "cadent.conf"
    ini.write_text(f"[statsd]\nport = {config['port']}\nflushInterval = 1000\ngraphiteHost = {LOCAL}\n"
                   f"graphitePort = {sink.port}\n[[graphite]]\nlegacyNamespace = false\n")
    run = subprocess.run([sys.executable, "-m", "cadent.daemons.statsd", "--config", str(ini), "--check-config"],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=30)
    assert run.returncode == 0, run.stderr
    assert "flushInterval 1000 ms" in run.stdout
    sink.close()


def test_sigterm_delivers_a_final_flush(tmp_path):
    sink = RawCarbonSink()
    config = base_config(sink.port, 60000)
    daemon = StatsdDaemon(tmp_path / "term", config).start()
    try:
        send_udp(config["port"], ["last.words:7|c", "last.t:3|ms"])
        assert wait_until(lambda: "last.words" in mgmt(config["mgmt_port"], "counters", "END\n\n"), 5)
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(20)
        assert daemon.proc.returncode == 0
        lines = _counts(sink.flush(5))
        assert lines["stats_counts.last.words"] == "7"
        assert lines["stats.timers.last.t.upper"] == "3"
    finally:
        daemon.stop()
        sink.close()


def _by_name(lines: list[str]) -> dict[str, tuple[str, int]]:
    return {name: (value, int(ts)) for name, value, ts in (line.split(" ") for line in lines)}


@pytest.mark.parametrize("workers", [1, 2])
def test_final_flush_never_rewrites_a_flushed_timestamp(tmp_path, workers):
    """SIGTERM right after a flush: the final flush takes the next interval's timestamp, so
    carbon never gets a second value (the final flush's zeros) for a stored timestamp."""
    interval_s = 5
    sink = RawCarbonSink()
    config = base_config(sink.port, interval_s * 1000, workers=workers)
    daemon = StatsdDaemon(tmp_path / f"final{workers}", config).start()
    try:
        send_udp(config["port"], ["fin.c:5|c", "fin.g:3|g", "fin.t:7|ms", "fin.s:a|s"])
        deadline = time.monotonic() + 30
        while True:
            last = _by_name(sink.flush(max(1.0, deadline - time.monotonic())))
            if last.get("stats_counts.fin.c", ("0",))[0] == "5":
                break
        send_udp(config["port"], ["fin.c:2|c"])
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(30)
        assert daemon.proc.returncode == 0
        final = _by_name(sink.flush(10))
    finally:
        daemon.stop()
        sink.close()
    assert last["stats.gauges.fin.g"][0] == "3" and last["stats.sets.fin.s.count"][0] == "1"
    assert last["stats.timers.fin.t.upper"][0] == "7"
    assert final["stats_counts.fin.c"][0] == "2"
    for name in ("stats_counts.fin.c", "stats.gauges.fin.g", "stats.timers.fin.t.count",
                 "stats.sets.fin.s.count", "stats_counts.statsd.packets_received"):
        # the next flush slot (one second less if the last flush itself ran late)
        assert final[name][1] - last[name][1] >= interval_s - 1, (name, last[name], final[name])
    seen: set[tuple[str, str]] = set()
    for line in sink.all_lines():
        name, _, ts = line.split(" ")
        assert (name, ts) not in seen, f"{name} written twice for {ts}"
        seen.add((name, ts))


def test_bad_lines_and_huge_datagrams(tmp_path):
    sink = RawCarbonSink()
    config = base_config(sink.port, 1000)
    with StatsdDaemon(tmp_path / "bad", config):
        sink.flush(10)
        lines_per_packet = 3000
        big = "\n".join(f"huge.k{i % 1000}:1|c" for i in range(lines_per_packet)).encode()
        assert 30000 < len(big) < 65507
        send_udp(config["port"], ["x:1|c|@+0.5", "y:1|c|@ 0.5", "z:1|ms|@Infinity", "ok:2|c|@0.5", big, big])
        flushes = [_counts(sink.flush(5)) for _ in range(2)]
        lines = {k: v for f in flushes for k, v in f.items() if v not in ("0",)}
        assert lines["stats_counts.statsd.bad_lines_seen"] == "3"
        assert lines["stats_counts.ok"] == "4"
        assert lines["stats_counts.huge.k999"] == "6"
        assert lines["stats_counts.statsd.metrics_received"] == str(4 + 2 * lines_per_packet)


def test_huge_tcp_line_is_dropped_counted_and_does_not_stall_flushes(tmp_path):
    """64 MiB without a newline on a TCP connection: flushes keep their pace, the line is
    counted, and the same connection's next line is taken."""
    sink = RawCarbonSink()
    udp_port, tcp_port = free_port(), free_port()
    config = base_config(sink.port, 1000, servers=[
        {"server": "./servers/udp", "address": LOCAL, "port": udp_port},
        {"server": "./servers/tcp", "address": LOCAL, "port": tcp_port}])
    chunk, chunks = b"x" * (1 << 20), 64
    sent = [0]

    def send_huge() -> None:
        with socket.create_connection((LOCAL, tcp_port), timeout=60) as conn:
            for _ in range(chunks):
                conn.sendall(chunk)
                sent[0] += 1
            conn.sendall(b"\nafter.huge:1|c\n")

    totals: dict[str, float] = {}

    def next_flush(timeout: float) -> dict[str, str]:
        lines = _counts(sink.flush(timeout))
        for name, value in lines.items():
            if name.startswith("stats_counts."):
                totals[name] = totals.get(name, 0.0) + float(value)
        return lines

    with StatsdDaemon(tmp_path / "huge", config) as daemon:
        next_flush(10)
        with ThreadPoolExecutor(max_workers=1) as pool:
            sender = pool.submit(send_huge)
            assert wait_until(lambda: sent[0] >= 4 or sender.done(), 30)
            send_udp(udp_port, ["during.huge:1|c"])
            sent_at = time.monotonic()
            while next_flush(30).get("stats_counts.during.huge") != "1":
                pass
            assert time.monotonic() - sent_at < 10, "a flush waited for the huge line"
            sender.result(60)
        for _ in range(30):
            if totals.get("stats_counts.after.huge") == 1:
                break
            next_flush(10)
        assert totals.get("stats_counts.after.huge") == 1
        assert totals["stats_counts.statsd.lines_too_long"] == 1
        assert totals["stats_counts.statsd.bad_lines_seen"] == 1
        assert "longer than 65536 bytes dropped" in daemon.log_text()
    sink.close()


def test_carbon_down_then_back_loses_nothing(tmp_path):
    sink_port = free_port()
    config = base_config(sink_port, 500)
    with StatsdDaemon(tmp_path / "down", config):
        for i in range(6):  # three seconds of flushes with carbon down
            send_udp(config["port"], [f"outage.c:{i + 1}|c"])
            time.sleep(0.5)
        sink = RawCarbonSink(port=sink_port)
        try:
            assert wait_until(lambda: sum(
                float(line.split()[1]) for line in sink.all_lines()
                if line.startswith("stats_counts.outage.c ")) == 21, 20)
        finally:
            sink.close()


def test_several_workers_sum_exactly(tmp_path):
    sink = RawCarbonSink()
    config = base_config(sink.port, 2000, workers=2, deleteIdleStats=True)
    packets = []
    for p in range(400):
        body = "\n".join([f"mw.c{k}:1|c" for k in range(20)] + [f"mw.t:{p}|ms", f"mw.s:{p % 37}|s",
                          "mw.g:+1|g", "bad line"])
        packets.append(body)
    with StatsdDaemon(tmp_path / "workers", config):
        sink.flush(10)
        time.sleep(0.3)
        send_udp(config["port"], ["mw.g:100|g"])
        time.sleep(0.2)
        for i in range(0, len(packets), 50):
            send_udp(config["port"], packets[i : i + 50])
            time.sleep(0.01)
        totals: dict[str, float] = {}
        for _ in range(3):
            for line in sink.flush(10):
                name, value, _ = line.split(" ")
                if name.startswith(("stats_counts.", "stats.sets.", "stats.timers.mw.t.count",
                                    "stats.gauges.mw.g", "stats.timers.mw.t.upper")) and value != "0":
                    totals[name] = totals.get(name, 0) + float(value) if "count" in name else float(value)
    assert totals["stats_counts.mw.c7"] == 400
    assert totals["stats_counts.statsd.packets_received"] == 401
    assert totals["stats_counts.statsd.metrics_received"] == 1 + 400 * 24
    assert totals["stats_counts.statsd.bad_lines_seen"] == 400
    assert totals["stats.timers.mw.t.count"] == 400
    assert totals["stats.timers.mw.t.upper"] == 399
    assert totals["stats.sets.mw.s.count"] == 37
    assert totals["stats.gauges.mw.g"] == 500  # 100 then +1 400 times: one shard, in order


def test_repeater_udp_and_tcp(tmp_path):
    for proto in ("udp", "tcp"):
        vec = GOLDEN["repeater"][proto]
        if proto == "udp":
            target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            target.bind((LOCAL, 0))
        else:
            target = socket.socket()
            target.bind((LOCAL, 0))
            target.listen(4)
        target.settimeout(5)
        config = base_config(None, 60000, backends=["./backends/repeater"],
                             repeater=[{"host": LOCAL, "port": target.getsockname()[1]}],
                             repeaterProtocol=vec["config"]["repeaterProtocol"])
        with StatsdDaemon(tmp_path / f"rep-{proto}", config):
            for packet in vec["sent"]:
                send_udp(config["port"], [packet])
                time.sleep(0.05)
            if proto == "udp":
                got = [target.recv(65536).decode() for _ in vec["sent"]]
                assert got == vec["received_datagrams"]
            else:
                conn, _ = target.accept()
                conn.settimeout(5)
                want = vec["received_streams"][0]
                data = b""
                while len(data) < len(want.encode()):
                    data += conn.recv(65536)
                assert data.decode() == want
                conn.close()
        target.close()


class _FakeNode:
    """A statsd node for the proxy: records datagrams, answers health checks as told."""

    def __init__(self, port: int, adminport: int) -> None:
        import threading

        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp.bind((LOCAL, port))
        self.udp.settimeout(0.2)
        self.admin = socket.socket()
        self.admin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.admin.bind((LOCAL, adminport))
        self.admin.listen(16)
        self.up = True
        self.received: list[bytes] = []
        self._stop = False
        threading.Thread(target=self._admin, daemon=True).start()
        threading.Thread(target=self._recv, daemon=True).start()

    def _admin(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.admin.accept()
            except OSError:
                return
            if self.up:
                try:
                    conn.recv(100)
                    conn.sendall(b"health: up\n")
                except OSError:
                    pass
            conn.close()

    def _recv(self) -> None:
        while not self._stop:
            try:
                self.received.append(self.udp.recv(65536))
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        self.udp.close()
        try:
            self.admin.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.admin.close()


def test_proxy_routes_like_proxy_js_and_follows_health(tmp_path):
    vec = GOLDEN["proxy"]
    nodes = {f"{n['host']}:{n['port']}": _FakeNode(n["port"], n["adminport"]) for n in vec["config"]["nodes"]}
    config = dict(vec["config"], port=free_port(), mgmt_port=free_port())
    try:
        with StatsdDaemon(tmp_path / "proxy", config, extra_args=["--proxy"]):
            mport = config["mgmt_port"]

            def check_phase(phase):
                want_nodes = phase["status_reply"].split("nodes: ", 1)[1]
                assert wait_until(lambda: mgmt(mport, "status", "\n").endswith("nodes: " + want_nodes), 5)
                for node in nodes.values():
                    node.received.clear()
                send_udp(config["port"], [f"{key}:1|c" for key in phase["routes"]])
                want = {key: node for key, node in phase["routes"].items()}
                assert wait_until(lambda: sum(len(n.received) for n in nodes.values()) == len(want), 5)
                got = {r.decode().split(":1|c")[0]: nid for nid, n in nodes.items() for r in n.received}
                assert got == want, phase["label"]

            phases = {p["label"]: p for p in vec["phases"]}
            check_phase(phases["all_up"])
            fwd = vec["forwarding"]
            for node in nodes.values():
                node.received.clear()
            send_udp(config["port"], fwd["sent_datagrams"])
            want = {nid: sorted(d) for nid, d in fwd["received_by_node"].items()}
            assert wait_until(lambda: {nid: sorted(r.decode() for r in n.received)
                                       for nid, n in nodes.items()} == want, 5)
            nodes["127.0.0.1:24203"].up = False
            check_phase(phases["node_1_down"])
            nodes["127.0.0.1:24203"].up = True
            check_phase(phases["node_1_back"])
            for command, reply in vec["mgmt"].items():
                assert mgmt(mport, command, reply[-1:]) == reply
    finally:
        for node in nodes.values():
            node.close()


def test_proxy_with_tcp_input_forwards_each_line_to_its_node(tmp_path):
    vec = GOLDEN["proxy"]
    nodes = {f"{n['host']}:{n['port']}": _FakeNode(n["port"], n["adminport"]) for n in vec["config"]["nodes"]}
    config = dict(vec["config"], port=free_port(), mgmt_port=free_port(), server="./servers/tcp")
    routes = {p["label"]: p for p in vec["phases"]}["all_up"]["routes"]
    try:
        with StatsdDaemon(tmp_path / "proxy", config, extra_args=["--proxy"]):
            want_nodes = {p["label"]: p for p in vec["phases"]}["all_up"]["status_reply"].split("nodes: ", 1)[1]
            assert wait_until(lambda: mgmt(config["mgmt_port"], "status", "\n").endswith("nodes: " + want_nodes), 5)
            with socket.create_connection((LOCAL, config["port"]), timeout=5) as conn:
                conn.sendall("".join(f"{key}:1|c\n" for key in routes).encode())
            assert wait_until(lambda: sum(len(n.received) for n in nodes.values()) == len(routes), 5)
            got = {r.decode().split(":1|c")[0]: nid for nid, n in nodes.items() for r in n.received}
            assert got == routes
    finally:
        for node in nodes.values():
            node.close()
