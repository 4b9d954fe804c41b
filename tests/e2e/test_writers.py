"""cadent-cache with several writers at once: whisper, file and echo from one process."""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.cache_helpers import cache_conf, send_lines, stored, wait_for, wsp
from tests.peers import CadentProcess

pytestmark = pytest.mark.slow


def _lines_of(path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()] if path.exists() else []


def test_whisper_file_and_echo_side_by_side_with_reopen_on_sighup(tmp_path):
    base = tmp_path / "points" / "cadent"
    conf = cache_conf(tmp_path, DATABASE="whisper, file, echo", FILE_WRITER_PATH=str(base))
    start = int(time.time()) // 60 * 60 - 240   # inside the 1s:10m archive
    first = [f"test.fine.a {i} {start + i}" for i in range(5)] + \
            [f"other.b {i * 2} {start + i}" for i in range(5)]
    with CadentProcess(conf, "cache") as cache:
        port = int(cache.settings["LINE_RECEIVER_PORT"])
        send_lines(port, first)
        fine, coarse = tmp_path / "points" / "cadent_1s", tmp_path / "points" / "cadent_10s"
        assert wait_for(lambda: len(_lines_of(fine)) == 5 and len(_lines_of(coarse)) >= 1, 30), \
            cache.log_text()[-3000:]
        assert wait_for(lambda: len(stored(wsp(conf, "test.fine.a"), start - 1, start + 10)) == 5,
                        30)
        # 1s:10m → one line per second; 10s:6h,1m:1d → one 10 s bin: sum 0+2+4+6+8
        assert _lines_of(fine)[0] == ["test.fine.a", "0.0", "0.0", "0.0", "0.0", "1", "1",
                                      str(start * 10**9), str(600 * 10**9)]
        merged = [row for row in _lines_of(coarse) if row[0] == "other.b"]
        assert sum(float(row[1]) for row in merged) == 20.0
        assert sum(int(row[5]) for row in merged) == 5
        assert {(row[6], row[8]) for row in merged} == {("10", str(21600 * 10**9))}
        assert wait_for(lambda: "test.fine.a\t4.0\t4.0" in cache.log_text(), 30)   # echo
        # logrotate: move the file, SIGHUP, and the next points go to a new file by name
        fine.rename(tmp_path / "points" / "rotated")
        cache.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload" in cache.log_text(), 10)
        time.sleep(0.5)
        send_lines(port, [f"test.fine.a 9 {start + 30}"])
        assert wait_for(lambda: len(_lines_of(fine)) == 1, 30), cache.log_text()[-3000:]
        assert _lines_of(fine)[0][7] == str((start + 30) * 10**9)
        assert len(_lines_of(tmp_path / "points" / "rotated")) == 5
        cache.proc.send_signal(signal.SIGTERM)
        assert cache.proc.wait(60) == 0
