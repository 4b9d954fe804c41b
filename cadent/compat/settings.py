"""Every carbon.conf setting cadent knows, declared once.

Each :class:`Setting` carries its carbon name, default, kind, a one-line doc and the roles
(config sections) it matters to. The carbon.conf reader, ``--print-default-config`` and the
docs all come from this table, so a key missing here is reported as unknown.

Kinds and how a raw config string becomes a value (carbon types a value by its default's type):

* ``bool``  — 1/yes/true/on or 0/no/false/off, any case; anything else is an error;
* ``list``  — split on ``,`` and each item stripped (``""`` gives ``[""]``, as in carbon);
* ``int`` / ``float`` — ``int()`` then ``float()`` (so ``inf`` works); a non-number is an
  error, and an ``int`` setting refuses a fractional value (integral floats become ints);
* ``str``   — the text as written (carbon would turn ``"123"`` into an int; cadent keeps str);
* ``auto``  — keys nobody declared: ``int()``, else ``float()``, else the text.

A setting whose default is None reads an empty value as None ("unset").

Other roles (statsd, api, ...) add their own section's keys with :func:`register`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

KINDS = ("bool", "int", "float", "str", "list", "auto")

_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off"})


@dataclass(frozen=True)
class Setting:
    """One declared setting: carbon ``name``, ``default``, ``kind``, ``doc``, ``roles``."""

    name: str
    default: Any
    kind: str
    doc: str
    roles: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"setting {self.name}: unknown kind {self.kind!r}")
        if self.name != self.name.upper():
            raise ValueError(f"setting {self.name}: names are upper case")

    def parse(self, raw: str) -> Any:
        """The typed value of ``raw`` (already stripped); ValueError says why it is refused."""
        if self.default is None and raw == "" and self.kind != "auto":
            return None
        return parse_value(self.kind, raw)


def parse_value(kind: str, raw: str) -> Any:
    """Convert ``raw`` according to ``kind`` (see the module doc); ValueError on bad input."""
    if kind == "str":
        return raw
    if kind == "list":
        return [item.strip() for item in raw.split(",")]
    if kind == "bool":
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(f"expected a boolean (1/yes/true/on or 0/no/false/off), got {raw!r}")
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        if kind == "auto":
            return raw
        raise ValueError(f"expected a number, got {raw!r}") from None
    if kind == "int":
        if math.isnan(number):
            raise ValueError(f"expected an integer, got {raw!r}")
        if math.isinf(number):
            return number
        if not number.is_integer():
            raise ValueError(f"expected an integer, got {raw!r}")
        return int(number)
    return number


_REGISTRY: dict[str, Setting] = {}


def register(*settings: Setting) -> None:
    """Add settings to the table; re-declaring a name with a different declaration is an error."""
    for setting in settings:
        known = _REGISTRY.get(setting.name)
        if known is not None and known != setting:
            raise ValueError(f"setting {setting.name} is already declared differently")
        _REGISTRY[setting.name] = setting


def get_setting(name: str) -> Setting | None:
    """The declaration of ``name`` (any case), or None."""
    return _REGISTRY.get(name.upper())


def all_settings(role: str | None = None) -> list[Setting]:
    """Declared settings in declaration order, optionally only those that matter to ``role``."""
    return [s for s in _REGISTRY.values() if role is None or role in s.roles]


def known_names() -> frozenset[str]:
    """Every declared setting name."""
    return frozenset(_REGISTRY)


def known_roles() -> frozenset[str]:
    """Every role some declared setting belongs to."""
    return frozenset(role for s in _REGISTRY.values() for role in s.roles)


def defaults() -> dict[str, Any]:
    """``{name: default}`` for every declared setting (lists copied)."""
    return {s.name: (list(s.default) if isinstance(s.default, list) else s.default)
            for s in _REGISTRY.values()}


# Roles of carbon's daemons; each reads the carbon.conf section of the same name.
CACHE = "cache"
RELAY = "relay"
AGGREGATOR = "aggregator"
AGGREGATOR_CACHE = "aggregator-cache"
STATSD = "statsd"
API = "api"

_ALL = (CACHE, RELAY, AGGREGATOR, AGGREGATOR_CACHE)
_WRITERS = (CACHE, AGGREGATOR_CACHE)
_SENDERS = (RELAY, AGGREGATOR)
_AGGREGATING = (AGGREGATOR, AGGREGATOR_CACHE)


def _declare(rows: Iterable[tuple[str, Any, str, tuple[str, ...], str]]) -> None:
    register(*(Setting(name, default, kind, doc, roles)
               for name, default, kind, roles, doc in rows))


_INF = float("inf")

_declare([
    # --- paths (derived from GRAPHITE_ROOT / STORAGE_DIR when not set) ---
    ("CONF_DIR", None, "str", _ALL,
     "directory of the other config files; default: the directory of carbon.conf"),
    ("STORAGE_DIR", None, "str", _ALL + (API,),
     "base data directory; default $GRAPHITE_STORAGE_DIR, else $GRAPHITE_ROOT/storage "
     "($GRAPHITE_ROOT unset: /opt/graphite, as carbon installed from source)"),
    ("LOCAL_DATA_DIR", None, "str", _ALL + (API,), "whisper files; default STORAGE_DIR/whisper"),
    ("LOG_DIR", None, "str", _ALL + (API,),
     "log directory; default STORAGE_DIR/log/<program>; <program>-<instance> is appended"),
    ("PID_DIR", None, "str", _ALL + (API,), "pidfile directory; default STORAGE_DIR"),
    ("WHITELISTS_DIR", None, "str", _ALL, "legacy list directory; default STORAGE_DIR/lists"),
    ("USER", "", "str", _ALL,
     "run as this user (and its groups) once the ports are bound, before any data or log file "
     "is opened; needs root; empty: stay"),
    ("ENABLE_LOGROTATION", True, "bool", _ALL, "reopen log files when rotated externally"),

    # --- receivers ---
    ("LINE_RECEIVER_INTERFACE", "0.0.0.0", "str", _ALL, "plaintext TCP listen address"),
    ("LINE_RECEIVER_PORT", 2003, "int", _ALL, "plaintext TCP port; 0 disables"),
    ("ENABLE_UDP_LISTENER", False, "bool", _ALL, "also accept plaintext over UDP"),
    ("UDP_RECEIVER_INTERFACE", "0.0.0.0", "str", _ALL, "plaintext UDP listen address"),
    ("UDP_RECEIVER_PORT", 2003, "int", _ALL, "plaintext UDP port; 0 disables"),
    ("PICKLE_RECEIVER_INTERFACE", "0.0.0.0", "str", _ALL, "pickle TCP listen address"),
    ("PICKLE_RECEIVER_PORT", 2004, "int", _ALL, "pickle TCP port; 0 disables"),
    ("PICKLE_RECEIVER_MAX_LENGTH", 2 ** 20, "int", _ALL,
     "largest pickle frame body in bytes; a longer frame closes the connection"),
    ("PROTOBUF_RECEIVER_INTERFACE", "0.0.0.0", "str", _ALL, "protobuf TCP listen address"),
    ("PROTOBUF_RECEIVER_PORT", 0, "int", _ALL, "protobuf TCP port; 0 disables"),
    ("MAX_RECEIVER_CONNECTIONS", _INF, "int", _ALL,
     "stop accepting TCP connections beyond this many"),
    ("METRIC_CLIENT_IDLE_TIMEOUT", None, "float", _ALL,
     "close an inbound connection idle this many seconds (unset: never)"),
    ("USE_INSECURE_UNPICKLER", False, "bool", _ALL,
     "unpickle inbound frames without the safe unpickler (dangerous)"),
    ("TCP_KEEPALIVE", True, "bool", _ALL, "enable TCP keepalive on connections"),
    ("TCP_KEEPIDLE", 10, "int", _ALL, "seconds idle before the first keepalive probe"),
    ("TCP_KEEPINTVL", 30, "int", _ALL, "seconds between keepalive probes"),
    ("TCP_KEEPCNT", 2, "int", _ALL, "unanswered probes before the connection is dropped"),
    ("LOG_LISTENER_CONN_SUCCESS", True, "bool", _ALL, "log each accepted inbound connection"),
    ("LOG_LISTENER_CONN_LOST", False, "bool", _ALL, "log each closed inbound connection"),
    ("LISTEN", [], "list", _ALL,
     "more listeners, comma separated, each with the section's line format: tcp://host:port, "
     "udp://host:port, unix:///path.sock[?mode=0660] (a stale socket file is removed at start), "
     "http://host:port/path (POST bodies of lines); IPv6 hosts in brackets"),
    ("HTTP_MAX_BODY_BYTES", 1048576, "int", _ALL,
     "largest body an http:// listener takes; a longer one is answered 413 and not read"),
    ("LINE_FORMAT", "graphite", "str", (RELAY,),
     "what the line listeners read: graphite (carbon's plaintext), statsd (statsd lines, "
     "relayed unchanged and placed as statsd's proxy.js places them) or regex (any line, "
     "relayed unchanged and placed by the LINE_KEY_REGEX key)"),
    ("LINE_KEY_REGEX", None, "str", (RELAY,),
     "LINE_FORMAT = regex: a regex with a (?P<Key>...) group, the part of the line hashed; an "
     "optional (?P<Timestamp>...) group is checked; lines it does not match are dropped and "
     "counted (unmatched_lines)"),
    ("LINE_TIMESTAMP_FORMAT", None, "str", (RELAY,),
     "strptime format of the Timestamp group (unset: seconds since the epoch); a line whose "
     "timestamp does not parse is dropped and counted (bad_timestamps)"),

    # --- filtering and self-metrics ---
    ("USE_FLOW_CONTROL", True, "bool", _ALL,
     "pause TCP receivers while a queue or the cache is full instead of dropping"),
    ("USE_WHITELIST", False, "bool", _ALL,
     "apply CONF_DIR/whitelist.conf and CONF_DIR/blacklist.conf to incoming names"),
    ("MIN_TIMESTAMP_RESOLUTION", 0, "int", _ALL,
     "round incoming timestamps down to a multiple of this many seconds (0: keep)"),
    ("CARBON_METRIC_PREFIX", "carbon", "str", _ALL + (API,), "first node of self-metric names"),
    ("CARBON_METRIC_INTERVAL", 60, "int", _ALL, "seconds between self-metric reports; 0 disables"),
    ("RAVEN_DSN", None, "str", _ALL, "Sentry DSN (accepted for compatibility; unused)"),

    # --- cache ---
    ("CACHE_QUERY_INTERFACE", "0.0.0.0", "str", _WRITERS, "CarbonLink listen address"),
    ("CACHE_QUERY_PORT", 7002, "int", _WRITERS, "CarbonLink TCP port; 0 disables"),
    ("MAX_CACHE_SIZE", _INF, "float", _WRITERS, "most datapoints held in the cache"),
    ("MAX_UPDATES_PER_SECOND", 500, "int", _WRITERS, "most whisper update calls per second"),
    ("MAX_UPDATES_PER_SECOND_ON_SHUTDOWN", None, "int", _WRITERS,
     "update rate limit while draining at shutdown (unset: MAX_UPDATES_PER_SECOND)"),
    ("MAX_CREATES_PER_MINUTE", _INF, "int", _WRITERS,
     "most new whisper files per minute; a metric over the limit keeps its points in the "
     "cache and is created later (carbon drops them)"),
    ("WRITER_THREADS", 1, "int", (CACHE,),
     "threads writing whisper files in parallel; a metric is never written by two threads "
     "at once (more than 1 pays off only when writes wait on the disk, e.g. with "
     "WHISPER_AUTOFLUSH or files not in the page cache)"),
    ("MIN_TIMESTAMP_LAG", 0, "int", _WRITERS,
     "keep points newer than this many seconds in the cache (timesorted strategy)"),
    ("CACHE_WRITE_STRATEGY", "sorted", "str", _WRITERS,
     "which metric is written next: sorted, max, naive, timesorted"),
    ("CACHE_METRIC_NAMES_MAX", 0, "int", _WRITERS, "size of the cached-names index (0: off)"),
    ("CACHE_METRIC_NAMES_TTL", 0, "int", _WRITERS, "seconds a cached-names entry lives"),
    ("DATABASE", "whisper", "str", _WRITERS + (API,),
     "storage backends, a comma list (whisper, cassandra, kafka, file, echo); the first is "
     "the primary, whose metadata CarbonLink reports (ceres not supported); api: the one "
     "store it reads, whisper or cassandra"),
    ("WHISPER_AUTOFLUSH", False, "bool", _WRITERS, "fsync after every whisper write"),
    ("WHISPER_SPARSE_CREATE", False, "bool", _WRITERS, "create whisper files sparse"),
    ("WHISPER_FALLOCATE_CREATE", False, "bool", _WRITERS, "allocate whisper files with fallocate"),
    ("WHISPER_LOCK_WRITES", False, "bool", _WRITERS, "flock whisper files while writing"),
    ("WHISPER_FADVISE_RANDOM", False, "bool", _WRITERS, "fadvise RANDOM on whisper files"),
    ("CERES_MAX_SLICE_GAP", 80, "int", _WRITERS, "ceres only (not supported by cadent)"),
    ("CERES_NODE_CACHING_BEHAVIOR", "all", "str", _WRITERS, "ceres only (not supported)"),
    ("CERES_SLICE_CACHING_BEHAVIOR", "latest", "str", _WRITERS, "ceres only (not supported)"),
    ("CERES_LOCK_WRITES", False, "bool", _WRITERS, "ceres only (not supported)"),
    ("LOG_UPDATES", True, "bool", _WRITERS, "log every whisper update"),
    ("LOG_CREATES", True, "bool", _WRITERS, "log every whisper file creation"),
    ("LOG_CACHE_HITS", True, "bool", _WRITERS, "log every CarbonLink query"),
    ("LOG_CACHE_QUEUE_SORTS", True, "bool", _WRITERS, "log every cache queue sort"),
    ("TAG_HASH_FILENAMES", True, "bool", _WRITERS, "store tagged series under hashed file names"),
    ("ENABLE_TAGS", True, "bool", _WRITERS, "register new series with graphite-web's tag database"),
    ("SKIP_TAGS_FOR_NONTAGGED", True, "bool", _WRITERS, "register only names carrying tags"),
    ("GRAPHITE_URL", "http://127.0.0.1:80", "str", _WRITERS, "graphite-web URL for tag updates"),
    ("TAG_UPDATE_INTERVAL", 100, "int", _WRITERS, "re-register a series every N writes"),
    ("TAG_BATCH_SIZE", 100, "int", _WRITERS, "series per tag registration request"),
    ("TAG_QUEUE_SIZE", 10000, "int", _WRITERS, "most series waiting for tag registration"),

    # --- relay / outbound ---
    ("RELAY_METHOD", "rules", "str", (RELAY,),
     "rules, consistent-hashing, aggregated-consistent-hashing, fast-hashing, "
     "fast-aggregated-hashing (the aggregator always uses consistent-hashing)"),
    ("DESTINATIONS", [], "list", _SENDERS, "downstream carbons, comma separated host:port[:instance]"),
    ("DESTINATION_PROTOCOL", "pickle", "str", _SENDERS, "outbound protocol: pickle or line"),
    ("DESTINATION_TRANSPORT", "none", "str", _SENDERS, "outbound transport: none or ssl"),
    ("DESTINATION_SSL_CA", None, "str", _SENDERS, "CA bundle for the ssl transport"),
    ("DESTINATION_POOL_REPLICAS", False, "bool", _SENDERS,
     "pool destinations of the same host across replicas"),
    ("REPLICATION_FACTOR", 1, "int", _SENDERS + (API,),
     "destinations each datapoint is sent to (api: CarbonLink servers a metric may live on)"),
    ("DIVERSE_REPLICAS", True, "bool", _SENDERS, "replicas of a point go to distinct hosts"),
    ("ROUTER_HASH_TYPE", None, "str", _SENDERS,
     "ring position function: carbon_ch, fnv1a_ch, mmh3_ch (unset: carbon_ch; fast-*: mmh3_ch)"),
    ("TAG_RELAY_NORMALIZED", False, "bool", _SENDERS, "hash tagged names in normalised form"),
    ("MAX_QUEUE_SIZE", 10000, "int", _SENDERS,
     "datapoints queued per destination; carbon 1.1.x's code default was 1000 and its relays "
     "silently dropped everything beyond it"),
    ("QUEUE_LOW_WATERMARK_PCT", 0.8, "float", _SENDERS,
     "paused receivers resume when every queue is below this fraction of MAX_QUEUE_SIZE"),
    ("MAX_DATAPOINTS_PER_MESSAGE", 500, "int", _SENDERS, "most datapoints per outbound message"),
    ("TIME_TO_DEFER_SENDING", 0.0001, "float", _SENDERS,
     "seconds to wait for more points before sending"),
    ("DYNAMIC_ROUTER", False, "bool", _SENDERS, "take unreachable destinations out of the ring"),
    ("DYNAMIC_ROUTER_MAX_RETRIES", 5, "int", _SENDERS,
     "failed connects before a destination leaves the ring"),
    ("USE_RATIO_RESET", False, "bool", _SENDERS,
     "reconnect a destination whose sent/received ratio falls too low"),
    ("MIN_RESET_STAT_FLOW", 1000, "int", _SENDERS,
     "ratio reset only above this many points received"),
    ("MIN_RESET_RATIO", 0.9, "float", _SENDERS, "sent/received ratio that triggers a reset"),
    ("MIN_RESET_INTERVAL", 121, "int", _SENDERS, "seconds between two ratio resets"),
    ("RELAY_RULES", "relay-rules.conf", "str", (RELAY,), "relay rules file, relative to CONF_DIR"),

    # --- aggregator ---
    ("AGGREGATION_RULES", "aggregation-rules.conf", "str", (RELAY,) + _AGGREGATING,
     "aggregation rules file, relative to CONF_DIR"),
    ("REWRITE_RULES", "rewrite-rules.conf", "str", _AGGREGATING,
     "rewrite rules file, relative to CONF_DIR"),
    ("FORWARD_ALL", True, "bool", _AGGREGATING, "also forward the raw datapoints"),
    ("MAX_AGGREGATION_INTERVALS", 5, "int", _AGGREGATING,
     "aggregation intervals kept per output for late points"),
    ("WRITE_BACK_FREQUENCY", None, "int", _AGGREGATING,
     "emit aggregates at least this often in seconds (unset: once per rule frequency)"),
    ("LOG_AGGREGATOR_MISSES", True, "bool", _AGGREGATING, "log names no aggregation rule matched"),

    # --- AMQP and manhole: accepted so existing files load; not supported by cadent ---
    ("ENABLE_AMQP", False, "bool", _ALL, "AMQP input (not supported)"),
    ("AMQP_VERBOSE", False, "bool", _ALL, "AMQP (not supported)"),
    ("AMQP_HOST", None, "str", _ALL, "AMQP (not supported)"),
    ("AMQP_PORT", None, "int", _ALL, "AMQP (not supported)"),
    ("AMQP_VHOST", None, "str", _ALL, "AMQP (not supported)"),
    ("AMQP_USER", None, "str", _ALL, "AMQP (not supported)"),
    ("AMQP_PASSWORD", None, "str", _ALL, "AMQP (not supported)"),
    ("AMQP_EXCHANGE", None, "str", _ALL, "AMQP (not supported)"),
    ("AMQP_METRIC_NAME_IN_BODY", False, "bool", _ALL, "AMQP (not supported)"),
    ("AMQP_SPEC", None, "str", _ALL, "AMQP (not supported)"),
    ("BIND_PATTERNS", ["#"], "list", _ALL, "AMQP binding patterns (not supported)"),
    ("ENABLE_MANHOLE", False, "bool", _ALL, "SSH debugging shell (not supported)"),
    ("MANHOLE_INTERFACE", "127.0.0.1", "str", _ALL, "manhole (not supported)"),
    ("MANHOLE_PORT", 7222, "int", _ALL, "manhole (not supported)"),
    ("MANHOLE_USER", "", "str", _ALL, "manhole (not supported)"),
    ("MANHOLE_PUBLIC_KEY", "", "str", _ALL, "manhole (not supported)"),
    ("MANHOLE_HOST_KEY_DIR", "", "str", _ALL, "manhole (not supported)"),

    # --- cadent's own ---
    ("WORKERS", 1, "int", (RELAY, AGGREGATOR, STATSD, API),
     "worker processes sharing the listening ports with SO_REUSEPORT"),
    ("MAX_QUEUE_STALL_SECONDS", 30.0, "float", (RELAY, AGGREGATOR, STATSD),
     "how long one full destination queue may keep TCP receivers paused before that queue "
     "starts dropping (and counting) new points"),
    ("SPOOL_DIR", None, "str", _SENDERS + (STATSD,),
     "directory of the per-destination disk spools (unset: STORAGE_DIR/spool/<program>-<instance>; "
     "for [statsd], unset means no spool)"),
    ("SPOOL_MAX_BYTES", 1073741824, "int", _SENDERS + (STATSD,),
     "bytes of disk each destination's spool may use; beyond, its points are dropped and "
     "counted; 0 turns the spool off (a full queue then stalls, then drops)"),
    ("SPOOL_AFTER_S", 2.0, "float", _SENDERS + (STATSD,),
     "seconds a destination may be unreachable, or its queue full, before its points go to "
     "its spool (at once when its queue fills while it is unreachable)"),
    ("RELAY_REWRITE_RULES", False, "bool", (RELAY,),
     "apply rewrite-rules.conf ([pre] then [post]) in the relay too; carbon's relay ignores "
     "that file, so this is off by default"),
    ("SHUTDOWN_DRAIN_SECONDS", 30.0, "float", _ALL + (STATSD,),
     "longest time SIGTERM spends delivering queued points or writing the cache"),

    # --- the operators' HTTP side (docs/operations.md) ---
    ("HTTP_INTERFACE", "127.0.0.1", "str", _ALL + (STATSD,),
     "address of the daemon's HTTP side (/stats, /metrics, /ops/status, /hashcheck, /ring/*)"),
    ("HTTP_PORT", 0, "int", _ALL + (STATSD,), "port of the daemon's HTTP side; 0 turns it off"),
    ("HTTP_TOKEN", "", "str", _ALL + (STATSD,),
     "when set, POST /ring/add and /ring/purge need 'Authorization: Bearer <token>'"),
    ("DESTINATION_HEALTH_CHECK", False, "bool", (RELAY,),
     "take a destination refusing connections for HEALTH_CHECK_FAIL_S out of the ring, and put "
     "it back once it has accepted again for HEALTH_CHECK_OK_S (moves placement)"),
    ("HEALTH_CHECK_FAIL_S", 10.0, "float", (RELAY,),
     "seconds a destination must refuse connections before the health check takes it out"),
    ("HEALTH_CHECK_OK_S", 10.0, "float", (RELAY,),
     "seconds a destination taken out must accept connections before it is put back"),

    # --- cadent-api ([api] section) ---
    ("LISTEN_INTERFACE", "0.0.0.0", "str", (API,), "HTTP bind address of cadent-api"),
    ("LISTEN_PORT", 8080, "int", (API,), "HTTP port of cadent-api"),
    ("WHISPER_DIRS", None, "list", (API,),
     "whisper roots served; default [cache] LOCAL_DATA_DIR, else LOCAL_DATA_DIR"),
    ("CARBONLINK_HOSTS", ["127.0.0.1:7002"], "list", (API,),
     "CarbonLink servers host:port[:instance] asked for cached points; empty disables"),
    ("CARBONLINK_TIMEOUT", 1.0, "float", (API,), "seconds for a CarbonLink connect and each send/recv"),
    ("CARBONLINK_RETRY_DELAY", 15.0, "float", (API,), "seconds a failed CarbonLink server is left alone"),
    ("CARBONLINK_HASHING_TYPE", "carbon_ch", "str", (API,), "CarbonLink ring: carbon_ch, fnv1a_ch or mmh3_ch"),
    ("TIME_ZONE", "UTC", "str", (API,), "default tz for absolute times and csv output"),
    ("TAGDB_PATH", None, "str", (API,),
     "SQLite file of the tag database behind /tags and seriesByTag, shared by the workers; "
     "default tagdb.sqlite in the directory holding the first whisper root (a relative path "
     "is taken from there too)"),
])

__all__ = [
    "AGGREGATOR", "AGGREGATOR_CACHE", "API", "CACHE", "KINDS", "RELAY", "STATSD", "Setting",
    "all_settings", "defaults", "get_setting", "known_names", "known_roles", "parse_value",
    "register",
]

# Backends declare their own keys next to their readers; importing them fills in the table.
from cadent.compat import cassandra_settings as _cassandra_settings  # noqa: E402,F401
from cadent.compat import wal_settings as _wal_settings  # noqa: E402,F401
