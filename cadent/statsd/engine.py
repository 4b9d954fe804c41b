"""The statsd aggregator without sockets: packets in, graphite lines out at each flush.

A daemon is thin wiring around :class:`StatsdEngine`:

* every UDP datagram → ``engine.ingest(data)``; every TCP read →
  :class:`cadent.statsd.net.TcpLineFramer` then ``engine.ingest`` of the lines it completes;
* at each flush boundary → ``result = engine.flush(now_ms)``; send ``result.payload()``
  (statsd's exact text, or ``result.pickle_payload()``) to carbon in one connection, then
  ``engine.note_sent(...)`` so the next flush reports graphiteStats like statsd does;
* management connections → :func:`cadent.statsd.mgmt.handle_command`.

Keep the pre-formatted text (:attr:`FlushResult.lines`) for line-exactness: statsd prints
JavaScript number text, which carbon-style ``%f`` re-formatting of a Batch would change.
"""

from __future__ import annotations

import gc
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from cadent.statsd.config import StatsdSettings
from cadent.statsd.flush import filter_stats, histogram_bins, metric_filter, timer_stats
from cadent.statsd.graphite import (
    GraphiteNames,
    encode_pickle_payload,
    graphite_lines,
    lines_to_batch,
    own_stats_lines,
)
from cadent.statsd.numbers import round_half_up
from cadent.statsd.parse import PacketParser
from cadent.statsd.store import MetricStore


@dataclass
class FlushResult:
    """One flush: the timestamp and statsd's text lines (each ending ``\\n``)."""

    ts: int
    lines: list[str]

    def payload(self) -> bytes:
        """The plaintext payload statsd writes to carbon's line port."""
        return "".join(self.lines).encode("utf-8")

    def pickle_payload(self) -> bytes:
        """The payload statsd writes with ``graphiteProtocol: "pickle"``."""
        return encode_pickle_payload(self.lines)

    def batch(self) -> list[tuple[str, tuple[float, float]]]:
        """The lines as a Batch (for in-process use; re-encoding loses statsd's number text)."""
        return lines_to_batch(self.lines)


@dataclass
class GraphiteStats:
    """The graphite backend's own status, reported in every flush and by ``stats``."""

    last_flush: int
    last_exception: int = 0
    flush_time: int = 0
    flush_length: int = 0


@dataclass
class EngineStats:
    """Process-wide numbers the management ``stats`` command shows."""

    started_s: int
    last_msg_seen_s: int
    bad_lines_total: int = 0
    extra: dict = field(default_factory=dict)


def _js_length(text: str) -> int:
    """JavaScript string length (UTF-16 code units)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


class StatsdEngine:
    """statsd's aggregation, flush math and graphite formatting in one object.

    ``now`` (seconds, float) is injectable so tests and replays control time.
    """

    def __init__(self, settings: StatsdSettings, now: float | None = None) -> None:
        self.settings = settings
        start = time.time() if now is None else now
        started_s = int(round_half_up(start))
        self.parser = PacketParser(settings.key_name_sanitize)
        self.store = MetricStore(settings.prefix_stats, settings.gauges_max_ttl)
        self.names = GraphiteNames(settings)
        self.graphite_stats = GraphiteStats(last_flush=started_s)
        self.stats = EngineStats(started_s=started_s, last_msg_seen_s=started_s)
        self.health = settings.health_status
        self._prev_ts = 0
        self._interval_s = settings.flush_interval_s
        self._keep = metric_filter(settings.calculated_timer_metrics)
        self._bins_cache: dict[str, tuple] = {}

    # -- input ------------------------------------------------------------------------

    def ingest(self, packet: str | bytes, now: float | None = None) -> int:
        """Account and aggregate one packet; returns the number of bad segments."""
        if isinstance(packet, (bytes, bytearray, memoryview)):
            packet = bytes(packet).decode("utf-8", "replace")
        result = self.parser.parse(packet)
        store = self.store
        store.count_packet(1, result.metrics, result.bad)
        if result.updates:
            store.apply(result.updates)
        self.stats.bad_lines_total += result.bad
        self.stats.last_msg_seen_s = int(round_half_up(time.time() if now is None else now))
        return result.bad

    def count_too_long(self, lines: int) -> None:
        """Account TCP lines dropped for their length (bad lines, plus their own counter)."""
        self.store.count_too_long(lines)
        self.stats.bad_lines_total += lines

    # -- flush ------------------------------------------------------------------------

    def _bins(self, key: str) -> tuple:
        rules = self.settings.histogram
        if not rules:
            return ()
        bins = self._bins_cache.get(key)
        if bins is None:
            if len(self._bins_cache) > 100_000:
                self._bins_cache.clear()
            bins = self._bins_cache[key] = histogram_bins(key, rules)
        return bins

    def flush(self, now_ms: float | None = None) -> FlushResult:
        """Compute this interval's lines (timestamp ``round(now_ms/1000)``) and reset."""
        with collector_paused():
            return self._flush(now_ms)

    def _flush(self, now_ms: float | None) -> FlushResult:
        if now_ms is None:
            now_ms = time.time() * 1000
        settings = self.settings
        store = self.store
        ts = int(round_half_up(now_ms / 1000))
        if self._prev_ts > 0:
            store.gauges[store.timestamp_lag_key] = ts - self._prev_ts - self._interval_s
        self._prev_ts = ts

        started = time.monotonic()
        interval_s = self._interval_s
        percentiles = settings.percent_threshold
        keep = self._keep
        timer_counters = store.timer_counters
        timer_data = {}
        for key, values in store.timers.items():
            data = timer_stats(values, timer_counters.get(key, 0.0), interval_s, percentiles, self._bins(key))
            timer_data[key] = filter_stats(data, keep) if keep else data
        processing_ms = _elapsed_ms(started)

        started = time.monotonic()
        lines = graphite_lines(self.names, store.counters, interval_s, timer_data, store.gauges,
                               store.sets, ts)
        graphite = self.graphite_stats
        internal = {
            "calculationtime": _elapsed_ms(started),  # statsd: the time spent building the lines
            "processing_time": processing_ms,
            "last_exception": graphite.last_exception,
            "last_flush": graphite.last_flush,
            "flush_time": graphite.flush_time,
            "flush_length": graphite.flush_length,
        }
        lines += own_stats_lines(self.names, store.num_stats(), internal, ts)

        store.reset_after_flush(
            settings.delete_counters, settings.delete_timers, settings.delete_sets, settings.delete_gauges
        )
        return FlushResult(ts, lines)

    @property
    def last_flush_ts(self) -> int:
        """The timestamp of the latest flush (0 before the first)."""
        return self._prev_ts

    def note_sent(self, sent_at_s: float, flush_time_ms: float, payload_length: int) -> None:
        """Record a successful delivery (statsd reports it in the next flush)."""
        self.graphite_stats.last_flush = int(round_half_up(sent_at_s))
        self.graphite_stats.flush_time = int(flush_time_ms)
        self.graphite_stats.flush_length = payload_length

    @staticmethod
    def payload_length(result: FlushResult) -> int:
        """statsd's flush_length for a text payload (JavaScript string length)."""
        return _js_length("".join(result.lines))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector off for a flush (nests; restores its state).

    A flush allocates a few containers per key (timer stats, the reset maps) and leaves none
    in a reference cycle, but their number sets the collector off again and again, and each
    full pass walks every key of the store: 15-25 % of a 10k-key flush's CPU, measured.
    Whoever turns the lines into points for carbon (one tuple per line) gains the same by
    doing it inside this too.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _elapsed_ms(started: float) -> int:
    return int(math.floor((time.monotonic() - started) * 1000))


__all__ = ["StatsdEngine", "FlushResult", "GraphiteStats", "EngineStats", "collector_paused"]
