"""statsd's graphite backend on cadent's senders: statsd's exact text, carbon's delivery.

Each flush's lines become pre-formatted points (:mod:`cadent.core.net.preformatted`) and go
through a :class:`~cadent.core.net.output.RoutedOutput`: one bounded queue and one
persistent, reconnecting connection per carbon. A carbon that is down gets the lines when it
comes back (the queue holds ``maxQueuePoints`` lines per carbon; beyond that the oldest
flushes are kept and new lines are dropped and counted). Several carbons
(``graphiteDestinations``) share the lines by carbon-relay's consistent hashing.

``graphiteProtocol: "pickle"`` sends statsd's pickle framing (protocol 0, values as strings)
to ``graphitePicklePort``.
"""

from __future__ import annotations

import logging

from cadent.core.flow import FlowControl
from cadent.core.net.output import RoutedOutput
from cadent.core.net.preformatted import encode_preformatted_lines, preformatted_batch
from cadent.core.point import Batch
from cadent.core.route.destination import Destination
from cadent.core.route.routers import build_router
from cadent.core.stats import Stats
from cadent.statsd.config import StatsdSettings
from cadent.statsd.graphite import encode_pickle_payload

log = logging.getLogger(__name__)


def encode_preformatted_pickle(batch: Batch) -> bytes:
    """statsd's pickle message for pre-formatted points."""
    return encode_pickle_payload([point[1][1] for point in batch])


def carbon_destinations(settings: StatsdSettings) -> list[Destination]:
    """``graphiteDestinations`` if given, else ``graphiteHost`` with the protocol's port."""
    if settings.graphite_destinations:
        return [Destination(h, p, i) for h, p, i in settings.graphite_destinations]
    if not settings.graphite_host:
        return []
    port = settings.graphite_pickle_port if settings.graphite_protocol == "pickle" else settings.graphite_port
    return [Destination(settings.graphite_host, port, None)]


class CarbonOutput:
    """Queues flush lines for every configured carbon; nothing when none is configured."""

    def __init__(self, settings: StatsdSettings, *, flow: FlowControl, stats: Stats) -> None:
        destinations = carbon_destinations(settings)
        self.output: RoutedOutput | None = None
        if not destinations:
            log.info("no graphiteHost configured: flushes are computed but not sent")
            return
        encoder = encode_preformatted_pickle if settings.graphite_protocol == "pickle" else encode_preformatted_lines
        router = build_router("consistent-hashing", destinations)
        self.output = RoutedOutput(
            router, flow=flow, stats=stats, protocol=encoder,  # type: ignore[arg-type]
            max_queue_points=settings.max_queue_points, batch_points=5000,
            stall_seconds=max(30.0, 3 * settings.flush_interval_s))

    def send_lines(self, lines: list[str]) -> None:
        if self.output is not None and lines:
            self.output.send(preformatted_batch(lines), droppable=False)

    @property
    def pending(self) -> int:
        return self.output.pending if self.output is not None else 0

    def start(self) -> None:
        if self.output is not None:
            self.output.start()

    def stop(self, drain_timeout_s: float) -> int:
        return self.output.stop(drain_timeout_s) if self.output is not None else 0


__all__ = ["CarbonOutput", "carbon_destinations", "encode_preformatted_pickle"]
