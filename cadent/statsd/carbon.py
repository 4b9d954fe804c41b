"""statsd's graphite backend on cadent's senders: statsd's exact text, carbon's delivery.

Each flush's lines become pre-formatted points (:mod:`cadent.core.net.preformatted`) and go
through a :class:`~cadent.core.net.output.RoutedOutput`: one bounded queue and one
persistent, reconnecting connection per carbon. A carbon that is down gets the lines when it
comes back. Several carbons (``graphiteDestinations``) share the lines by carbon-relay's
consistent hashing.

With ``spoolDir`` set, each carbon has a disk spool (:mod:`cadent.core.spool`) in
``<spoolDir>/<host_port_instance>/``: the lines of a carbon that has been unreachable, or whose
queue has been full, for ``spoolAfterSeconds`` go to disk as the wire messages the sender would
write (statsd's text or pickle framing, unchanged) and are replayed in order when it is back,
also by the next start. SIGTERM spools what a dead carbon has not taken, final flush included,
and exits without waiting ``shutdownDrainSeconds``. Only worker 0 sends to carbon, so with
``workers: N`` there is still one spool per carbon, the same as with one worker.

Without a spool the queue holds ``maxQueuePoints`` lines per carbon; beyond that the oldest
flushes are kept and new lines are dropped and counted, and what is still queued when
``shutdownDrainSeconds`` runs out at SIGTERM is lost (the exit status is then 1).

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
from cadent.core.spool import SpoolConfig
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


def carbon_spool(settings: StatsdSettings) -> SpoolConfig | None:
    """The carbons' disk spool: ``spoolDir`` with ``spoolMaxBytes`` and ``spoolAfterSeconds``;
    None when ``spoolDir`` is unset or ``spoolMaxBytes`` is 0."""
    if not settings.spool_dir or not settings.spool_max_bytes:
        return None
    return SpoolConfig(directory=settings.spool_dir, max_bytes=settings.spool_max_bytes,
                       after_s=settings.spool_after_s)


def _log_spool(spool: SpoolConfig | None, settings: StatsdSettings) -> None:
    if spool is not None:
        log.info("disk spool for unreachable carbons in %s (at most %d bytes per carbon, "
                 "after %g s)", spool.directory, spool.max_bytes, spool.after_s)
        return
    why = "spoolMaxBytes is 0" if settings.spool_dir else "no spoolDir configured"
    log.warning("disk spool off (%s): while carbon is unreachable flushes wait in memory (at "
                "most %d lines per carbon), and at shutdown whatever carbon has not taken "
                "within shutdownDrainSeconds (%g s) is lost", why, settings.max_queue_points,
                settings.drain_seconds)


class CarbonOutput:
    """Queues flush lines for every configured carbon; nothing when none is configured."""

    def __init__(self, settings: StatsdSettings, *, flow: FlowControl, stats: Stats) -> None:
        destinations = carbon_destinations(settings)
        self.output: RoutedOutput | None = None
        self.spool: SpoolConfig | None = None
        if not destinations:
            log.info("no graphiteHost configured: flushes are computed but not sent")
            return
        encoder = encode_preformatted_pickle if settings.graphite_protocol == "pickle" else encode_preformatted_lines
        router = build_router("consistent-hashing", destinations)
        self.spool = spool = carbon_spool(settings)
        _log_spool(spool, settings)
        self.output = RoutedOutput(
            router, flow=flow, stats=stats, protocol=encoder,  # type: ignore[arg-type]
            max_queue_points=settings.max_queue_points, batch_points=5000,
            stall_seconds=max(30.0, 3 * settings.flush_interval_s), spool=spool)

    def send_lines(self, lines: list[str]) -> None:
        if self.output is not None and lines:
            self.output.send(preformatted_batch(lines), droppable=False)

    @property
    def pending(self) -> int:
        return self.output.pending if self.output is not None else 0

    @property
    def dropped(self) -> int:
        """Lines dropped since start, every carbon: queue or spool full, spool write errors
        (``destinations.<carbon>.fullQueueDrops``)."""
        if self.output is None:
            return 0
        totals = self.output.stats.totals
        return int(sum(totals.get(sender.prefix + "fullQueueDrops", 0)
                       for sender in self.output.senders.values()))

    def start(self) -> None:
        """Start the senders (opening and recovering the spools; OSError when a spool
        directory is unusable)."""
        if self.output is not None:
            self.output.start()

    def stop(self, drain_timeout_s: float) -> int:
        """Deliver or spool what is queued; returns the lines neither delivered nor spooled."""
        return self.output.stop(drain_timeout_s) if self.output is not None else 0


__all__ = ["CarbonOutput", "carbon_destinations", "carbon_spool", "encode_preformatted_pickle"]
