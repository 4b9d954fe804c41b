"""cadent's whisper fetch against python-whisper's own, on random files and ranges."""

from __future__ import annotations

import math
import random

import whisper

import pytest

from cadent.api.readers import fetch_file, fetch_window, file_info, read_header

LAYOUTS = [[(10, 60), (60, 100)], [(1, 300)], [(7, 50), (70, 50), (700, 50)]]


def _whisper_fetch(path, start, end, now):
    result = whisper.fetch(path, start, end, now=now)
    if result is None:
        return None
    return tuple(result[0]), [None if v is not None and math.isnan(v) else v for v in result[1]]


def test_fetch_matches_python_whisper(tmp_path):
    rng = random.Random(7)
    now = 1_700_000_000
    compared = 0
    for k in range(18):
        path = str(tmp_path / f"f{k}.wsp")
        layout = LAYOUTS[k % len(LAYOUTS)]
        whisper.create(path, layout, aggregationMethod=["average", "max", "sum"][k % 3])
        retention = layout[-1][0] * layout[-1][1]
        for _ in range(rng.randint(0, 300)):
            value = rng.choice([rng.random(), float("nan"), 1e300, -3.0])
            try:
                whisper.update(path, value, now - rng.randint(0, retention + 300), now=now)
            except whisper.TimestampNotCovered:
                pass
        for _ in range(30):
            start = now - rng.randint(-60, retention + 1000)
            end = start + rng.randint(0, retention)
            with open(path, "rb") as fh:
                ours = fetch_file(fh, start, end, now)
            assert ours == _whisper_fetch(path, start, end, now), (layout, start, end)
            compared += ours is not None
    assert compared > 100


def test_header_and_info(tmp_path):
    path = str(tmp_path / "h.wsp")
    whisper.create(path, [(10, 360), (60, 1440)], xFilesFactor=0.25, aggregationMethod="max")
    with open(path, "rb") as fh:
        header = read_header(fh)
    assert header.aggregation_method == "max"
    assert header.max_retention == 86400
    assert header.archives[0][1:] == (10, 360) and header.archives[1][1:] == (60, 1440)
    info = file_info(path)
    assert (info.raw_step, info.x_files_factor, info.max_retention) == (10, 0.25, 86400)


def test_fetch_window_is_whispers_choice_of_archive_and_slots():
    archives = [(10, 600), (60, 6000), (600, 60000)]       # (step, retention), finest first
    now = 100_000
    # the finest archive whose retention covers now - from; slots after from up to until's
    assert fetch_window(archives, now - 600, now - 300, now) == (now - 590, now - 290, 10, 0)
    assert fetch_window(archives, now - 601, now, now) == (99_420, 100_020, 60, 1)
    # from before the retention is clamped to it; a range wholly outside it is None
    assert fetch_window(archives, 0, now, now).archive == 2
    assert fetch_window(archives, 0, now - 60001, now) is None
    assert fetch_window(archives, now + 1, now + 10, now) is None
    # a header's max_retention shorter than its archives clamps first (whisper reads it so)
    assert fetch_window(archives, 0, now, now, max_retention=6000).archive == 1
    # from == until still covers one slot
    assert fetch_window(archives, now - 100, now - 100, now).time_info == (now - 90, now - 80, 10)
    with pytest.raises(ValueError, match="after until"):
        fetch_window(archives, 10, 9, now)


def test_a_leafs_interval_and_an_unreadable_leaf(tmp_path):
    import os

    from cadent.api.finders.whisper import Node, WhisperFinder
    from cadent.api.readers import file_interval

    path = tmp_path / "good.wsp"
    whisper.create(str(path), [(10, 360)])
    os.utime(path, (1_700_000_000, 1_700_000_000))
    assert file_interval(str(path), now=1_700_000_100) == (1_700_000_100 - 3600, 1_700_000_000)
    assert file_interval(str(path), now=1_600_000_000) == (1_600_000_000 - 3600, 1_700_000_000)
    (tmp_path / "bad.wsp").write_bytes(b"not whisper")
    finder = WhisperFinder([str(tmp_path)])
    assert finder.intervals(Node("bad", True, str(tmp_path / "bad.wsp"))) == []
    (start, end), = finder.intervals(Node("good", True, str(path)))
    assert end == 1_700_000_000 and start <= end
