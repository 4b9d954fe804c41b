"""Typed, read-only settings of the HTTP API (parsed by ``cadent.compat.api_settings``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ApiSettings:
    """Everything ``create_app`` and ``cadent-api`` need; built once at start-up."""

    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    whisper_dirs: tuple[str, ...] = ("/var/lib/cadent/whisper",)
    carbonlink_hosts: tuple[str, ...] = ("127.0.0.1:7002",)
    carbonlink_timeout_s: float = 1.0
    carbonlink_retry_delay_s: float = 15.0
    carbonlink_hashing_type: str = "carbon_ch"
    replication_factor: int = 1
    carbon_metric_prefix: str = "carbon"
    workers: int = 1
    time_zone: str = "UTC"
    tagdb_path: str = "/var/lib/cadent/tagdb.sqlite"
    cassandra: Any = None               # CassandraConfig when DATABASE = cassandra, else None
    # a glob search (render, find, expand) still running after this long is a 400
    request_time_limit_s: float = 60.0

    @property
    def database(self) -> str:
        """DATABASE: ``cassandra`` when a Cassandra config is given, else ``whisper``."""
        return "whisper" if self.cassandra is None else "cassandra"

    @property
    def bind(self) -> str:
        """gunicorn's ``--bind`` value."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"


__all__ = ["ApiSettings"]
