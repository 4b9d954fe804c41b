"""Aggregation buffers: output name → interval start → the values received for it.

Timing is carbon-aggregator's, driven by the caller's clock instead of a reactor:

* an output's timer starts at the wall time of its first point; its period is the frequency of
  the rule that created it, or ``min(write_back_frequency, frequency)`` when that is set; the
  first tick is one period after the start and later ticks stay on that grid (a late tick runs
  once and the grid is kept, like a Twisted ``LoopingCall``);
* on a tick, with ``now`` the tick's grid time truncated to whole seconds, every interval that
  received points since the previous tick emits ``(output, (interval_start, method(values)))``
  computed over *all* of its values, so a late point re-emits its whole interval; then every
  interval older than ``now - now % frequency - max_aggregation_intervals * frequency`` is
  deleted, and an output left without intervals is freed (a later point starts a new timer).

The caller drives time with :meth:`AggregationBuffers.tick`, a few times a second; outputs are
kept in a heap by due time so a tick only touches outputs that are due.

Bounds: at most ``max_buffers`` outputs and ``max_points`` buffered values. A point that would
need a new output beyond the first bound, or any point beyond the second, is not buffered; it
is counted in ``dropped_points`` and logged at most once a minute, with the number of points
the line stands for. Raw forwarding is not affected by either bound.

Rule reloads (:meth:`AggregationBuffers.new_generation`): carbon drops every buffer on reload,
losing the intervals in progress. Here buffers survive a reload. The first point that reaches an
older buffer through a rule of the new set keeps it when that rule has the same frequency and
method; otherwise the old buffer's unsent intervals are emitted on the next tick and a fresh
buffer starts. Outputs no rule produces any more expire on their own.
"""

from __future__ import annotations

import logging
from heapq import heappop, heappush
from math import floor

from cadent.core.aggregate.gather import take_group, take_groups
from cadent.core.aggregate.methods import METHODS, Method
from cadent.core.lograte import LogLimiter
from cadent.core.point import Batch

log = logging.getLogger(__name__)

DEFAULT_MAX_BUFFERS = 100_000
DEFAULT_MAX_POINTS = 10_000_000
DROP_LOG_INTERVAL_S = 60.0


class OutputBuffer:
    """The open intervals of one aggregate output and its timer."""

    __slots__ = (
        "name", "frequency", "method_name", "func", "period", "start", "due", "seq",
        "intervals", "active", "generation", "freed",
    )

    def __init__(
        self, name: str, frequency: int, method_name: str, period: float, start: float,
        seq: int, generation: int,
    ) -> None:
        self.name = name
        self.frequency = frequency
        self.method_name = method_name
        self.func: Method = METHODS[method_name]
        self.period = period
        self.start = start
        self.due = start + period
        self.seq = seq
        # interval start -> values, in the order intervals were opened
        self.intervals: dict[float, list[float]] = {}
        # intervals that received a point since the last emission
        self.active: set[float] = set()
        self.generation = generation
        self.freed = False

    @property
    def size(self) -> int:
        """Values held across all intervals."""
        return sum(map(len, self.intervals.values()))


class AggregationBuffers:
    """Every output's buffer and timer; points in with :meth:`add`, aggregates out of :meth:`tick`."""

    def __init__(
        self,
        *,
        max_aggregation_intervals: int = 5,
        write_back_frequency: float | None = None,
        max_buffers: int = DEFAULT_MAX_BUFFERS,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> None:
        self.max_aggregation_intervals = max_aggregation_intervals
        self.write_back_frequency = write_back_frequency
        self.max_buffers = max_buffers
        self.max_points = max_points
        self.buffers: dict[str, OutputBuffer] = {}
        self.generation = 0
        self._heap: list[tuple[float, int, OutputBuffer]] = []
        self._seq = 0
        self._points = 0
        self._pending: Batch = []
        self._drop_log = LogLimiter(DROP_LOG_INTERVAL_S)
        # counters (cumulative; readers compute their own per-interval deltas)
        self.aggregate_datapoints_sent = 0
        self.dropped_points = 0
        self.bad_timestamps = 0
        self.method_errors = 0

    # -- gauges -------------------------------------------------------------------------

    @property
    def allocated_buffers(self) -> int:
        """Outputs with a live buffer (carbon's ``allocatedBuffers``)."""
        return len(self.buffers)

    @property
    def buffered_datapoints(self) -> int:
        """Values held in all buffers (carbon's ``bufferedDatapoints``)."""
        return self._points

    def next_due(self) -> float | None:
        """Wall time of the earliest pending tick, or None when nothing is buffered."""
        heap = self._heap
        while heap and heap[0][2].freed:
            heappop(heap)
        if self._pending:
            return float("-inf")
        return heap[0][0] if heap else None

    # -- input --------------------------------------------------------------------------

    def add(self, output: str, frequency: int, method_name: str, timestamp: float, value: float, now: float) -> bool:
        """Buffer one value for ``output``; ``frequency``/``method_name`` configure a new buffer.

        Returns False when the value was not buffered (a bound was hit, or the timestamp is not
        finite); the reason is counted.
        """
        return self.add_many(output, frequency, method_name, [(timestamp, value)], now) == 1

    def add_many(
        self, output: str, frequency: int, method_name: str, points: list[tuple[float, float]], now: float
    ) -> int:
        """Buffer ``(timestamp, value)`` pairs for ``output`` in order, as :meth:`add` would one
        by one; returns how many were buffered.

        The common case, every timestamp inside one interval, takes the group in one step
        (:func:`cadent.core.aggregate.gather.take_group`).
        """
        if not points:
            return 0
        buf = self.buffers.get(output)
        if buf is None or buf.generation != self.generation:
            buf = self._adopt(buf, output, frequency, method_name, now)
            if buf is None:
                self._dropped(output, len(points))
                return 0
        count = len(points)
        freq = buf.frequency
        if self._points + count <= self.max_points and take_group(buf, points):
            self._points += count
            return count
        added = dropped = 0
        intervals = buf.intervals
        active = buf.active
        for timestamp, value in points:
            interval = timestamp - timestamp % freq
            if interval != interval:  # NaN: an infinite timestamp would never expire
                self.bad_timestamps += 1
                continue
            if self._points >= self.max_points:
                dropped += 1
                continue
            held = intervals.get(interval)
            if held is None:
                held = intervals[interval] = []
            held.append(value)
            active.add(interval)
            self._points += 1
            added += 1
        if dropped:
            self._dropped(output, dropped)
        return added

    def add_groups(
        self, groups: dict[str, list[tuple[float, float]]], firsts: list[tuple[str, int, str]],
        now: float,
    ) -> None:
        """``add_many(output, frequency, method, groups[output], now)`` for each
        ``(output, frequency, method)`` of ``firsts`` in turn.

        Runs of groups that each go to a live buffer and lie in one interval are added in one
        call (:func:`cadent.core.aggregate.gather.take_groups`); any other group goes through
        :meth:`add_many`.
        """
        index = 0
        end = len(firsts)
        while index < end:
            index, added = take_groups(self.buffers, self.generation, groups, firsts, index,
                                       self.max_points - self._points)
            self._points += added
            if index < end:
                output, frequency, method_name = firsts[index]
                self.add_many(output, frequency, method_name, groups[output], now)
                index += 1

    def _adopt(
        self, buf: OutputBuffer | None, output: str, frequency: int, method_name: str, now: float
    ) -> OutputBuffer | None:
        if buf is not None:
            # A buffer from before the last rule reload.
            if buf.frequency == frequency and buf.method_name == method_name:
                buf.generation = self.generation
                return buf
            log.info(
                "aggregate %s now uses (%s) %s instead of (%s) %s: emitting and restarting its buffer",
                output, frequency, method_name, buf.frequency, buf.method_name,
            )
            self._emit_active(buf, self._pending)
            self._free(buf)
        if len(self.buffers) >= self.max_buffers:
            return None
        wbf = self.write_back_frequency
        period = frequency if wbf is None else min(wbf, frequency)
        self._seq += 1
        buf = OutputBuffer(output, int(frequency), method_name, period, now, self._seq, self.generation)
        self.buffers[output] = buf
        heappush(self._heap, (buf.due, buf.seq, buf))
        return buf

    def _dropped(self, output: str, count: int = 1) -> None:
        self.dropped_points += count
        logged = self._drop_log.ready(count)
        if logged:
            log.warning(
                "aggregation buffers full (%d outputs of %d, %d values of %d): %d points for %s "
                "and others not aggregated since the previous report (%d so far)",
                len(self.buffers), self.max_buffers, self._points, self.max_points, logged,
                output, self.dropped_points,
            )

    def new_generation(self) -> None:
        """Mark every buffer as belonging to the previous rule set (see the module docstring)."""
        self.generation += 1

    # -- output -------------------------------------------------------------------------

    def tick(self, now: float) -> Batch:
        """Run every output timer due at or before ``now``; returns the aggregates emitted."""
        out = self._pending
        self._pending = []
        heap = self._heap
        rescheduled = []
        while heap and heap[0][0] <= now:
            _, seq, buf = heappop(heap)
            if buf.freed:
                continue
            period = buf.period
            if period > 0:
                # The latest point of the timer grid not after now (normally buf.due itself).
                k = floor((now - buf.start) / period)
                at = max(buf.start + k * period, buf.due)
                nxt = buf.start + (k + 1) * period
                while nxt <= now:
                    k += 1
                    nxt = buf.start + (k + 1) * period
            else:
                at = nxt = now
            self._compute(buf, int(at), out)
            if not buf.freed:
                buf.due = nxt
                rescheduled.append((nxt, seq, buf))
        for entry in rescheduled:
            heappush(heap, entry)
        return out

    def _compute(self, buf: OutputBuffer, now: int, out: Batch) -> None:
        freq = buf.frequency
        threshold = now - now % freq - self.max_aggregation_intervals * freq
        intervals = buf.intervals
        active = buf.active
        name = buf.name
        for interval, values in list(intervals.items()):
            if interval in active:
                self._emit(buf, name, interval, values, out)
            if interval < threshold:
                del intervals[interval]
                self._points -= len(values)
        active.clear()
        if not intervals:
            self._free(buf)

    def _emit(self, buf: OutputBuffer, name: str, interval: float, values: list[float], out: Batch) -> None:
        try:
            result = buf.func(values)
        except (TypeError, ValueError) as exc:
            self.method_errors += 1
            log.error("cannot compute %s of %s at %s: %s", buf.method_name, name, interval, exc)
            return
        out.append((name, (interval, result)))
        self.aggregate_datapoints_sent += 1

    def _emit_active(self, buf: OutputBuffer, out: Batch) -> None:
        active = buf.active
        for interval, values in buf.intervals.items():
            if interval in active:
                self._emit(buf, buf.name, interval, values, out)
        active.clear()

    def _free(self, buf: OutputBuffer) -> None:
        buf.freed = True
        self._points -= sum(map(len, buf.intervals.values()))
        buf.intervals.clear()
        if self.buffers.get(buf.name) is buf:
            del self.buffers[buf.name]

    def flush_all(self) -> Batch:
        """Emit every interval holding unsent values, then drop all buffers (for shutdown)."""
        out = self._pending
        self._pending = []
        for buf in list(self.buffers.values()):
            self._emit_active(buf, out)
            self._free(buf)
        self._heap.clear()
        self._points = 0
        return out


__all__ = ["AggregationBuffers", "OutputBuffer", "DEFAULT_MAX_BUFFERS", "DEFAULT_MAX_POINTS"]
