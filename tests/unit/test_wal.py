"""cadent-cache's write-ahead log: real files, a real MetricCache, the log's real thread."""

from __future__ import annotations

import os
import threading
import time

import gevent
import pytest

from cadent.compat.carbon_conf import read_carbon_conf
from cadent.compat.errors import ConfigError
from cadent.compat.wal_settings import wal_config
from cadent.core.cache import MetricCache
from cadent.core.spool import records
from cadent.core import wal as wal_module
from cadent.core.wal import IDLE_SEAL_S, WalConfig, WriteAheadLog


def batch(i: int, n: int = 10) -> list:
    return [(f"m.{i}.{j}", (1_700_000_000 + i, float(j))) for j in range(n)]


def wait_for(predicate, timeout=10.0):
    with gevent.Timeout(timeout):
        while not predicate():
            gevent.sleep(0.01)


def open_log(directory, caches, **kw) -> WriteAheadLog:
    config = WalConfig(directory=str(directory), **kw)
    return WriteAheadLog(config, barrier=lambda: tuple(c.stores for c in caches),
                         unwritten=lambda: tuple(c.oldest_unwritten() for c in caches))


def adder(wal: WriteAheadLog, key: str, least: int = 1):
    """A predicate: the log's counter ``key`` summed over calls has reached ``least``."""
    totals: dict = {}

    def reached() -> bool:
        for name, value in wal.collect_stats().items():
            totals[name] = totals.get(name, 0) + value
        return totals[key] >= least

    reached.totals = totals  # type: ignore[attr-defined]
    return reached


def started(directory, **kw) -> tuple[MetricCache, WriteAheadLog]:
    """A cache and a started log in front of it (nothing to replay)."""
    cache = MetricCache()
    wal = open_log(directory, [cache], **kw)
    wal.replay(cache.store_batch)
    wal.start()
    return cache, wal


def replayed(directory) -> tuple[list, dict]:
    cache = MetricCache()
    wal = open_log(directory, [cache])
    got: list = []
    wal.replay(got.extend)
    return got, wal.collect_stats()


def write_all(cache: MetricCache) -> None:
    while (popped := cache.pop_next()) is not None:
        cache.done(popped[0])


def test_logged_batches_replay_in_order_after_an_unclean_stop(tmp_path):
    cache, wal = started(tmp_path, sync_interval_s=0.05, segment_bytes=1 << 12)
    sent = []
    for i in range(60):
        wal.store(batch(i), cache.store_batch)
        sent.extend(batch(i))
    assert cache.size == len(sent)
    wal.close(written=False)                       # writes what is buffered
    assert len(records.list_segments(str(tmp_path))) > 1      # several segments
    got, stats = replayed(tmp_path)
    assert [(n, tuple(p)) for n, p in got] == sent
    assert stats["wal.replayedPoints"] == len(sent) and stats["wal.corruptRecords"] == 0


def test_points_reach_the_file_within_the_sync_interval(tmp_path):
    cache, wal = started(tmp_path, sync_interval_s=0.2)
    wal.store(batch(1), cache.store_batch)
    path = records.segment_path(str(tmp_path), 0)
    synced = adder(wal, "wal.syncs")
    wait_for(synced, timeout=5)
    stats = synced.totals
    assert stats["wal.appendedPoints"] == 10
    assert stats["wal.bytes"] == os.path.getsize(path)
    got, _ = replayed(tmp_path)          # read while the log is open, as after a SIGKILL
    assert len(got) == 10
    wal.close(written=False)


def test_interval_zero_stores_only_what_is_fsynced(tmp_path):
    cache, wal = started(tmp_path, sync_interval_s=0)
    seen = []

    def store(b):
        # the whole batch is in the file before the cache gets it
        seen.append(len(replayed(tmp_path)[0]))
        cache.store_batch(b)

    greenlets = [gevent.spawn(wal.store, batch(i), store) for i in range(20)]
    gevent.joinall(greenlets, timeout=20, raise_error=True)
    assert all(g.successful() for g in greenlets)
    assert cache.size == 200 and min(seen) >= 10
    syncs = wal.collect_stats()["wal.syncs"]
    assert 1 <= syncs <= 20                       # group commit: batches share fsyncs
    wal.close(written=False)


def test_segments_go_once_every_cache_has_written_them(tmp_path):
    a, b = MetricCache(), MetricCache()

    def both(points):
        a.store_batch(points)
        b.store_batch(points)

    wal = open_log(tmp_path, [a, b], sync_interval_s=0.05, segment_bytes=1 << 12)
    wal.replay(both)
    wal.start()
    for i in range(40):
        wal.store(batch(i), both)
    wait_for(lambda: len(records.list_segments(str(tmp_path))) >= 3)
    assert wal.release() == []                   # nothing written yet
    write_all(a)
    assert wal.release() == []                   # b has not written them
    write_all(b)
    released = wal.release()
    assert released and wal.segments == 1        # only the open segment is left
    wait_for(lambda: records.list_segments(str(tmp_path)) == [max(released) + 1])
    wal.close(written=False)


def test_in_flight_and_requeued_points_keep_their_segment(tmp_path):
    cache, wal = started(tmp_path, sync_interval_s=0.05, segment_bytes=1 << 10)
    for i in range(40):
        wal.store(batch(i, 3), cache.store_batch)
    assert wal.segments > 1
    others = {name for i in range(40) for name, _ in batch(i, 3)} - {"m.0.0"}
    popped = cache.pop_next(skip=others)           # a metric of the first segment
    assert popped[0] == "m.0.0"
    write_all(cache)
    assert wal.release() == []                   # one metric still in flight
    cache.requeue(*popped)
    assert wal.release() == []                   # back in the cache, still unwritten
    write_all(cache)
    assert wal.release()
    wal.close(written=False)


def test_a_clean_stop_with_everything_written_leaves_no_log(tmp_path):
    cache, wal = started(tmp_path, sync_interval_s=0.05)
    wal.store(batch(1), cache.store_batch)
    wal.close(written=True)
    assert records.list_segments(str(tmp_path)) == []


@pytest.mark.parametrize("damage", ["torn", "flipped"])
def test_damaged_segments_replay_up_to_the_damage_and_go_on(tmp_path, damage):
    # interval 0 and one receiver: every batch is fsynced alone, so each is a record of its own
    cache, wal = started(tmp_path, sync_interval_s=0, segment_bytes=1 << 11)
    for i in range(30):
        wal.store(batch(i), cache.store_batch)
    wal.close(written=False)
    ids = records.list_segments(str(tmp_path))
    assert len(ids) >= 3
    first = records.segment_path(str(tmp_path), ids[0])
    whole = records.scan_segment(first, 0).points
    size = os.path.getsize(first)
    if damage == "torn":
        os.truncate(first, size - 5)
    else:
        with open(first, "r+b") as f:
            f.seek(size - 3)
            byte = f.read(1)
            f.seek(size - 3)
            f.write(bytes([byte[0] ^ 0xFF]))
    got, stats = replayed(tmp_path)
    assert stats["wal.corruptRecords"] == 1
    assert len(got) == 300 - 10 and whole % 10 == 0   # only the damaged record's batch
    assert got[-1] == batch(29)[-1]                    # later segments still replayed


def test_garbage_files_never_stop_a_start(tmp_path):
    (tmp_path / f"{0:016d}.seg").write_bytes(os.urandom(1000))
    (tmp_path / f"{1:016d}.seg").write_bytes(b"")
    got, stats = replayed(tmp_path)
    assert got == [] and stats["wal.corruptRecords"] == 1


def _conf(tmp_path, text: str):
    path = tmp_path / "carbon.conf"
    path.write_text(f"[cache]\nSTORAGE_DIR = {tmp_path}\n" + text)
    return read_carbon_conf(str(path), "cache")


def test_settings(tmp_path):
    wc = wal_config(_conf(tmp_path, ""))
    assert wc.directory == os.path.join(str(tmp_path), "wal", "cadent-cache-a")
    assert (wc.sync_interval_s, wc.segment_bytes) == (1.0, 64 << 20)
    wc = wal_config(_conf(tmp_path, f"WAL_DIR = {tmp_path}/w\nWAL_SYNC_INTERVAL = 0\n"))
    assert wc.directory == f"{tmp_path}/w" and wc.sync_interval_s == 0
    assert wal_config(_conf(tmp_path, "ENABLE_WAL = false\n")) is None


@pytest.mark.parametrize("text, line", [
    ("WAL_SYNC_INTERVAL = -1\n", 3),
    ("\nWAL_SYNC_INTERVAL = inf\n", 4),
    ("WAL_SEGMENT_BYTES = 100\n", 3),
])
def test_bad_settings_name_the_line(tmp_path, text, line):
    with pytest.raises(ConfigError) as info:
        wal_config(_conf(tmp_path, text))
    assert info.value.line == line


def test_a_failing_disk_is_counted_and_logged_and_the_points_still_cached(tmp_path, caplog):
    cache, wal = started(tmp_path, sync_interval_s=0.05)
    (tmp_path / f"{0:016d}.seg").mkdir()        # the first segment cannot be opened
    wal.store(batch(1), cache.store_batch)
    wait_for(adder(wal, "wal.writeErrors"), timeout=10)
    assert cache.size == 10 and "write failed" in caplog.text
    wal.store(batch(2), cache.store_batch)      # the thread lives on
    assert cache.size == 20
    wal.close(written=False)
    got, stats = replayed(tmp_path)             # and the next start is not refused
    assert got == [] and stats["wal.corruptRecords"] == 1


def test_batches_are_encoded_on_the_loop_before_the_caches_hold_them(tmp_path, monkeypatch):
    encoded: list = []
    real = wal_module.encode_batch

    def encode(points):
        encoded.append((threading.get_ident(), len(points), cache.size))
        return real(points)

    monkeypatch.setattr(wal_module, "encode_batch", encode)
    cache, wal = started(tmp_path, sync_interval_s=0.05)
    for i in range(3):
        wal.store(batch(i), cache.store_batch)
    # marshal's cheap path: no other reference to the points yet
    assert encoded == [(threading.get_ident(), 10, 10 * i) for i in range(3)]
    wal.close(written=False)
    assert len(replayed(tmp_path)[0]) == 30


def test_an_idle_or_old_open_segment_is_sealed_and_then_released(tmp_path, monkeypatch):
    cache, wal = started(tmp_path, sync_interval_s=0.05)
    wal.store(batch(1), cache.store_batch)
    now = time.monotonic()
    assert not wal.seal_idle(now)                # just appended: stays open
    assert wal.release() == []
    assert wal.seal_idle(now + IDLE_SEAL_S + 0.1)
    assert wal.release() == []                   # sealed, its points not yet written
    write_all(cache)
    assert wal.release() == [0]
    wait_for(lambda: records.list_segments(str(tmp_path)) == [])
    wal.store(batch(2), cache.store_batch)       # the next batch starts segment 1
    for i in range(3, 8):                        # busy, but open for too long
        wal.store(batch(i), cache.store_batch)
    later = time.monotonic() + IDLE_SEAL_S / 2
    assert not wal.seal_idle(later)
    monkeypatch.setattr(wal_module, "MAX_SEGMENT_AGE_S", IDLE_SEAL_S / 4)
    assert wal.seal_idle(later)
    wal.close(written=False)
    assert records.list_segments(str(tmp_path)) == [1]
    assert len(replayed(tmp_path)[0]) == 60


@pytest.mark.parametrize("size", [1, 100])
def test_points_that_cannot_be_encoded_are_counted_logged_and_still_cached(tmp_path, caplog,
                                                                           size):
    cache, wal = started(tmp_path, sync_interval_s=0)
    bad = [(f"m.bad.{i}", (1_700_000_000, object())) for i in range(size)]
    kept: list = []
    wal.store(bad, kept.extend)                  # values marshal cannot write
    totals = adder(wal, "wal.encodeErrors")
    wait_for(totals, timeout=10)
    assert totals.totals["wal.encodeErrors"] == size and "cannot be encoded" in caplog.text
    assert kept == bad                           # cached all the same
    wal.store(batch(1), cache.store_batch)       # the log goes on
    assert cache.size == 10
    wal.close(written=False)
    got, stats = replayed(tmp_path)
    assert len(got) == 10 and stats["wal.corruptRecords"] == 0
