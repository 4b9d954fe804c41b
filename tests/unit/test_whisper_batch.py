"""write_batch, compiled and Python twins, must leave whisper's bytes and answer alike.

Each random batch updates files of random layouts three ways: whisper.file_update_many per
file (the reference, given what carbon gives it: int timestamps, float values), the compiled
twin's write_batch and the Python twin's. The files must be byte-identical after every call
and the results equal (points written, or the same exception).
"""

from __future__ import annotations

import errno
import os
import random

import pytest
import whisper

from tests.unit.test_whisper_update import (METHODS, XFFS, corrupt, random_archives,
                                            random_call, random_value, read)
from tests.unit.twins import twins

MODULE = "cadent.core.write.whisper_batch"
FILES = 6


@pytest.fixture(scope="module")
def both():
    return twins(MODULE)


def drained_points(rng: random.Random, archives, now: int) -> list:
    """What a cache drain hands over, mostly: float timestamps oldest first."""
    step, points = archives[0]
    kind = rng.random()
    count = rng.choice([1, 2, 3, 5, 10, 10, 30, points, points + 1])
    if kind < 0.7:  # one point per interval, maybe off the step's grid
        start = now - rng.randint(0, step * points + 2 * step)
        offset = rng.choice([0.0, 0.0, 0.25, rng.random() * step])
        return [(float(start + i * step) + offset, random_value(rng)) for i in range(count)]
    if kind < 0.8:  # gaps
        start = now - rng.randint(0, step * points)
        return [(float(start + i * step * rng.choice([1, 2])), random_value(rng))
                for i in range(count)]
    return sorted((float(t), v) for t, v in random_call(rng, archives, now))


def reference(path: str, points, now: int):
    """whisper itself, on what carbon's writer gives it."""
    if not points:
        return 0
    with open(path, "r+b") as handle:
        try:
            whisper.file_update_many(handle, [(int(t), float(v)) for t, v in points], now)
        except Exception as exc:
            return type(exc).__name__
    return len(points)


def named(results: list) -> list:
    return [type(r).__name__ if isinstance(r, Exception) else r for r in results]


def make_files(tmp_path, prefix: str, layouts) -> list[str]:
    paths = []
    for i, (archives, xff, method) in enumerate(layouts):
        path = str(tmp_path / f"{prefix}{i}.wsp")
        whisper.create(path, list(archives), xff, method)
        paths.append(path)
    return paths


@pytest.mark.parametrize("block", range(6))
def test_batches_leave_whispers_bytes(tmp_path, both, block):
    compiled, python = both
    for seed in range(block * 60, (block + 1) * 60):
        rng = random.Random(seed)
        layouts = [(random_archives(rng), rng.choice(XFFS + [rng.random()]), rng.choice(METHODS))
                   for _ in range(FILES)]
        ref = make_files(tmp_path, f"r{seed}-", layouts)
        mine = make_files(tmp_path, f"c{seed}-", layouts)
        twin = make_files(tmp_path, f"p{seed}-", layouts)
        now = 1_700_000_000 + rng.randint(0, 10_000)
        for call in range(rng.randint(1, 12)):
            now += rng.choice([0, 1, 60, rng.randint(0, 3000)])
            batches = [drained_points(rng, layout[0], now) if rng.random() < 0.9 else []
                       for layout in layouts]
            expected = [reference(p, b, now) for p, b in zip(ref, batches)]
            assert named(compiled.write_batch(mine, batches, now)) == expected, (seed, call)
            assert named(python.write_batch(twin, batches, now)) == expected, (seed, call)
            for r, c, p in zip(ref, mine, twin):
                assert read(c) == read(r), (seed, call, layouts, batches, now)
                assert read(p) == read(r), (seed, call)


@pytest.mark.parametrize("how", ["xff", "method", "archives", "tiny", "layout", "header-only",
                                 "no-lower-archive", "half-lower-archive"])
def test_damaged_files_fail_alike_and_the_rest_is_written(tmp_path, both, how):
    compiled, python = both
    archives = [(10, 30), (60, 20), (600, 10)]
    now = 1_700_000_000
    points = [(float(now - 50 + 10 * i), float(i)) for i in range(5)]
    outcomes = []
    for name, module in (("c", compiled), ("p", python)):
        good = str(tmp_path / f"{name}-good.wsp")
        bad = str(tmp_path / f"{name}-bad.wsp")
        for path in (good, bad):
            whisper.create(path, list(archives), 0.5, "average")
        with open(bad, "rb") as f:
            data = corrupt(f.read(), how)
        with open(bad, "wb") as f:
            f.write(data)
        results = module.write_batch([bad, good], [points, points], now)
        outcomes.append((named(results), read(bad), read(good)))
    ref_bad = str(tmp_path / "ref-bad.wsp")
    with open(ref_bad, "wb") as f:
        f.write(data)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][0] == reference(ref_bad, points, now)
    assert outcomes[0][1] == read(ref_bad)
    assert outcomes[0][0][1] == len(points)


def test_open_failures_name_the_file_and_spare_the_batch(tmp_path, both):
    archives = [(60, 100)]
    now = 1_700_000_000
    points = [(float(now - 120), 1.0), (float(now - 60), 2.0)]
    for module in both:
        good = str(tmp_path / f"{id(module)}.wsp")
        whisper.create(good, archives)
        missing = str(tmp_path / "missing.wsp")
        results = module.write_batch([missing, str(tmp_path), good], [points] * 3, now)
        assert isinstance(results[0], FileNotFoundError) and results[0].filename == missing
        assert isinstance(results[1], IsADirectoryError) and results[1].errno == errno.EISDIR
        assert results[2] == 2
        assert whisper.fetch(good, now - 180, now, now=now)[1] == [1.0, 2.0, None]


def test_nothing_to_write_opens_nothing(tmp_path, both):
    for module in both:
        assert module.write_batch([str(tmp_path / "absent.wsp")], [[]], 1_700_000_000) == [0]
        assert module.write_batch([], [], 1_700_000_000) == []


@pytest.mark.parametrize("options", [{"lock": True}, {"fadvise_random": True}, {"fsync": True},
                                     {"lock": True, "fadvise_random": True, "fsync": True}])
def test_options_leave_the_same_bytes(tmp_path, both, options):
    rng = random.Random(7)
    archives = [(10, 30), (60, 20)]
    now = 1_700_000_000
    files = []
    for name, module in (("c", both[0]), ("p", both[1]), ("r", None)):
        path = str(tmp_path / f"{name}.wsp")
        whisper.create(path, archives, 0.0, "sum")
        files.append((module, path))
    for _ in range(5):
        now += 10
        points = drained_points(rng, archives, now)
        expected = reference(files[2][1], points, now)
        for module, path in files[:2]:
            assert named(module.write_batch([path], [points], now, **options)) == [expected]
    assert read(files[0][1]) == read(files[2][1]) == read(files[1][1])


def test_odd_points_take_the_python_path(tmp_path, both):
    """Points the C step does not take (not pairs, strings, tuples, huge timestamps, NUL in
    the path) answer what the Python path answers."""
    now = 1_700_000_000
    odd = [[(now, 1.0, 2.0)], [("x", 1.0)], ((float(now), 1.0),), [(2.0 ** 40, 1.0)],
           [(float(now), "nan")], [(-5.0, 1.0)]]
    outcomes = []
    for name, module in (("c", both[0]), ("p", both[1])):
        paths = []
        for i in range(len(odd)):
            path = str(tmp_path / f"{name}{i}.wsp")
            whisper.create(path, [(60, 100), (600, 100)])
            paths.append(path)
        results = module.write_batch(paths + [paths[0] + "\0x", None],
                                     odd + [[(float(now), 1.0)]] * 2, now)
        outcomes.append((named(results), [read(p) for p in paths]))
    assert outcomes[0] == outcomes[1]


def test_whispers_own_switches_hand_everything_to_whisper(tmp_path, both, monkeypatch):
    monkeypatch.setattr(whisper, "LOCK", True)
    now = 1_700_000_000
    points = [(float(now - 60), 1.0), (float(now), 2.0)]
    contents = []
    for module in both:
        path = str(tmp_path / f"{id(module)}.wsp")
        whisper.create(path, [(60, 100)])
        assert module.write_batch([path], [points], now) == [2]
        contents.append(read(path))
    assert contents[0] == contents[1]


def test_now_defaults_to_the_clock(tmp_path, both):
    for module in both:
        path = str(tmp_path / f"{id(module)}.wsp")
        whisper.create(path, [(1, 3600)])
        stamp = float(int(__import__("time").time()) - 10)
        assert module.write_batch([path], [[(stamp, 5.0)]]) == [1]
        assert 5.0 in whisper.fetch(path, stamp - 5, stamp + 5)[1]


def test_paths_may_be_bytes_or_str(tmp_path, both):
    now = 1_700_000_000
    for module in both:
        path = str(tmp_path / f"{id(module)}.wsp")
        whisper.create(path, [(60, 100)])
        assert module.write_batch([os.fsencode(path)], [[(float(now), 1.0)]], now) == [1]
