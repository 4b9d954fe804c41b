"""statsd's management commands as a pure function: one command text in, reply text out.

The daemon reads from a management connection, calls :func:`handle_command` with each read
and writes the reply; ``close`` tells it to drop the connection (``quit``). Map dumps use
node's ``util.inspect`` layout so scripts that scrape them keep working.
"""

from __future__ import annotations

import math
import re
import time
from typing import NamedTuple

from cadent.statsd.numbers import js_str
from cadent.statsd.store import js_key_order

HELP = "Commands: stats, counters, timers, gauges, delcounters, deltimers, delgauges, health, config, quit\n\n"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")
_BREAK = 80
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", "\\": "\\\\"}


class Reply(NamedTuple):
    text: str
    close: bool = False


# -- node util.inspect (the subset statsd's maps need) ------------------------------------


def _quote(text: str) -> str:
    quote = "'"
    if "'" in text:
        if '"' not in text:
            quote = '"'
        elif "`" not in text and "${" not in text:
            quote = "`"
    out = []
    for ch in text:
        if ch == quote or ch in _ESCAPES:
            out.append(_ESCAPES.get(ch, "\\" + ch))
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return quote + "".join(out) + quote


def _number(x: float) -> str:
    if x == 0 and math.copysign(1.0, x) < 0:
        return "-0"
    return js_str(x)


def _below_break(entries: list[str], start: int) -> bool:
    total = len(entries) + start
    if total + len(entries) > _BREAK:
        return False
    for entry in entries:
        total += len(entry)
        if total > _BREAK:
            return False
    return True


def _group_array(entries: list[str], indent: int) -> list[str]:
    data_len = [len(e) for e in entries]
    total = sum(n + 2 for n in data_len)
    max_len = max(data_len)
    actual_max = max_len + 2
    if not (actual_max * 3 + indent < _BREAK and (total / actual_max > 5 or max_len <= 6)):
        return entries
    average_bias = math.sqrt(actual_max - total / len(entries))
    biased_max = max(actual_max - 3 - average_bias, 1)
    columns = min(
        int(math.floor(math.sqrt(2.5 * biased_max * len(entries)) / biased_max + 0.5)),
        (_BREAK - indent) // actual_max,
        3 * 4,
        15,
    )
    if columns <= 1:
        return entries
    max_line = []
    for i in range(columns):
        width = max(data_len[j] for j in range(i, len(entries), columns))
        max_line.append(width + 2)
    rows = []
    for i in range(0, len(entries), columns):
        last = min(i + columns, len(entries))
        row = "".join((entries[j] + ", ").rjust(max_line[j - i]) for j in range(i, last - 1))
        row += entries[last - 1].rjust(max_line[last - 1 - i] - 2)
        rows.append(row)
    return rows


def _wrap(entries: list[str], braces: tuple[str, str], indent: int, grouped: bool) -> str:
    if not entries:
        return braces[0] + braces[1]
    if not grouped:
        start = len(entries) + indent + len(braces[0]) + 10
        if _below_break(entries, start):
            joined = ", ".join(entries)
            if "\n" not in joined:
                return f"{braces[0]} {joined} {braces[1]}"
    pad = "\n" + " " * indent
    return braces[0] + pad + "  " + ("," + pad + "  ").join(entries) + pad + braces[1]


def inspect(value, indent: int = 0) -> str:
    """``util.inspect(value)`` for numbers, strings, lists and string-keyed dicts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number(float(value))
    if isinstance(value, str):
        return _quote(value)
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        shown = list(value[:100])
        entries = [inspect(v, indent + 2) for v in shown]
        if len(value) > 100:
            more = len(value) - 100
            entries.append(f"... {more} more item{'s' if more > 1 else ''}")
        grouped = False
        if len(entries) > 6:
            regrouped = _group_array(entries if len(value) <= 100 else entries[:-1], indent)
            if len(value) > 100 and regrouped is not entries[:-1]:
                regrouped = regrouped + entries[-1:]
            grouped = len(regrouped) != len(entries)
            entries = regrouped
        return _wrap(entries, ("[", "]"), indent, grouped)
    if isinstance(value, dict):
        entries = []
        for key in js_key_order(value):
            shown_key = key if _IDENT.match(key) else _quote(key)
            entries.append(f"{shown_key}: {inspect(value[key], indent + 2)}")
        return _wrap(entries, ("{", "}"), indent, False)
    return str(value)


# -- commands -----------------------------------------------------------------------------


def _config_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return js_str(float(value))
    if isinstance(value, (list, tuple)):
        return ",".join("" if v is None else _config_value(v) for v in value)
    if isinstance(value, dict) or hasattr(value, "items"):
        return "[object Object]"
    return str(value)


def config_reply(raw) -> str:
    """The ``config`` command's text for statsd's config object."""
    out = ["\n"]
    for key, value in raw.items():
        if isinstance(value, (list, tuple)):
            for i, sub in enumerate(value):
                out.append(f"{key} > {i}: {_config_value(sub)}\n")
        elif hasattr(value, "items"):
            for sub_key, sub in value.items():
                out.append(f"{key} > {sub_key}: {_config_value(sub)}\n")
        else:
            out.append(f"{key}: {_config_value(value)}\n")
    return "".join(out)


def handle_command(engine, data: str, now: float | None = None) -> Reply:
    """Run one management read against a :class:`cadent.statsd.engine.StatsdEngine`."""
    now_s = int(round(time.time() if now is None else now))
    cmdline = data.strip().split(" ")
    cmd = cmdline[0]
    args = cmdline[1:]
    store = engine.store
    if cmd == "help":
        return Reply(HELP)
    if cmd == "config":
        return Reply(config_reply(engine.settings.raw))
    if cmd == "health":
        if args:
            wanted = args[0].lower()
            if wanted in ("up", "down"):
                engine.health = wanted
        return Reply(f"health: {engine.health}\n")
    if cmd == "stats":
        stats = engine.stats
        graphite = engine.graphite_stats
        lines = [
            f"uptime: {now_s - stats.started_s}",
            f"messages.last_msg_seen: {now_s - stats.last_msg_seen_s}",
            f"messages.bad_lines_seen: {stats.bad_lines_total}",
            f"graphite.last_flush: {now_s - graphite.last_flush}",
            f"graphite.last_exception: {now_s - graphite.last_exception}",
            f"graphite.flush_time: {graphite.flush_time}",
            f"graphite.flush_length: {graphite.flush_length}",
        ]
        return Reply("\n".join(lines) + "\nEND\n\n")
    if cmd in ("counters", "timers", "gauges"):
        return Reply(inspect(getattr(store, cmd)) + "\nEND\n\n")
    if cmd in ("delcounters", "deltimers", "delgauges"):
        lines = store.delete_matching(cmd[3:], args)
        return Reply("".join(line + "\n" for line in lines) + "END\n\n")
    if cmd == "quit":
        return Reply("", close=True)
    return Reply("ERROR\n")


__all__ = ["handle_command", "inspect", "config_reply", "Reply", "HELP"]
