"""The operators' HTTP side of every daemon: stats, Prometheus, status, /hashcheck, live rings.

Served by gevent's own WSGI server on the daemon's loop (no extra process), off unless the
daemon's section sets ``HTTP_PORT``:

* ``GET /stats`` — JSON: running totals of every counter, current gauges, the last
  self-metrics report (which includes the per-interval values of the cache and writers),
  uptime and version;
* ``GET /metrics`` — the same in Prometheus' text format: counters as ``cadent_<name>_total``,
  gauges as ``cadent_<name>``, per-destination values labelled ``destination="host:port:inst"``,
  every sample labelled with ``role`` and ``instance``;
* ``GET /ops/status`` — ``200 OK``, or ``503`` and the reason (for load balancers and nagios);
* ``GET /hashcheck?key=NAME`` — the destinations NAME is routed to (as ``--test`` prints them);
* ``POST /ring/add?server=host:port[:instance]`` / ``POST /ring/purge?server=...`` — change the
  consistent-hashing ring live. With ``HTTP_TOKEN`` set, POSTs need
  ``Authorization: Bearer <token>`` (or ``?token=``).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import time
from typing import Any, Callable, Iterable, Protocol
from urllib.parse import parse_qs

from cadent import __version__
from cadent.core.stats import Stats

log = logging.getLogger(__name__)

_PROM_NAME = re.compile(r"[^a-zA-Z0-9_]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_DESTINATION = re.compile(r"^destinations\.(?P<dest>.+)\.(?P<metric>[^.]+)$")


class RingError(ValueError):
    """A ring change that cannot be made (unknown server, no ring, last server...)."""


class OpsSource(Protocol):
    """What a daemon shows on its HTTP side."""

    role: str
    instance: str
    stats: Stats

    def health(self) -> str | None:
        """None when healthy, else why not (shown with a 503)."""

    def last_report(self) -> dict[str, float]:
        """The values of the latest self-metrics report (empty before the first)."""


class RoutingSource(OpsSource, Protocol):
    """A daemon that routes to destinations (relay, aggregator)."""

    def hashcheck(self, key: str) -> list[str]:
        """The destinations ``key`` goes to, as ``host:port:instance`` strings."""

    def ring_add(self, server: str) -> list[str]:
        """Add ``server`` to the ring; return the destinations afterwards."""

    def ring_purge(self, server: str) -> list[str]:
        """Remove ``server`` from the ring, re-routing its queue; return the destinations."""


def prometheus_name(name: str) -> str:
    """``cache.size`` → ``cache_size``, ``metricsReceived`` → ``metrics_received``."""
    snake = _CAMEL.sub("_", name).lower()
    return _PROM_NAME.sub("_", snake).strip("_") or "unnamed"


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def prometheus_text(role: str, instance: str, counters: dict[str, float],
                    gauges: dict[str, float], uptime_s: float) -> str:
    """Counters and gauges in the Prometheus text exposition format (version 0.0.4)."""
    families: dict[tuple[str, str], list[tuple[dict[str, str], float]]] = {}
    base = {"role": role, "instance": instance}

    def add(kind: str, raw_name: str, value: float) -> None:
        labels = dict(base)
        match = _DESTINATION.match(raw_name)
        if match:
            labels["destination"] = match.group("dest")
            name = "destination_" + prometheus_name(match.group("metric"))
        else:
            name = prometheus_name(raw_name)
        full = f"cadent_{name}_total" if kind == "counter" else f"cadent_{name}"
        families.setdefault((full, kind), []).append((labels, value))

    for raw_name, value in counters.items():
        add("counter", raw_name, value)
    for raw_name, value in gauges.items():
        add("gauge", raw_name, value)
    add("gauge", "uptimeSeconds", uptime_s)
    lines = []
    for (name, kind), samples in sorted(families.items()):
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{key}="{_label_value(val)}"' for key, val in sorted(labels.items()))
            lines.append(f"{name}{{{text}}} {_number(value)}")
    return "\n".join(lines) + "\n"


def _read_gauges(source: OpsSource) -> dict[str, float]:
    """The daemon's gauges, plus those only its HTTP side shows (``source.gauges``)."""
    values = {}
    readers = dict(source.stats.gauges)
    readers.update(getattr(source, "gauges", None) or {})
    for name, read in readers.items():
        try:
            value = read()
        except Exception:                      # a gauge must never break the stats page
            log.exception("gauge %s failed", name)
            continue
        if value is not None:
            values[name] = float(value)
    return values


class OpsApp:
    """The WSGI application behind the HTTP side of one daemon."""

    def __init__(self, source: OpsSource, token: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.token = token or None
        self._clock = clock
        self._started = clock()
        self.routes: dict[tuple[str, str], Callable[[dict[str, list[str]]], tuple]] = {
            ("GET", "/stats"): self._stats,
            ("GET", "/metrics"): self._metrics,
            ("GET", "/ops/status"): self._status,
            ("GET", "/hashcheck"): self._hashcheck,
            ("POST", "/ring/add"): self._ring_add,
            ("POST", "/ring/purge"): self._ring_purge,
        }

    @property
    def uptime_s(self) -> float:
        return self._clock() - self._started

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        handler = self.routes.get((method if method != "HEAD" else "GET", path))
        if handler is None:
            known = any(route_path == path for _, route_path in self.routes)
            status, body, ctype = ((405, {"error": f"{method} not allowed on {path}"}, None)
                                   if known else (404, {"error": f"no such page: {path}"}, None))
        elif method == "POST" and not self._authorised(environ, query):
            status, body, ctype = 401, {"error": "a valid token is required"}, None
        else:
            try:
                status, body, ctype = handler(query)
            except RingError as exc:
                status, body, ctype = 400, {"error": str(exc)}, None
            except Exception as exc:           # never let a page take the daemon down
                log.exception("HTTP %s %s failed", method, path)
                status, body, ctype = 500, {"error": f"{type(exc).__name__}: {exc}"}, None
        if isinstance(body, (dict, list)):
            payload = (json.dumps(body, sort_keys=True, allow_nan=False, default=str) + "\n")
            ctype = ctype or "application/json"
        else:
            payload = str(body)
            ctype = ctype or "text/plain; charset=utf-8"
        data = payload.encode()
        start_response(f"{status} {_REASONS.get(status, 'Status')}",
                       [("Content-Type", ctype), ("Content-Length", str(len(data)))])
        return [b""] if method == "HEAD" else [data]

    def _authorised(self, environ: dict, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        header = environ.get("HTTP_AUTHORIZATION", "")
        offered = header[7:] if header.startswith("Bearer ") else _first(query, "token") or ""
        return hmac.compare_digest(offered.encode(), self.token.encode())

    # -- pages --------------------------------------------------------------------------

    def _stats(self, query) -> tuple:
        source = self.source
        counters = {name: _finite(value) for name, value in source.stats.totals.items()}
        gauges = {name: _finite(value) for name, value in _read_gauges(source).items()}
        return 200, {
            "role": source.role, "instance": source.instance, "version": __version__,
            "uptime_s": round(self.uptime_s, 3), "counters": counters, "gauges": gauges,
            "last_report": {name: _finite(value) for name, value in source.last_report().items()},
            "status": source.health() or "OK",
        }, None

    def _metrics(self, query) -> tuple:
        source = self.source
        gauges = _read_gauges(source)
        gauges.update({name: value for name, value in source.last_report().items()
                       if name not in source.stats.totals and name not in gauges})
        text = prometheus_text(source.role, source.instance, dict(source.stats.totals),
                               gauges, self.uptime_s)
        return 200, text, "text/plain; version=0.0.4; charset=utf-8"

    def _status(self, query) -> tuple:
        problem = self.source.health()
        if problem:
            return 503, f"{problem}\n", None
        return 200, "OK\n", None

    def _routing(self) -> RoutingSource:
        if not callable(getattr(self.source, "hashcheck", None)):
            raise RingError(f"cadent-{self.source.role} does not route to destinations")
        return self.source  # type: ignore[return-value]

    def _hashcheck(self, query) -> tuple:
        key = _first(query, "key")
        if not key:
            return 400, {"error": "hashcheck needs ?key=NAME"}, None
        return 200, {"key": key, "destinations": self._routing().hashcheck(key)}, None

    def _ring_change(self, query, change: str) -> tuple:
        server = _first(query, "server")
        if not server:
            return 400, {"error": f"ring/{change} needs ?server=host:port[:instance]"}, None
        routing = self._routing()
        after = routing.ring_add(server) if change == "add" else routing.ring_purge(server)
        log.warning("ring changed over HTTP: %s %s; destinations now %s (until restart)",
                    change, server, ", ".join(after))
        return 200, {"server": server, change: True, "destinations": after}, None

    def _ring_add(self, query) -> tuple:
        return self._ring_change(query, "add")

    def _ring_purge(self, query) -> tuple:
        return self._ring_change(query, "purge")


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 500: "Internal Server Error", 503: "Service Unavailable"}


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity: report those as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class DaemonOps:
    """A daemon's :class:`OpsSource`: its stats, its reporter's last report, its health."""

    def __init__(self, role: str, instance: str, stats: Stats,
                 health: Callable[[], str | None], reporter: Any = None,
                 gauges: dict[str, Callable[[], float | None]] | None = None) -> None:
        self.role = role
        self.instance = instance
        self.stats = stats
        self._health = health
        self._reporter = reporter
        self.gauges = dict(gauges or {})   # shown on the HTTP side only, not reported
        self.stopping = False

    def health(self) -> str | None:
        if self.stopping:
            return f"cadent-{self.role} is stopping"
        return self._health()

    def last_report(self) -> dict[str, float]:
        return dict(getattr(self._reporter, "last", None) or {})


class RoutingOps(DaemonOps):
    """A :class:`RoutingSource` over a :class:`~cadent.core.net.output.RoutedOutput`."""

    def __init__(self, role: str, instance: str, stats: Stats, output: Any,
                 health: Callable[[], str | None], reporter: Any = None,
                 ring_refusal: str | None = None) -> None:
        super().__init__(role, instance, stats, health, reporter)
        self.output = output
        self.ring_refusal = ring_refusal

    def hashcheck(self, key: str) -> list[str]:
        return [str(d) for d in self.output.router.destinations_for(key)]

    def _change(self, server: str, change: Callable[[Any], Any]) -> list[str]:
        from cadent.core.route.destination import parse_destination

        if self.ring_refusal:
            raise RingError(self.ring_refusal)
        try:
            change(parse_destination(server))
        except ValueError as exc:
            raise RingError(str(exc)) from None
        return [str(d) for d in self.output.router.destinations]

    def ring_add(self, server: str) -> list[str]:
        return self._change(server, self.output.add_destination)

    def ring_purge(self, server: str) -> list[str]:
        return self._change(server, self.output.remove_destination)


def output_health(output: Any) -> str | None:
    """503 reason for a routed output: every destination down, spooling or out of the ring."""
    down = output.down
    if down and len(down) >= len(output.senders):
        return "every destination is down or spooling: " + ", ".join(map(str, down))
    return None


def serve_ops(config: Any, source: OpsSource) -> "OpsServer | None":
    """The HTTP side ``config`` (an HttpConfig) asks for, its socket bound (call before
    privileges are dropped), or None when it is off. With several worker processes only
    worker 0 serves it."""
    import os

    if not config.enabled or os.environ.get("CADENT_WORKER", "0") != "0":
        return None
    server = OpsServer((config.interface, config.port), OpsApp(source, token=config.token))
    server.bind()
    return server


class OpsServer:
    """Serves an :class:`OpsApp` on ``address`` with gevent's WSGI server."""

    def __init__(self, address: tuple[str, int], app: OpsApp) -> None:
        from gevent.pywsgi import WSGIServer

        self.app = app
        self._server = WSGIServer(address, app, log=None, error_log=log)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

    def bind(self) -> None:
        """Open the listening socket (before privileges are dropped)."""
        self._server.init_socket()

    def start(self) -> None:
        self._server.start()
        host, port = self._server.address[:2]
        log.info("HTTP side listening on %s:%d", host, port)

    def stop(self) -> None:
        self._server.stop(timeout=1)


__all__ = ["DaemonOps", "OpsApp", "OpsServer", "OpsSource", "RingError", "RoutingOps",
           "RoutingSource", "output_health", "prometheus_name",
           "prometheus_text", "serve_ops"]
