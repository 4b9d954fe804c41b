"""The HTTP side and health-check keys of a carbon.conf section → typed settings.

``HTTP_INTERFACE`` / ``HTTP_PORT`` (0: off) / ``HTTP_TOKEN`` exist in every daemon's section;
``DESTINATION_HEALTH_CHECK`` / ``HEALTH_CHECK_FAIL_S`` / ``HEALTH_CHECK_OK_S`` in ``[relay]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from cadent.compat.carbon_conf import CarbonSettings
from cadent.compat.daemon_settings import real_number, whole_number
from cadent.compat.errors import ConfigError


@dataclass(frozen=True)
class HttpConfig:
    """Where the operators' HTTP side listens (``port`` 0: it is off) and its POST token."""

    interface: str = "127.0.0.1"
    port: int = 0
    token: str = ""

    @property
    def enabled(self) -> bool:
        return self.port > 0


@dataclass(frozen=True)
class HealthCheckConfig:
    """When a refusing destination leaves the ring (``fail_s``) and comes back (``ok_s``)."""

    enabled: bool = False
    fail_s: float = 10.0
    ok_s: float = 10.0


def _port(value: int, error) -> int:
    if not 0 <= value <= 65535:
        raise error(f"must be a port number (0 turns the HTTP side off), not {value!r}")
    return value


def http_config(conf: CarbonSettings) -> HttpConfig:
    """The HTTP side a carbon.conf section asks for."""
    port = _port(whole_number(conf, "HTTP_PORT", 0), lambda msg: conf.error("HTTP_PORT", msg))
    return HttpConfig(interface=str(conf.HTTP_INTERFACE or "127.0.0.1"), port=port,
                      token=str(conf.HTTP_TOKEN or ""))


def health_check_config(conf: CarbonSettings) -> HealthCheckConfig:
    """``[relay]``'s destination health check (off unless DESTINATION_HEALTH_CHECK)."""
    if not conf.DESTINATION_HEALTH_CHECK:
        return HealthCheckConfig()
    return HealthCheckConfig(enabled=True,
                             fail_s=real_number(conf, "HEALTH_CHECK_FAIL_S", 0, above=True),
                             ok_s=real_number(conf, "HEALTH_CHECK_OK_S", 0, above=True))


def statsd_http_config(block: Mapping[str, Any], where: str) -> HttpConfig:
    """statsd's ``http: {port, address, token}`` (config.js; the ``[statsd]`` section's
    ``HTTP_PORT`` / ``HTTP_INTERFACE`` / ``HTTP_TOKEN`` are read into the same block)."""
    port = block.get("port", 0)
    if isinstance(port, float) and port.is_integer():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int):
        raise ConfigError(where, 0, f"http.port must be a port number, not {port!r}")

    def error(msg: str) -> ConfigError:
        return ConfigError(where, 0, f"http.port {msg}")

    return HttpConfig(interface=str(block.get("address") or "127.0.0.1"),
                      port=_port(port, error), token=str(block.get("token") or ""))


__all__ = ["HealthCheckConfig", "HttpConfig", "health_check_config", "http_config",
           "statsd_http_config"]
