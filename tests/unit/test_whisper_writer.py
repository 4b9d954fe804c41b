import hashlib
import os
import time

import pytest
import whisper

from cadent.compat.storage_aggregation import AggregationRule, StorageAggregation
from cadent.compat.storage_schemas import Schema, StorageSchemas
from cadent.core.write.layout import path_for, relative_path
from cadent.core.write.whisper import WhisperWriter
import re


def schemas():
    return StorageSchemas([Schema("s", "^stats", ((10, 60), (60, 100)), re.compile("^stats"))])


def aggregations():
    return StorageAggregation([AggregationRule("c", "count$", 0.0, "sum", re.compile("count$"))])


@pytest.mark.parametrize("name, rel", [
    ("a.b.c", "a/b/c.wsp"), ("a..b", "a//b.wsp"), (".x.y", "x/y.wsp"), ("a.b.", "a/b/.wsp"),
])
def test_untagged_layout(name, rel):
    assert relative_path(name) == rel
    assert path_for("/d", name) == "/d/" + rel


def test_tagged_layout():
    name = "cpu;dc=x.y;host=h1"
    h = hashlib.sha256(name.encode()).hexdigest()
    assert relative_path(name) == f"_tagged/{h[:3]}/{h[3:6]}/{h}.wsp"
    assert relative_path(name, False) == f"_tagged/{h[:3]}/{h[3:6]}/cpu;dc=x_DOT_y;host=h1.wsp"


def test_create_uses_schema_and_aggregation(tmp_path):
    writer = WhisperWriter(str(tmp_path), schemas(), aggregations())
    assert not writer.exists("stats.hits.count")
    writer.create("stats.hits.count")
    writer.create("other.x")
    info = whisper.info(str(tmp_path / "stats/hits/count.wsp"))
    assert [(a["secondsPerPoint"], a["points"]) for a in info["archives"]] == [(10, 60), (60, 100)]
    assert info["xFilesFactor"] == 0.0 and info["aggregationMethod"] == "sum"
    info = whisper.info(str(tmp_path / "other/x.wsp"))
    assert [(a["secondsPerPoint"], a["points"]) for a in info["archives"]] == [(60, 10080)]
    assert info["xFilesFactor"] == 0.5 and info["aggregationMethod"] == "average"
    writer.create("other.x")  # already there: no error


def test_write_truncates_timestamps_and_aggregates(tmp_path):
    writer = WhisperWriter(str(tmp_path), schemas(), aggregations(), autoflush=True,
                           lock_writes=True)
    now = int(time.time())
    base = now - now % 60 - 120
    writer.create("stats.n.count")
    points = [(base + i * 10 + 0.7, 1.0) for i in range(6)]
    assert writer.write("stats.n.count", points) == 6
    path = writer.path_for("stats.n.count")
    (start, end, step), values = whisper.fetch(path, base - 1, base + 59, archiveToSelect=10)
    assert step == 10 and values[:6] == [1.0] * 6
    (start, end, step), values = whisper.fetch(path, base - 1, base + 59, archiveToSelect=60)
    assert step == 60 and values[0] == 6.0  # sum into the 60 s archive


def test_xff_blocks_propagation(tmp_path):
    agg = StorageAggregation([AggregationRule("x", ".", 0.9, "average", re.compile("."))])
    writer = WhisperWriter(str(tmp_path), schemas(), agg)
    now = int(time.time())
    base = now - now % 60 - 120
    writer.create("stats.partial")
    writer.write("stats.partial", [(base, 4.0), (base + 10, 2.0)])  # 2 of 6 known < 90 %
    (_, _, step), values = whisper.fetch(writer.path_for("stats.partial"), base - 1, base + 59,
                                         archiveToSelect=60)
    assert values[0] is None


def test_tagged_rename_of_unhashed_file(tmp_path):
    name = "cpu;dc=x;host=h1"
    legacy = WhisperWriter(str(tmp_path), tag_hash_filenames=False)
    legacy.create(name)
    old_path = legacy.path_for(name)
    assert os.path.exists(old_path)
    hashed = WhisperWriter(str(tmp_path), tag_hash_filenames=True)
    assert hashed.exists(name)
    assert not os.path.exists(old_path) and os.path.exists(hashed.path_for(name))


def test_metadata(tmp_path):
    writer = WhisperWriter(str(tmp_path), schemas(), aggregations())
    writer.create("x.count")
    assert writer.get_metadata("x.count", "aggregationMethod") == "sum"
    assert writer.set_metadata("x.count", "aggregationMethod", "max") == "sum"
    assert writer.get_metadata("x.count", "aggregationMethod") == "max"
    with pytest.raises(ValueError, match='Unsupported metadata key "xFilesFactor"'):
        writer.get_metadata("x.count", "xFilesFactor")
    with pytest.raises(OSError):
        writer.get_metadata("no.such", "aggregationMethod")


def test_create_links_a_complete_file_into_place_and_leaves_no_temp(tmp_path):
    writer = WhisperWriter(str(tmp_path), schemas(), aggregations())
    writer.create("a.b.c")
    writer.create("a.b.c")                       # existing file: nothing happens
    directory = tmp_path / "a" / "b"
    assert sorted(os.listdir(directory)) == ["c.wsp"]
    info = whisper.info(str(directory / "c.wsp"))
    assert info["archives"] and info["aggregationMethod"]


@pytest.mark.parametrize("options", [
    {}, {"lock_writes": True}, {"fadvise_random": True}, {"autoflush": True},
    {"lock_writes": True, "fadvise_random": True, "autoflush": True},
])
def test_write_leaves_whispers_bytes_whatever_the_options(tmp_path, options):
    """write() works on a bare descriptor; with each option the file holds the bytes
    whisper.file_update_many leaves for the same points."""
    writer = WhisperWriter(str(tmp_path / "mine"), schemas(), aggregations(), **options)
    now = int(time.time())
    base = now - now % 60 - 300  # well inside the 10 s archive: no clock edge to straddle
    name = "stats.x.count"
    writer.create(name)
    ref = str(tmp_path / "ref.wsp")
    whisper.create(ref, [(10, 60), (60, 100)], 0.0, "sum")
    calls = [[(base + i * 10 + 0.5, float(i)) for i in range(12)],
             [(base + 600 + i * 10, 2.0) for i in range(3)],
             [(base + 30.9, 9.0), (base + 10, 8.0)]]
    for points in calls:
        assert writer.write(name, points) == len(points)
        with open(ref, "r+b") as handle:  # the writer's order, timestamps truncated
            whisper.file_update_many(handle, [(int(ts), float(v)) for ts, v in points])
    with open(writer.path_for(name), "rb") as mine, open(ref, "rb") as theirs:
        assert mine.read() == theirs.read()


def test_write_of_a_missing_file_raises_and_leaks_no_descriptor(tmp_path):
    writer = WhisperWriter(str(tmp_path), schemas(), aggregations())
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(FileNotFoundError):
            writer.write("stats.none", [(time.time(), 1.0)])
    writer.create("stats.bad")
    with open(writer.path_for("stats.bad"), "wb") as handle:
        handle.write(b"\0" * 10)  # a damaged file: whisper's own error, descriptor closed
    for _ in range(5):
        with pytest.raises(Exception):
            writer.write("stats.bad", [(time.time(), 1.0)])
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("root", ["", "/data", "/data/", "rel//", "/"])
@pytest.mark.parametrize("name", ["a.b.c", ".x.y", "a..b", "t;b=2;a=1", "/abs.name"])
def test_writer_paths_are_layouts(root, name):
    for hashed in (True, False):
        writer = WhisperWriter(root, tag_hash_filenames=hashed)
        assert writer.path_for(name) == path_for(root, name, hashed)


def test_write_closes_with_the_unpatched_close(tmp_path, monkeypatch):
    """Under gevent's monkey patching os.close costs two more syscalls: write() keeps the
    original, and still closes every descriptor it opens."""
    writer = WhisperWriter(str(tmp_path), schemas(), aggregations())
    writer.create("stats.a")

    def patched_close(fd):
        raise AssertionError("the patched os.close was called")

    monkeypatch.setattr(os, "close", patched_close)
    before = len(os.listdir("/proc/self/fd"))
    now = int(time.time())
    for i in range(5):
        assert writer.write("stats.a", [(now - 100 + 10 * i, float(i))]) == 1
    assert len(os.listdir("/proc/self/fd")) == before
