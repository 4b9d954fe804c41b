"""statsd's proxy.js placement as a relay router: cadent-relay in front of a statsd fleet.

Each key goes to the destination proxy.js would send it to with the same nodes in the same
order (node id ``host:port``, :class:`cadent.statsd.proxy.ProxyRing`). Unlike proxy.js the
ring never changes while the relay runs: a statsd that is down keeps its keys, which wait in
its queue (and spool) instead of moving to another statsd and splitting its counters.
"""

from __future__ import annotations

from collections.abc import Iterable

from cadent.core.parse.keyed import LineFormat
from cadent.core.route.destination import Destination
from cadent.core.route.routers import BaseRouter
from cadent.statsd.proxy import ProxyRing


class StatsdProxyRouter(BaseRouter):
    """One destination per key, on proxy.js's ring over ``host:port`` of ``destinations``."""

    method = "statsd-proxy"

    def __init__(self, destinations: Iterable[Destination]) -> None:
        super().__init__(destinations)
        by_id: dict[str, Destination] = {}
        for destination in self.destinations:
            by_id.setdefault(f"{destination.host}:{destination.port}", destination)
        self._by_id = by_id
        self._ring = ProxyRing(list(by_id))

    def _select(self, key: str) -> tuple[Destination, ...]:
        node = self._ring.get(key)
        return () if node is None else (self._by_id[node],)




def router_for_format(router: BaseRouter, line_format: LineFormat) -> BaseRouter:
    """The relay's router for its LINE_FORMAT: statsd lines under consistent-hashing go on
    proxy.js's ring over the same destinations; every other case keeps ``router``."""
    if line_format.kind == "statsd" and router.method == "consistent-hashing":
        return StatsdProxyRouter(router.destinations)
    return router


__all__ = ["StatsdProxyRouter", "router_for_format"]
