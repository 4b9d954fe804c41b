"""cadent-blast and cadent-echo, run as processes against each other."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.peers import LOCALHOST, PeerProcess, free_port, wait_until


def _udp_port_free() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def _blast(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "cadent.tools.blast", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _last_counts(echo: PeerProcess) -> dict:
    counts = [json.loads(line) for line in echo.log_text().splitlines() if line.startswith("{")]
    return counts[-1] if counts else {}


def test_blast_into_echo_over_tcp_and_udp(tmp_path):
    tcp, udp = free_port(), _udp_port_free()
    echo = PeerProcess([sys.executable, "-m", "cadent.tools.echo", "--count", "--interval", "0.2",
                        "--listen", f"tcp://{LOCALHOST}:{tcp}", "--listen",
                        f"udp://{LOCALHOST}:{udp}"],
                       wait_ports=[(LOCALHOST, tcp)], log_path=tmp_path / "echo.log")
    with echo:
        sent = _blast("--port", str(tcp), "--count", "20000", "--rate", "0", "--names", "50")
        assert sent["sent"] == 20000
        assert wait_until(lambda: _last_counts(echo).get("lines") == 20000, timeout=30)
        sent = _blast("--port", str(udp), "--proto", "udp", "--format", "statsd",
                      "--count", "3000", "--rate", "20000", "--names", "10")
        assert sent["sent"] == 3000
        # loopback UDP at a modest rate: every datagram arrives
        assert wait_until(lambda: _last_counts(echo).get("lines") == 23000, timeout=30)
        rc = echo.stop()
    assert rc == 0
    total = json.loads(echo.log_text().strip().splitlines()[-1])["total"]
    assert total["lines"] == 23000 and total["too_long"] == 0


def test_echo_prints_lines_and_blast_keeps_its_rate(tmp_path):
    tcp = free_port()
    echo = PeerProcess([sys.executable, "-m", "cadent.tools.echo",
                        "--listen", f"tcp://{LOCALHOST}:{tcp}"],
                       wait_ports=[(LOCALHOST, tcp)], log_path=tmp_path / "echo.log")
    with echo:
        sent = _blast("--port", str(tcp), "--format", "line", "--template", "app={name} took {value}ms",
                      "--names", "3", "--rate", "200", "--duration", "1.5", "--prefix", "p")
        # the rate is a ceiling: never more than a second's worth above it
        assert 0 < sent["sent"] <= 200 * 1.5 + 200
        assert wait_until(lambda: echo.log_text().count("took") >= sent["sent"], timeout=30)
    lines = [line for line in echo.log_text().splitlines() if "took" in line]
    assert lines[0] == "app=p.host00.metric0 took 0ms"
    assert lines[1] == "app=p.host01.metric1 took 1ms"


def test_bad_arguments_are_refused():
    done = subprocess.run([sys.executable, "-m", "cadent.tools.blast", "--format", "line",
                           "--count", "1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--template" in done.stderr
    done = subprocess.run([sys.executable, "-m", "cadent.tools.echo", "--listen", "ftp://x:1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "tcp://host:port" in done.stderr
