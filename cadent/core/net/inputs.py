"""The inbound side of a carbon daemon: line, pickle and UDP receivers from one config."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from functools import partial

from cadent.core.flow import FlowControl
from cadent.core.net.listen import bind_socket
from cadent.core.net.receivers import ConnectionCounter, Sink, TcpReceiver, UdpReceiver
from cadent.core.parse.pickle import PickleFrameParser
from cadent.core.parse.plaintext import LineParser
from cadent.core.stats import Stats

log = logging.getLogger(__name__)

Address = tuple[str, int]


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


class Inputs:
    """Binds and runs the configured receivers, all feeding one sink."""

    def __init__(self, config: ReceiverConfig, sink: Sink, *, flow: FlowControl, stats: Stats) -> None:
        self.config = config
        self.connections = ConnectionCounter()
        stats.gauge("activeConnections", self.connections.read)
        self.receivers: list[TcpReceiver | UdpReceiver] = []
        line_parser = partial(LineParser, max_line_bytes=config.max_line_bytes,
                              min_timestamp_resolution=config.min_timestamp_resolution)
        pickle_parser = partial(PickleFrameParser, max_frame_bytes=config.pickle_max_bytes,
                                min_timestamp_resolution=config.min_timestamp_resolution)
        tcp = dict(flow=flow, stats=stats, connections=self.connections,
                   max_connections=config.max_connections, idle_timeout_s=config.idle_timeout_s)
        if config.line is not None:
            listener = bind_socket(*config.line, socket.SOCK_STREAM, reuse_port=config.reuse_port)
            self.receivers.append(TcpReceiver("line", listener, line_parser, sink, **tcp))
        if config.pickle is not None:
            listener = bind_socket(*config.pickle, socket.SOCK_STREAM, reuse_port=config.reuse_port)
            self.receivers.append(TcpReceiver("pickle", listener, pickle_parser, sink, **tcp))
        if config.udp is not None:
            sock = bind_socket(*config.udp, socket.SOCK_DGRAM, reuse_port=config.reuse_port)
            self.receivers.append(UdpReceiver("udp", sock, line_parser, sink, stats=stats,
                                              receive_buffer_bytes=config.udp_receive_buffer_bytes))

    def addresses(self) -> dict[str, Address]:
        return {receiver.name: receiver.address for receiver in self.receivers}

    def start(self) -> None:
        for receiver in self.receivers:
            receiver.start()

    def stop(self) -> None:
        for receiver in self.receivers:
            receiver.stop()
