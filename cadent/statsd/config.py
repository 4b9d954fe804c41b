"""statsd settings as one read-only object, declared once per key.

Every key of Etsy statsd's ``config.js`` (and of its cluster proxy's config) is declared in
:data:`STATSD_SETTINGS` / :data:`PROXY_SETTINGS` with its statsd name, the attribute it
becomes, a converter and the default. :func:`statsd_settings` turns a plain mapping (the
parsed ``config.js``, or a ``[statsd]`` section converted by :mod:`cadent.compat.statsd_config`)
into a frozen :class:`StatsdSettings`: unknown keys are logged with the closest known key,
bad values raise :class:`cadent.compat.errors.ConfigError` with the line they came from.

The original key order and values are kept in ``raw`` (plus the defaults statsd itself
writes back into its config object) because the management ``config`` command prints them.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple

from cadent.compat.errors import ConfigError
from cadent.statsd.flush import HistogramRule, Percentile, percentile
from cadent.statsd.numbers import INF, js_number, js_str

log = logging.getLogger(__name__)


class ServerSpec(NamedTuple):
    """One ``servers`` entry: ``server`` is ``./servers/udp`` or ``./servers/tcp``."""

    server: str
    address: str
    port: int
    address_ipv6: bool
    socket: str | None


class ProxyNode(NamedTuple):
    """One proxy ``nodes`` entry; ``node_id`` is the ring identity ``host:port``."""

    host: str
    port: int
    adminport: int

    @property
    def node_id(self) -> str:
        return f"{self.host}:{self.port}"


class RepeaterTarget(NamedTuple):
    host: str
    port: int


# -- converters: value -> python value, ValueError(reason) when unusable -------------------


def _number(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        number = js_number(value)
        if number == number and value.strip():
            return number
    raise ValueError(f"expected a number, got {value!r}")


def _int(value: Any) -> int:
    number = _number(value)
    if not number.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(number)


def _port(value: Any) -> int:
    port = _int(value)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {value!r}")
    return port


def _positive_ms(value: Any) -> int:
    ms = _int(value)
    if ms <= 0:
        raise ValueError(f"must be a positive number of milliseconds, got {value!r}")
    return ms


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected true or false, got {value!r}")


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return js_str(float(value))
    raise ValueError(f"expected a string, got {value!r}")


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(_str(v) for v in value)


def _mapping(value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object, got {value!r}")
    return MappingProxyType(dict(value))


def _percentiles(value: Any) -> tuple[Percentile, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        pct = _number(item)
        if not -100 <= pct <= 100:
            raise ValueError(f"percentThreshold {item!r} is outside -100..100")
        out.append(percentile(pct))
    return tuple(out)


def _histogram(value: Any) -> tuple[HistogramRule, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("histogram must be a list of {metric, bins}")
    rules = []
    for entry in value:
        if not isinstance(entry, Mapping) or "metric" not in entry or "bins" not in entry:
            raise ValueError(f"histogram entry {entry!r} needs 'metric' and 'bins'")
        bins_in = entry["bins"]
        if not isinstance(bins_in, (list, tuple)):
            raise ValueError(f"histogram bins must be a list, got {bins_in!r}")
        bins = []
        for b in bins_in:
            if b == "inf":
                bins.append(("bin_inf", INF))
                continue
            limit = _number(b)
            label = b if isinstance(b, str) else js_str(limit)
            bins.append((("bin_" + label).replace(".", "_", 1), limit))
        rules.append(HistogramRule(_str(entry["metric"]), tuple(bins)))
    return tuple(rules)


def _servers(value: Any) -> tuple[ServerSpec, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("servers must be a list of {server, address, port}")
    out = []
    for entry in value:
        if not isinstance(entry, Mapping):
            raise ValueError(f"servers entry {entry!r} is not an object")
        server = _str(entry.get("server", "./servers/udp"))
        if server not in ("./servers/udp", "./servers/tcp"):
            raise ValueError(f"unsupported server {server!r} (./servers/udp or ./servers/tcp)")
        out.append(
            ServerSpec(
                server,
                _str(entry.get("address", "0.0.0.0")),
                _port(entry.get("port", 8125)),
                _bool(entry.get("address_ipv6", False)),
                _opt_str(entry.get("socket")),
            )
        )
    return tuple(out)


def _repeater(value: Any) -> tuple[RepeaterTarget, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("repeater must be a list of {host, port}")
    return tuple(RepeaterTarget(_str(e["host"]), _port(e["port"])) for e in value)


def _nodes(value: Any) -> tuple[ProxyNode, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("nodes must be a list of {host, port, adminport}")
    out = []
    for entry in value:
        if not isinstance(entry, Mapping) or "host" not in entry or "port" not in entry:
            raise ValueError(f"node {entry!r} needs host and port")
        out.append(ProxyNode(_str(entry["host"]), _port(entry["port"]), _port(entry.get("adminport", 8126))))
    return tuple(out)


def _fork_count(value: Any) -> int | str:
    if value == "auto":
        return "auto"
    count = _int(value)
    if count < 0:
        raise ValueError(f"forkCount must be >= 0 or 'auto', got {value!r}")
    return count


def _workers(value: Any) -> int:
    if value == "auto":
        return os.cpu_count() or 1
    count = _int(value)
    if count < 1:
        raise ValueError(f"must be >= 1 or 'auto', got {value!r}")
    return count


def _destinations(value: Any) -> tuple[tuple[str, int, str | None], ...]:
    """``["host:port[:instance]", {host, port, instance}, ...]`` → (host, port, instance)."""
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("expected a non-empty list of 'host:port[:instance]' or {host, port}")
    out = []
    for entry in value:
        if isinstance(entry, Mapping):
            if "host" not in entry or "port" not in entry:
                raise ValueError(f"destination {entry!r} needs host and port")
            out.append((_str(entry["host"]), _port(entry["port"]), _opt_str(entry.get("instance"))))
            continue
        parts = _str(entry).split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError(f"destination {entry!r} is not host:port[:instance]")
        out.append((parts[0], _port(parts[1]), parts[2] if len(parts) == 3 and parts[2] else None))
    return tuple(out)


def _whole_at_least(least: int, wanted: str) -> Callable[[Any], int]:
    """A converter to a whole number of at least ``least``; ``wanted`` says so in errors."""
    def convert(value: Any) -> int:
        number = _int(value)
        if number < least:
            raise ValueError(f"must be {wanted}, got {value!r}")
        return number
    return convert


_positive_int = _whole_at_least(1, "a positive integer")
_byte_count = _whole_at_least(0, "a number of bytes >= 0")


def _seconds(value: Any) -> float:
    number = _number(value)
    if number < 0:
        raise ValueError(f"must be >= 0 seconds, got {value!r}")
    return number


def _finite_seconds(value: Any) -> float:
    number = _seconds(value)
    if number == INF:
        raise ValueError(f"must be a finite number of seconds, got {value!r}")
    return number


def _directory(value: Any) -> str | None:
    """A directory as an absolute path (resolved now, before a daemon changes directory);
    None or an empty string: not set."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a directory path (a string), got {value!r}")
    if not value.strip():
        return None
    return os.path.abspath(os.path.expanduser(value.strip()))


def _choice(*allowed: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _str(value)
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return text

    return convert


class Setting(NamedTuple):
    """One declared key: statsd's name, our attribute, converter, default, description."""

    name: str
    attr: str
    convert: Callable[[Any], Any]
    default: Any
    doc: str


_ABSENT = object()

STATSD_SETTINGS: tuple[Setting, ...] = (
    Setting("port", "port", _port, 8125, "UDP port (ignored when servers is set)"),
    Setting("address", "address", _str, "0.0.0.0", "UDP bind address"),
    Setting("address_ipv6", "address_ipv6", _bool, False, "bind the UDP socket with IPv6"),
    Setting("servers", "servers", _servers, None, "input servers, replaces port/address"),
    Setting("mgmt_port", "mgmt_port", _port, 8126, "management TCP port"),
    Setting("mgmt_address", "mgmt_address", _str, "0.0.0.0", "management bind address"),
    Setting("flushInterval", "flush_interval_ms", _positive_ms, 10000, "flush period, ms"),
    Setting("percentThreshold", "percent_threshold", _percentiles, 90, "timer percentiles"),
    Setting("histogram", "histogram", _histogram, (), "timer histogram rules"),
    Setting("flush_counts", "flush_counts", _bool, True, "emit counter counts besides rates"),
    Setting("prefixStats", "prefix_stats", _str, "statsd", "prefix of statsd's own metrics"),
    Setting("keyNameSanitize", "key_name_sanitize", _bool, True, "sanitise metric keys"),
    Setting("calculatedTimerMetrics", "calculated_timer_metrics", _str_list, (), "timer stats kept"),
    Setting("deleteIdleStats", "delete_idle_stats", _bool, False, "default of all delete*"),
    Setting("deleteCounters", "delete_counters", _bool, _ABSENT, "drop idle counters"),
    Setting("deleteTimers", "delete_timers", _bool, _ABSENT, "drop idle timers"),
    Setting("deleteSets", "delete_sets", _bool, _ABSENT, "drop idle sets"),
    Setting("deleteGauges", "delete_gauges", _bool, _ABSENT, "drop gauges after gaugesMaxTTL"),
    Setting("gaugesMaxTTL", "gauges_max_ttl", lambda v: v, 1, "flushes a gauge survives idle"),
    Setting("healthStatus", "health_status", _choice("up", "down"), "up", "initial health"),
    Setting("backends", "backends", _str_list, ("./backends/graphite",), "flush backends"),
    Setting("dumpMessages", "dump_messages", _bool, False, "log every received line"),
    Setting("debug", "debug", _bool, False, "debug logging"),
    Setting("title", "title", _str, "statsd", "process title"),
    Setting("log", "log", _mapping, MappingProxyType({}), "logging options"),
    Setting("keyFlush", "key_flush", _mapping, MappingProxyType({}), "frequent-key logging"),
    Setting("http", "http", _mapping, MappingProxyType({}),
            "cadent's HTTP side: {port, address, token} (docs/operations.md); port 0: off"),
    Setting("automaticConfigReload", "automatic_config_reload", _bool, True,
            "statsd re-reads config.js when it changes; cadent applies changes on restart"),
    Setting("console", "console", _mapping, MappingProxyType({}), "console backend options"),
    Setting("graphiteHost", "graphite_host", _opt_str, None, "carbon host (unset: no sending)"),
    Setting("graphitePort", "graphite_port", _port, 2003, "carbon line port"),
    Setting("graphitePicklePort", "graphite_pickle_port", _port, 2004, "carbon pickle port"),
    Setting("graphiteProtocol", "graphite_protocol", _choice("text", "pickle"), "text", "wire"),
    Setting("graphite", "graphite", _mapping, MappingProxyType({}), "graphite backend naming"),
    Setting("repeater", "repeater", _repeater, (), "repeater backend targets"),
    Setting("repeaterProtocol", "repeater_protocol", _choice("udp4", "udp6", "tcp"), "udp4", ""),
    # cadent's own keys (statsd ignores nothing silently, so these only appear in cadent configs)
    Setting("workers", "workers", _workers, 1, "processes sharing the UDP port ('auto' = cpus)"),
    Setting("graphiteDestinations", "graphite_destinations", _destinations, (),
            "several carbons ('host:port[:instance]'), consistent-hashed like carbon-relay"),
    Setting("maxQueuePoints", "max_queue_points", _positive_int, 5_000_000, "lines queued per carbon"),
    Setting("shutdownDrainSeconds", "drain_seconds", _seconds, 30.0, "delivery time at shutdown"),
    # the disk spool (docs/statsd.md); the attributes carry carbon.conf's names, so a
    # [statsd] section's SPOOL_DIR, SPOOL_MAX_BYTES and SPOOL_AFTER_S map onto them
    Setting("spoolDir", "spool_dir", _directory, None,
            "directory of the per-carbon disk spools (unset: no spool, lines wait in memory)"),
    Setting("spoolMaxBytes", "spool_max_bytes", _byte_count, 1 << 30,
            "bytes of disk each carbon's spool may use; beyond, lines are dropped and counted; "
            "0 turns the spool off"),
    Setting("spoolAfterSeconds", "spool_after_s", _finite_seconds, 2.0,
            "seconds a carbon may be unreachable, or its queue full, before its lines go to "
            "its spool"),
    Setting("udpReceiveBuffer", "udp_receive_buffer", _positive_int, 16 * 1024 * 1024,
            "UDP socket receive buffer, bytes"),
    Setting("pidfile", "pidfile", _opt_str, None, "pid file (default under the runtime dir)"),
    Setting("logDir", "log_dir", _opt_str, None, "log directory when daemonised"),
)

GRAPHITE_SETTINGS: tuple[Setting, ...] = (
    Setting("legacyNamespace", "legacy_namespace", _bool, True, "stats./stats_counts. names"),
    Setting("globalPrefix", "global_prefix", _str, "stats", "first name level (non-legacy)"),
    Setting("prefixCounter", "prefix_counter", _str, "counters", "counter level (non-legacy)"),
    Setting("prefixTimer", "prefix_timer", _str, "timers", "timer level (non-legacy)"),
    Setting("prefixGauge", "prefix_gauge", _str, "gauges", "gauge level (non-legacy)"),
    Setting("prefixSet", "prefix_set", _str, "sets", "set level (non-legacy)"),
    Setting("globalSuffix", "global_suffix", _str, "", "last name level"),
)

PROXY_SETTINGS: tuple[Setting, ...] = (
    Setting("nodes", "nodes", _nodes, _ABSENT, "statsd nodes {host, port, adminport}"),
    Setting("port", "port", _port, 8125, "listening port"),
    Setting("address", "address", _str, "0.0.0.0", "bind address"),
    Setting("address_ipv6", "address_ipv6", _bool, False, "bind with IPv6"),
    Setting("host", "host", _str, "0.0.0.0", "documented alias; the proxy binds 'address'"),
    Setting("udp_version", "udp_version", _choice("udp4", "udp6"), "udp4", "documented only"),
    Setting("mgmt_port", "mgmt_port", _port, 8126, "management TCP port"),
    Setting("mgmt_address", "mgmt_address", _str, "0.0.0.0", "management bind address"),
    Setting("checkInterval", "check_interval_ms", _positive_ms, 10000, "health check period"),
    Setting("cacheSize", "cache_size", _int, 10000, "routing cache size"),
    Setting("forkCount", "fork_count", _fork_count, 0, "worker processes ('auto' = cpus)"),
    Setting("server", "server", _choice("./servers/udp", "./servers/tcp"), "./servers/udp", ""),
    Setting("healthStatus", "health_status", _choice("up", "down"), "up", "initial health"),
    Setting("debug", "debug", _bool, False, "debug logging"),
    Setting("pidfile", "pidfile", _opt_str, None, "pid file (default under the runtime dir)"),
    Setting("logDir", "log_dir", _opt_str, None, "log directory when daemonised"),
)


@dataclass(frozen=True)
class StatsdSettings:
    """Everything a statsd aggregator needs, converted and validated."""

    port: int = 8125
    address: str = "0.0.0.0"
    address_ipv6: bool = False
    servers: tuple[ServerSpec, ...] | None = None
    mgmt_port: int = 8126
    mgmt_address: str = "0.0.0.0"
    flush_interval_ms: int = 10000
    percent_threshold: tuple[Percentile, ...] = (percentile(90),)
    histogram: tuple[HistogramRule, ...] = ()
    flush_counts: bool = True
    prefix_stats: str = "statsd"
    key_name_sanitize: bool = True
    calculated_timer_metrics: tuple[str, ...] = ()
    delete_idle_stats: bool = False
    delete_counters: bool = False
    delete_timers: bool = False
    delete_sets: bool = False
    delete_gauges: bool = False
    gauges_max_ttl: int = 1
    health_status: str = "up"
    backends: tuple[str, ...] = ("./backends/graphite",)
    dump_messages: bool = False
    debug: bool = False
    title: str = "statsd"
    log: Mapping = field(default_factory=lambda: MappingProxyType({}))
    key_flush: Mapping = field(default_factory=lambda: MappingProxyType({}))
    http: Mapping = field(default_factory=lambda: MappingProxyType({}))
    automatic_config_reload: bool = True
    console: Mapping = field(default_factory=lambda: MappingProxyType({}))
    graphite_host: str | None = None
    graphite_port: int = 2003
    graphite_pickle_port: int = 2004
    graphite_protocol: str = "text"
    graphite: Mapping = field(default_factory=lambda: MappingProxyType({}))
    legacy_namespace: bool = True
    global_prefix: str = "stats"
    prefix_counter: str = "counters"
    prefix_timer: str = "timers"
    prefix_gauge: str = "gauges"
    prefix_set: str = "sets"
    global_suffix: str = ""
    repeater: tuple[RepeaterTarget, ...] = ()
    repeater_protocol: str = "udp4"
    workers: int = 1
    graphite_destinations: tuple[tuple[str, int, str | None], ...] = ()
    max_queue_points: int = 5_000_000
    drain_seconds: float = 30.0
    spool_dir: str | None = None
    spool_max_bytes: int = 1 << 30
    spool_after_s: float = 2.0
    udp_receive_buffer: int = 16 * 1024 * 1024
    pidfile: str | None = None
    log_dir: str | None = None
    raw: Mapping = field(default_factory=lambda: MappingProxyType({}))

    @property
    def flush_interval_s(self) -> float:
        return self.flush_interval_ms / 1000

    def input_servers(self) -> tuple[ServerSpec, ...]:
        """``servers`` if configured, else the top-level UDP ``port``/``address``."""
        if self.servers is not None:
            return self.servers
        return (ServerSpec("./servers/udp", self.address, self.port, self.address_ipv6, None),)


@dataclass(frozen=True)
class ProxySettings:
    """statsd cluster proxy settings."""

    nodes: tuple[ProxyNode, ...]
    port: int = 8125
    address: str = "0.0.0.0"
    address_ipv6: bool = False
    host: str = "0.0.0.0"
    udp_version: str = "udp4"
    mgmt_port: int = 8126
    mgmt_address: str = "0.0.0.0"
    check_interval_ms: int = 10000
    cache_size: int = 10000
    fork_count: int | str = 0
    server: str = "./servers/udp"
    health_status: str = "up"
    debug: bool = False
    pidfile: str | None = None
    log_dir: str | None = None
    raw: Mapping = field(default_factory=lambda: MappingProxyType({}))


# statsd settings cadent accepts without doing what statsd does with them
NOT_ACTED_ON = {
    "keyFlush": "no periodic log of the most frequent keys",
}


def _closest(name: str, known: list[str]) -> str:
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.0)
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered:
        return lowered[name.lower()]
    return match[0] if match else "?"


def _convert(
    raw: Mapping,
    decls: tuple[Setting, ...],
    filename: str,
    lines: Mapping[str, int],
    where: str = "",
) -> dict[str, Any]:
    known = {d.name: d for d in decls}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        decl = known.get(key)
        if decl is None:
            log.warning(
                "%s:%d: unknown statsd setting %r%s (did you mean %r?)",
                filename, lines.get(key, 0), key, where, _closest(key, list(known)),
            )
            continue
        try:
            out[decl.attr] = decl.convert(value)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(filename, lines.get(key, 0), f"{where.strip() or ''}{key}: {exc}".strip()) from exc
    return out


def statsd_settings(
    raw: Mapping,
    filename: str = "<config>",
    lines: Mapping[str, int] | None = None,
) -> StatsdSettings:
    """Validate a statsd config mapping (``config.js`` semantics) into :class:`StatsdSettings`."""
    lines = lines or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(filename, 0, "the config must be an object")
    values = _convert(raw, STATSD_SETTINGS, filename, lines)
    for key in NOT_ACTED_ON:
        if raw.get(key):
            log.warning("%s:%d: %s is read but not acted on: %s", filename, lines.get(key, 0),
                        key, NOT_ACTED_ON[key])
    graphite = raw.get("graphite")
    if isinstance(graphite, Mapping):
        values.update(_convert(graphite, GRAPHITE_SETTINGS, filename, {k: lines.get("graphite", 0) for k in graphite}, " in graphite"))

    idle = values.get("delete_idle_stats", False)
    for attr in ("delete_counters", "delete_timers", "delete_sets", "delete_gauges"):
        values.setdefault(attr, idle)
    ttl = values.get("gauges_max_ttl", 1)
    if not (isinstance(ttl, int) and not isinstance(ttl, bool) and ttl > 1):
        if isinstance(ttl, float) and ttl.is_integer() and ttl > 1:
            ttl = int(ttl)
        else:
            ttl = 1
    values["gauges_max_ttl"] = ttl

    # statsd writes these back into its config object; the management 'config' command
    # shows them in this position.
    shown = dict(raw)
    shown["gaugesMaxTTL"] = ttl
    shown["deleteIdleStats"] = idle
    shown["deleteCounters"] = values["delete_counters"]
    shown["deleteTimers"] = values["delete_timers"]
    shown["deleteSets"] = values["delete_sets"]
    shown["deleteGauges"] = values["delete_gauges"]
    values["raw"] = MappingProxyType(shown)
    return StatsdSettings(**values)


def proxy_settings(
    raw: Mapping,
    filename: str = "<config>",
    lines: Mapping[str, int] | None = None,
) -> ProxySettings:
    """Validate a statsd proxy config mapping into :class:`ProxySettings`."""
    lines = lines or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(filename, 0, "the config must be an object")
    values = _convert(raw, PROXY_SETTINGS, filename, lines)
    if "nodes" not in values:
        raise ConfigError(filename, 0, "nodes: required (a list of {host, port, adminport})")
    if values.get("fork_count") == "auto":
        values["fork_count"] = os.cpu_count() or 1
    values["raw"] = MappingProxyType(dict(raw))
    return ProxySettings(**values)


__all__ = [
    "StatsdSettings",
    "ProxySettings",
    "ServerSpec",
    "ProxyNode",
    "RepeaterTarget",
    "Setting",
    "STATSD_SETTINGS",
    "GRAPHITE_SETTINGS",
    "PROXY_SETTINGS",
    "statsd_settings",
    "proxy_settings",
]
