"""Destination health checks: take a destination that refuses connections out of the ring.

Every destination on a :class:`~cadent.core.net.output.RoutedOutput` is probed with a plain TCP
connect (closed at once) every :attr:`HealthChecker.interval_s`. One that has refused (or
failed) every probe for ``fail_s`` is taken off the ring — its names go to the ring's next
candidates, exactly where a ring built without it would put them — and put back once every
probe has succeeded for ``ok_s``. Points it already held stay with its sender (delivered when
it is back, or spooled). Both moves are logged and counted (``healthCheckRemoved``,
``healthCheckRestored``, and ``destinations.<d>.healthCheckRemoved`` / ``...Restored``).
A destination is never taken out when it is the last one on the ring.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import gevent
from gevent import socket as gsocket

from cadent.core.net.output import RoutedOutput
from cadent.core.route.destination import Destination

log = logging.getLogger(__name__)


def probe(destination: Destination, timeout_s: float) -> bool:
    """True when ``destination`` accepts a TCP connection within ``timeout_s``."""
    try:
        sock = gsocket.create_connection((destination.host, destination.port), timeout=timeout_s)
    except OSError:
        return False
    sock.close()
    return True


class HealthChecker:
    """Probes the destinations of one output and moves them off and onto its ring."""

    def __init__(self, output: RoutedOutput, *, fail_s: float, ok_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.output = output
        self.fail_s = fail_s
        self.ok_s = ok_s
        self.interval_s = min(1.0, max(0.1, min(fail_s, ok_s) / 4))
        self.clock = clock
        self.out: set[Destination] = set()
        self._since: dict[Destination, float] = {}   # first probe of the current streak
        self._greenlet: gevent.Greenlet | None = None

    def check(self, destination: Destination, accepted: bool) -> None:
        """Take one probe result into account (and move the destination when it is time)."""
        now = self.clock()
        taken_out = destination in self.out
        if accepted != taken_out:          # healthy and in, or refusing and out: no streak
            self._since.pop(destination, None)
            return
        since = self._since.setdefault(destination, now)
        if taken_out and now - since >= self.ok_s:
            self._put_back(destination)
        elif not taken_out and now - since >= self.fail_s:
            self._take_out(destination)

    def _take_out(self, destination: Destination) -> None:
        if len(self.output.router.destinations) <= 1:   # taken-out ones have left the ring
            return
        self.output.take_out(destination)
        self.out.add(destination)
        self._since.pop(destination, None)
        self._count(destination, "healthCheckRemoved")
        log.error("health check: %s refused connections for %.1fs; taken out of the ring, its "
                  "names go to the next destinations", destination, self.fail_s)

    def _put_back(self, destination: Destination) -> None:
        self.output.put_back(destination)
        self.out.discard(destination)
        self._since.pop(destination, None)
        self._count(destination, "healthCheckRestored")
        log.warning("health check: %s accepted connections for %.1fs; back on the ring",
                    destination, self.ok_s)

    def _count(self, destination: Destination, name: str) -> None:
        stats = self.output.stats
        stats.incr(name)
        stats.incr(f"destinations.{destination.metric_key}.{name}")

    def _probe_all(self) -> None:
        destinations = list(self.output.senders)
        jobs = [gevent.spawn(probe, dest, self.interval_s) for dest in destinations]
        gevent.joinall(jobs)
        for dest, job in zip(destinations, jobs):
            if dest in self.output.senders:   # not purged meanwhile
                self.check(dest, bool(job.value))

    def _run(self) -> None:
        while True:
            started = self.clock()
            try:
                self._probe_all()
            except Exception:
                log.exception("health check round failed")
            gevent.sleep(max(0.0, self.interval_s - (self.clock() - started)))

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1)
            self._greenlet = None


__all__ = ["HealthChecker", "probe"]
