"""The inbound side of a carbon daemon: line, pickle and UDP receivers from one config, plus
the ``LISTEN`` listeners (``tcp://``, ``udp://``, ``unix://``, ``http://``).

Every line listener reads the section's :class:`LineFormat`: carbon's plaintext, or statsd /
regex-keyed lines relayed unchanged (:mod:`cadent.core.parse.keyed`). Pickle carries carbon
datapoints only, so a keyed format opens no pickle receiver.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from functools import partial
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from cadent.core.flow import FlowControl
from cadent.core.net.listen import bind_socket, bind_unix_socket
from cadent.core.net.receivers import (ConnectionCounter, HttpReceiver, Sink, TcpReceiver,
                                       UdpReceiver)
from cadent.core.parse.keyed import LineFormat, keyed_parser_class
from cadent.core.parse.pickle import PickleFrameParser
from cadent.core.parse.plaintext import LineParser
from cadent.core.ratelog import RateLimitedLog
from cadent.core.stats import Stats

log = logging.getLogger(__name__)

Address = tuple[str, int]
LISTEN_SCHEMES = ("tcp", "udp", "unix", "http")


@dataclass(frozen=True)
class Listen:
    """One ``LISTEN`` entry: ``scheme`` tcp/udp/http with ``host`` and ``port``, or unix with
    ``path`` and the socket file's ``mode``; ``path`` is also the URL path an HTTP
    listener takes POSTs on."""

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""
    mode: int = 0o660

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_listen(text: str) -> Listen:
    """``tcp://host:port``, ``udp://host:port``, ``http://host:port/path`` or
    ``unix:///abs/path.sock[?mode=0660]`` (IPv6 hosts in brackets); ValueError says why not."""
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in LISTEN_SCHEMES:
        raise ValueError(f"{text!r}: the scheme must be one of {', '.join(LISTEN_SCHEMES)}")
    query = parse_qs(parts.query)
    if scheme == "unix":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(f"{text!r}: write unix:///absolute/path.sock")
        try:
            mode = int(query.pop("mode", ["0660"])[0], 8)
        except ValueError:
            raise ValueError(f"{text!r}: mode must be octal, like 0660") from None
        if query or not 0 <= mode <= 0o777:
            raise ValueError(f"{text!r}: the only option is mode=<octal permissions>")
        return Listen("unix", path=parts.path, mode=mode)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r}: bad port") from None
    if not parts.hostname or port is None or query:
        raise ValueError(f"{text!r}: write {scheme}://host:port" + ("/path" if scheme == "http" else ""))
    if scheme != "http" and parts.path not in ("", "/"):
        raise ValueError(f"{text!r}: a path is only for http://")
    return Listen(scheme, parts.hostname, port, parts.path or ("/" if scheme == "http" else ""))


@dataclass(frozen=True)
class ReceiverConfig:
    """Where and how a daemon listens. An address of None (or port 0 in carbon.conf) disables it."""

    line: Address | None = ("0.0.0.0", 2003)
    pickle: Address | None = ("0.0.0.0", 2004)
    udp: Address | None = None
    pickle_max_bytes: int = 1048576
    max_line_bytes: int = 16384
    max_connections: int | None = None
    idle_timeout_s: float | None = None
    min_timestamp_resolution: int = 0
    udp_receive_buffer_bytes: int = 4 * 1024 * 1024
    reuse_port: bool = False
    listen: tuple[Listen, ...] = ()
    line_format: LineFormat = field(default_factory=LineFormat)
    http_max_body_bytes: int = 1 << 20


class Inputs:
    """Binds and runs the configured receivers, all feeding one sink."""

    def __init__(self, config: ReceiverConfig, sink: Sink, *, flow: FlowControl, stats: Stats) -> None:
        self.config = config
        self.connections = ConnectionCounter()
        stats.gauge("activeConnections", self.connections.read)
        self.receivers: list[TcpReceiver | UdpReceiver | HttpReceiver] = []
        line_parser = self._line_parser_factory(config)
        pickle_parser = partial(PickleFrameParser, max_frame_bytes=config.pickle_max_bytes,
                                min_timestamp_resolution=config.min_timestamp_resolution)
        tcp = dict(flow=flow, stats=stats, connections=self.connections,
                   max_connections=config.max_connections, idle_timeout_s=config.idle_timeout_s)
        reuse = config.reuse_port
        if config.line is not None:
            listener = bind_socket(*config.line, socket.SOCK_STREAM, reuse_port=reuse)
            self.receivers.append(TcpReceiver("line", listener, line_parser, sink, **tcp))
        if config.pickle is not None and config.line_format.keyed:
            log.info("line format %s: no pickle receiver (pickle carries carbon datapoints)",
                     config.line_format.kind)
        elif config.pickle is not None:
            listener = bind_socket(*config.pickle, socket.SOCK_STREAM, reuse_port=reuse)
            self.receivers.append(TcpReceiver("pickle", listener, pickle_parser, sink, **tcp))
        if config.udp is not None:
            sock = bind_socket(*config.udp, socket.SOCK_DGRAM, reuse_port=reuse)
            self.receivers.append(UdpReceiver("udp", sock, line_parser, sink, stats=stats,
                                              receive_buffer_bytes=config.udp_receive_buffer_bytes))
        for spec in config.listen:
            name = spec.url
            if spec.scheme == "tcp":
                listener = bind_socket(spec.host, spec.port, socket.SOCK_STREAM, reuse_port=reuse)
                self.receivers.append(TcpReceiver(name, listener, line_parser, sink, **tcp))
            elif spec.scheme == "unix":
                listener = bind_unix_socket(spec.path, mode=spec.mode)
                self.receivers.append(TcpReceiver(name, listener, line_parser, sink, **tcp))
            elif spec.scheme == "udp":
                sock = bind_socket(spec.host, spec.port, socket.SOCK_DGRAM, reuse_port=reuse)
                self.receivers.append(UdpReceiver(
                    name, sock, line_parser, sink, stats=stats,
                    receive_buffer_bytes=config.udp_receive_buffer_bytes))
            else:
                listener = bind_socket(spec.host, spec.port, socket.SOCK_STREAM, reuse_port=reuse)
                self.receivers.append(HttpReceiver(
                    name, listener, line_parser, sink, path=spec.path, flow=flow, stats=stats,
                    max_body_bytes=config.http_max_body_bytes,
                    max_connections=config.max_connections))

    @staticmethod
    def _line_parser_factory(config: ReceiverConfig) -> Callable[..., object]:
        fmt = config.line_format
        if not fmt.keyed:
            return partial(LineParser, max_line_bytes=config.max_line_bytes,
                           min_timestamp_resolution=config.min_timestamp_resolution)
        # one log limiter for every connection: a bad line is logged at most once a minute
        options = dict(max_line_bytes=config.max_line_bytes, problems=RateLimitedLog(log))
        if fmt.kind == "regex":
            options.update(key_regex=fmt.key_regex, timestamp_format=fmt.timestamp_format)
        return partial(keyed_parser_class(fmt.kind), **options)

    def addresses(self) -> dict[str, Address | str]:
        """Receiver name → ``(host, port)``, or the path of a unix socket."""
        return {receiver.name: receiver.address for receiver in self.receivers}

    def start(self) -> None:
        for receiver in self.receivers:
            receiver.start()

    def stop(self) -> None:
        for receiver in self.receivers:
            receiver.stop()
