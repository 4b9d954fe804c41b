"""cadent-cache's HTTP side: its ops source and why it is unhealthy.

``/ops/status`` answers 503 while the cache is full (the receivers are paused), while every
write of a writer has been failing for :data:`FAILING_ROUNDS` rounds in a row (a dead disk or
backend), and while the cache is stopping.
"""

from __future__ import annotations

from typing import Any

from cadent.compat.http_settings import http_config
from cadent.core.ops_http import DaemonOps, OpsServer, serve_ops

FAILING_ROUNDS = 3


def cache_health(flow: Any, lanes: Any) -> str | None:
    """The reason the cache cannot take data now, or None."""
    reasons = flow.reasons()
    if reasons:
        return "receivers paused: " + ", ".join(reasons)
    failing = [lane.name for lane in lanes.lanes
               if lane.drainer.failing_rounds >= FAILING_ROUNDS]
    if failing:
        return "writes keep failing: " + ", ".join(failing)
    return None


def cache_ops(service: Any) -> tuple[DaemonOps, OpsServer | None]:
    """The ops source of a CacheService and its HTTP server (bound), or None when off."""
    settings, lanes = service.settings, service.lanes
    gauges = {"cache.size": lambda: lanes.size, "cache.queues": lambda: service.cache.queues}
    for lane in lanes.lanes:
        gauges[f"writer.{lane.name}.cache.size"] = lambda cache=lane.cache: cache.size
    ops = DaemonOps("cache", settings.self_metrics.instance, service.stats,
                    lambda: cache_health(service.flow, lanes), service.reporter, gauges)
    return ops, serve_ops(http_config(settings.conf), ops)


__all__ = ["cache_health", "cache_ops"]
