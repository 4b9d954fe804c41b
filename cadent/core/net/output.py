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

The ring can change live (:meth:`RoutedOutput.add_destination`, :meth:`remove_destination`,
and the health checks' :meth:`take_out` / :meth:`put_back`); a purged destination's spool and
queue are re-routed over the new ring, and :meth:`replace_router` re-applies every live change
to a router rebuilt by a SIGHUP.
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
    QUEUE_LOW_WATERMARK_PCT, MAX_DATAPOINTS_PER_MESSAGE, MAX_QUEUE_STALL_SECONDS). ``protocol``
    is ``pickle``, ``line`` or the encoder itself (a callable: Batch → bytes)."""

    protocol: str | Callable[[Batch], bytes] = "pickle"
    max_queue_points: int = 10000
    low_watermark_pct: float = 0.8
    batch_points: int = 500
    stall_seconds: float = 30.0
    spool: SpoolConfig | None = None


class RoutedOutput:
    """Routes batches with a router and queues them on one sender per destination.

    Give it an :class:`OutputConfig`, or that config's fields as keyword arguments."""

    def __init__(
        self,
        router: Router,
        *,
        flow: FlowControl,
        stats: Stats,
        config: OutputConfig | None = None,
        **options,
    ) -> None:
        if config is not None and options:
            raise TypeError("give RoutedOutput a config or its fields, not both")
        self.router = router
        self.flow = flow
        self.stats = stats
        self.config = config if config is not None else OutputConfig(**options)
        self.senders: dict[Destination, DestinationSender] = {}
        for destination in router.destinations:
            if destination not in self.senders:
                self.senders[destination] = self._make_sender(destination)
        # Live ring changes, replayed on any router that replaces this one (SIGHUP).
        self.ring_added: list[Destination] = []
        self.ring_removed: set[Destination] = set()
        self._last_unroutable_log = 0.0

    def _make_sender(self, destination: Destination) -> DestinationSender:
        config = self.config
        spool = config.spool
        queue = PointQueue(
            str(destination), config.max_queue_points,
            low_watermark_pct=config.low_watermark_pct, flow=self.flow,
            stall_seconds=config.stall_seconds)
        sender = DestinationSender(
            destination, queue, protocol=config.protocol,
            batch_points=config.batch_points, stats=self.stats,
            spool_after_s=spool.after_s if spool else 0.0)
        if spool is not None:
            sender.spool = self._spool(spool, sender, self.flow)
        self.stats.gauge(sender.prefix + "relayMaxQueueLength", self._max_queue_reader(queue))
        return sender

    @classmethod
    def from_config(cls, router: Router, config: OutputConfig, *, flow: FlowControl,
                    stats: Stats) -> "RoutedOutput":
        return cls(router, flow=flow, stats=stats, config=config)

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
        """Swap routing rules (SIGHUP); the destinations must be the same set. Ring changes
        made live (:meth:`add_destination`, :meth:`remove_destination`, health checks) are
        applied to the new router too, so a reload does not undo them."""
        for destination in self.ring_added:
            if destination not in router.destinations:
                router.add_destination(destination)  # type: ignore[attr-defined]
        for destination in self.ring_removed:
            if destination in router.destinations:
                router.remove_destination(destination)  # type: ignore[attr-defined]
        unknown = set(router.destinations) - set(self.senders)
        if unknown:
            raise ValueError("new rules name undeclared destinations: "
                             + ", ".join(sorted(map(str, unknown))))
        self.router = router

    # -- live ring changes -------------------------------------------------------------

    def _ring_router(self):
        router = self.router
        if not callable(getattr(router, "add_destination", None)):
            raise ValueError(f"RELAY_METHOD {router.method} has no ring to change; only "
                             "consistent-hashing, fast-hashing and their aggregated forms do")
        return router

    def add_destination(self, destination: Destination) -> None:
        """Start a sender (and spool) for ``destination`` and put it on the ring: placement
        becomes what a fresh start with it appended to DESTINATIONS gives. ValueError when the
        router has no ring or the destination (or its host and instance) is already there."""
        router = self._ring_router()
        if destination in self.senders:
            raise ValueError(f"{destination} is already a destination")
        sender = self._make_sender(destination)
        router.add_destination(destination)   # raises before anything starts if it clashes
        self.senders[destination] = sender
        try:
            sender.start()
        except OSError as exc:                 # its spool directory is unusable
            del self.senders[destination]
            router.remove_destination(destination)
            raise ValueError(f"cannot start a sender for {destination}: {exc}") from exc
        self.ring_removed.discard(destination)
        self.ring_added.append(destination)

    def remove_destination(self, destination: Destination) -> int:
        """Take ``destination`` off the ring, stop its sender and re-route what it held (its
        spool, then its queue) over the new ring; returns the points re-routed."""
        router = self._ring_router()
        sender = self.senders.get(destination)
        if sender is None or destination not in router.destinations:
            raise ValueError(f"{destination} is not a destination on the ring")
        if len(router.destinations) == 1:
            raise ValueError(f"{destination} is the last destination; the ring cannot be empty")
        sender.check_detachable()
        router.remove_destination(destination)
        del self.senders[destination]
        points = sender.detach()
        for name in [name for name in self.stats.gauges if name.startswith(sender.prefix)]:
            del self.stats.gauges[name]
        if destination in self.ring_added:
            self.ring_added.remove(destination)
        else:
            self.ring_removed.add(destination)
        if points:
            self.send(points)
        log.warning("%s purged from the ring; %d datapoints it held re-routed", destination,
                    len(points))
        return len(points)

    def take_out(self, destination: Destination) -> None:
        """Take ``destination`` off the ring but keep its sender (health checks): new points
        go to the ring's next candidates, what it holds waits for it (or its spool)."""
        router = self._ring_router()
        router.remove_destination(destination)
        self.ring_removed.add(destination)

    def put_back(self, destination: Destination) -> None:
        """Undo :meth:`take_out`."""
        router = self._ring_router()
        router.add_destination(destination)
        self.ring_removed.discard(destination)

    @property
    def down(self) -> list[Destination]:
        """Destinations down or spooling, or taken off the ring."""
        return [dest for dest, sender in self.senders.items()
                if sender.down or dest in self.ring_removed]

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
