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
