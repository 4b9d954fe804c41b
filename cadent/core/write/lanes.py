"""Several writers side by side: one lane per writer, each with its own cache and threads.

A lane is a :class:`MetricCache` plus a :class:`Drainer` over one writer. Every received
batch is stored into every lane, so a point leaves a lane only when that lane's writer has it,
and a slow or dead writer holds up nobody but its own lane:

* each lane's cache has the cache's limit (``MAX_CACHE_SIZE``) and pauses the receivers under
  its own reason (``cache.full.<writer>``) when it reaches it, exactly as a lone cache does;
* a lane that has held the receivers paused for ``stall_s`` seconds while another lane still
  has room stops pushing back and *sheds*: the receivers resume, and while that lane is at its
  limit the points meant for it are dropped for that writer only, counted in
  ``writer.<name>.droppedPoints`` and logged at most once a minute. It pushes back again once
  it has drained below half of its limit. ``stall_s = 0`` never sheds (pure backpressure);
  lanes that are all full together never shed either (that is ordinary backpressure);
* with a single writer there is one lane and the data path is the lone cache of before.

The first lane (the primary) answers CarbonLink and, under ENABLE_TAGS, registers series.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from cadent.core.cache import FLOW_REASON, MetricCache
from cadent.core.ratelog import RateLimitedLog
from cadent.core.write.base import Writer
from cadent.core.write.drain import Drainer

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
RECOVER_FRACTION = 0.5


@dataclass
class Lane:
    """One writer, its cache and its drainer."""

    name: str
    writer: Writer
    cache: MetricCache
    drainer: Drainer
    shedding: bool = False
    dropped: int = 0
    dropped_total: int = 0
    shed_log: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(log))

    def collect_stats(self) -> tuple[dict[str, float], dict[str, float]]:
        """(carbon's names, ``writer.<name>.*``) of the drainer's counters and this lane's
        cache and drops, since the previous call."""
        plain = self.drainer.collect_stats()
        plain.update(self.cache.collect_stats())
        prefix = f"writer.{self.name}."
        stats = {prefix + key: value for key, value in plain.items()}
        stats[prefix + "droppedPoints"], self.dropped = self.dropped, 0
        stats[prefix + "shedding"] = int(self.shedding)
        return plain, stats


class Lanes:
    """Fans each batch out to every lane and decides when a lagging lane sheds (module doc)."""

    def __init__(self, lanes: Sequence[Lane], flow=None, stall_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not lanes:
            raise ValueError("at least one writer is needed")
        self.lanes = tuple(lanes)
        self.primary = self.lanes[0]
        self.flow = flow
        self.stall_s = stall_s
        self._clock = clock
        self._full_since: dict[str, float] = {}
        self._watch = None

    @classmethod
    def build(cls, writers: Iterable[tuple[str, Writer]], flow, cache_args: dict,
              drainer_args: Callable[[str, Writer], dict], stall_s: float) -> Lanes:
        """A lane per ``(name, writer)``; ``drainer_args(name, writer)`` gives its Drainer's
        keyword arguments (the writer it drains may wrap ``writer``)."""
        writers = list(writers)
        lanes = []
        for name, writer in writers:
            reason = FLOW_REASON if len(writers) == 1 else f"{FLOW_REASON}.{name}"
            cache = MetricCache(flow=flow, flow_reason=reason, **cache_args)
            kwargs = dict(drainer_args(name, writer))
            drain_writer = kwargs.pop("writer", writer)
            lanes.append(Lane(name, writer, cache,
                              Drainer(cache, drain_writer, name=name, **kwargs)))
        return cls(lanes, flow, stall_s)

    # -- the data path ------------------------------------------------------------------

    @property
    def single(self) -> bool:
        return len(self.lanes) == 1

    def store_batch(self, batch) -> None:
        """Store ``batch`` into every lane (a shedding lane at its limit drops it)."""
        if self.single:
            self.primary.cache.store_batch(batch)
            return
        if not isinstance(batch, list):
            batch = list(batch)
        for lane in self.lanes:
            cache = lane.cache
            if lane.shedding and cache.size >= cache.max_points:
                lane.dropped += len(batch)
                lane.dropped_total += len(batch)
                lane.shed_log(logging.ERROR, "writer %s is at its limit of %s points and sheds: "
                              "dropping points for it (not for the other writers)",
                              lane.name, cache.max_points)
                continue
            cache.store_batch(batch)

    def barrier(self) -> tuple[int, ...]:
        """Each lane's count of stores so far (``MetricCache.stores``): what was stored up to
        now is written by every writer once :meth:`unwritten` is above it, lane by lane."""
        return tuple(lane.cache.stores for lane in self.lanes)

    def unwritten(self) -> tuple[int, ...]:
        """Each lane's oldest store with a point not yet written
        (``MetricCache.oldest_unwritten``)."""
        return tuple(lane.cache.oldest_unwritten() for lane in self.lanes)

    @property
    def is_full(self) -> bool:
        """True while a lane that pushes back is at its limit (UDP drops then)."""
        return any(lane.cache.is_full and not lane.shedding for lane in self.lanes)

    @property
    def size(self) -> int:
        return sum(lane.cache.size for lane in self.lanes)

    # -- shedding -----------------------------------------------------------------------

    def check(self) -> None:
        """Start or end shedding per lane; called every CHECK_INTERVAL_S on the loop."""
        if self.single or self.stall_s <= 0 or math.isinf(self.primary.cache.max_points):
            return
        now = self._clock()
        for lane in self.lanes:
            cache = lane.cache
            if lane.shedding:
                if cache.size < RECOVER_FRACTION * cache.max_points:
                    lane.shedding = False
                    cache.pushes_back = True
                    log.warning("writer %s caught up (%d points cached): pushing back again",
                                lane.name, cache.size)
                continue
            if not cache.is_full:
                self._full_since.pop(lane.name, None)
                continue
            since = self._full_since.setdefault(lane.name, now)
            others_flow = any(not other.cache.is_full for other in self.lanes if other is not lane)
            if now - since >= self.stall_s and others_flow:
                lane.shedding = True
                cache.pushes_back = False
                self._full_since.pop(lane.name, None)
                log.error("writer %s has held the receivers for %.0f s at its limit of %s "
                          "points: it sheds from now on so the other writers keep going",
                          lane.name, now - since, cache.max_points)
                if self.flow is not None:
                    self.flow.resume(cache.flow_reason)

    def _watch_loop(self) -> None:
        import gevent

        while True:
            gevent.sleep(CHECK_INTERVAL_S)
            try:
                self.check()
            except Exception:
                log.exception("checking the writer lanes failed")

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        import gevent

        for lane in self.lanes:
            lane.drainer.start()
        if not self.single:
            self._watch = gevent.spawn(self._watch_loop)

    def stop(self, timeout: float) -> bool:
        """Write every lane out (side by side, within ``timeout``); True when all are empty."""
        import gevent

        if self._watch is not None:
            self._watch.kill()
            self._watch = None
        if self.single:
            return self.primary.drainer.stop(timeout)
        jobs = [gevent.spawn(lane.drainer.stop, timeout) for lane in self.lanes]
        gevent.joinall(jobs, timeout=timeout + 30)
        clean = True
        for lane, job in zip(self.lanes, jobs):
            if not job.successful() or not job.value:
                log.error("writer %s: %d points not written", lane.name, lane.cache.size)
                clean = False
        return clean

    def collect_stats(self) -> dict[str, float]:
        """Every lane's ``writer.<name>.*``, plus the primary's under carbon's own names."""
        stats: dict[str, float] = {}
        for lane in self.lanes:
            plain, prefixed = lane.collect_stats()
            if lane is self.primary:
                stats.update(plain)
            stats.update(prefixed)
            stats.update(_backend_stats(lane.writer))
        return stats


def _backend_stats(writer: Writer) -> dict[str, float]:
    """A backend's own self-metrics (e.g. ``cassandra.*``), through any wrapping writer."""
    while True:
        collect = getattr(writer, "collect_stats", None)
        if callable(collect):
            return collect()
        inner = getattr(writer, "writer", None)
        if inner is None or inner is writer:
            return {}
        writer = inner


__all__ = ["Lane", "Lanes"]
