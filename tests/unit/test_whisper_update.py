"""update_many must leave exactly the bytes whisper.file_update_many leaves, call after call."""

from __future__ import annotations

import io
import random
import struct

import pytest
import whisper

from cadent.core.write.whisper_update import update_many

METHODS = ["average", "sum", "last", "max", "min", "avg_zero", "absmax", "absmin"]
XFFS = [0.0, 0.1, 0.5, 0.75, 1.0]


def random_archives(rng: random.Random) -> list[tuple[int, int]]:
    """A small archive list whisper.validateArchiveList accepts (small, so archives wrap)."""
    count = rng.choice([1, 1, 2, 2, 2, 3, 3, 4, 6])
    step = rng.choice([1, 2, 5, 10, 60])
    points = rng.randint(3, 40)
    archives = [(step, points)]
    for _ in range(count - 1):
        prev_step, prev_points = archives[-1]
        factor = rng.choice([2, 3, 4, 5, 6])
        factor = min(factor, prev_points)
        if factor < 2:
            break
        step = prev_step * factor
        minimum = prev_step * prev_points // step + 1
        archives.append((step, rng.randint(minimum, minimum + 20)))
    whisper.validateArchiveList(list(archives))
    return archives


def random_value(rng: random.Random) -> float:
    roll = rng.random()
    if roll < 0.05:
        return 0.0
    if roll < 0.08:
        return float("nan")
    if roll < 0.12:
        return -rng.random() * 100
    if roll < 0.15:
        return float(rng.randint(-3, 3))
    return rng.random() * 1000


def random_call(rng: random.Random, archives, now: int) -> list[tuple[int, float]]:
    """One update call: contiguous runs, duplicates, unsorted, future and too-old points."""
    step, _ = archives[0]
    max_retention = max(s * p for s, p in archives)
    first_retention = archives[0][0] * archives[0][1]
    kind = rng.random()
    count = rng.choice([1, 1, 2, 3, 5, 10, 10, 20, 30])
    if kind < 0.35:  # the common case: consecutive points inside the first archive
        start = now - rng.randint(0, first_retention)
        stride = rng.choice([step, step, 1, step * 2, max(1, step // 2)])
        points = [(start + i * stride, random_value(rng)) for i in range(count)]
    elif kind < 0.6:  # anything from the future to beyond max retention, unsorted
        points = [
            (now - rng.randint(-3 * first_retention, int(max_retention * 1.3) + 5), random_value(rng))
            for _ in range(count)
        ]
    elif kind < 0.75:  # sorted newest first, as whisper.update_many would hand them over
        points = sorted(
            ((now - rng.randint(0, max_retention + step), random_value(rng)) for _ in range(count)),
            reverse=True,
        )
    elif kind < 0.9:  # duplicates of a few timestamps
        pool = [now - rng.randint(-step, first_retention) for _ in range(3)]
        points = [(rng.choice(pool), random_value(rng)) for _ in range(count)]
    else:  # a long future run (longer than the first archive): whisper writes past its end
        start = now + rng.randint(-first_retention, first_retention)
        points = [(start + i * step, random_value(rng)) for i in range(archives[0][1] + rng.randint(0, 5))]
    return points


def apply(function, path: str, points, now: int, buffering: int = -1):
    with open(path, "r+b", buffering) as handle:
        try:
            function(handle, list(points), now)
        except Exception as exc:  # both sides must fail the same way
            return type(exc).__name__
    return None


def read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("block", range(8))
def test_matches_whisper_byte_for_byte(tmp_path, block):
    for seed in range(block * 250, (block + 1) * 250):
        rng = random.Random(seed)
        archives = random_archives(rng)
        xff = rng.choice(XFFS + [rng.random()])
        method = rng.choice(METHODS)
        ref, mine = str(tmp_path / f"ref{seed}.wsp"), str(tmp_path / f"mine{seed}.wsp")
        sparse = rng.random() < 0.3
        whisper.create(ref, list(archives), xff, method, sparse)
        whisper.create(mine, list(archives), xff, method, sparse)
        now = 1_700_000_000 + rng.randint(0, 10_000)
        for call in range(rng.randint(1, 25)):
            now += rng.choice([0, 1, archives[0][0], rng.randint(0, 3 * archives[-1][0])])
            points = random_call(rng, archives, now)
            expected_error = apply(whisper.file_update_many, ref, points, now)
            error = apply(update_many, mine, points, now, rng.choice([0, -1]))
            assert error == expected_error, (seed, call)
            assert read(mine) == read(ref), (seed, call, archives, xff, method, points, now)


def test_now_defaults_to_the_clock(tmp_path, monkeypatch):
    ref, mine = str(tmp_path / "ref.wsp"), str(tmp_path / "mine.wsp")
    for path in (ref, mine):
        whisper.create(path, [(10, 30), (60, 20)], 0.0, "sum")
    monkeypatch.setattr(whisper.time, "time", lambda: 1_700_000_123.9)
    points = [(1_700_000_100, 1.0), (1_700_000_000, 2.0), (1_690_000_000, 3.0)]
    with open(ref, "r+b") as handle:
        whisper.file_update_many(handle, list(points))
    with open(mine, "r+b") as handle:
        update_many(handle, list(points))
    assert read(mine) == read(ref)
    (_start, _end, step), values = whisper.fetch(mine, 1_700_000_000 - 100, 1_700_000_120, now=1_700_000_123)
    assert step == 10
    assert [v for v in values if v is not None] == [2.0, 1.0]


def test_a_handle_read_before_sees_the_update_after(tmp_path):
    path = str(tmp_path / "a.wsp")
    whisper.create(path, [(10, 30)], 0.5, "average")
    with open(path, "r+b") as handle:
        before = handle.read()
        update_many(handle, [(1_700_000_000, 5.0)], 1_700_000_010)
        handle.seek(0)
        after = handle.read()
    assert after != before
    assert after == read(path)


def test_in_memory_handle_goes_to_whisper(tmp_path):
    path = str(tmp_path / "a.wsp")
    whisper.create(path, [(10, 30), (60, 10)], 0.5, "max")
    data = read(path)
    points = [(1_700_000_000 + 10 * i, float(i)) for i in range(7)]
    ref = io.BytesIO(data)
    whisper.file_update_many(ref, list(points), 1_700_000_100)
    mine = io.BytesIO(data)
    update_many(mine, list(points), 1_700_000_100)
    assert mine.getvalue() == ref.getvalue() != data


ODD_CALLS = [
    [(1_700_000_000.0, 1.0)],  # float timestamp: whisper cannot pack it
    [(1_700_000_000, 1.0), (1_700_000_010.5, 2.0)],
    [(2**33, 1.0)],  # beyond the 32-bit timestamp field
    [(-5, 1.0)],
    [(3, 1.0), (12, 2.0)],
    [(25, 2.0), (3, 1.0)],  # interval 0 then 20: whisper's first-interval quirk joins them
    [(3, 1.0), (25, 2.0), (14, 3.0)],
    [(1_700_000_000, "x")],
    [(1_700_000_000,)],
    [(1_700_000_000, 1.0, 2.0)],
    [(1_700_000_000, 1)],  # an int value packs like a float
    [(1_700_000_000, None)],
    [(1_700_000_000, 1.0), (1_700_000_010, 2.0, 3.0)],  # whisper cannot unpack the second
    [(1_700_000_000, 1.0, 5), (1_700_000_010,)],
    [(1_700_000_003, 1.0), (1_700_000_013, 2.0), (1_700_000_023, 3.0)],  # unaligned run
]


@pytest.mark.parametrize("points", ODD_CALLS)
@pytest.mark.parametrize("archives", [[(10, 30)], [(10, 30), (60, 20), (600, 10)]])
def test_odd_points_behave_as_in_whisper(tmp_path, points, archives):
    now = 100 if points[0][0] < 1000 else 1_700_000_050
    ref, mine = str(tmp_path / "ref.wsp"), str(tmp_path / "mine.wsp")
    for path in (ref, mine):
        whisper.create(path, list(archives), 0.0, "average")
        apply(whisper.file_update_many, path, [(1_699_999_990, 7.0)], 1_700_000_000)
    assert apply(update_many, mine, points, now) == apply(whisper.file_update_many, ref, points, now)
    assert read(mine) == read(ref)


def corrupt(data: bytes, how: str) -> bytes:
    if how == "xff":
        return data[:8] + struct.pack("!f", 2.0) + data[12:]
    if how == "method":
        return struct.pack("!L", 99) + data[4:]
    if how == "archives":  # an archive count far beyond the header
        return data[:12] + struct.pack("!L", 5000) + data[16:]
    if how == "tiny":
        return data[:10]
    if how == "layout":  # second archive info pointing into the first archive
        return data[:28] + struct.pack("!L", 100) + data[32:]
    if how == "header-only":
        return data[:52]
    if how == "no-lower-archive":
        return data[: len(data) // 3]
    if how == "half-lower-archive":
        return data[: len(data) - 7 * 12]
    return data


def apply_fd(path: str, points, now: int):
    """update_file on a bare descriptor, as WhisperWriter calls it."""
    import os

    from cadent.core.write.whisper_update import update_file

    fd = os.open(path, os.O_RDWR)
    try:
        update_file(fd, path, list(points), now)
    except Exception as exc:
        return type(exc).__name__
    finally:
        os.close(fd)
    return None


@pytest.mark.parametrize("block", range(2))
def test_update_file_matches_whisper_byte_for_byte(tmp_path, block):
    for seed in range(10_000 + block * 250, 10_000 + (block + 1) * 250):
        rng = random.Random(seed)
        archives = random_archives(rng)
        xff = rng.choice(XFFS + [rng.random()])
        method = rng.choice(METHODS)
        ref, mine = str(tmp_path / f"ref{seed}.wsp"), str(tmp_path / f"mine{seed}.wsp")
        whisper.create(ref, list(archives), xff, method)
        whisper.create(mine, list(archives), xff, method)
        now = 1_700_000_000 + rng.randint(0, 10_000)
        for call in range(rng.randint(1, 25)):
            now += rng.choice([0, 1, archives[0][0], rng.randint(0, 3 * archives[-1][0])])
            points = random_call(rng, archives, now)
            expected_error = apply(whisper.file_update_many, ref, points, now)
            assert apply_fd(mine, points, now) == expected_error, (seed, call)
            assert read(mine) == read(ref), (seed, call, archives, xff, method, points, now)


@pytest.mark.parametrize("points", ODD_CALLS + [[]])
def test_update_file_odd_points_behave_as_in_whisper(tmp_path, points):
    archives = [(10, 30), (60, 20), (600, 10)]
    now = 100 if points and points[0][0] < 1000 else 1_700_000_050
    ref, mine = str(tmp_path / "ref.wsp"), str(tmp_path / "mine.wsp")
    for path in (ref, mine):
        whisper.create(path, list(archives), 0.0, "average")
        apply(whisper.file_update_many, path, [(1_699_999_990, 7.0)], 1_700_000_000)
    assert apply_fd(mine, points, now) == apply(whisper.file_update_many, ref, points, now)
    assert read(mine) == read(ref)


def apply_handle(path: str, points, now: int):
    """update_many on a file object."""
    return apply(update_many, path, points, now)


@pytest.mark.parametrize("apply_mine", [apply_handle, apply_fd], ids=["handle", "fd"])
@pytest.mark.parametrize(
    "how", ["xff", "method", "archives", "tiny", "layout", "header-only", "no-lower-archive", "half-lower-archive"]
)
def test_damaged_files_behave_as_in_whisper(tmp_path, how, apply_mine):
    ref, mine = str(tmp_path / "ref.wsp"), str(tmp_path / "mine.wsp")
    whisper.create(ref, [(10, 30), (60, 20), (600, 10)], 0.0, "sum")
    data = corrupt(read(ref), how)
    for path in (ref, mine):
        with open(path, "wb") as handle:
            handle.write(data)
    for now in range(1_700_000_000, 1_700_003_000, 300):
        points = [(now - 10 * i, float(i)) for i in range(20)]
        assert apply_mine(mine, points, now) == apply(whisper.file_update_many, ref, points, now)
        assert read(mine) == read(ref)


def test_update_file_errors_name_the_path(tmp_path):
    """A damaged file's error names the file, whichever side (ours or whisper's) raised it."""
    import os

    from cadent.core.write.whisper_update import update_file

    for how in ("tiny", "no-lower-archive"):
        path = str(tmp_path / f"{how}.wsp")
        whisper.create(path, [(10, 30), (60, 20), (600, 10)], 0.0, "sum")
        data = corrupt(read(path), how)
        with open(path, "wb") as handle:
            handle.write(data)
        fd = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(whisper.CorruptWhisperFile) as caught:
                update_file(fd, path, [(1_700_000_000 - 10 * i, 1.0) for i in range(200)],
                            1_700_000_000)
        finally:
            os.close(fd)
        assert caught.value.path == path
