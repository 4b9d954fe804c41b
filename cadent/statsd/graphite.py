"""statsd's graphite backend output: metric names, line order and value text.

:class:`GraphiteNames` builds the names (legacy or prefixed namespace, globalSuffix, tags);
:func:`graphite_lines` walks a flush snapshot in statsd's emission order and prints each
value as statsd does (``"name value ts\\n"`` with JavaScript number text);
:func:`own_stats_lines` adds the lines that close a flush; :func:`encode_pickle_payload`
builds statsd's pickle framing.

Line-exactness: statsd prints values with JavaScript's ``Number::toString``; carbon's line
encoder formats floats differently. A daemon that must be byte-identical to statsd sends
these lines as they are; the Batch form is for in-process consumers.
"""

from __future__ import annotations

import struct
from typing import Iterable

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


def graphite_lines(
    names: GraphiteNames,
    counters: dict,
    interval_s: float,
    timer_data: dict,
    gauges: dict,
    sets: dict,
    ts: int,
) -> list[str]:
    """statsd's lines ``"name value ts\\n"`` for the metrics, in statsd's order.

    Counters (rate = value / ``interval_s``, then the count when ``flush_counts``), timers
    (``timer_data``: per key, stat → number or a histogram's dict of bin → count), gauges,
    sets (member count). Values print as JavaScript prints them (:func:`js_str`).
    """
    lines: list[str] = []
    append = lines.append
    tail = " " + str(ts) + "\n"
    sfx = names.suffix
    split = names.split
    rate_ns, count_ns = names.counter_rate, names.counter_count
    rate_end, count_end = names.rate_tail + sfx, names.count_tail + sfx
    flush_counts = names.flush_counts
    for key in js_key_order(counters):
        name, tags = split(key)
        value = counters[key]
        append(f"{rate_ns}{name}{rate_end}{tags} {js_str(value / interval_s)}{tail}")
        if flush_counts:
            append(f"{count_ns}{name}{count_end}{tags} {js_str(value)}{tail}")
    timer_ns = names.timer
    for key in js_key_order(timer_data):
        name, tags = split(key)
        head = timer_ns + name + "."
        end = sfx + tags
        for stat, value in timer_data[key].items():
            if type(value) is dict:
                for bin_name, freq in value.items():
                    append(f"{head}{stat}.{bin_name}{end} {js_str(freq)}{tail}")
            else:
                append(f"{head}{stat}{end} {js_str(value)}{tail}")
    gauge_ns = names.gauge
    for key in js_key_order(gauges):
        name, tags = split(key)
        append(f"{gauge_ns}{name}{sfx}{tags} {js_str(gauges[key])}{tail}")
    set_ns = names.set
    set_end = ".count" + sfx
    for key in js_key_order(sets):
        name, tags = split(key)
        append(f"{set_ns}{name}{set_end}{tags} {len(sets[key])}{tail}")
    return lines


def own_stats_lines(names: GraphiteNames, num_stats: int, internal: dict, ts: int) -> list[str]:
    """The lines that close every flush: ``numStats`` and the graphite backend's own stats.

    ``internal`` holds ``calculationtime``, ``processing_time``, ``last_exception``,
    ``last_flush``, ``flush_time`` and ``flush_length``.
    """
    tail = " " + str(ts) + "\n"
    lines = [names.num_stats + " " + js_str(num_stats) + tail,
             names.calculation_time + " " + js_str(internal["calculationtime"]) + tail,
             names.processing_time + " " + js_str(internal["processing_time"]) + tail]
    for stat in ("last_exception", "last_flush", "flush_time", "flush_length"):
        lines.append(names.graphite_stat[stat] + " " + js_str(internal[stat]) + tail)
    return lines


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


__all__ = ["GraphiteNames", "graphite_lines", "own_stats_lines", "lines_to_batch", "encode_pickle_payload"]


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.statsd._cadent_c_graphite")
