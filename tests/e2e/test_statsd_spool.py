"""cadent-statsd's disk spool as real processes: SIGTERM with carbon down spools at once and the
next start delivers; an outage longer than spoolAfterSeconds while running; SIGKILL while
spooling; a spool too small to hold what is left makes the exit status 1."""

from __future__ import annotations

import pickle
import signal
import struct
import time
from pathlib import Path

import pytest

from cadent.core.spool import records
from tests.e2e.statsd_helpers import LOCAL, RawCarbonSink, StatsdDaemon, base_config, mgmt, send_udp
from tests.peers import free_port, wait_until

pytestmark = pytest.mark.slow

FLUSH_MS = 500


def spool_config(tmp_path: Path, sink_port: int, protocol: str = "text", **extra) -> dict:
    """statsd flushing every 0.5 s to a carbon on ``sink_port``, spooling after 0.5 s."""
    config = base_config(sink_port, FLUSH_MS, **{"spoolDir": str(tmp_path / "spool"),
                                                 "spoolAfterSeconds": 0.5, **extra})
    if protocol == "pickle":
        config.update(graphiteProtocol="pickle", graphitePicklePort=sink_port)
    return config


def fresh_ports(config: dict) -> dict:
    """The same config on new input and management ports (for the next start)."""
    return {**config, "port": free_port(), "mgmt_port": free_port()}


def carbon_spool_dir(tmp_path: Path, sink_port: int) -> Path:
    return tmp_path / "spool" / f"{LOCAL.replace('.', '_')}:{sink_port}:None"


def _body_lines(body: bytes, protocol: str) -> list[str]:
    if protocol == "text":
        return body.decode("utf-8").splitlines()
    lines, pos = [], 0
    while pos < len(body):
        size = struct.unpack(">I", body[pos:pos + 4])[0]
        points = pickle.loads(body[pos + 4:pos + 4 + size])  # trusted: our own daemon's frame
        lines.extend(f"{name} {value} {ts}" for name, (ts, value) in points)
        pos += 4 + size
    return lines


def spooled_lines(directory: Path, protocol: str = "text", strict: bool = True) -> list[str]:
    """The lines a spool holds and has not delivered, oldest first, read from its files;
    ``strict=False`` while its daemon runs (a record being written reads as torn)."""
    if not directory.is_dir():
        return []
    cursor = records.read_cursor(str(directory))
    out: list[str] = []
    for segment in records.list_segments(str(directory)):
        path = records.segment_path(str(directory), segment)
        start = cursor[1] if cursor is not None and cursor[0] == segment else 0
        if cursor is not None and segment < cursor[0]:
            continue
        got = records.read_records(path, start, Path(path).stat().st_size, 1 << 30)
        assert not (strict and got.corrupt), path
        for body in got.bodies:
            out.extend(_body_lines(body, protocol))
    return out


def counter_lines(lines: list[str], key: str) -> list[tuple[float, int]]:
    """(value, timestamp) of every ``stats_counts.<key>`` line, in arrival order."""
    out = []
    for line in lines:
        name, value, ts = line.split(" ")
        if name == f"stats_counts.{key}":
            out.append((float(value), int(ts)))
    return out


def send_counters(port: int, key: str, values: list[int], pause_s: float) -> int:
    """One packet per value, ``pause_s`` apart (so they span several flushes); their sum."""
    for value in values:
        send_udp(port, [f"{key}:{value}|c"])
        time.sleep(pause_s)
    return sum(values)


def assert_in_flush_order(got: list[tuple[float, int]]) -> None:
    """Lines arrived in the order the flushes were made (two 0.5 s flushes can share a
    whole-second timestamp; a duplicate shows in the sums the tests check)."""
    stamps = [ts for _, ts in got]
    assert stamps == sorted(stamps), stamps


def wait_counted(port: int, key: str) -> None:
    assert wait_until(lambda: f"'{key}'" in mgmt(port, "counters", "END\n\n"), 10)


@pytest.mark.parametrize("protocol", ["text", "pickle"])
def test_sigterm_with_carbon_down_spools_at_once_and_the_next_start_delivers(tmp_path, protocol):
    sink_port = free_port()                      # nothing listens there: carbon is down
    config = spool_config(tmp_path, sink_port, protocol, shutdownDrainSeconds=60)
    daemon = StatsdDaemon(tmp_path / "first", config).start()
    try:
        total = send_counters(config["port"], "spool.a", [1, 2, 3, 4, 5, 6], FLUSH_MS / 1000)
        send_udp(config["port"], ["spool.last:7|c"])      # the final flush, or the one before
        wait_counted(config["mgmt_port"], "spool.last")
        began = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(30) == 0, daemon.log_text()[-3000:]
        took = time.monotonic() - began
    finally:
        daemon.stop()
    assert took < 10, took                       # not shutdownDrainSeconds
    assert "stay in the spool for the next start" in daemon.log_text()
    spooled = spooled_lines(carbon_spool_dir(tmp_path, sink_port), protocol)
    assert sum(v for v, _ in counter_lines(spooled, "spool.a")) == total
    assert sum(v for v, _ in counter_lines(spooled, "spool.last")) == 7

    sink = RawCarbonSink("line" if protocol == "text" else "pickle", port=sink_port)
    try:
        with StatsdDaemon(tmp_path / "second", fresh_ports(config)) as second:
            assert wait_until(lambda: len(sink.all_lines()) >= len(spooled), 30), \
                second.log_text()[-3000:]
            # the spool first, exactly as it was written, before anything the new run flushes
            assert sink.all_lines()[:len(spooled)] == spooled
            assert wait_until(lambda: not spooled_lines(carbon_spool_dir(tmp_path, sink_port),
                                                        strict=False), 10)
        got = sink.all_lines()
    finally:
        sink.close()
    counts = counter_lines(got, "spool.a")
    assert sum(v for v, _ in counts) == total
    assert_in_flush_order(counts)
    assert sum(v for v, _ in counter_lines(got, "spool.last")) == 7


def test_the_final_flush_itself_is_spooled(tmp_path):
    """No regular flush within the test: what the spool holds is the final flush alone."""
    sink_port = free_port()
    config = spool_config(tmp_path, sink_port, flushInterval=600_000)
    daemon = StatsdDaemon(tmp_path / "first", config).start()
    try:
        send_udp(config["port"], ["spool.f:3|c", "spool.f:4|c", "spool.t:12|ms"])
        wait_counted(config["mgmt_port"], "spool.f")
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(30) == 0, daemon.log_text()[-3000:]
    finally:
        daemon.stop()
    spooled = spooled_lines(carbon_spool_dir(tmp_path, sink_port))
    assert len([line for line in spooled if "graphiteStats.flush_length" in line]) == 1
    assert counter_lines(spooled, "spool.f")[0][0] == 7

    sink = RawCarbonSink(port=sink_port)
    try:
        with StatsdDaemon(tmp_path / "second", fresh_ports(config)):
            assert sink.flush(30) == spooled
    finally:
        sink.close()


def test_carbon_down_longer_than_spool_after_while_running_then_back(tmp_path):
    sink_port = free_port()
    config = spool_config(tmp_path, sink_port)
    directory = carbon_spool_dir(tmp_path, sink_port)
    with StatsdDaemon(tmp_path / "run", config) as daemon:
        total = send_counters(config["port"], "spool.b", [1, 2, 3, 4, 5, 6, 7, 8], 0.3)
        assert wait_until(lambda: counter_lines(spooled_lines(directory, strict=False),
                                                "spool.b"), 10), \
            daemon.log_text()[-3000:]
        sink = RawCarbonSink(port=sink_port)
        try:
            assert wait_until(lambda: sum(v for v, _ in counter_lines(sink.all_lines(), "spool.b"))
                              == total, 30), daemon.log_text()[-3000:]
            assert wait_until(lambda: "replayed; queueing in memory again" in daemon.log_text(), 10)
            total += send_counters(config["port"], "spool.b", [10, 20], 0.3)   # back in memory
            assert wait_until(lambda: sum(v for v, _ in counter_lines(sink.all_lines(), "spool.b"))
                              == total, 10)
            daemon.proc.send_signal(signal.SIGTERM)
            assert daemon.proc.wait(30) == 0
            counts = counter_lines(sink.all_lines(), "spool.b")
        finally:
            sink.close()
    assert sum(v for v, _ in counts) == total
    assert_in_flush_order(counts)
    assert spooled_lines(directory) == []


def test_sigkill_while_spooling_the_next_start_delivers_what_was_spooled(tmp_path):
    sink_port = free_port()
    config = spool_config(tmp_path, sink_port)
    directory = carbon_spool_dir(tmp_path, sink_port)
    daemon = StatsdDaemon(tmp_path / "killed", config).start()
    try:
        send_counters(config["port"], "spool.c", [1, 2, 3, 4, 5], 0.3)
        assert wait_until(lambda: sum(v for v, _ in counter_lines(
            spooled_lines(directory, strict=False), "spool.c")) >= 6, 10)
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(10)
    finally:
        daemon.stop()
    spooled = spooled_lines(directory)
    assert counter_lines(spooled, "spool.c")

    sink = RawCarbonSink(port=sink_port)
    try:
        with StatsdDaemon(tmp_path / "restarted", fresh_ports(config)) as restarted:
            assert wait_until(lambda: len(sink.all_lines()) >= len(spooled), 30), \
                restarted.log_text()[-3000:]
            assert sink.all_lines()[:len(spooled)] == spooled
            assert wait_until(lambda: not spooled_lines(directory, strict=False), 10)
        got = sink.all_lines()
    finally:
        sink.close()
    assert counter_lines(got, "spool.c") == counter_lines(spooled, "spool.c")


def test_several_workers_spool_where_one_worker_replays(tmp_path):
    """Only worker 0 sends, so its spool is the carbon's: a restart with another number of
    workers replays it."""
    sink_port = free_port()
    config = spool_config(tmp_path, sink_port, workers=2)
    daemon = StatsdDaemon(tmp_path / "two", config).start()
    try:
        total = 0
        for value in (1, 2, 3, 4):
            total += value
            send_udp(config["port"], [f"spool.w:{value}|c"] * 10)   # spread over both workers
            time.sleep(FLUSH_MS / 1000)
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(30) == 0, daemon.log_text()[-3000:]
    finally:
        daemon.stop()
    spooled = spooled_lines(carbon_spool_dir(tmp_path, sink_port))
    assert sum(v for v, _ in counter_lines(spooled, "spool.w")) == 10 * total

    sink = RawCarbonSink(port=sink_port)
    try:
        with StatsdDaemon(tmp_path / "one", {**fresh_ports(config), "workers": 1}):
            assert wait_until(lambda: sum(v for v, _ in counter_lines(sink.all_lines(), "spool.w"))
                              == 10 * total, 30)
            assert sink.all_lines()[:len(spooled)] == spooled
    finally:
        sink.close()


def test_exit_status_is_1_when_the_spool_cannot_take_what_is_left(tmp_path):
    sink_port = free_port()
    # the queue keeps the flushes in memory (no spooling while running); at SIGTERM they go
    # to a spool that holds one flush at most
    config = spool_config(tmp_path, sink_port, spoolAfterSeconds=600, spoolMaxBytes=200)
    daemon = StatsdDaemon(tmp_path / "full", config).start()
    try:
        send_counters(config["port"], "spool.d", [1, 2, 3, 4], FLUSH_MS / 1000)
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(30) == 1
    finally:
        daemon.stop()
    log_text = daemon.log_text()
    assert "(spool full)" in log_text
    assert "neither delivered to carbon nor spooled" in log_text
    assert "neither deliver nor spool" in log_text


def test_a_spool_directory_that_cannot_be_used_fails_the_start(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = base_config(free_port(), FLUSH_MS, spoolDir=str(blocker / "spool"))
    daemon = StatsdDaemon(tmp_path / "bad", config, wait_mgmt=False).start()
    try:
        assert daemon.proc.wait(30) != 0
    finally:
        daemon.stop()
    assert "not-a-directory" in daemon.log_text()


def test_without_a_spool_dir_startup_says_the_spool_is_off(tmp_path):
    config = base_config(free_port(), FLUSH_MS)
    with StatsdDaemon(tmp_path / "off", config) as daemon:
        assert wait_until(lambda: "disk spool off (no spoolDir configured)"
                          in daemon.log_text(), 10)

