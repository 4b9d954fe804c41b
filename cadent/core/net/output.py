"""The routed output: route a batch, queue each part on its destination's sender.

This is carbon's relay stage (used by the relay, the aggregator and statsd): every destination
has its own bounded :class:`PointQueue` and :class:`DestinationSender`. Per-destination
counters use carbon's names (``destinations.<host:port:instance>.attemptedRelays``,
``sent``, ``fullQueueDrops``, ``queuedUntilConnected``, ``relayMaxQueueLength``).
"""

from __future__ import annotations

import logging
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
                destination, queue, protocol=protocol, batch_points=batch_points, stats=stats)
            self.senders[destination] = sender
            stats.gauge(sender.prefix + "relayMaxQueueLength", self._max_queue_reader(queue))
        self._last_unroutable_log = 0.0

    @classmethod
    def from_config(cls, router: Router, config: OutputConfig, *, flow: FlowControl,
                    stats: Stats) -> "RoutedOutput":
        return cls(router, flow=flow, stats=stats, protocol=config.protocol,
                   max_queue_points=config.max_queue_points,
                   low_watermark_pct=config.low_watermark_pct,
                   batch_points=config.batch_points, stall_seconds=config.stall_seconds)

    @staticmethod
    def _max_queue_reader(queue: PointQueue):
        def read() -> float | None:
            seen, queue.max_seen = queue.max_seen, len(queue)
            return float(seen) if seen else None
        return read

    def send(self, batch: Batch, droppable: bool = False) -> None:
        """Route ``batch`` and queue every part on its destination."""
        routed = route_batch(self.router, batch)
        stats, senders = self.stats, self.senders
        for destination, points in routed.items():
            sender = senders[destination]
            count = len(points)
            prefix = sender.prefix
            stats.incr(prefix + "attemptedRelays", count)
            if not sender.connected:
                stats.incr(prefix + "queuedUntilConnected", count)
            dropped = sender.queue.put(points, droppable)
            if dropped:
                stats.incr(prefix + "fullQueueDrops", dropped)
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
