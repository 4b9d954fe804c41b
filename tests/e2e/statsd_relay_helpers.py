"""A fleet of real statsd daemons with proxy.js and cadent-relay in front (tests and bench).

Each statsd node listens on UDP and TCP on the same port number, so its proxy.js node id
(``host:port``, where proxy.js sends UDP) is also the cadent-relay destination
``host:port`` (where cadent-relay sends TCP): both front ends place keys on the same ring.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from tests.e2e.relay_helpers import relay_conf
from tests.e2e.statsd_helpers import LOCAL, RawCarbonSink, js_literal
from tests.peers import REPO_ROOT, CadentProcess, PeerProcess, free_port

STATSD_DIR = REPO_ROOT / "peers" / "node_modules" / "statsd"


def etsy_statsd_available() -> bool:
    return shutil.which("node") is not None and (STATSD_DIR / "proxy.js").exists()


class NodeProcess(PeerProcess):
    """``node <script> <config.js>`` from the npm statsd package."""

    name = "statsd-js"

    def __init__(self, tmp: Path, script: str, config: dict, *, wait_port: int, **kw) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        conf = tmp / "config.js"
        conf.write_text(js_literal(config))
        super().__init__(["node", str(STATSD_DIR / script), str(conf)], cwd=STATSD_DIR,
                         wait_ports=[(LOCAL, wait_port)], log_path=tmp / "out.log", **kw)


class StatsdNode:
    """A real statsd on UDP+TCP ``port``, flushing every second into its own carbon sink."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.adminport = free_port(), free_port()
        self.sink = RawCarbonSink()
        servers = [{"server": f"./servers/{kind}", "address": LOCAL, "port": self.port}
                   for kind in ("udp", "tcp")]
        config = {"servers": servers, "mgmt_address": LOCAL, "mgmt_port": self.adminport,
                  "flushInterval": 1000, "graphiteHost": LOCAL, "graphitePort": self.sink.port,
                  "automaticConfigReload": False}
        self.process = NodeProcess(tmp, "stats.js", config, wait_port=self.adminport).start()

    @property
    def node_id(self) -> str:
        return f"{LOCAL}:{self.port}"

    def counts(self, prefix: str = "") -> dict[str, float]:
        """Sum of every flushed ``stats_counts.<key>`` per key (keys starting with ``prefix``)."""
        totals: dict[str, float] = {}
        for line in self.sink.all_lines():
            name, _, rest = line.partition(" ")
            if name.startswith("stats_counts." + prefix):
                key = name[len("stats_counts."):]
                totals[key] = totals.get(key, 0.0) + float(rest.split()[0])
        return {key: value for key, value in totals.items() if value}

    def stop(self) -> None:
        self.process.stop()
        self.sink.close()


def start_proxy_js(tmp: Path, nodes: list[StatsdNode]) -> tuple[PeerProcess, int]:
    """statsd's proxy.js over ``nodes`` on a UDP port; returns the process and that port."""
    port, mgmt = free_port(), free_port()
    config = {"nodes": [{"host": LOCAL, "port": n.port, "adminport": n.adminport} for n in nodes],
              "address": LOCAL, "port": port, "mgmt_address": LOCAL, "mgmt_port": mgmt,
              "checkInterval": 1000, "forkCount": 0}
    return NodeProcess(tmp, "proxy.js", config, wait_port=mgmt).start(), port


def start_statsd_relay(tmp: Path, nodes: list[StatsdNode], **overrides) -> tuple[CadentProcess, int]:
    """cadent-relay with LINE_FORMAT = statsd in front of ``nodes``, listening on
    ``udp://`` and ``tcp://`` on one port number; returns the process and that port."""
    port = free_port()
    # carbon's DESTINATIONS needs distinct instances on one host; the statsd ring ignores them
    destinations = [f"{n.node_id}:s{i}" for i, n in enumerate(nodes)]
    conf = relay_conf(tmp, destinations, LINE_FORMAT="statsd",
                      LINE_RECEIVER_PORT=0, PICKLE_RECEIVER_PORT=0,
                      LISTEN=[f"udp://{LOCAL}:{port}", f"tcp://{LOCAL}:{port}"], **overrides)
    return CadentProcess(conf, ports=[(LOCAL, port)]).start(), port


def wait_stable(read, timeout: float, quiet_s: float = 2.5):
    """Poll ``read()`` until its value stays the same for ``quiet_s`` (or the timeout)."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.2)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last


class ByteSink(RawCarbonSink):
    """A TCP destination recording the exact bytes it receives (all connections, in order)."""

    def __init__(self, port: int = 0) -> None:
        self.data = bytearray()
        self._lock = threading.Lock()
        super().__init__(port=port)

    @property
    def destination(self) -> str:
        return f"{LOCAL}:{self.port}"

    def _serve(self, conn) -> None:
        while True:
            try:
                chunk = conn.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.data += chunk

    def received_lines(self) -> list[bytes]:
        """Complete lines received so far, each with its newline."""
        with self._lock:
            data = bytes(self.data)
        return [line + b"\n" for line in data.split(b"\n")[:-1]]
