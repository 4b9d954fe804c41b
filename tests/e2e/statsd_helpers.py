"""Process-test helpers for cadent-statsd: a raw carbon sink, a daemon runner, UDP/TCP clients."""

from __future__ import annotations

import json
import pickle
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from tests.peers import REPO_ROOT, PeerProcess, free_port

LOCAL = "127.0.0.1"


class RawCarbonSink:
    """A TCP carbon stand-in recording exact lines (plaintext, or statsd pickle frames).

    ``flush()`` returns the lines of the next complete statsd flush (the flush ends with
    its ``graphiteStats.flush_length`` line).
    """

    def __init__(self, protocol: str = "line", port: int = 0) -> None:
        self.protocol = protocol
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOCAL, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._read = 0
        self._conns: list[socket.socket] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _add(self, lines: list[str]) -> None:
        with self._cond:
            self.lines.extend(lines)
            self._cond.notify_all()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    return
                buf += data
                if self.protocol == "line":
                    cut = buf.rfind(b"\n")
                    if cut >= 0:
                        self._add(buf[:cut].decode("utf-8").split("\n"))
                        buf = buf[cut + 1 :]
                    continue
                while len(buf) >= 4:
                    size = struct.unpack(">I", buf[:4])[0]
                    if len(buf) < 4 + size:
                        break
                    points = pickle.loads(buf[4 : 4 + size])  # trusted: our own daemon
                    buf = buf[4 + size :]
                    self._add([f"{name} {value} {ts}" for name, (ts, value) in points])
        except OSError:
            return

    def flush(self, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(self._read, len(self.lines)):
                    if "graphiteStats.flush_length" in self.lines[i].split(" ", 1)[0]:
                        out = self.lines[self._read : i + 1]
                        self._read = i + 1
                        return out
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no complete flush within {timeout}s; have {self.lines[self._read:][:5]}")
                self._cond.wait(left)

    def all_lines(self) -> list[str]:
        with self._cond:
            return list(self.lines)

    def close(self) -> None:
        self._stopped = True
        self.sock.close()
        for conn in self._conns:
            try:
                conn.close()
            except OSError:
                pass


def js_literal(config: dict) -> str:
    """A config.js text (JSON plus a comment, as statsd users write it)."""
    return "// written by the test\n(" + json.dumps(config, indent=2) + ")\n"


class StatsdDaemon(PeerProcess):
    """cadent-statsd in its own session, by ``form`` of command line:

    * ``carbon``: ``--config <file> --nodaemon --pidfile <tmp>/statsd.pid [extra_args]``
    * ``carbon-default``: ``--config <file> --nodaemon [extra_args]`` (the default pid file)
    * ``statsd``: statsd's own, ``<file> [extra_args]``
    """

    name = "cadent-statsd"

    def __init__(self, tmp: Path, config: dict | str, *, filename: str = "config.js", extra_args=(),
                 wait_mgmt: bool = True, form: str = "carbon", **kw) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.conf_path = tmp / filename
        self.conf_path.write_text(config if isinstance(config, str) else js_literal(config))
        args = {
            "carbon": ["--config", str(self.conf_path), "--nodaemon", "--pidfile", str(tmp / "statsd.pid")],
            "carbon-default": ["--config", str(self.conf_path), "--nodaemon"],
            "statsd": [str(self.conf_path)],
        }[form]
        argv = [sys.executable, "-m", "cadent.daemons.statsd", *args, *extra_args]
        ports = []
        if wait_mgmt and isinstance(config, dict):
            ports = [(config.get("mgmt_address", LOCAL), config["mgmt_port"])]
        env = {"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        import os

        kw.setdefault("cwd", str(REPO_ROOT))
        super().__init__(argv, wait_ports=ports, env={**os.environ, **env}, log_path=tmp / "statsd.log", **kw)


def base_config(sink_port: int | None, flush_ms: int = 1000, **extra) -> dict:
    config = {
        "port": free_port(), "address": LOCAL, "mgmt_port": free_port(), "mgmt_address": LOCAL,
        "flushInterval": flush_ms,
    }
    if sink_port is not None:
        config.update(graphiteHost=LOCAL, graphitePort=sink_port)
    config.update(extra)
    return config


def send_udp(port: int, packets, host: str = LOCAL) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for packet in packets:
            sock.sendto(packet if isinstance(packet, bytes) else packet.encode("utf-8"), (host, port))
    finally:
        sock.close()


def send_tcp(port: int, payload: str | bytes) -> None:
    with socket.create_connection((LOCAL, port), timeout=5) as sock:
        sock.sendall(payload if isinstance(payload, bytes) else payload.encode("utf-8"))


def mgmt(port: int, command: str, until: str | None = None, timeout: float = 3.0) -> str:
    """Send one management command; read until ``until`` appears, EOF, or a quiet 0.3 s."""
    with socket.create_connection((LOCAL, port), timeout=timeout) as sock:
        sock.sendall(command.encode("utf-8"))
        return read_reply(sock, until, timeout)


def read_reply(sock: socket.socket, until: str | None, timeout: float = 3.0) -> str:
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(0.3 if until is None else max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            if until is None:
                break
            continue
        if not data:
            return got.decode("utf-8") + "<EOF>"
        got += data
        if until is not None and got.decode("utf-8", "replace").endswith(until):
            break
    return got.decode("utf-8")
