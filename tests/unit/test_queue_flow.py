"""PointQueue watermarks, stall handling and FlowControl reasons."""

import time

from cadent.core.buffer.queue import PointQueue
from cadent.core.flow import FlowControl


def points(n, start=0):
    return [(f"m.{i}", (1700000000.0 + i, float(i))) for i in range(start, start + n)]


def test_flow_gate_needs_every_reason_released():
    flow = FlowControl()
    assert flow.is_open
    flow.pause("a")
    flow.pause("b")
    flow.pause("a")
    assert not flow.is_open and flow.pauses == 1
    flow.resume("a")
    assert not flow.is_open
    flow.resume("b")
    assert flow.is_open and flow.wait(0)


def test_tcp_puts_are_never_dropped_and_pause_until_low_watermark():
    flow = FlowControl()
    queue = PointQueue("d", 100, low_watermark_pct=0.5, flow=flow)
    assert queue.put(points(80)) == 0
    assert flow.is_open
    assert queue.put(points(70, 80)) == 0      # over the max: accepted, receivers paused
    assert len(queue) == 150 and not flow.is_open
    taken = queue.take(90)
    assert [p[0] for p in taken] == [f"m.{i}" for i in range(90)]
    assert not flow.is_open                    # 60 left > low watermark 50
    queue.take(10)
    assert flow.is_open and len(queue) == 50
    rest = queue.take(1000)
    assert [p[0] for p in rest] == [f"m.{i}" for i in range(100, 150)]
    assert queue.dropped == 0


def test_droppable_puts_drop_beyond_the_max_and_count():
    queue = PointQueue("d", 10, flow=FlowControl())
    assert queue.put(points(8), droppable=True) == 0
    assert queue.put(points(5, 8), droppable=True) == 3
    assert queue.put(points(5, 13), droppable=True) == 5
    assert len(queue) == 10 and queue.dropped == 8
    assert [p[0] for p in queue.take(100)] == [f"m.{i}" for i in range(10)]


def test_put_front_keeps_order_for_retries():
    queue = PointQueue("d", 100)
    queue.put(points(10))
    head = queue.take(4)
    queue.put_front(head)
    assert [p[0] for p in queue.take(100)] == [f"m.{i}" for i in range(10)]


def test_stalled_queue_releases_receivers_and_drops_until_drained():
    flow = FlowControl()
    queue = PointQueue("dead", 10, low_watermark_pct=0.5, flow=flow, stall_seconds=0.05)
    queue.put(points(12))
    assert not flow.is_open
    assert not queue.check_stall()
    time.sleep(0.06)
    assert queue.check_stall()
    assert flow.is_open                         # other destinations keep flowing
    assert queue.put(points(5, 12)) == 5        # counted drops while stalled
    assert queue.dropped == 5
    queue.take(8)                               # 4 left <= low watermark 5
    assert not queue.stalled
    assert queue.put(points(3, 100)) == 0


def test_diverted_queue_hands_everything_to_the_overflow_in_order_and_releases_receivers():
    flow = FlowControl()
    queue = PointQueue("d", 100, low_watermark_pct=0.5, flow=flow)
    queue.put(points(60))
    queue.put(points(60, start=60))
    assert not flow.is_open
    taken = []

    def overflow(batch):
        room = 150 - sum(len(b) for b in taken)
        taken.append(batch[:room])
        return len(batch) - len(batch[:room])

    assert queue.divert(overflow) == 0
    assert flow.is_open and queue.diverted and len(queue) == 0
    assert queue.put(points(50, start=120)) == 20          # the overflow refused 20
    queue.put_front(points(1, start=500))                   # a failed send: after the rest
    assert [p for b in taken for p in b] == points(150)
    assert queue.dropped == 21
    queue.undivert()
    assert queue.put(points(10, start=200)) == 0 and len(queue) == 10
