"""The disk spool on real files, and a sender spooling for a real (gevent) socket peer."""

import os
import pickle
import struct

import gevent
import pytest
from gevent.server import StreamServer

from cadent.core.buffer.queue import PointQueue
from cadent.core.encode.pickle import encode_pickle
from cadent.core.flow import FlowControl
from cadent.core.net.sender import DestinationSender
from cadent.core.parse.pickle import PickleFrameParser
from cadent.core.route.destination import Destination
from cadent.core.spool import Spool
from cadent.core.spool import records
from cadent.core.stats import Stats


def points(n, start=0):
    return [(f"m.{i}", (1700000000.0 + i, float(i))) for i in range(start, start + n)]


def make_spool(directory, **kw):
    kw.setdefault("max_bytes", 1 << 30)
    kw.setdefault("segment_bytes", 4096)
    return Spool(str(directory), encode=encode_pickle, batch_points=100, stats=Stats(), **kw)


def frames(bodies):
    """The datapoints in a list of pickle-framed messages."""
    out = []
    for body in bodies:
        (length,) = struct.unpack_from("!L", body)
        assert length == len(body) - 4
        out.extend(pickle.loads(body[4:]))
    return out


def wait_for(predicate, timeout=10.0):
    with gevent.Timeout(timeout):
        while not predicate():
            gevent.sleep(0.01)


def replay_all(spool, limit=1 << 16):
    got = []
    for _ in range(10_000):
        token = spool.read(limit)
        if token is None or not token.bodies:
            break
        got.extend(frames(token.bodies))
        spool.commit(token)
    return got


def test_append_read_commit_in_order_across_segments(tmp_path):
    spool = make_spool(tmp_path)
    spool.open()
    sent = points(3000)
    for i in range(0, 3000, 250):
        assert spool.append(sent[i:i + 250]) == 0
    wait_for(lambda: spool.points == 3000 and not spool._pending_points and not spool._writing_points)
    assert len(records.list_segments(str(tmp_path))) > 3
    assert replay_all(spool, 5000) == sent
    assert spool.empty
    assert spool.stats.totals["spooled"] == 3000
    assert spool.stats.totals["spoolReplayed"] == 3000
    assert spool.close() == 0


def test_reopen_resumes_after_the_last_commit(tmp_path):
    spool = make_spool(tmp_path)
    spool.open()
    sent = points(2000)
    spool.append(sent[:1000])
    spool.append(sent[1000:])
    assert spool.close() == 0
    again = make_spool(tmp_path)
    again.open()
    assert again.points == 2000
    token = again.read(3000)
    first = frames(token.bodies)
    again.commit(token)
    assert first == sent[:len(first)] and 0 < len(first) < 2000
    assert again.close() == 0
    third = make_spool(tmp_path)
    third.open()
    assert third.points == 2000 - len(first)
    assert replay_all(third) == sent[len(first):]
    third.close()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_torn_or_damaged_tail_is_skipped_and_counted(tmp_path, damage):
    spool = make_spool(tmp_path, segment_bytes=1 << 20)
    spool.open()
    for i in range(5):
        spool.append(points(100, start=i * 100))
        wait_for(lambda: not spool._pending_points and not spool._writing_points)
    spool.close()
    (segment,) = records.list_segments(str(tmp_path))
    path = records.segment_path(str(tmp_path), segment)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        if damage == "truncate":
            f.truncate(size - 7)
        else:
            f.seek(size - 3)
            byte = f.read(1)
            f.seek(size - 3)
            f.write(bytes([byte[0] ^ 0xFF]))
    again = make_spool(tmp_path)
    again.open()
    assert again.corrupt == 1
    assert again.stats.totals["spoolCorruptRecords"] == 1
    got = replay_all(again)
    assert got == points(400)
    assert again.empty
    again.close()


def test_full_spool_refuses_points(tmp_path):
    spool = make_spool(tmp_path, max_bytes=20_000)
    spool.open()
    refused = 0
    for i in range(40):
        refused += spool.append(points(100, start=i * 100))
        wait_for(lambda: not spool._pending_points and not spool._writing_points)
    assert refused > 0
    assert spool.points + refused == 4000
    assert spool.unread_bytes < 20_000 + 10_000
    spool.close()


class Sink:
    """A gevent pickle receiver on 127.0.0.1 recording every datapoint in order."""

    def __init__(self, port=0):
        self.points = []
        self.server = StreamServer(("127.0.0.1", port), self._handle)

    def _handle(self, sock, _addr):
        parser = PickleFrameParser()
        while True:
            data = sock.recv(65536)
            if not data:
                return
            self.points.extend(parser.feed(data))

    def start(self):
        self.server.start()
        return self

    @property
    def port(self):
        return self.server.server_port

    def stop(self):
        self.server.stop(timeout=1)


def free_port():
    server = StreamServer(("127.0.0.1", 0), lambda *a: None)
    server.start()
    port = server.server_port
    server.stop()
    return port


def make_sender(tmp_path, port, flow, **kw):
    destination = Destination("127.0.0.1", port, "a")
    queue = PointQueue("d", kw.pop("max_points", 1000), flow=flow)
    stats = Stats()
    spool = Spool(str(tmp_path / "spool"), encode=encode_pickle, batch_points=100,
                  max_bytes=kw.pop("max_bytes", 1 << 30), stats=stats,
                  prefix=f"destinations.{destination.metric_key}.", flow=flow, segment_bytes=8192)
    return DestinationSender(destination, queue, stats=stats, batch_points=100, spool=spool,
                             backoff_min_s=0.05, backoff_max_s=0.2, connect_timeout_s=1, **kw)


def test_dead_destination_spools_releases_receivers_and_replays_in_order(tmp_path):
    flow = FlowControl()
    port = free_port()
    sender = make_sender(tmp_path, port, flow, spool_after_s=30)
    sender.start()
    sent = points(5000)
    for i in range(0, 5000, 100):
        sender.queue.put(sent[i:i + 100])
        gevent.sleep(0.001)
    # unreachable and full: diverted at once (well before spool_after_s), receivers released
    wait_for(lambda: sender.queue.diverted, timeout=5)
    wait_for(lambda: flow.is_open, timeout=5)
    assert sender.stats.totals.get(sender.prefix + "fullQueueDrops", 0) == 0
    assert not sender.live
    sink = Sink(port).start()
    try:
        wait_for(lambda: len(sink.points) >= 5000, timeout=20)
        wait_for(lambda: not sender.queue.diverted, timeout=10)
        assert sink.points == sent
        sender.queue.put(points(10, start=5000))
        wait_for(lambda: len(sink.points) == 5010)
        assert sink.points == points(5010)
        assert sender.live
    finally:
        assert sender.stop(5) == 0
        sink.stop()


def test_stop_with_dead_destination_spools_and_next_start_delivers(tmp_path):
    flow = FlowControl()
    port = free_port()
    sender = make_sender(tmp_path, port, flow, spool_after_s=30)
    sender.start()
    sender.queue.put(points(300))
    gevent.sleep(0.3)
    assert not sender.queue.diverted            # not full, not down for long: still in memory
    with gevent.Timeout(5):
        assert sender.stop(30) == 0              # at once, not after 30 s
    assert sender.spool.points == 300
    again = make_sender(tmp_path, port, FlowControl(), spool_after_s=30)
    sink = Sink(port).start()
    try:
        again.start()
        again.queue.put(points(5, start=300))
        wait_for(lambda: len(sink.points) >= 305)
        assert sink.points == points(305)
    finally:
        again.stop(5)
        sink.stop()


def test_full_spool_drops_are_counted_and_logged_once(tmp_path, caplog):
    flow = FlowControl()
    sender = make_sender(tmp_path, free_port(), flow, spool_after_s=0.1, max_points=100,
                         max_bytes=5000)
    sender.start()
    dropped = 0
    with caplog.at_level("ERROR"):
        for i in range(50):
            dropped += sender.queue.put(points(100, start=i * 100))
            if dropped:
                sender.count_drops(dropped, "spool full")
                dropped = 0
            gevent.sleep(0.02)
    drops = sender.stats.totals[sender.prefix + "fullQueueDrops"]
    assert drops > 0
    logged = [r for r in caplog.records if "dropped since the previous report" in r.getMessage()]
    assert len(logged) == 1 and "spool full" in logged[0].getMessage()
    sender.stop(1)


def test_spool_settings_from_carbon_conf(tmp_path):
    from cadent.compat.carbon_conf import read_carbon_conf
    from cadent.compat.errors import ConfigError
    from cadent.compat.spool_settings import spool_config, worker_spool

    conf = tmp_path / "carbon.conf"
    conf.write_text(f"[relay]\nSTORAGE_DIR = {tmp_path}/storage\n")
    config = spool_config(read_carbon_conf(str(conf), "relay", "b"))
    assert config.directory == f"{tmp_path}/storage/spool/cadent-relay-b"
    assert (config.max_bytes, config.after_s) == (1 << 30, 2.0)
    assert worker_spool(config, 1) is config
    assert worker_spool(config, 2).directory.startswith(config.directory + "/w")
    conf.write_text(f"[relay]\nSPOOL_DIR = {tmp_path}/s\nSPOOL_MAX_BYTES = 5000\nSPOOL_AFTER_S = 0.5\n")
    config = spool_config(read_carbon_conf(str(conf), "relay"))
    assert (config.directory, config.max_bytes, config.after_s) == (f"{tmp_path}/s", 5000, 0.5)
    conf.write_text("[relay]\nSPOOL_MAX_BYTES = 0\n")
    assert spool_config(read_carbon_conf(str(conf), "relay")) is None
    conf.write_text("[relay]\nSPOOL_MAX_BYTES = -1\n")
    with pytest.raises(ConfigError, match="SPOOL_MAX_BYTES"):
        spool_config(read_carbon_conf(str(conf), "relay"))
    conf.write_text("[relay]\nSPOOL_AFTER_S = -1\n")
    with pytest.raises(ConfigError, match="SPOOL_AFTER_S"):
        spool_config(read_carbon_conf(str(conf), "relay"))


def test_self_metrics_about_a_dead_destination_reach_the_live_one(tmp_path):
    from cadent.core.net.output import RoutedOutput
    from cadent.core.route.routers import build_router
    from cadent.core.spool import SpoolConfig

    sink = Sink().start()
    dead = Destination("127.0.0.1", free_port(), "a")
    live = Destination("127.0.0.1", sink.port, "b")
    router = build_router("consistent-hashing", [dead, live])
    output = RoutedOutput(router, flow=FlowControl(), stats=Stats(), batch_points=100,
                          spool=SpoolConfig(str(tmp_path / "spool"), 1 << 20, 30.0))
    on_dead = [f"carbon.x.{i}" for i in range(200)
               if router.destinations_for(f"carbon.x.{i}") == (dead,)][:5]
    assert on_dead
    output.start()
    try:
        output.send([(f"warm.{i}", (1700000000.0, 1.0)) for i in range(200)])
        wait_for(lambda: output.senders[live].live and output.senders[dead]._down_since)
        output.send_self_metrics([(name, (1700000000.0, 7.0)) for name in on_dead])
        wait_for(lambda: {n for n, _ in sink.points} >= set(on_dead))
        assert not output.senders[dead].live
    finally:
        output.stop(1)
        sink.stop()


def _read_all(path):
    return records.read_records(str(path), 0, os.path.getsize(path), 1 << 30)


def _parts(messages):
    """Header and body of each (points, body), in order, as SegmentFile.append takes them."""
    return [part for points, body in messages
            for part in (records.record_header(points, body), body)]


def test_segment_file_appends_whole_records_seals_and_unlinks(tmp_path):
    seg = records.SegmentFile(str(tmp_path))
    bodies = [b"a" * 10, b"b" * 3000, b""]
    seg.open(7)
    written = seg.append(_parts([(1, bodies[0]), (2, bodies[1])]))
    assert written == seg.size == 2 * records.HEADER.size + 3010 and seg.dirty
    seg.sync()
    assert not seg.dirty
    seg.append(_parts([(0, bodies[2])]))
    path = records.segment_path(str(tmp_path), 7)
    got = _read_all(path)
    assert got.bodies == bodies and got.points == 3 and not got.corrupt
    assert seg.seal() == 7 and seg.fd is None and seg.active == -1
    seg.open(7)                                   # reopened: appends after what is there
    assert seg.size == os.path.getsize(path)
    seg.open(8)                                   # another segment seals this one
    assert seg.active == 8
    seg.unlink(8)
    seg.unlink(8)                                 # already gone: fine
    assert seg.fd is None and records.list_segments(str(tmp_path)) == [7]


def test_segment_file_finishes_a_short_write(tmp_path, monkeypatch):
    seg = records.SegmentFile(str(tmp_path))
    seg.open(0)
    real = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, parts: real(fd, [bytes(parts[0][:5])]))
    seg.append(_parts([(4, b"x" * 100), (5, b"y" * 50)]))
    got = _read_all(records.segment_path(str(tmp_path), 0))
    assert got.bodies == [b"x" * 100, b"y" * 50] and got.points == 9


def test_segment_file_cuts_off_a_failed_append(tmp_path, monkeypatch):
    seg = records.SegmentFile(str(tmp_path))
    seg.open(0)
    seg.append(_parts([(1, b"first")]))
    real = os.writev

    def half_then_full(fd, parts):
        real(fd, [bytes(parts[0])])               # a header lands, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "writev", half_then_full)
    with pytest.raises(OSError):
        seg.append(_parts([(2, b"second")]))
    monkeypatch.setattr(os, "writev", real)
    seg.append(_parts([(3, b"third")]))
    seg.seal()
    got = _read_all(records.segment_path(str(tmp_path), 0))
    assert got.bodies == [b"first", b"third"] and not got.corrupt


def test_the_spool_writes_each_message_once_as_header_and_body(tmp_path, monkeypatch):
    spool = make_spool(tmp_path, segment_bytes=1 << 20)
    spool.open()
    calls = []
    real = os.writev

    def writev(fd, parts):
        calls.append([len(part) for part in parts])
        return real(fd, parts)

    monkeypatch.setattr(os, "writev", writev)
    sent = points(250)
    spool.append(sent)
    wait_for(lambda: spool.stats.totals.get("spooled") == 250)
    # 3 messages of batch_points=100 or fewer, each a header and its body (no joined copy)
    sizes = [size for call in calls for size in call]
    assert sizes[0::2] == [records.HEADER.size] * 3
    (segment,) = records.list_segments(str(tmp_path))
    assert sum(sizes) == os.path.getsize(records.segment_path(str(tmp_path), segment))
    assert replay_all(spool) == sent
    spool.close()
