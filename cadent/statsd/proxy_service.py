"""The running statsd cluster proxy: packets in, each line to its node's statsd over UDP.

Routing and health are :mod:`cadent.statsd.proxy` (the same ring as statsd's proxy.js); this
module adds the sockets: a UDP (or TCP) input, a UDP output socket, the health checker
(``health`` on each node's admin port every ``checkInterval``; a node that fails leaves the
ring, and comes back at the end once it answers ``up`` again) and the management port.
"""

from __future__ import annotations

import logging
import socket
import time

import gevent
from gevent import socket as gsocket

from cadent.statsd.config import ProxySettings
from cadent.statsd.mgmt import config_reply
from cadent.statsd.net import CommandServer, TcpPacketInput, UdpPacketInput
from cadent.statsd.proxy import NodeHealth, handle_proxy_command, is_healthy_reply, route_packet

log = logging.getLogger(__name__)


def check_node(host: str, adminport: int, timeout_s: float) -> bool:
    """Ask a statsd node for ``health``; True when it replies with ``up``."""
    try:
        with gsocket.create_connection((host, adminport), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            conn.sendall(b"health\r\n")
            reply = conn.recv(1024).decode("utf-8", "replace")
    except OSError:
        return False
    return is_healthy_reply(reply)


class ProxyService:
    """statsd-proxy wired for the shared CLI."""

    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.nodes = {f"{n.host}:{n.port}": n for n in settings.nodes}
        self.health = NodeHealth(self.nodes)
        self.state = {"health": settings.health_status}
        self.started = time.time()
        self.dropped = 0
        self._out = gsocket.socket(socket.AF_INET6 if settings.address_ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
        host = "::" if settings.address_ipv6 and settings.address == "0.0.0.0" else settings.address
        if settings.server == "./servers/tcp":
            self.input = TcpPacketInput(host, settings.port, self.handle_packet)
        else:
            self.input = UdpPacketInput(host, settings.port, self.handle_packet)
        self.mgmt = CommandServer(settings.mgmt_address, settings.mgmt_port, self.command, "statsd-proxy")
        self._config_text = config_reply(settings.raw)
        self._checker: gevent.Greenlet | None = None
        self._addresses = {node_id: (n.host, n.port) for node_id, n in self.nodes.items()}

    def handle_packet(self, packet: bytes) -> None:
        routes = route_packet(self.health.ring, packet)
        if not routes and packet:
            self.dropped += 1
            log.warning("no healthy statsd node: packet dropped")
            return
        send, addresses = self._out.sendto, self._addresses
        for node_id, datagram in routes:
            try:
                send(datagram, addresses[node_id])
            except OSError as exc:
                log.debug("cannot forward to %s: %s", node_id, exc)

    def command(self, text: str) -> tuple[str, bool]:
        uptime = int(round(time.time() - self.started))
        return handle_proxy_command(self.state, self.health, text, uptime, self._config_text)

    def check_all(self) -> None:
        """One round of health checks (in parallel), updating the ring."""
        timeout = self.settings.check_interval_ms / 1000
        ids = list(self.nodes)
        jobs = [gevent.spawn(check_node, self.nodes[i].host, self.nodes[i].adminport, timeout) for i in ids]
        gevent.joinall(jobs)
        for node_id, job in zip(ids, jobs):
            healthy = bool(job.value)
            if self.health.report(node_id, healthy):
                log.warning("node %s is %s; ring now %s", node_id, "back" if healthy else "down",
                            " ".join(self.health.live))

    def _check_loop(self) -> None:
        while True:
            try:
                self.check_all()
            except Exception:
                log.exception("health check round failed")
            gevent.sleep(self.settings.check_interval_ms / 1000)

    def start(self) -> None:
        self.input.start()
        self.mgmt.start()
        self._checker = gevent.spawn(self._check_loop)

    def stop(self) -> bool:
        if self._checker is not None:
            self._checker.kill(block=True, timeout=2)
        self.input.stop()
        if isinstance(self.input, UdpPacketInput):
            self.input.drain()
            self.input.close()
        self.mgmt.stop()
        self._out.close()
        return True

    def reload(self) -> None:
        log.info("statsd-proxy has nothing to reload; restart to apply config changes")


__all__ = ["ProxyService", "check_node"]
