"""Settings every carbon-style daemon shares, read from its carbon.conf section.

Receivers, the routed output, white/blacklists and self-metrics look the same in
``[relay]``, ``[aggregator]`` and ``[cache]``; each role's settings module builds its own
typed settings from these pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cadent.compat.carbon_conf import CarbonSettings
from cadent.compat.lists import MetricFilter, read_pattern_list
from cadent.compat.listen_settings import line_format_config, listen_config
from cadent.core.net.inputs import ReceiverConfig
from cadent.core.net.output import OutputConfig


class DaemonPaths:
    """Mixin for a role's settings dataclass that holds its ``conf: CarbonSettings``."""

    conf: CarbonSettings

    @property
    def pidfile(self) -> str:
        return self.conf.pidfile

    @property
    def log_dir(self) -> str:
        return self.conf.log_dir

    @property
    def user(self) -> str:
        """carbon.conf's USER: the account to run as once the ports are bound ("" = stay)."""
        return str(self.conf.USER or "")


def whole_number(conf: CarbonSettings, key: str, least: int) -> int:
    """Setting ``key`` as a whole number of at least ``least``; ConfigError (file, key) else."""
    value = conf[key]
    number = None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    if number is None or number < least:
        raise conf.error(key, f"must be a whole number of at least {least}, not {value!r}")
    return number


def real_number(conf: CarbonSettings, key: str, least: float, *,
                infinite: bool = False, above: bool = False) -> float:
    """Setting ``key`` as a number of at least ``least`` (greater than it with ``above``;
    ``inf`` only when ``infinite``); ConfigError (file, key) for anything else: a boolean,
    NaN, text that is not a number."""
    value = conf[key]
    number = None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    if number is None or number != number or number < least or (above and number == least) \
            or (number == math.inf and not infinite):
        bound = "above" if above else "of at least"
        wanted = "a number" + (f" {bound} {least:g}" if least > -math.inf else "")
        wanted += " (inf allowed)" if infinite else ""
        raise conf.error(key, f"must be {wanted}, not {value!r}")
    return number


@dataclass(frozen=True)
class SelfMetricsConfig:
    prefix: str
    instance: str
    interval_s: float


def _address(interface: str, port: int) -> tuple[str, int] | None:
    return (interface, int(port)) if int(port) else None


def receiver_config(conf: CarbonSettings, *, reuse_port: bool) -> ReceiverConfig:
    """The receivers a carbon.conf section asks for (port 0 disables one, as in carbon)."""
    udp = _address(conf.UDP_RECEIVER_INTERFACE, conf.UDP_RECEIVER_PORT) if conf.ENABLE_UDP_LISTENER else None
    max_conn = conf.MAX_RECEIVER_CONNECTIONS
    idle = conf.METRIC_CLIENT_IDLE_TIMEOUT
    return ReceiverConfig(
        line=_address(conf.LINE_RECEIVER_INTERFACE, conf.LINE_RECEIVER_PORT),
        pickle=_address(conf.PICKLE_RECEIVER_INTERFACE, conf.PICKLE_RECEIVER_PORT),
        udp=udp,
        pickle_max_bytes=int(conf.PICKLE_RECEIVER_MAX_LENGTH),
        max_connections=None if max_conn in (None, float("inf")) else int(max_conn),
        idle_timeout_s=None if idle in (None, "", 0) else float(idle),
        min_timestamp_resolution=int(conf.MIN_TIMESTAMP_RESOLUTION or 0),
        reuse_port=reuse_port,
        listen=listen_config(conf, shared=reuse_port),
        line_format=line_format_config(conf),
        http_max_body_bytes=whole_number(conf, "HTTP_MAX_BODY_BYTES", 1),
    )


def metric_filter(conf: CarbonSettings) -> MetricFilter | None:
    """carbon's white/blacklist from CONF_DIR, or None when USE_WHITELIST is off."""
    if not conf.USE_WHITELIST:
        return None
    return MetricFilter(read_pattern_list(conf.whitelist), read_pattern_list(conf.blacklist))


def output_config(conf: CarbonSettings) -> OutputConfig:
    """How a relay or aggregator queues, sends and spools to its destinations."""
    from cadent.compat.spool_settings import spool_config  # it imports this module

    protocol = conf.DESTINATION_PROTOCOL
    if protocol not in ("pickle", "line"):
        raise conf.error("DESTINATION_PROTOCOL", f"must be pickle or line, not {protocol!r}")
    return OutputConfig(
        protocol=protocol,
        max_queue_points=int(conf.MAX_QUEUE_SIZE),
        low_watermark_pct=float(conf.QUEUE_LOW_WATERMARK_PCT),
        batch_points=int(conf.MAX_DATAPOINTS_PER_MESSAGE),
        stall_seconds=float(conf.MAX_QUEUE_STALL_SECONDS),
        spool=spool_config(conf),
    )


def self_metrics_config(conf: CarbonSettings) -> SelfMetricsConfig:
    return SelfMetricsConfig(prefix=conf.CARBON_METRIC_PREFIX, instance=conf.instance,
                             interval_s=float(conf.CARBON_METRIC_INTERVAL))
