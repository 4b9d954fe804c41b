"""Replay every recorded statsd scenario through the pure engine and compare flush lines."""

from __future__ import annotations

import base64

import pytest

from cadent.statsd.config import statsd_settings
from cadent.statsd.engine import FlushResult, StatsdEngine
from cadent.statsd.mgmt import handle_command
from cadent.statsd.net import TcpLineFramer
from cadent.statsd.proxy import NodeHealth, ProxyRing, handle_proxy_command, points_per_node, route_packet
from tests.vectors import load_vector, normalise_statsd_lines

GOLDEN = load_vector("statsd_golden.json")
SCENARIOS = {s["name"]: s for s in GOLDEN["scenarios"]}
START = 1795300586.0  # the mgmt scenario's 'stats' reply was taken 2 s after startup


def normalise(lines: list[str], suffix: str) -> list[str]:
    assert all(line.endswith("\n") for line in lines)
    return normalise_statsd_lines(lines, suffix)


def replay(scenario):
    """Yield (expected, got) line lists per flush; mgmt replies are checked on the way."""
    settings = statsd_settings(scenario["effective_config"])
    engine = StatsdEngine(settings, now=START)
    now_ms = (START + settings.flush_interval_s) * 1000
    warm = engine.flush(now_ms)
    engine.note_sent(now_ms / 1000, 0, StatsdEngine.payload_length(warm))
    yield scenario["warmup_flush"]["lines"], normalise(warm.lines, settings.global_suffix)
    for step in scenario["steps"]:
        for packet in step["packets"]:
            engine.ingest(packet, now=now_ms / 1000)
        for payload in step.get("tcp_payloads", []):
            packet = TcpLineFramer().feed(payload.encode())  # connection closes: the tail is lost
            if packet is not None:
                engine.ingest(packet, now=now_ms / 1000)
        for reply in step.get("mgmt_replies", []):
            got = handle_command(engine, reply["command"], now=now_ms / 1000)
            assert got.text + ("<EOF>" if got.close else "") == reply["reply"], reply["command"]
        now_ms += settings.flush_interval_ms
        result = engine.flush(now_ms)
        engine.note_sent(now_ms / 1000, 0, StatsdEngine.payload_length(result))
        yield step["flush"]["lines"], normalise(result.lines, settings.global_suffix)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_lines(name):
    scenario = SCENARIOS[name]
    assert not scenario["harness_problems"]
    flushes = 0
    for expected, got in replay(scenario):
        assert got == expected
        flushes += 1
    assert flushes == len(scenario["steps"]) + 1


def test_flush_length_is_previous_payload_length():
    scenario = SCENARIOS["counters_legacy_sample_rates"]
    settings = statsd_settings(scenario["effective_config"])
    engine = StatsdEngine(settings, now=START)
    first = engine.flush(START * 1000 + 2000)
    raw = scenario["warmup_flush"]["raw"]
    # Same lines as the recorded payload apart from timestamps/volatile digits of equal width.
    assert StatsdEngine.payload_length(first) == len(raw)
    engine.note_sent(START + 2, 0, len(raw))
    second = engine.flush(START * 1000 + 4000)
    assert second.lines[-1].split(" ")[1] == str(len(raw))


def test_pickle_payload_matches_recording():
    flush = SCENARIOS["pickle_protocol"]["steps"][0]["flush"]
    recorded = base64.b64decode(flush["raw_base64"])
    body = recorded[4:].decode("latin-1")
    # Rebuild the text lines with the real timestamps from the recorded pickle.
    import re

    items = re.findall(r"\(S'([^']*)'\n\(L(\d+)L\nS'([^']*)'\ntta", body)
    lines = [f"{name} {value} {ts}\n" for name, ts, value in items]
    assert FlushResult(int(items[0][1]), lines).pickle_payload() == recorded


def test_batch_form():
    result = FlushResult(100, ["a.b 1.5 100\n", "c Infinity 100\n"])
    assert result.batch() == [("a.b", (100.0, 1.5)), ("c", (100.0, float("inf")))]
    assert result.payload() == b"a.b 1.5 100\nc Infinity 100\n"


def test_mgmt_stats_reply():
    scenario = SCENARIOS["mgmt_interface"]
    expected = next(r["reply"] for r in scenario["steps"][0]["mgmt_replies"] if r["command"] == "stats")
    settings = statsd_settings(scenario["effective_config"])
    engine = StatsdEngine(settings, now=START)
    warm = engine.flush((START + 2) * 1000)
    engine.note_sent(START + 2, 0, StatsdEngine.payload_length(warm))
    for packet in scenario["steps"][0]["packets"]:
        engine.ingest(packet, now=START + 2)
    assert handle_command(engine, "stats", now=START + 2).text == expected


@pytest.mark.parametrize("phase", GOLDEN["proxy"]["phases"], ids=lambda p: p["label"])
def test_proxy_routes(phase):
    ring = ProxyRing(phase["ring_nodes"])
    for key, node in phase["routes"].items():
        assert ring.get(key) == node, key


def test_proxy_health_transitions_match_phases():
    phases = GOLDEN["proxy"]["phases"]
    health = NodeHealth(phases[0]["ring_nodes"])
    assert health.report("127.0.0.1:24203", False)
    assert health.live == phases[1]["ring_nodes"]
    assert not health.report("127.0.0.1:24203", False)
    assert health.report("127.0.0.1:24203", True)
    assert health.live == phases[2]["ring_nodes"]
    for key, node in phases[2]["routes"].items():
        assert health.ring.get(key) == node
    status, close = handle_proxy_command({}, health, "status", 8, "")
    assert status == phases[2]["status_reply"] and not close


def test_proxy_forwarding_split():
    fwd = GOLDEN["proxy"]["forwarding"]
    ring = ProxyRing(GOLDEN["proxy"]["phases"][0]["ring_nodes"])
    got: dict[str, list[str]] = {}
    for datagram in fwd["sent_datagrams"]:
        for node, out in route_packet(ring, datagram.encode()):
            got.setdefault(node, []).append(out.decode())
    assert got == fwd["received_by_node"]
    assert route_packet(ProxyRing([]), b"a:1|c") == []


def test_proxy_mgmt_and_points():
    mgmt = GOLDEN["proxy"]["mgmt"]
    health = NodeHealth(["h:1"])
    state: dict = {}
    for command, reply in mgmt.items():
        assert handle_proxy_command(state, health, command, 0, "")[0] == reply
    assert handle_proxy_command(state, health, "health down", 0, "")[0] == "health: down\n"
    assert handle_proxy_command(state, health, "quit", 0, "")[1] is True
    assert [points_per_node(n) for n in (1, 3, 7, 14)] == [40, 40, 39, 39]
