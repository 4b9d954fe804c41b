"""The file and echo writers: their TAB-delimited lines, files per resolution, rotation, reopen."""

from __future__ import annotations

import io
import re

from cadent.compat.storage_schemas import Schema, StorageSchemas, parse_retentions
from cadent.core.write.lines import EchoWriter, FileWriter, format_lines


def _schemas() -> StorageSchemas:
    return StorageSchemas([Schema("fine", "^fine\\.", tuple(parse_retentions("1s:10m")),
                                  re.compile("^fine\\.")),
                           Schema("all", ".*", tuple(parse_retentions("10s:6h,1m:1d")),
                                  re.compile(".*"))])


def test_line_fields():
    assert format_lines("a.b", [(100.0, 1.0), (104.0, 2.5), (111.0, 4.0)], 10, 21600) == [
        "a.b\t3.5\t1.75\t1.0\t2.5\t2\t10\t100000000000\t21600000000000\n",
        "a.b\t4.0\t4.0\t4.0\t4.0\t1\t10\t110000000000\t21600000000000\n"]


def test_one_file_per_resolution(tmp_path):
    writer = FileWriter(str(tmp_path / "out" / "points"), _schemas())
    assert writer.write_many([("fine.x", [(100.0, 1.0), (100.5, 3.0)]),
                              ("coarse.y", [(100.0, 2.0)])]) == 3
    assert (tmp_path / "out" / "points_1s").read_text() == \
        "fine.x\t4.0\t2.0\t1.0\t3.0\t2\t1\t100000000000\t600000000000\n"
    assert (tmp_path / "out" / "points_10s").read_text() == \
        "coarse.y\t2.0\t2.0\t2.0\t2.0\t1\t10\t100000000000\t21600000000000\n"
    writer.close()


def test_rotation_at_max_bytes_and_reopen_after_a_move(tmp_path):
    writer = FileWriter(str(tmp_path / "p"), _schemas(), max_bytes=1024, clock=lambda: 0)
    for i in range(40):
        writer.write(f"coarse.series{i:02d}", [(100.0, float(i))])
    rotated = sorted(p.name for p in tmp_path.glob("p_10s.*"))
    assert rotated and rotated[0] == "p_10s.19700101000000"
    lines = [line for p in tmp_path.glob("p_10s*") for line in p.read_text().splitlines()]
    assert sorted(line.split("\t")[0] for line in lines) == [f"coarse.series{i:02d}"
                                                          for i in range(40)]
    assert all(p.stat().st_size < 1024 + 100 for p in tmp_path.glob("p_10s*"))
    # logrotate moves the file away, then SIGHUP: the next write starts a new file by name
    (tmp_path / "p_10s").rename(tmp_path / "moved")
    writer.write("coarse.late", [(100.0, 1.0)])
    assert "coarse.late" in (tmp_path / "moved").read_text()   # the old handle, until reopen
    writer.reopen()
    writer.write("coarse.later", [(100.0, 1.0)])
    assert (tmp_path / "p_10s").read_text().startswith("coarse.later\t")
    writer.close()


def test_echo_writes_the_same_lines():
    out = io.StringIO()
    EchoWriter(_schemas(), out).write("fine.z", [(5.0, 2.0)])
    assert out.getvalue() == "fine.z\t2.0\t2.0\t2.0\t2.0\t1\t1\t5000000000\t600000000000\n"
