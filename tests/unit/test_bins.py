"""Rolling raw points up into bins (the binned writers' arithmetic)."""

from __future__ import annotations

import math
import random

from cadent.core.write.bins import Bin, bin_start, rollup


def test_bin_start_floors_to_the_resolution():
    assert bin_start(0, 10) == 0
    assert bin_start(19.9, 10) == 10
    assert bin_start(60, 60) == 60
    assert bin_start(-1, 10) == -10


def test_rollup_aggregates_every_raw_point():
    bins = rollup([(100, 1.0), (105, 3.0), (109, -2.0), (110, 7.0)], 10)
    assert sorted(bins) == [100, 110]
    first = bins[100]
    assert (first.sum, first.count, first.min, first.max) == (2.0, 3, -2.0, 3.0)
    assert (first.first, first.last) == (1.0, -2.0)
    assert first.mean == 2.0 / 3
    assert bins[110].count == 1 and bins[110].mean == 7.0


def test_first_and_last_go_by_timestamp_not_arrival():
    bins = rollup([(107, 5.0), (101, 4.0), (107, 6.0)], 10)
    assert bins[100].first == 4.0
    assert bins[100].last == 6.0          # a tie: the later arrival


def test_coarse_bins_come_from_raw_points():
    points = [(0, 1.0), (10, 1.0), (20, 1.0), (30, 9.0)]
    coarse = rollup(points, 60)[0]
    assert coarse.mean == 3.0             # not the mean of the 10 s bins' means' means
    assert coarse.count == 4


def test_non_finite_values_are_skipped():
    bins = rollup([(0, math.nan), (1, math.inf), (2, 2.0)], 10)
    assert bins[0].count == 1 and bins[0].sum == 2.0


def test_merging_in_any_split_equals_one_rollup():
    rng = random.Random(7)
    points = [(rng.randrange(0, 600), float(rng.randrange(-50, 50))) for _ in range(400)]
    whole = rollup(points, 60)
    for _ in range(20):
        rng.shuffle(points)
        cut = rng.randrange(len(points))
        merged = rollup(points[:cut], 60)
        for start, late in rollup(points[cut:], 60).items():
            if start in merged:
                merged[start].merge(late)
            else:
                merged[start] = late
        assert sorted(merged) == sorted(whole)
        for start, expected in whole.items():
            got = merged[start]
            assert (got.sum, got.count, got.min, got.max) == (
                expected.sum, expected.count, expected.min, expected.max)
            assert got.first_ts == expected.first_ts and got.last_ts == expected.last_ts


def test_copy_is_independent():
    original = Bin.of_point(1, 1.0)
    duplicate = original.copy()
    duplicate.add(2, 5.0)
    assert original.count == 1 and duplicate.count == 2
