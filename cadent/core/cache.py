"""MetricCache: the points carbon-cache holds between the receivers and the writer.

A map name → {timestamp: value} in first-insertion order (what CarbonLink returns). Names are
normalised with carbon's tag parser. Storing an existing timestamp overwrites its value.

Backpressure instead of loss: a store that takes the cache to ``max_points`` or beyond still
keeps every point, counts the points carbon would have dropped (``overflow``) and pauses the
``FlowControl`` under ``"cache.full"``; the writer's pops resume it once the size is below
95 % of the maximum.

Drain order (``pop_next``), carbon's CACHE_WRITE_STRATEGY:

* ``sorted``: snapshot of all metrics by point count, biggest first, walked to the end
  before the next snapshot (every metric is written once per pass);
* ``max``: always the metric with the most points;
* ``naive``: any order (snapshot walked to the end);
* ``timesorted``: oldest first point first; with ``min_timestamp_lag`` only metrics whose
  oldest point is more than that many seconds old;
* anything else: logged, insertion order.

Points popped for writing stay visible to ``get`` until the writer calls ``done`` (or puts
them back with ``requeue``), so CarbonLink never misses points that are on their way to disk.
While a metric is in flight ``pop_next`` leaves it alone, so several writer threads never
write the same metric at once (its newer points wait for the next pop after ``done``).

Memory: points stored with equal float timestamps share one float object (a flush sends the
same timestamp for every metric), so a cached point costs its value and its dict slot only.

Threads: the gevent loop stores and queries while the writer pops from a real OS thread. All
state sits behind one native lock (``cadent.core.native``) held only for dict operations;
sorting and copying happen outside it. Flow control calls are routed to the gevent loop.
"""

from __future__ import annotations

import logging
import math
import time
from operator import itemgetter
from typing import Callable, Container, Iterable

from cadent.core.cache_points import add_points
from cadent.core.native import LoopCaller, NativeSignal, allocate_lock
from cadent.core.tags import normalize_name

log = logging.getLogger(__name__)

STRATEGIES = ("sorted", "max", "naive", "timesorted")
FLOW_REASON = "cache.full"
RESUME_FRACTION = 0.95

CachedPoints = list[tuple[float, float]]


_NEEDS_NORMALISING = (";", "~", '"}')
#: distinct float timestamps shared between metrics before the table starts afresh
STAMPS_MAX = 4096


def _normalised(batch: Iterable[tuple[str, tuple[float, float]]]) -> list:
    """``batch`` as a list with every name normalised. When the names joined hold none of the
    marks a name needs normalising for (a ``;``, a leading ``~``, a trailing ``"}``), the list
    is the batch itself: the common untagged batch costs one join, not a call per point."""
    if type(batch) is not list:
        batch = list(batch)
    try:
        joined = "".join(map(itemgetter(0), batch))
    except TypeError:
        joined = ";"
    for mark in _NEEDS_NORMALISING:
        if mark in joined:
            return [(normalize_name(name), point) for name, point in batch]
    return batch


class MetricCache:
    """Thread-safe cache of datapoints with carbon's drain strategies (see module doc)."""

    def __init__(
        self,
        max_points: float = math.inf,
        strategy: str = "sorted",
        min_timestamp_lag: int = 0,
        flow=None,
        clock: Callable[[], float] = time.time,
        flow_reason: str = FLOW_REASON,
    ) -> None:
        if strategy not in STRATEGIES:
            log.error("unknown cache write strategy %r, draining in insertion order", strategy)
        self.max_points = max_points
        self.strategy = strategy
        self.min_timestamp_lag = min_timestamp_lag
        self._flow = flow
        self.flow_reason = flow_reason
        #: False while a lane of several writers sheds instead of pausing (cadent.core.write.lanes)
        self.pushes_back = True
        self._in_loop = LoopCaller() if flow is not None else None
        self._clock = clock
        self._lock = allocate_lock()
        self._data: dict[str, dict[float, float]] = {}
        # one float object per timestamp value, shared by every metric stored with it: a
        # batch gives each point its own float, 24 bytes a point that sharing saves
        self._stamps: dict[float, float] = {}
        self._inflight: dict[str, list[dict[float, float]]] = {}
        # store numbers: the first store still unwritten per cached / in-flight batch of a name
        self.stores = 0
        self._since: dict[str, int] = {}
        self._flight_since: dict[str, list[int]] = {}
        self._new: dict[str, None] = {}
        self._queue: list[str] = []
        self._size = 0
        self._paused = False
        self._overflow = 0
        self.overflow_total = 0
        self.data_ready = NativeSignal()

    # -- sizes --------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Points held (not counting points popped and being written)."""
        return self._size

    @property
    def queues(self) -> int:
        """Metrics held."""
        return len(self._data)

    @property
    def is_full(self) -> bool:
        return self._paused

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, name: str) -> bool:
        return name in self._data

    # -- the gevent side ----------------------------------------------------------------

    def store_batch(self, batch: Iterable[tuple[str, tuple[float, float]]]) -> None:
        """Add a batch of ``(name, (timestamp, value))``; names are normalised here."""
        items = _normalised(batch)
        if not items:
            return
        pause = False
        with self._lock:
            self.stores = seq = self.stores + 1
            stamps = self._stamps
            if len(stamps) > STAMPS_MAX:
                stamps.clear()
            added = add_points(items, self._data, self._new, self._since, seq, stamps)
            self._size += added
            over = self._size - self.max_points
            if over >= 0:
                if over > 0:
                    lost = int(min(added, over))
                    self._overflow += lost
                    self.overflow_total += lost
                if not self._paused:
                    self._paused = pause = True
        if added:
            self.data_ready.set()
        if pause:
            log.warning("cache full (%d points, max %s): pausing receivers (%s)", self._size,
                        self.max_points, self.flow_reason)
            self._flow_call("pause")

    def store(self, name: str, point: tuple[float, float]) -> None:
        """Store one datapoint (self-metrics); see ``store_batch``."""
        self.store_batch([(name, point)])

    def get(self, name: str) -> CachedPoints:
        """Cached and in-flight points of ``name`` in first-insertion order (as stored)."""
        with self._lock:
            cached = self._data.get(name)
            flights = self._inflight.get(name)
            if not flights:
                return list(cached.items()) if cached else []
            merged: dict[float, float] = {}
            for points in flights:
                merged.update(points)
            if cached:
                merged.update(cached)
        return list(merged.items())

    # -- the writer side ----------------------------------------------------------------

    def take_new_names(self) -> list[str]:
        """Names that entered the cache (absent before) since the previous call."""
        if not self._new:  # nothing new: no lock (a name added meanwhile waits for the next call)
            return []
        with self._lock:
            if not self._new:
                return []
            names = list(self._new)
            self._new = {}
        return names

    def pop_next(self, skip: Container[str] = ()) -> tuple[str, CachedPoints] | None:
        """Pop the next metric by strategy, skipping names in ``skip``; None if none is due.

        The points (sorted by timestamp) stay visible to ``get`` until ``done``/``requeue``;
        meanwhile the metric is not popped again.
        """
        if self.strategy == "max":
            with self._lock:
                flying = self._inflight
                name = max((n for n in self._data if n not in flying and n not in skip),
                           key=lambda n: len(self._data[n]), default=None)
                popped = self._pop_locked(name) if name is not None else None
        else:
            batch = self._pop_from_queue(1, skip)
            popped = batch[0] if batch else None
        if popped is None:
            return None
        name, points = popped
        if self._paused:
            self._check_resume()
        return name, sorted(points.items())  # timestamps are distinct: values never compared

    def pop_many(self, count: int, skip: Container[str] = (),
                 known: Container[str] | None = None) -> list[tuple[str, CachedPoints]]:
        """Up to ``count`` metrics, as that many ``pop_next`` calls would give them, taken
        under one lock. With ``known``, the first name due that is not in it ends the batch
        and stays first in line."""
        if self.strategy == "max":
            out = []
            while len(out) < count:
                item = self.pop_next(skip)
                if item is None:
                    break
                if known is not None and item[0] not in known:
                    self.requeue(*item)
                    break
                out.append(item)
            return out
        popped = self._pop_from_queue(count, skip, known)
        if popped and self._paused:
            self._check_resume()
        return [(name, sorted(points.items())) for name, points in popped]

    def done(self, name: str) -> None:
        """The oldest popped batch of ``name`` is written: stop showing it to ``get``."""
        with self._lock:
            self._done_locked(name)

    def done_many(self, names: Iterable[str]) -> None:
        """``done`` for each of ``names``, under one lock."""
        with self._lock:
            for name in names:
                self._done_locked(name)

    def _done_locked(self, name: str) -> None:
        flights = self._inflight.get(name)
        if flights is not None and len(flights) == 1:  # the usual single flight
            del self._inflight[name]
            del self._flight_since[name]
        else:
            self._drop_flight_locked(name)

    def requeue(self, name: str, points: CachedPoints) -> None:
        """Put back points that could not be written; newer cached values win."""
        pause = False
        with self._lock:
            seq = self._drop_flight_locked(name)
            current = self._data.get(name)
            self._since[name] = min(seq, self._since.get(name, seq))
            merged = dict(points)
            if current:
                merged.update(current)
                self._size += len(merged) - len(current)
            else:
                self._size += len(merged)
            self._data[name] = merged
            if self._size >= self.max_points and not self._paused:
                self._paused = pause = True
        if pause:
            self._flow_call("pause")

    def drop(self, name: str) -> int:
        """Forget everything cached for ``name``; return how many points went."""
        with self._lock:
            points = self._data.pop(name, None)
            if points is None:
                return 0
            self._since.pop(name, None)
            self._size -= len(points)
        self._check_resume()
        return len(points)

    def collect_stats(self) -> dict[str, float]:
        """carbon's cache self-metrics; ``cache.overflow`` counts since the previous call."""
        with self._lock:
            overflow, self._overflow = self._overflow, 0
            return {"cache.size": self._size, "cache.queues": len(self._data),
                    "cache.overflow": overflow}

    # -- internals ----------------------------------------------------------------------

    def _pop_locked(self, name: str) -> tuple[str, dict[float, float]]:
        points = self._data.pop(name)
        self._size -= len(points)
        seq = self._since.pop(name, self.stores)
        flights = self._inflight.get(name)
        if flights is None:
            self._inflight[name] = [points]
            self._flight_since[name] = [seq]
        else:
            flights.append(points)
            self._flight_since[name].append(seq)
        return name, points

    def _drop_flight_locked(self, name: str) -> int:
        """Forget the oldest flight of ``name``; return its first store number."""
        flights = self._inflight.get(name)
        if not flights:
            return self.stores
        flights.pop(0)
        seqs = self._flight_since[name]
        seq = seqs.pop(0)
        if not flights:
            del self._inflight[name]
            del self._flight_since[name]
        return seq

    def oldest_unwritten(self) -> int:
        """The number of the oldest store (``stores`` counts them) that still has a point not
        written, cached or in flight; ``stores + 1`` when everything stored is written. What
        was stored by store number N is all written once this is above N."""
        with self._lock:
            since = list(self._since.values())
            flights = [seqs[0] for seqs in self._flight_since.values() if seqs]
            oldest = self.stores + 1
        return min(min(since, default=oldest), min(flights, default=oldest))

    def _pop_from_queue(self, count: int, skip: Container[str],
                        known: Container[str] | None = None) -> list:
        """Up to ``count`` (name, points) from this pass's queue, a new pass ordered once when
        it runs dry; see ``pop_many`` for ``known``."""
        popped: list = []
        for fresh in (False, True):
            with self._lock:
                queue, data, flying = self._queue, self._data, self._inflight
                while queue and len(popped) < count:
                    name = queue.pop()
                    if name in data and name not in flying and name not in skip:
                        if known is not None and name not in known:
                            queue.append(name)
                            return popped
                        popped.append(self._pop_locked(name))
                if len(popped) >= count or fresh or not data:
                    return popped
                snapshot = self._snapshot_locked()
            ordered = self._order(snapshot)
            with self._lock:
                self._queue = ordered
        return popped

    def _snapshot_locked(self) -> list:
        data = self._data
        if self.strategy == "sorted":  # C-level copies only: the lock is held
            return [list(data), list(map(len, data.values()))]
        if self.strategy == "timesorted":
            return [(min(points), name) for name, points in data.items()]
        return list(data)

    def _order(self, snapshot: list) -> list[str]:
        """The queue for one pass; names are popped from the END of the list."""
        if self.strategy == "sorted":
            # a stable sort of the names by point count, of indices rather than tuples
            names, counts = snapshot
            order = sorted(range(len(names)), key=counts.__getitem__)
            return list(map(names.__getitem__, order))
        if self.strategy == "timesorted":
            if self.min_timestamp_lag:
                now = self._clock()
                snapshot = [item for item in snapshot
                            if now - item[0] > self.min_timestamp_lag]
            snapshot.sort(key=itemgetter(0), reverse=True)
            return [name for _, name in snapshot]
        if self.strategy == "naive":
            return snapshot
        snapshot.reverse()
        return snapshot

    def _check_resume(self) -> None:
        if not self._paused:
            return
        with self._lock:
            resume = self._paused and self._size < RESUME_FRACTION * self.max_points
            if resume:
                self._paused = False
        if resume:
            log.info("cache below %d%% of its maximum: resuming receivers",
                     RESUME_FRACTION * 100)
            self._flow_call("resume")

    def _flow_call(self, what: str) -> None:
        if self._flow is None or (what == "pause" and not self.pushes_back):
            return
        self._in_loop(getattr(self._flow, what), self.flow_reason)


__all__ = ["FLOW_REASON", "MetricCache", "STRATEGIES"]
