"""AggregationBuffers: carbon's emission timing, expiry, bounds, flush and reload, on a fake clock."""

import logging

import pytest

from cadent.core.aggregate.buffers import AggregationBuffers

T0 = 1_700_000_000.25  # wall time of the first point (fake clock)
TS = 1_699_999_980      # a multiple of 60 and of 10


def make(**kw):
    return AggregationBuffers(**kw)


def test_first_tick_one_period_after_first_point():
    b = make()
    b.add("out", 10, "sum", TS, 1.0, T0)
    b.add("out", 10, "sum", TS + 3, 2.0, T0 + 1)
    assert b.tick(T0 + 9.99) == []
    assert b.next_due() == pytest.approx(T0 + 10)
    assert b.tick(T0 + 10) == [("out", (TS, 3.0))]
    assert b.aggregate_datapoints_sent == 1


def test_each_output_has_its_own_timer():
    b = make()
    b.add("a", 10, "sum", TS, 1.0, T0)
    b.add("b", 10, "sum", TS, 5.0, T0 + 4)
    assert b.tick(T0 + 10) == [("a", (TS, 1.0))]
    assert b.tick(T0 + 13.9) == []
    assert b.tick(T0 + 14) == [("b", (TS, 5.0))]


def test_only_intervals_with_new_points_emit_and_late_points_reemit_whole_interval():
    b = make()
    b.add("out", 10, "sum", TS, 1.0, T0)
    b.add("out", 10, "sum", TS + 10, 7.0, T0)
    assert b.tick(T0 + 10) == [("out", (TS, 1.0)), ("out", (TS + 10, 7.0))]
    assert b.tick(T0 + 20) == []                    # nothing new: silence
    b.add("out", 10, "sum", TS + 5, 2.0, T0 + 21)   # late point for the first interval
    assert b.tick(T0 + 30) == [("out", (TS, 3.0))]  # whole interval re-emitted


def test_intervals_expire_after_max_aggregation_intervals_and_output_is_freed():
    b = make(max_aggregation_intervals=2)
    now0 = TS + 0.5  # wall clock in step with the timestamps
    b.add("out", 10, "avg", TS, 4.0, now0)
    b.add("out", 10, "avg", TS, 6.0, now0)
    assert b.buffered_datapoints == 2 and b.allocated_buffers == 1
    # tick at TS+10.5: current interval TS+10, threshold TS+10-20 = TS-10; kept
    assert b.tick(now0 + 10) == [("out", (TS, 5.0))]
    assert b.allocated_buffers == 1
    assert b.tick(now0 + 20) == []
    assert b.allocated_buffers == 1   # threshold TS: not older yet
    assert b.tick(now0 + 30) == []    # threshold TS+10 > TS: deleted, output freed
    assert b.allocated_buffers == 0 and b.buffered_datapoints == 0
    assert b.next_due() is None
    # a new point starts a new buffer whose interval starts from scratch
    b.add("out", 10, "avg", TS, 1.0, now0 + 31)
    assert b.tick(now0 + 41) == [("out", (TS, 1.0))]


def test_old_point_emits_once_then_is_deleted_in_the_same_tick():
    b = make(max_aggregation_intervals=5)
    now = TS + 1000.0
    b.add("out", 10, "max", TS, 3.0, now)
    assert b.tick(now + 10) == [("out", (TS, 3.0))]
    assert b.allocated_buffers == 0


def test_write_back_frequency_shortens_the_period():
    b = make(write_back_frequency=2)
    b.add("out", 10, "sum", TS, 1.0, T0)
    assert b.tick(T0 + 1.9) == []
    assert b.tick(T0 + 2) == [("out", (TS, 1.0))]
    b.add("out", 10, "sum", TS, 1.0, T0 + 3)
    assert b.tick(T0 + 4) == [("out", (TS, 2.0))]


def test_write_back_frequency_larger_than_frequency_is_ignored():
    b = make(write_back_frequency=60)
    b.add("out", 10, "sum", TS, 1.0, T0)
    assert b.tick(T0 + 10) == [("out", (TS, 1.0))]


def test_late_tick_runs_once_and_keeps_the_grid():
    b = make()
    b.add("out", 10, "sum", TS, 1.0, T0)
    assert b.tick(T0 + 35) == [("out", (TS, 1.0))]  # three periods missed: one run
    b.add("out", 10, "sum", TS, 1.0, T0 + 36)
    assert b.tick(T0 + 39.9) == []
    assert b.tick(T0 + 40) == [("out", (TS, 2.0))]


def test_buffer_keeps_first_configuration():
    b = make()
    b.add("out", 10, "sum", TS + 5, 1.0, T0)
    b.add("out", 60, "max", TS + 5, 5.0, T0)  # same output, other rule: sum over 10 s stays
    assert b.tick(T0 + 10) == [("out", (TS, 6.0))]


def test_float_timestamps_give_float_interval_starts():
    b = make()
    b.add("out", 10, "sum", TS + 12.5, 1.0, T0)
    assert b.tick(T0 + 10) == [("out", (TS + 10.0, 1.0))]


def test_infinite_timestamp_is_counted_not_buffered():
    b = make()
    assert b.add("out", 10, "sum", float("inf"), 1.0, T0) is False
    assert b.bad_timestamps == 1 and b.buffered_datapoints == 0
    b.tick(T0 + 10)
    assert b.allocated_buffers == 0


def test_flush_all_emits_unsent_intervals_and_clears():
    b = make()
    b.add("a", 10, "sum", TS, 1.0, T0)
    b.add("b", 60, "count", TS, 1.0, T0)
    assert b.tick(T0 + 10) == [("a", (TS, 1.0))]
    b.add("a", 10, "sum", TS + 10, 4.0, T0 + 11)
    assert b.flush_all() == [("a", (TS + 10, 4.0)), ("b", (TS, 1))]
    assert b.allocated_buffers == 0 and b.buffered_datapoints == 0
    assert b.tick(T0 + 100) == [] and b.next_due() is None


def test_max_buffers_bound_drops_new_outputs_only(caplog):
    b = make(max_buffers=2)
    with caplog.at_level(logging.WARNING, logger="cadent.core.aggregate.buffers"):
        assert b.add("a", 10, "sum", TS, 1.0, T0)
        assert b.add("b", 10, "sum", TS, 1.0, T0)
        assert not b.add("c", 10, "sum", TS, 1.0, T0)
        assert not b.add("d", 10, "sum", TS, 1.0, T0)
        assert b.add("a", 10, "sum", TS, 2.0, T0)  # existing outputs still buffer
    assert b.dropped_points == 2
    assert sum("aggregation buffers full" in r.message for r in caplog.records) == 1  # rate-limited
    assert b.tick(T0 + 10) == [("a", (TS, 3.0)), ("b", (TS, 1.0))]


def test_max_points_bound():
    b = make(max_points=3)
    for i in range(5):
        b.add("a", 10, "count", TS, float(i), T0)
    assert b.buffered_datapoints == 3 and b.dropped_points == 2
    assert b.tick(T0 + 10) == [("a", (TS, 3))]


def test_reload_keeps_buffer_when_rule_unchanged():
    b = make()
    b.add("a", 10, "sum", TS, 1.0, T0)
    b.new_generation()
    b.add("a", 10, "sum", TS, 2.0, T0 + 1)
    assert b.tick(T0 + 10) == [("a", (TS, 3.0))]


def test_reload_with_changed_method_emits_old_buffer_and_restarts():
    b = make()
    b.add("a", 10, "sum", TS, 1.0, T0)
    b.add("a", 10, "sum", TS, 2.0, T0)
    b.new_generation()
    b.add("a", 10, "max", TS, 5.0, T0 + 1)
    assert b.buffered_datapoints == 1
    # the old buffer's unsent sum comes out on the next tick, then the new buffer on its own timer
    assert b.tick(T0 + 2) == [("a", (TS, 3.0))]
    assert b.tick(T0 + 10.9) == []
    assert b.tick(T0 + 11) == [("a", (TS, 5.0))]


def test_method_error_is_counted_not_raised(caplog):
    b = make()
    b.add("a", 10, "p50", TS, 1.0, T0)
    b.add("a", 10, "p50", TS, "x", T0)  # a value of the wrong type from a broken producer
    with caplog.at_level(logging.ERROR):
        assert b.tick(T0 + 10) == []
    assert b.method_errors == 1
