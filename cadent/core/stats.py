"""Counters and the self-metrics reporter, with carbon's metric names.

Counters are per reporting interval (reset after each report, like carbon) and also kept as
running totals for the HTTP side's ``/stats`` (:mod:`cadent.core.ops_http`). Gauges are callables read at report time.
Self-metric names follow carbon: ``<prefix>.<kind>.<host>-<instance>.<metric>`` where kind is
``agents`` (cache), ``relays`` or ``aggregator`` and host is the hostname with dots replaced.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict
from typing import Callable

import gevent
import psutil

from cadent.core.point import Batch

log = logging.getLogger(__name__)


class Stats:
    """Named counters (reset per interval, totals kept) and gauges (read on demand)."""

    def __init__(self) -> None:
        self.counters: defaultdict[str, float] = defaultdict(int)
        self.totals: defaultdict[str, float] = defaultdict(int)
        self.gauges: dict[str, Callable[[], float | None]] = {}
        self.maxima: dict[str, float] = {}

    def incr(self, name: str, n: float = 1) -> None:
        self.counters[name] += n
        self.totals[name] += n

    def observe_max(self, name: str, value: float) -> None:
        """Track the largest value seen this interval (e.g. a queue length)."""
        if value > self.maxima.get(name, float("-inf")):
            self.maxima[name] = value

    def gauge(self, name: str, read: Callable[[], float | None]) -> None:
        self.gauges[name] = read

    def snapshot(self, reset: bool = True) -> dict[str, float]:
        """Counters and maxima seen this interval (non-zero ones) plus current gauge values."""
        values = {name: n for name, n in self.counters.items() if n}
        values.update(self.maxima)
        for name, read in self.gauges.items():
            value = read()
            if value is not None:
                values[name] = value
        if reset:
            self.counters.clear()
            self.maxima.clear()
        return values


def carbon_host_name() -> str:
    """The host part of carbon's self-metric names: the hostname with dots as underscores."""
    return socket.gethostname().replace(".", "_")


def worker_instance(instance: str, workers: int) -> str:
    """The instance part of self-metric names: ``a``, or ``a-w0``, ``a-w1``... when several
    worker processes report (each counts only its own traffic)."""
    if workers <= 1:
        return instance
    return f"{instance}-w{os.environ.get('CADENT_WORKER', '0')}"


class ProcessGauges:
    """cpuUsage (% of one CPU since the previous read) and memUsage (RSS bytes)."""

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        self._last_cpu = self._cpu_seconds()
        self._last_time = time.monotonic()

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def cpu_usage(self) -> float:
        now, cpu = time.monotonic(), self._cpu_seconds()
        elapsed = max(now - self._last_time, 1e-9)
        usage = (cpu - self._last_cpu) / elapsed * 100.0
        self._last_cpu, self._last_time = cpu, now
        return usage

    def mem_usage(self) -> float:
        return float(self._process.memory_info().rss)

    def install(self, stats: Stats) -> None:
        stats.gauge("cpuUsage", self.cpu_usage)
        stats.gauge("memUsage", self.mem_usage)


class SelfMetricsReporter:
    """Every ``interval_s`` turns a :class:`Stats` snapshot into datapoints for ``emit``."""

    def __init__(
        self,
        stats: Stats,
        emit: Callable[[Batch], None],
        *,
        prefix: str,
        kind: str,
        instance: str,
        interval_s: float,
        host: str | None = None,
    ) -> None:
        self.stats = stats
        self.emit = emit
        self.interval_s = interval_s
        self.base = f"{prefix}.{kind}.{host or carbon_host_name()}-{instance}."
        self._greenlet: gevent.Greenlet | None = None
        self.last: dict[str, float] = {}   # the latest report's values (for the HTTP side)

    def batch(self, now: float | None = None) -> Batch:
        ts = time.time() if now is None else now
        base = self.base
        self.last = values = self.stats.snapshot()
        return [(base + name, (ts, value)) for name, value in sorted(values.items())]

    def report(self) -> None:
        batch = self.batch()
        if batch:
            self.emit(batch)

    def _run(self) -> None:
        while True:
            gevent.sleep(self.interval_s)
            try:
                self.report()
            except Exception:
                log.exception("self-metrics report failed")

    def start(self) -> None:
        if self.interval_s > 0 and self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1)
            self._greenlet = None
