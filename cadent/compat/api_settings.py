"""The ``[api]`` section of a carbon.conf-style file → ``ApiSettings``.

Keys (declared in ``cadent.compat.settings``, carbon naming, case-insensitive), overlaid by
``[api:<instance>]``:

| key | default | meaning |
|---|---|---|
| LISTEN_INTERFACE | 0.0.0.0 | HTTP bind address |
| LISTEN_PORT | 8080 | HTTP port |
| WHISPER_DIRS | ``[cache] LOCAL_DATA_DIR``, else ``[api] LOCAL_DATA_DIR`` (``STORAGE_DIR/whisper``) | comma list of whisper roots |
| CARBONLINK_HOSTS | 127.0.0.1:7002 | comma list ``host:port[:instance]``; empty disables |
| CARBONLINK_TIMEOUT | 1.0 | seconds, connect and every send/recv |
| CARBONLINK_RETRY_DELAY | 15 | seconds a failed cache is left alone |
| CARBONLINK_HASHING_TYPE | carbon_ch | carbon_ch, fnv1a_ch, mmh3_ch |
| REPLICATION_FACTOR | 1 | distinct hosts a metric may live on; 0 disables CarbonLink |
| CARBON_METRIC_PREFIX | carbon | names under it are asked of every cache |
| WORKERS | 1 | gunicorn worker processes (gevent workers) |
| TIME_ZONE | UTC | default ``tz`` for absolute times and csv |
| DATABASE | whisper | whisper, or cassandra (then the CASSANDRA_* keys, see docs/cassandra.md) |
| TAGDB_PATH | ``tagdb.sqlite`` beside the first whisper root | the tag database (SQLite); relative: from that directory |
"""

from __future__ import annotations

import logging
import os

from cadent.api.settings import ApiSettings
from cadent.compat.carbon_conf import DEFAULT_INSTANCE, read_carbon_conf
from cadent.compat.errors import ConfigError
from cadent.compat.settings import API
from cadent.core.ring.hashing import HASH_TYPES

log = logging.getLogger(__name__)


class ApiConfigError(ValueError):
    """A bad value in the ``[api]`` section; the message names file, section and key."""


def _items(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(v.strip() for v in value if str(v).strip())


def _given(path: str | None, instance: str | None, key: str | None, role: str = API) -> bool:
    """Whether ``key`` (None: anything) is written in ``[role]`` / ``[role:<instance>]``."""
    if path is None:
        return False
    from cadent.compat.carbon_ini import read_ini

    wanted = {role, f"{role}:{instance or DEFAULT_INSTANCE}"}
    return any(section.name in wanted and (key is None or key.lower() in section.options)
               for section in read_ini(path))


def read_api_settings(path: str | None, instance: str | None = None) -> ApiSettings:
    """Parse ``path`` (None → all defaults) into ApiSettings; ApiConfigError on bad values.

    The file is read with ``read_carbon_conf(path, "api", instance)``: the same parsing,
    unknown-key warnings and ``[api:<instance>]`` overlay as every other daemon.
    """
    try:
        conf = read_carbon_conf(path, API, instance)
    except ConfigError as exc:
        raise ApiConfigError(str(exc)) from None
    where = f"{path} [api]"
    whisper_dirs = _items(conf.WHISPER_DIRS)
    if not whisper_dirs:
        data_dir = conf.LOCAL_DATA_DIR
        if not _given(path, instance, "LOCAL_DATA_DIR") and _given(path, instance, None, "cache"):
            try:
                data_dir = read_carbon_conf(path, "cache", instance).LOCAL_DATA_DIR
            except ConfigError as exc:
                raise ApiConfigError(str(exc)) from None
        whisper_dirs = (data_dir,)
    database = str(conf.DATABASE or "whisper").strip().lower()
    if database not in ("whisper", "cassandra"):
        raise ApiConfigError(f"{where}: DATABASE must be whisper or cassandra, not {database!r}")
    cassandra = None
    if database == "cassandra":
        from cadent.compat.cassandra_settings import cassandra_config

        try:
            cassandra = cassandra_config(conf)
        except ConfigError as exc:
            raise ApiConfigError(str(exc)) from None
    beside_data = os.path.dirname(os.path.abspath(os.path.expanduser(whisper_dirs[0])))
    tagdb_path = os.path.join(beside_data, os.path.expanduser(conf.TAGDB_PATH or "tagdb.sqlite"))
    try:
        settings = ApiSettings(
            listen_host=str(conf.LISTEN_INTERFACE).strip(),
            listen_port=int(conf.LISTEN_PORT),
            whisper_dirs=whisper_dirs,
            carbonlink_hosts=_items(conf.CARBONLINK_HOSTS),
            carbonlink_timeout_s=float(conf.CARBONLINK_TIMEOUT),
            carbonlink_retry_delay_s=float(conf.CARBONLINK_RETRY_DELAY),
            carbonlink_hashing_type=str(conf.CARBONLINK_HASHING_TYPE).strip(),
            replication_factor=int(conf.REPLICATION_FACTOR),
            carbon_metric_prefix=str(conf.CARBON_METRIC_PREFIX).strip(),
            workers=int(conf.WORKERS),
            time_zone=str(conf.TIME_ZONE).strip(),
            tagdb_path=os.path.normpath(tagdb_path),
            cassandra=cassandra,
        )
    except (TypeError, ValueError) as exc:
        raise ApiConfigError(f"{where}: {exc}") from None
    if not 0 < settings.listen_port < 65536:
        raise ApiConfigError(f"{where}: LISTEN_PORT {settings.listen_port} out of range")
    if settings.workers < 1:
        raise ApiConfigError(f"{where}: WORKERS must be at least 1")
    if settings.carbonlink_hashing_type not in HASH_TYPES:
        raise ApiConfigError(f"{where}: CARBONLINK_HASHING_TYPE must be one of {', '.join(HASH_TYPES)}")
    from cadent.api.carbonlink import parse_host

    servers = set()
    for host in settings.carbonlink_hosts:
        try:
            servers.add(parse_host(host)[0])
        except ValueError as exc:
            raise ApiConfigError(f"{where}: CARBONLINK_HOSTS: {exc}") from None
    if settings.carbonlink_hosts and settings.replication_factor > len(servers):
        raise ApiConfigError(f"{where}: REPLICATION_FACTOR exceeds the number of CarbonLink servers")
    return settings


__all__ = ["ApiConfigError", "read_api_settings"]
