"""The ``[api]`` section of a carbon.conf-style file → ``ApiSettings``.

Keys (carbon naming, case-insensitive), overlaid by ``[api:<instance>]``:

| key | default | meaning |
|---|---|---|
| LISTEN_INTERFACE | 0.0.0.0 | HTTP bind address |
| LISTEN_PORT | 8080 | HTTP port |
| WHISPER_DIRS | ``[cache] LOCAL_DATA_DIR``, else ``STORAGE_DIR/whisper`` | comma list of whisper roots |
| CARBONLINK_HOSTS | 127.0.0.1:7002 | comma list ``host:port[:instance]``; empty disables |
| CARBONLINK_TIMEOUT | 1.0 | seconds, connect and every send/recv |
| CARBONLINK_RETRY_DELAY | 15 | seconds a failed cache is left alone |
| CARBONLINK_HASHING_TYPE | carbon_ch | carbon_ch, fnv1a_ch, mmh3_ch |
| REPLICATION_FACTOR | 1 | distinct hosts a metric may live on; 0 disables CarbonLink |
| CARBON_METRIC_PREFIX | carbon | names under it are asked of every cache |
| WORKERS | 2 | gunicorn worker processes |
| TIME_ZONE | UTC | default ``tz`` for absolute times and csv |
"""

from __future__ import annotations

import configparser
import logging
import os

from cadent.api.settings import ApiSettings
from cadent.core.ring.hashing import HASH_TYPES

log = logging.getLogger(__name__)

_KNOWN = {
    "listen_interface", "listen_port", "whisper_dirs", "carbonlink_hosts", "carbonlink_timeout",
    "carbonlink_retry_delay", "carbonlink_hashing_type", "replication_factor",
    "carbon_metric_prefix", "workers", "time_zone",
}


class ApiConfigError(ValueError):
    """A bad value in the ``[api]`` section; the message names file, section and key."""


def _list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def read_api_settings(path: str | None, instance: str | None = None) -> ApiSettings:
    """Parse ``path`` (None → all defaults) into ApiSettings; ApiConfigError on bad values."""
    parser = configparser.ConfigParser(interpolation=None)
    if path is not None:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh, source=path)
    values: dict[str, str] = {}
    for section in ("api", f"api:{instance}" if instance else None):
        if section and parser.has_section(section):
            for key, value in parser.items(section):
                if key not in _KNOWN:
                    log.warning("%s [%s]: unknown key %s ignored", path, section, key.upper())
                values[key] = value
    default_dirs = ApiSettings().whisper_dirs
    for section in ("cache", f"cache:{instance}" if instance else None):
        if section and parser.has_section(section):
            if parser.has_option(section, "local_data_dir"):
                default_dirs = (parser.get(section, "local_data_dir"),)
            elif parser.has_option(section, "storage_dir"):
                default_dirs = (os.path.join(parser.get(section, "storage_dir"), "whisper"),)

    def get(key: str, conv, default):
        if key not in values:
            return default
        try:
            return conv(values[key])
        except ValueError as exc:
            raise ApiConfigError(f"{path} [api]: bad {key.upper()} {values[key]!r}: {exc}") from None

    settings = ApiSettings(
        listen_host=get("listen_interface", str.strip, "0.0.0.0"),
        listen_port=get("listen_port", int, 8080),
        whisper_dirs=get("whisper_dirs", _list, default_dirs),
        carbonlink_hosts=get("carbonlink_hosts", _list, ("127.0.0.1:7002",)),
        carbonlink_timeout_s=get("carbonlink_timeout", float, 1.0),
        carbonlink_retry_delay_s=get("carbonlink_retry_delay", float, 15.0),
        carbonlink_hashing_type=get("carbonlink_hashing_type", str.strip, "carbon_ch"),
        replication_factor=get("replication_factor", int, 1),
        carbon_metric_prefix=get("carbon_metric_prefix", str.strip, "carbon"),
        workers=get("workers", int, 2),
        time_zone=get("time_zone", str.strip, "UTC"),
    )
    if settings.carbonlink_hashing_type not in HASH_TYPES:
        raise ApiConfigError(f"{path} [api]: CARBONLINK_HASHING_TYPE must be one of {', '.join(HASH_TYPES)}")
    from cadent.api.carbonlink import parse_host

    for host in settings.carbonlink_hosts:
        try:
            parse_host(host)
        except ValueError as exc:
            raise ApiConfigError(f"{path} [api]: CARBONLINK_HOSTS: {exc}") from None
    if settings.replication_factor > len(set(parse_host(h)[0] for h in settings.carbonlink_hosts)) and settings.carbonlink_hosts:
        raise ApiConfigError(f"{path} [api]: REPLICATION_FACTOR exceeds the number of CarbonLink servers")
    return settings


__all__ = ["ApiConfigError", "read_api_settings"]
