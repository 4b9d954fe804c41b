"""carbon.conf's LISTEN, HTTP_MAX_BODY_BYTES and the relay's LINE_FORMAT keys → typed values.

Every problem is a :class:`ConfigError` at the line of the setting that causes it, so
``--check-config`` reports it with file:line.
"""

from __future__ import annotations

import time

from cadent.compat.carbon_conf import CarbonSettings
from cadent.core.net.inputs import Listen, parse_listen
from cadent.core.parse.keyed import FORMATS, LineFormat, compile_key_regex

_RELAY = "relay"
_STATSD_METHODS = ("consistent-hashing", "rules")


def listen_config(conf: CarbonSettings, *, shared: bool = False) -> tuple[Listen, ...]:
    """The LISTEN entries (empty items skipped); a unix socket cannot be ``shared`` by
    several worker processes."""
    listens = []
    for text in conf.LISTEN or ():
        if not text.strip():
            continue
        try:
            spec = parse_listen(text)
        except ValueError as exc:
            raise conf.error("LISTEN", str(exc)) from None
        if spec.scheme == "unix" and shared:
            raise conf.error("LISTEN", f"{spec.url}: a unix socket cannot be shared by "
                                       "several workers; use tcp:// or WORKERS = 1")
        listens.append(spec)
    if len({spec.url for spec in listens}) != len(listens):
        raise conf.error("LISTEN", "the same listener is named twice")
    return tuple(listens)


def line_format_config(conf: CarbonSettings) -> LineFormat:
    """The relay's LINE_FORMAT with its regex, checked against the settings it rules out.
    Other roles read carbon's lines only."""
    if conf.role != _RELAY:
        return LineFormat()
    kind = str(conf.LINE_FORMAT or "graphite").strip().lower()
    if kind not in FORMATS:
        raise conf.error("LINE_FORMAT", f"must be one of {', '.join(FORMATS)}, not {kind!r}")
    if kind == "graphite":
        return LineFormat()
    _check_keyed(conf, kind)
    if kind == "statsd":
        _check_statsd(conf)
        return LineFormat("statsd")
    if not conf.LINE_KEY_REGEX:
        raise conf.error("LINE_KEY_REGEX", "LINE_FORMAT = regex needs a regex with a "
                                           "(?P<Key>...) group")
    try:
        pattern = compile_key_regex(conf.LINE_KEY_REGEX)
    except ValueError as exc:
        raise conf.error("LINE_KEY_REGEX", str(exc)) from None
    ts_format = conf.LINE_TIMESTAMP_FORMAT or None
    if ts_format is not None:
        if "Timestamp" not in pattern.groupindex:
            raise conf.error("LINE_TIMESTAMP_FORMAT",
                             "LINE_KEY_REGEX has no (?P<Timestamp>...) group to read with it")
        try:  # a format strptime cannot read back what strftime wrote is unusable
            time.strptime(time.strftime(ts_format, time.gmtime(1700000000)), ts_format)
        except ValueError as exc:
            raise conf.error("LINE_TIMESTAMP_FORMAT", f"not a usable strptime format: {exc}") from None
    return LineFormat("regex", pattern, ts_format)


def _check_keyed(conf: CarbonSettings, kind: str) -> None:
    if conf.RELAY_REWRITE_RULES:
        raise conf.error("RELAY_REWRITE_RULES", f"LINE_FORMAT = {kind} relays lines unchanged; "
                                                "rewrite rules cannot apply")
    if any(str(broker).strip() for broker in conf.get("KAFKA_INPUT_BROKERS") or ()):
        raise conf.error("KAFKA_INPUT_BROKERS", f"the Kafka input carries carbon datapoints, "
                                                f"not {kind} lines")
    if "PICKLE_RECEIVER_PORT" in conf.lines and int(conf.PICKLE_RECEIVER_PORT):
        raise conf.error("PICKLE_RECEIVER_PORT", f"pickle carries carbon datapoints, not "
                                                 f"{kind} lines: set it to 0 with LINE_FORMAT = {kind}")


def _check_statsd(conf: CarbonSettings) -> None:
    method = conf.RELAY_METHOD
    if method not in _STATSD_METHODS:
        raise conf.error("RELAY_METHOD", "LINE_FORMAT = statsd places keys with statsd's "
                                         "proxy.js ring (consistent-hashing) or by relay rules; "
                                         f"not {method!r}")
    if method == "consistent-hashing":
        if conf.ROUTER_HASH_TYPE:
            raise conf.error("ROUTER_HASH_TYPE", "LINE_FORMAT = statsd hashes keys with "
                                                 "statsd's proxy.js ring; leave it unset")
        if int(conf.REPLICATION_FACTOR) != 1:
            raise conf.error("REPLICATION_FACTOR", "LINE_FORMAT = statsd sends each key to "
                                                   "one statsd, as proxy.js does; set it to 1")


__all__ = ["line_format_config", "listen_config"]
