"""cadent-relay's disk spool as real processes: a destination killed under load, the relay
SIGKILLed and restarted during the outage, SIGTERM with a dead destination, a full spool."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter

import pytest

from cadent.compat.relay_settings import load_relay_settings
from cadent.core.parse.pickle import safe_loads
from cadent.core.spool import records
from tests.e2e.relay_helpers import lines, relay_conf, send_lines, wait_counters
from tests.peers import LOCALHOST, CadentProcess, FakeCarbonSink, free_port, wait_until

pytestmark = pytest.mark.slow

RATE = 4000                 # datapoints per second offered (proportions of the 20k/s)
TICK_S = 0.05
MAX_QUEUE = 2000            # a destination's queue fills in ~1 s at this rate


class Background:
    """A daemon thread running ``_loop`` until :meth:`stop`."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class LoadGenerator(Background):
    """Sends ``spool.<i>`` lines at RATE over one TCP connection; pausable, reconnects."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.sent = 0
        self._run = threading.Event()
        self._run.set()
        self._idle = threading.Event()

    def pause(self) -> None:
        """Stop sending and close the connection (returns once nothing is being sent)."""
        self._idle.clear()
        self._run.clear()
        assert self._idle.wait(10)

    def resume(self) -> None:
        self._run.set()

    def stop(self) -> None:
        self._run.set()
        super().stop()

    def _loop(self) -> None:
        per_tick = int(RATE * TICK_S)
        while not self._stop.is_set():
            if not self._run.is_set():
                self._idle.set()
                self._run.wait(1)
                continue
            with socket.create_connection((LOCALHOST, self.port), timeout=30) as sock:
                next_at = time.monotonic()
                while self._run.is_set() and not self._stop.is_set():
                    start = self.sent
                    sock.sendall(("\n".join(lines(per_tick, prefix="spool", start=start))
                                  + "\n").encode())
                    self.sent = start + per_tick
                    next_at += TICK_S
                    time.sleep(max(0.0, next_at - time.monotonic()))


class GapMonitor(Background):
    """Polls a sink's count; the longest time it did not grow while measuring."""

    def __init__(self, sink: FakeCarbonSink) -> None:
        super().__init__()
        self.sink = sink
        self.max_gap = 0.0
        self._measuring = threading.Event()

    def measure(self, on: bool) -> None:
        (self._measuring.set if on else self._measuring.clear)()

    def _loop(self) -> None:
        last_count, last_change = -1, None
        while not self._stop.is_set():
            if not self._measuring.is_set():
                last_change = None
                time.sleep(0.05)
                continue
            count, now = self.sink.count(), time.monotonic()
            if count != last_count or last_change is None:
                last_count, last_change = count, now
            self.max_gap = max(self.max_gap, now - last_change)
            time.sleep(0.05)


def spooled_bodies(directory):
    """Every message in a spool directory not yet delivered, read from its files."""
    if not os.path.isdir(directory):
        return
    cursor = records.read_cursor(str(directory))
    for segment in records.list_segments(str(directory)):
        start = 0
        if cursor is not None:
            if segment < cursor[0]:
                continue
            if segment == cursor[0]:
                start = cursor[1]
        path = records.segment_path(str(directory), segment)
        yield from records.read_records(path, start, os.path.getsize(path), 1 << 30).bodies


def spooled_points(directory) -> int:
    return sum(len(safe_loads(body[4:])) for body in spooled_bodies(directory))


def spooled_names(directory) -> set[str]:
    return {name for body in spooled_bodies(directory) for name, _ in safe_loads(body[4:])}


def data_names(sink) -> list[str]:
    return [n for n, _, _ in sink.points() if n.startswith("spool.")]


def split_by_destination(conf, count, a_port):
    """The names the relay's ring sends to a (the destination on ``a_port``) and to b."""
    router = load_relay_settings(str(conf)).router
    to_a, to_b = set(), set()
    for i in range(count):
        name = f"spool.{i}"
        (dest,) = router.destinations_for(name)
        (to_a if dest.port == a_port else to_b).add(name)
    return to_a, to_b


def test_dead_destination_spools_other_keeps_flowing_relay_sigkilled_nothing_lost(tmp_path):
    a_port = free_port()
    spool_root = tmp_path / "spool"
    a = FakeCarbonSink("pickle", port=a_port).start()
    with FakeCarbonSink("pickle") as b:   # no self-metrics: b's count is the load alone
        conf = relay_conf(tmp_path, [a.destination("a"), b.destination("b")],
                          MAX_QUEUE_SIZE=MAX_QUEUE, SPOOL_DIR=str(spool_root))
        a_spool = spool_root / f"127_0_0_1:{a_port}:a"
        relay = CadentProcess(conf).start()
        load = LoadGenerator(relay.line_port)
        gaps = GapMonitor(b).start()
        a_got: list[str] = []
        try:
            load.start()
            time.sleep(3)
            # a is killed under load; what its kernel had already accepted is TCP's to lose,
            # so the load pauses for the moment of the kill (and only then)
            load.pause()
            to_a, to_b = split_by_destination(conf, load.sent, a_port)
            assert wait_until(lambda: len(set(data_names(a))) == len(to_a), 30)
            a_got += data_names(a)
            a.stop()
            load.resume()
            gaps.measure(True)
            time.sleep(8)
            gaps.measure(False)
            # relay SIGKILLed once everything sent so far is on disk (a) or delivered (b)
            load.pause()
            to_a, to_b = split_by_destination(conf, load.sent, a_port)
            assert wait_until(lambda: len(set(data_names(b))) == len(to_b), 30)
            outage_a = to_a - set(a_got)
            assert wait_until(lambda: spooled_names(a_spool) >= outage_a, 30), \
                len(outage_a - spooled_names(a_spool))
            os.kill(relay.pid, signal.SIGKILL)
            relay.proc.wait(10)
            relay.stop()
            relay = CadentProcess(conf).start()
            load.port = relay.line_port
            load.resume()
            gaps.measure(True)
            time.sleep(8)
            gaps.measure(False)
            a = FakeCarbonSink("pickle", port=a_port).start()
            time.sleep(3)
            load.stop()
            to_a, to_b = split_by_destination(conf, load.sent, a_port)
            assert wait_until(lambda: set(data_names(a)) | set(a_got) >= to_a, 60), \
                len(to_a - set(data_names(a)) - set(a_got))
            assert wait_until(lambda: set(data_names(b)) >= to_b, 30)
            a_got += data_names(a)
            b_got = data_names(b)
            assert wait_until(lambda: spooled_points(a_spool) == 0, 20)
        finally:
            load.stop()
            gaps.stop()
            relay.stop()
            a.stop()
    assert set(a_got) == to_a and set(b_got) == to_b
    duplicates = sum(n - 1 for n in Counter(a_got + b_got).values() if n > 1)
    print(f"sent {load.sent}, longest gap at the live sink {gaps.max_gap:.2f}s, "
          f"duplicates {duplicates}")
    assert duplicates == 0
    assert gaps.max_gap < 1.5, gaps.max_gap


def test_sigterm_with_dead_destination_spools_exits_at_once_next_start_delivers(tmp_path):
    port = free_port()
    conf = relay_conf(tmp_path, [f"{LOCALHOST}:{port}:a"], SPOOL_DIR=str(tmp_path / "spool"),
                      SHUTDOWN_DRAIN_SECONDS=60)
    relay = CadentProcess(conf).start()
    try:
        send_lines(relay.line_port, lines(5000))
        time.sleep(0.5)
        began = time.monotonic()
        os.kill(relay.pid, signal.SIGTERM)
        assert relay.proc.wait(timeout=30) == 0
        assert time.monotonic() - began < 10          # not SHUTDOWN_DRAIN_SECONDS
        assert "stay in the spool" in relay.log_text()
    finally:
        relay.stop()
    assert spooled_points(tmp_path / "spool" / f"127_0_0_1:{port}:a") == 5000
    with FakeCarbonSink("pickle", port=port) as sink, CadentProcess(conf):
        assert sink.wait_for_count(5000, timeout=30) == 5000
        assert sorted(n for n, _, _ in sink.points()) == sorted(f"m.{i}" for i in range(5000))


def test_exit_status_is_non_zero_when_points_could_not_be_delivered_or_spooled(tmp_path):
    port = free_port()
    conf = relay_conf(tmp_path, [f"{LOCALHOST}:{port}:a"], SPOOL_MAX_BYTES=0,
                      SHUTDOWN_DRAIN_SECONDS=1)
    relay = CadentProcess(conf).start()
    try:
        send_lines(relay.line_port, lines(1000))
        time.sleep(0.5)
        os.kill(relay.pid, signal.SIGTERM)
        assert relay.proc.wait(timeout=30) == 1
        assert "1000 datapoints" in relay.log_text()
        assert "neither deliver nor spool" in relay.log_text()
    finally:
        relay.stop()


def test_sigterm_into_a_full_spool_exits_non_zero(tmp_path):
    port = free_port()
    conf = relay_conf(tmp_path, [f"{LOCALHOST}:{port}:a"], SPOOL_DIR=str(tmp_path / "spool"),
                      SPOOL_MAX_BYTES=2000, SPOOL_AFTER_S=60, SHUTDOWN_DRAIN_SECONDS=5)
    relay = CadentProcess(conf).start()
    try:
        # separate batches in its queue: the spool takes the first, then it is full
        for start in range(0, 5000, 1000):
            send_lines(relay.line_port, lines(1000, start=start))
            time.sleep(0.2)
        os.kill(relay.pid, signal.SIGTERM)
        assert relay.proc.wait(timeout=30) == 1
        assert "neither deliver nor spool" in relay.log_text()
    finally:
        relay.stop()
    assert 0 < spooled_points(tmp_path / "spool" / f"127_0_0_1:{port}:a") < 5000


class StalledCarbon:
    """Accepts connections and never reads from them (small receive buffers)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.server.bind((LOCALHOST, 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.server.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        for sock in [self.server, *self.accepted]:
            sock.close()


def test_destination_that_stops_reading_is_spooled_and_sigterm_does_not_wait(tmp_path):
    stalled = StalledCarbon()
    conf = relay_conf(tmp_path, [f"{LOCALHOST}:{stalled.port}:a"],
                      SPOOL_DIR=str(tmp_path / "spool"), SPOOL_AFTER_S=1,
                      MAX_QUEUE_SIZE=10_000_000, SHUTDOWN_DRAIN_SECONDS=60)
    spool_dir = tmp_path / "spool" / f"127_0_0_1:{stalled.port}:a"
    relay = CadentProcess(conf).start()
    try:
        # far more than the socket buffers hold, far less than the queue
        send_lines(relay.line_port, lines(300_000))
        assert wait_until(lambda: spool_dir.is_dir() and spooled_points(spool_dir) > 0, 30)
        assert "not reading for" in relay.log_text()
        began = time.monotonic()
        os.kill(relay.pid, signal.SIGTERM)
        assert relay.proc.wait(timeout=40) == 0
        assert time.monotonic() - began < 20          # not SHUTDOWN_DRAIN_SECONDS
    finally:
        relay.stop()
        stalled.close()
    assert spooled_points(spool_dir) > 0


def test_full_spool_drops_are_counted_at_a_live_destination_and_logged(tmp_path):
    a_port = free_port()
    with FakeCarbonSink("pickle") as b:
        conf = relay_conf(tmp_path, [f"{LOCALHOST}:{a_port}:a", b.destination("b")],
                          SPOOL_DIR=str(tmp_path / "spool"), SPOOL_MAX_BYTES=100_000,
                          MAX_QUEUE_SIZE=1000, CARBON_METRIC_INTERVAL=1)
        with CadentProcess(conf) as relay:
            send_lines(relay.line_port, lines(40_000, prefix="spool"))
            to_a, to_b = split_by_destination(conf, 40_000, a_port)
            key = f"destinations.127_0_0_1:{a_port}:a."
            counters = wait_counters(
                b, lambda c: c.get(key + "fullQueueDrops", 0) + c.get(key + "spooled", 0)
                >= len(to_a), timeout=20)
            drops = counters.get(key + "fullQueueDrops", 0)
            assert drops > 0, counters
            assert wait_until(lambda: set(data_names(b)) >= to_b, 20)
            log_lines = [ln for ln in relay.log_text().splitlines()
                         if "dropped since the previous report" in ln]
            assert len(log_lines) == 1 and "spool full" in log_lines[0], log_lines
            spooled = spooled_names(tmp_path / "spool" / f"127_0_0_1:{a_port}:a")
            assert spooled and spooled < to_a
            with FakeCarbonSink("pickle", port=a_port) as a:
                assert wait_until(lambda: set(data_names(a)) >= spooled, 30)
                got = set(data_names(a))
            # every data point for a either arrived or was counted as dropped
            assert got <= to_a and len(got) + drops >= len(to_a), (len(got), drops, len(to_a))


def test_aggregator_senders_spool_too(tmp_path):
    """The aggregator shares the relay's sender: a dead destination's points survive SIGTERM."""
    from tests.e2e.test_aggregator import aggregator_conf

    port = free_port()
    conf = aggregator_conf(tmp_path, [f"{LOCALHOST}:{port}:a"], rules="", rewrite=None,
                           SPOOL_DIR=str(tmp_path / "spool"), SHUTDOWN_DRAIN_SECONDS=60)
    aggregator = CadentProcess(conf, program="aggregator").start()
    try:
        send_lines(aggregator.line_port, lines(3000))
        time.sleep(0.5)
        began = time.monotonic()
        os.kill(aggregator.pid, signal.SIGTERM)
        assert aggregator.proc.wait(timeout=30) == 0
        assert time.monotonic() - began < 10
    finally:
        aggregator.stop()
    assert spooled_points(tmp_path / "spool" / f"127_0_0_1:{port}:a") == 3000
    with FakeCarbonSink("pickle", port=port) as sink, CadentProcess(conf, program="aggregator"):
        assert sink.wait_for_count(3000, timeout=30) == 3000
        assert sorted(n for n, _, _ in sink.points()) == sorted(f"m.{i}" for i in range(3000))


def test_relay_sigkilled_during_replay_resends_only_what_was_in_flight(tmp_path):
    port = free_port()
    spool = tmp_path / "spool"
    conf = relay_conf(tmp_path, [f"{LOCALHOST}:{port}:a"], SPOOL_DIR=str(spool))
    total = 200_000
    relay = CadentProcess(conf).start()
    sink = None
    try:
        send_lines(relay.line_port, lines(total, prefix="spool"), chunk=20_000)
        names = {f"spool.{i}" for i in range(total)}
        assert wait_until(lambda: spooled_names(spool / f"127_0_0_1:{port}:a") >= names, 60)
        sink = FakeCarbonSink("pickle", port=port).start()
        assert wait_until(lambda: sink.count() > 0, 30, interval=0.005)
        os.kill(relay.pid, signal.SIGKILL)        # most likely in the middle of the replay
        relay.proc.wait(10)
        relay.stop()
        killed_at = sink.count()
        relay = CadentProcess(conf).start()
        assert wait_until(lambda: set(data_names(sink)) >= names, 60)
        got = data_names(sink)
    finally:
        relay.stop()
        if sink is not None:
            sink.stop()
    duplicates = len(got) - len(set(got))
    print(f"killed after {killed_at} of {total} replayed; duplicates {duplicates}")
    assert duplicates <= 8 * 500 * 2     # the replay write in flight, never the whole spool
