"""The routed output: route a batch, queue each part on its destination's sender.

This is carbon's relay stage (used by the relay, the aggregator and statsd): every destination
has its own bounded :class:`PointQueue` and :class:`DestinationSender`. Per-destination
counters use carbon's names (``destinations.<host:port:instance>.attemptedRelays``,
``sent``, ``fullQueueDrops``, ``queuedUntilConnected``, ``relayMaxQueueLength``).

Given a :class:`~cadent.core.spool.SpoolConfig`, every destination gets its own spool in a
subdirectory of the spool directory named after the destination (``host:port:instance``), and
the spool's counters (``spooled``, ``spoolReplayed``, ``spoolCorruptRecords``) and gauges
(``spoolBytes``, ``spoolPoints``). Self-metrics go through :meth:`RoutedOutput.send_self_metrics`
so that what describes a dead destination still reaches a live one.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

import gevent

from cadent.core.buffer.queue import PointQueue
from cadent.core.flow import FlowControl
from cadent.core.net.sender import DestinationSender
from cadent.core.point import Batch
from cadent.core.route.destination import Destination
from cadent.core.route.routers import Router, route_batch
from cadent.core.spool import Spool, SpoolConfig
from cadent.core.stats import Stats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputConfig:
    """How a routed output queues and sends (carbon.conf's DESTINATION_PROTOCOL, MAX_QUEUE_SIZE,
    QUEUE_LOW_WATERMARK_PCT, MAX_DATAPOINTS_PER_MESSAGE, MAX_QUEUE_STALL_SECONDS)."""

    protocol: str
    max_queue_points: int
    low_watermark_pct: float
    batch_points: int
    stall_seconds: float
    spool: SpoolConfig | None = None


class RoutedOutput:
    """Routes batches with a router and queues them on one sender per destination."""

    def __init__(
        self,
        router: Router,
        *,
        flow: FlowControl,
        stats: Stats,
        protocol: str | Callable[[Batch], bytes] = "pickle",
        max_queue_points: int = 10000,
        low_watermark_pct: float = 0.8,
        batch_points: int = 500,
        stall_seconds: float = 30.0,
        spool: SpoolConfig | None = None,
    ) -> None:
        self.router = router
        self.flow = flow
        self.stats = stats
        self.senders: dict[Destination, DestinationSender] = {}
        for destination in router.destinations:
            if destination in self.senders:
                continue
            queue = PointQueue(
                str(destination), max_queue_points, low_watermark_pct=low_watermark_pct,
                flow=flow, stall_seconds=stall_seconds)
            sender = DestinationSender(
                destination, queue, protocol=protocol, batch_points=batch_points, stats=stats,
                spool_after_s=spool.after_s if spool else 0.0)
            if spool is not None:
                sender.spool = self._spool(spool, sender, flow)
            self.senders[destination] = sender
            stats.gauge(sender.prefix + "relayMaxQueueLength", self._max_queue_reader(queue))
        self._last_unroutable_log = 0.0

    @classmethod
    def from_config(cls, router: Router, config: OutputConfig, *, flow: FlowControl,
                    stats: Stats) -> "RoutedOutput":
        return cls(router, flow=flow, stats=stats, protocol=config.protocol,
                   max_queue_points=config.max_queue_points,
                   low_watermark_pct=config.low_watermark_pct,
                   batch_points=config.batch_points, stall_seconds=config.stall_seconds,
                   spool=config.spool)

    @staticmethod
    def _spool(config: SpoolConfig, sender: DestinationSender, flow: FlowControl) -> Spool:
        spool = Spool(
            os.path.join(config.directory, sender.destination.metric_key),
            encode=sender.encode, batch_points=sender.batch_points, max_bytes=config.max_bytes,
            name=str(sender.destination), stats=sender.stats, prefix=sender.prefix, flow=flow,
            segment_bytes=config.segment_bytes, fsync_interval_s=config.fsync_interval_s)
        sender.stats.gauge(sender.prefix + "spoolBytes", lambda: float(spool.unread_bytes))
        sender.stats.gauge(sender.prefix + "spoolPoints", lambda: float(spool.points))
        return spool

    @staticmethod
    def _max_queue_reader(queue: PointQueue):
        def read() -> float | None:
            seen, queue.max_seen = queue.max_seen, len(queue)
            return float(seen) if seen else None
        return read

    def send(self, batch: Batch, droppable: bool = False) -> None:
        """Route ``batch`` and queue every part on its destination."""
        routed = route_batch(self.router, batch)
        senders = self.senders
        for destination, points in routed.items():
            self._queue(senders[destination], points, droppable)
        self._count_unroutable()

    def send_self_metrics(self, batch: Batch) -> None:
        """Route ``batch`` like any other; what is routed to a destination that is down or
        spooling also goes to every live destination, so counters about a dead destination
        (its drops above all) are seen while it is dead."""
        routed = route_batch(self.router, batch)
        live = [sender for sender in self.senders.values() if sender.live]
        for destination, points in routed.items():
            sender = self.senders[destination]
            self._queue(sender, points, False)
            if not sender.live:
                for other in live:
                    self._queue(other, list(points), False)
        self._count_unroutable()

    def _queue(self, sender: DestinationSender, points: Batch, droppable: bool) -> None:
        count = len(points)
        prefix = sender.prefix
        self.stats.incr(prefix + "attemptedRelays", count)
        if not sender.connected:
            self.stats.incr(prefix + "queuedUntilConnected", count)
        dropped = sender.queue.put(points, droppable)
        if dropped:
            sender.count_drops(dropped, "spool full" if sender.queue.diverted else "queue full")

    def _count_unroutable(self) -> None:
        lost = self.router.unroutable
        if lost:
            self.router.unroutable = 0
            self.stats.incr("unroutable", lost)
            now = time.monotonic()
            if now - self._last_unroutable_log > 10:
                self._last_unroutable_log = now
                log.warning("%d datapoints matched no destination; check relay-rules", lost)

    @property
    def pending(self) -> int:
        return sum(sender.pending for sender in self.senders.values())

    def replace_router(self, router: Router) -> None:
        """Swap routing rules (SIGHUP); the destinations must be the same set."""
        unknown = set(router.destinations) - set(self.senders)
        if unknown:
            raise ValueError("new rules name undeclared destinations: "
                             + ", ".join(sorted(map(str, unknown))))
        self.router = router

    def start(self) -> None:
        for sender in self.senders.values():
            sender.start()

    def stop(self, drain_timeout_s: float) -> int:
        """Deliver queued points to reachable destinations within the timeout; returns points left."""
        deadline = time.monotonic() + drain_timeout_s
        jobs = [gevent.spawn(sender.stop, max(0.0, deadline - time.monotonic()))
                for sender in self.senders.values()]
        gevent.joinall(jobs)
        return sum(job.value or 0 for job in jobs)
