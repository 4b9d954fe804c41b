"""statsd's graphite backend output: metric names, line order and value text.

:class:`GraphiteNames` builds the names (legacy or prefixed namespace, globalSuffix, tags);
:func:`graphite_points` walks a flush snapshot in statsd's emission order and yields
``(name, value)`` pairs; :func:`format_lines` prints them as statsd does
(``"name value ts\\n"`` with JavaScript number text) and :func:`encode_pickle_payload`
builds statsd's pickle framing.

Line-exactness: statsd prints values with JavaScript's ``Number::toString``; carbon's line
encoder formats floats differently. A daemon that must be byte-identical to statsd sends
the text from :func:`format_lines` as is; the Batch form is for in-process consumers.
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator

from cadent.statsd.config import StatsdSettings
from cadent.statsd.numbers import js_str
from cadent.statsd.sanitize import sanitize_key
from cadent.statsd.store import js_key_order


class GraphiteNames:
    """Name builders for one settings object (all prefixes resolved once)."""

    def __init__(self, settings: StatsdSettings) -> None:
        self.sanitize_names = not settings.key_name_sanitize
        self.flush_counts = settings.flush_counts
        self.suffix = "." + settings.global_suffix if settings.global_suffix else ""
        ps = settings.prefix_stats
        if settings.legacy_namespace:
            self.counter_rate = "stats."
            self.counter_count = "stats_counts."
            self.rate_tail = ""
            self.count_tail = ""
            self.timer = "stats.timers."
            self.gauge = "stats.gauges."
            self.set = "stats.sets."
            stats_ns = ["stats"]
            numstats_ns: list[str] = []
        else:
            gp = [settings.global_prefix] if settings.global_prefix else []

            def ns(level: str) -> str:
                parts = gp + ([level] if level else [])
                return ".".join(parts) + "." if parts else ""

            self.counter_rate = self.counter_count = ns(settings.prefix_counter)
            self.rate_tail = ".rate"
            self.count_tail = ".count"
            self.timer = ns(settings.prefix_timer)
            self.gauge = ns(settings.prefix_gauge)
            self.set = ns(settings.prefix_set)
            stats_ns = gp
            numstats_ns = gp
        ps_ns = [ps] if ps else []
        sfx = self.suffix
        self.num_stats = ".".join(numstats_ns + ps_ns + ["numStats"]) + sfx
        self.calculation_time = ".".join(stats_ns + ps_ns + ["graphiteStats", "calculationtime"]) + sfx
        self.processing_time = ".".join(stats_ns + ps_ns + ["processing_time"]) + sfx
        self.graphite_stat = {
            name: ".".join(stats_ns + ps_ns + ["graphiteStats", name]) + sfx
            for name in ("last_exception", "last_flush", "flush_time", "flush_length")
        }

    def split(self, key: str) -> tuple[str, str]:
        """(name part, ``;tags`` part) of a key; the name is sanitised if keys are raw."""
        cut = key.find(";")
        if cut < 0:
            name, tags = key, ""
        else:
            name, tags = key[:cut], key[cut:]
        if self.sanitize_names:
            name = sanitize_key(name)
        return name, tags


def graphite_points(
    names: GraphiteNames,
    counters: dict,
    counter_rates: dict,
    timer_data: dict,
    gauges: dict,
    sets: dict,
    num_stats: int,
    internal: dict,
) -> Iterator[tuple[str, float]]:
    """``(name, value)`` in statsd's order: counters, timers, gauges, sets, own stats.

    ``internal`` holds ``calculationtime``, ``processing_time``, ``last_exception``,
    ``last_flush``, ``flush_time`` and ``flush_length``.
    """
    sfx = names.suffix
    split = names.split
    rate_ns, count_ns = names.counter_rate, names.counter_count
    rate_tail, count_tail = names.rate_tail, names.count_tail
    flush_counts = names.flush_counts
    for key in js_key_order(counters):
        name, tags = split(key)
        yield rate_ns + name + rate_tail + sfx + tags, counter_rates[key]
        if flush_counts:
            yield count_ns + name + count_tail + sfx + tags, counters[key]
    timer_ns = names.timer
    for key in js_key_order(timer_data):
        name, tags = split(key)
        base = timer_ns + name + "."
        for stat, value in timer_data[key].items():
            if isinstance(value, dict):
                for bin_name, freq in value.items():
                    yield base + stat + "." + bin_name + sfx + tags, freq
            else:
                yield base + stat + sfx + tags, value
    gauge_ns = names.gauge
    for key in js_key_order(gauges):
        name, tags = split(key)
        yield gauge_ns + name + sfx + tags, gauges[key]
    set_ns = names.set
    for key in js_key_order(sets):
        name, tags = split(key)
        yield set_ns + name + ".count" + sfx + tags, len(sets[key])
    yield names.num_stats, num_stats
    yield names.calculation_time, internal["calculationtime"]
    yield names.processing_time, internal["processing_time"]
    for stat in ("last_exception", "last_flush", "flush_time", "flush_length"):
        yield names.graphite_stat[stat], internal[stat]


def format_lines(points: Iterable[tuple[str, float]], ts: int, stats_ts: int | None = None,
                 own_stats: int = 6) -> list[str]:
    """statsd's text lines ``"name value ts\\n"``.

    The last ``own_stats`` points (the graphite backend's own stats) carry ``stats_ts``
    (statsd stamps them when its TCP connection opens) if given, else ``ts``.
    """
    suffix = " " + str(ts) + "\n"
    out = [name + " " + js_str(value) + suffix for name, value in points]
    if stats_ts is not None and stats_ts != ts and own_stats:
        late = " " + str(stats_ts) + "\n"
        for i in range(len(out) - own_stats, len(out)):
            out[i] = out[i][: -len(suffix)] + late
    return out


def lines_to_batch(lines: Iterable[str]) -> list[tuple[str, tuple[float, float]]]:
    """The lines as a Batch ``[(name, (ts, value))]`` (values parsed back to floats)."""
    batch = []
    for line in lines:
        name, value, ts = line.rstrip("\n").rsplit(" ", 2)
        batch.append((name, (float(ts), float(value.replace("Infinity", "inf")))))
    return batch


def _pickle_str(text: str) -> str:
    return "S'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'\n"


def encode_pickle_payload(lines: Iterable[str]) -> bytes:
    """statsd's pickle payload for the same lines: 4-byte length + protocol-0 list."""
    parts = ["(l"]
    for line in lines:
        name, value, ts = line.rstrip("\n").rsplit(" ", 2)
        parts.append("(" + _pickle_str(name) + "(L" + ts + "L\n" + _pickle_str(value) + "tta")
    parts.append(".")
    body = "".join(parts).encode("utf-8")
    return struct.pack(">I", len(body)) + body


__all__ = ["GraphiteNames", "graphite_points", "format_lines", "lines_to_batch", "encode_pickle_payload"]
