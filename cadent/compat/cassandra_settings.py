"""The ``CASSANDRA_*`` keys of carbon.conf (``[cache]`` and ``[api]``) → :class:`CassandraConfig`.

Declared here once (name, default, kind, doc), read by cadent-cache when ``DATABASE`` lists
``cassandra`` and by cadent-api when its ``DATABASE = cassandra``. A bad value stops start-up
(and ``--check-config``) with the file and line it was written on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cadent.compat.settings import AGGREGATOR_CACHE, API, CACHE, Setting, register

if TYPE_CHECKING:
    from cadent.compat.carbon_conf import CarbonSettings

DEFAULT_PORT = 9042

#: the consistency levels a write or read may ask for (the driver's names)
CONSISTENCY_LEVELS = ("ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM",
                      "EACH_QUORUM", "LOCAL_ONE")

_ROLES = (CACHE, AGGREGATOR_CACHE, API)

register(*(Setting(name, default, kind, doc, _ROLES) for name, default, kind, doc in (
    ("CASSANDRA_HOSTS", ["127.0.0.1"], "list",
     "Cassandra contact points, a comma list of host[:port] (default port 9042)"),
    ("CASSANDRA_KEYSPACE", "metric", "str", "keyspace holding the metric, path and segment tables"),
    ("CASSANDRA_USER", None, "str", "user name for password authentication (unset: none)"),
    ("CASSANDRA_PASSWORD", None, "str", "password for CASSANDRA_USER"),
    ("CASSANDRA_LOCAL_DC", None, "str",
     "data centre whose nodes are used (DC-aware load balancing); unset: every node"),
    ("CASSANDRA_CONSISTENCY", "LOCAL_QUORUM", "str",
     "consistency level of every write and read: " + ", ".join(CONSISTENCY_LEVELS)),
    ("CASSANDRA_PROTOCOL_VERSION", 4, "int", "CQL native protocol version (3 to 5)"),
    ("CASSANDRA_MAX_INFLIGHT", 128, "int",
     "most statements in flight at once per process (writes and read-backs)"),
    ("CASSANDRA_CREATE_SCHEMA", False, "bool",
     "create the keyspace, types and tables (IF NOT EXISTS) when first connected"),
    ("CASSANDRA_REPLICATION_FACTOR", 3, "int",
     "replication factor of a keyspace created by cadent (SimpleStrategy, or "
     "NetworkTopologyStrategy in CASSANDRA_LOCAL_DC when that is set)"),
    ("CASSANDRA_CONNECT_TIMEOUT", 5.0, "float", "seconds to open a connection to a node"),
    ("CASSANDRA_REQUEST_TIMEOUT", 10.0, "float", "seconds a statement may take before it fails"),
    ("CASSANDRA_RECONNECT_SECONDS", 5.0, "float",
     "seconds between attempts to reach an unreachable cluster (the driver's own node "
     "reconnection backs off up to this too)"),
    ("CASSANDRA_RECENT_BINS", 1000000, "int",
     "cache: most time bins (all series and resolutions) kept in memory to merge late "
     "points without reading the row back"),
    ("CASSANDRA_BIN_WINDOW", 900, "int",
     "cache: seconds after a bin ends that it stays in memory (older bins are read back "
     "from Cassandra before a late point is merged)"),
)))


@dataclass(frozen=True)
class CassandraConfig:
    """Where the cluster is and how cadent talks to it (one per process)."""

    hosts: tuple[tuple[str, int], ...]
    keyspace: str = "metric"
    user: str | None = None
    password: str | None = None
    local_dc: str | None = None
    consistency: str = "LOCAL_QUORUM"
    protocol_version: int = 4
    max_inflight: int = 128
    create_schema: bool = False
    replication_factor: int = 3
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 10.0
    reconnect_s: float = 5.0
    recent_bins: int = 1000000
    bin_window_s: int = 900
    conf_dir: str = "."             # where storage-schemas.conf / storage-aggregation.conf live

    @property
    def contact_points(self) -> str:
        return ", ".join(f"{host}:{port}" for host, port in self.hosts)


def parse_host(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host, port); ValueError if bad."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not host or (rest and not rest.startswith(":")):
            raise ValueError(f"bad host {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"bad host {text!r}")
    if not port_text and not text.endswith(":"):
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port_text)


def cassandra_config(conf: CarbonSettings) -> CassandraConfig:
    """The CASSANDRA_* settings of ``conf``; ConfigError (file:line) for a bad value."""
    from cadent.compat.daemon_settings import real_number, whole_number  # it imports our users

    hosts = []
    for item in filter(None, conf.CASSANDRA_HOSTS):   # a "list" setting: items stripped
        try:
            hosts.append(parse_host(item))
        except ValueError as exc:
            raise conf.error("CASSANDRA_HOSTS", str(exc)) from None
    if not hosts:
        raise conf.error("CASSANDRA_HOSTS", "names no host")
    keyspace = str(conf.CASSANDRA_KEYSPACE).strip()
    if not keyspace.replace("_", "a").isalnum() or not keyspace[:1].isalpha() or len(keyspace) > 48:
        raise conf.error("CASSANDRA_KEYSPACE", f"{keyspace!r} is not a keyspace name "
                                         "(a letter, then letters, digits or _, at most 48)")
    consistency = str(conf.CASSANDRA_CONSISTENCY).strip().upper()
    if consistency not in CONSISTENCY_LEVELS:
        raise conf.error("CASSANDRA_CONSISTENCY", f"{consistency!r} is not one of "
                                            f"{', '.join(CONSISTENCY_LEVELS)}")
    protocol = conf.CASSANDRA_PROTOCOL_VERSION
    if protocol not in (3, 4, 5):
        raise conf.error("CASSANDRA_PROTOCOL_VERSION", f"{protocol!r} is not 3, 4 or 5")
    user, password = conf.CASSANDRA_USER or None, conf.CASSANDRA_PASSWORD
    if user and password is None:
        raise conf.error("CASSANDRA_USER", "CASSANDRA_USER needs CASSANDRA_PASSWORD")
    return CassandraConfig(
        hosts=tuple(hosts), keyspace=keyspace, user=user, password=password,
        local_dc=(str(conf.CASSANDRA_LOCAL_DC).strip() or None) if conf.CASSANDRA_LOCAL_DC else None,
        consistency=consistency, protocol_version=int(protocol),
        max_inflight=whole_number(conf, "CASSANDRA_MAX_INFLIGHT", 1),
        create_schema=bool(conf.CASSANDRA_CREATE_SCHEMA),
        replication_factor=whole_number(conf, "CASSANDRA_REPLICATION_FACTOR", 1),
        connect_timeout_s=real_number(conf, "CASSANDRA_CONNECT_TIMEOUT", 0.001),
        request_timeout_s=real_number(conf, "CASSANDRA_REQUEST_TIMEOUT", 0.001),
        reconnect_s=real_number(conf, "CASSANDRA_RECONNECT_SECONDS", 0.001),
        recent_bins=whole_number(conf, "CASSANDRA_RECENT_BINS", 0),
        bin_window_s=whole_number(conf, "CASSANDRA_BIN_WINDOW", 0),
        conf_dir=conf.CONF_DIR,
    )


__all__ = ["CONSISTENCY_LEVELS", "CassandraConfig", "DEFAULT_PORT", "cassandra_config", "parse_host"]
