"""DESTINATION_HEALTH_CHECK on a real cadent-relay: a destination that refuses connections
leaves the ring (its names go exactly where a ring without it puts them) and comes back."""

from __future__ import annotations

import pytest

from tests.e2e.ops_http_helpers import get_json, test_output
from tests.e2e.relay_helpers import relay_conf, send_lines, wait_total
from tests.peers import LOCALHOST, CadentProcess, FakeCarbonSink, free_port, wait_until

pytestmark = pytest.mark.slow

NAMES = [f"app.node{i:03d}.requests" for i in range(600)]


def _send_and_check(relay, sinks, expected, ts):
    """Send one point per name; every point lands on the destination ``expected`` names."""
    for sink in sinks:
        sink.reset()
    send_lines(relay.line_port, [f"{name} 1 {ts}" for name in NAMES])
    assert wait_total(sinks, len(NAMES)) == len(NAMES)
    for instance, sink in zip("abc", sinks):
        dest = sink.destination(instance)
        got = sorted(name for name, _, _ in sink.points())
        assert got == sorted(n for n in NAMES if expected[n] == [dest]), dest


def _counter(port, name):
    return get_json(port, "/stats")["counters"].get(name, 0)


def test_refusing_destination_leaves_the_ring_and_comes_back(tmp_path):
    a, b, c = FakeCarbonSink().start(), FakeCarbonSink().start(), FakeCarbonSink().start()
    try:
        dests = [a.destination("a"), b.destination("b"), c.destination("c")]
        port = free_port()
        conf = relay_conf(tmp_path, dests, HTTP_INTERFACE=LOCALHOST, HTTP_PORT=port,
                          DESTINATION_HEALTH_CHECK=True, HEALTH_CHECK_FAIL_S=1,
                          HEALTH_CHECK_OK_S=1)
        without_c = tmp_path / "without-c"
        without_c.mkdir()
        placed_without_c = test_output("relay", relay_conf(without_c, dests[:2]), NAMES)
        placed_with_c = test_output("relay", conf, NAMES)
        moved = [n for n in NAMES if placed_with_c[n] != placed_without_c[n]]
        assert moved and all(placed_with_c[n] == [dests[2]] for n in moved)

        with CadentProcess(conf) as relay:
            _send_and_check(relay, [a, b, c], placed_with_c, 1700000000)
            c_port = c.port
            c.stop()
            assert wait_until(lambda: _counter(port, "healthCheckRemoved") == 1, 30)
            assert "refused connections" in relay.log_text()
            _send_and_check(relay, [a, b], placed_without_c, 1700000060)

            c = FakeCarbonSink(port=c_port).start()
            assert wait_until(lambda: _counter(port, "healthCheckRestored") == 1, 30)
            key = f"destinations.{dests[2].replace('.', '_')}.healthCheckRestored"
            assert _counter(port, key) == 1
            _send_and_check(relay, [a, b, c], placed_with_c, 1700000120)
    finally:
        for sink in (a, b, c):
            sink.stop()
