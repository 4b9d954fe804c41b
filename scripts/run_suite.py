#!/usr/bin/env python3
"""Run the whole single-box suite in the foreground: statsd → relay → cache → whisper → API.

Uses conf/examples/single-box/ (or ``--conf DIR``) with every file written under ./var (or
$CADENT_RUN_DIR). Prints the addresses it listens on, as its carbon.conf sets them, and how to
send a first metric, and stops everything in pipeline order on Ctrl-C or SIGTERM so each stage
can hand its data to the next before it exits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf" / "examples" / "single-box"
BIN = Path(sys.executable).parent

# Started in this order, stopped in the same order so that data flows downstream while
# upstream stages drain.
ROLES = ("statsd", "relay", "cache", "api")

# (label, section, key prefix or statsd's keys, default port) of every listening socket
LISTENERS = [
    ("statsd (udp)", "statsd", ("address", "port"), 8125),
    ("statsd mgmt", "statsd", ("mgmt_address", "mgmt_port"), 8126),
    ("relay line", "relay", ("LINE_RECEIVER_INTERFACE", "LINE_RECEIVER_PORT"), 2013),
    ("relay pickle", "relay", ("PICKLE_RECEIVER_INTERFACE", "PICKLE_RECEIVER_PORT"), 2014),
    ("cache line", "cache", ("LINE_RECEIVER_INTERFACE", "LINE_RECEIVER_PORT"), 2003),
    ("cache pickle", "cache", ("PICKLE_RECEIVER_INTERFACE", "PICKLE_RECEIVER_PORT"), 2004),
    ("carbonlink", "cache", ("CACHE_QUERY_INTERFACE", "CACHE_QUERY_PORT"), 7002),
    ("api http", "api", ("LISTEN_INTERFACE", "LISTEN_PORT"), 8080),
]


def listeners(conf_path: Path) -> list[tuple[str, str, int]]:
    """(label, host, port) of every socket the suite listens on, as carbon.conf sets them."""
    from configobj import ConfigObj

    conf = ConfigObj(str(conf_path), interpolation=False, list_values=False)
    out = []
    for label, section, (host_key, port_key), default_port in LISTENERS:
        values = {k.lower(): v for k, v in conf.get(section, {}).items()}
        port = int(values.get(port_key.lower(), default_port))
        if port:
            out.append((label, values.get(host_key.lower(), "0.0.0.0"), port))
    return out


def wait_port(host: str, port: int, timeout: float = 60.0) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((target, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", type=Path, default=CONF_DIR,
                        help="directory holding carbon.conf (default: conf/examples/single-box)")
    conf_path = (parser.parse_args(argv).conf / "carbon.conf").resolve()
    ports = listeners(conf_path)
    run_dir = Path(os.environ.get("CADENT_RUN_DIR", REPO / "var")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    # XDG_RUNTIME_DIR: gunicorn's control socket goes there rather than into ~/.gunicorn/
    env = dict(os.environ, GRAPHITE_ROOT=str(run_dir), GRAPHITE_STORAGE_DIR=str(run_dir / "storage"),
               XDG_RUNTIME_DIR=str(run_dir), PYTHONUNBUFFERED="1")
    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for role in ROLES:
        exe = BIN / f"cadent-{role}"
        argv = [str(exe) if exe.exists() else shutil.which(f"cadent-{role}") or f"cadent-{role}",
                "--config", str(conf_path)]
        if role != "api":  # the API runs gunicorn in the foreground already
            # pid files under run_dir too (cadent-statsd's own default is /var/run/cadent)
            argv += ["--nodaemon", "--pidfile", str(run_dir / f"cadent-{role}.pid")]
        procs.append((role, subprocess.Popen(argv, env=env, start_new_session=True)))
    for label, host, port in ports:
        if label.endswith("(udp)"):
            continue
        if not wait_port(host, port):
            print(f"run_suite: {label} did not come up on {host}:{port}", file=sys.stderr)
            stopping = True
            break
    if not stopping:
        print(f"""
cadent single-box suite is running (data under {run_dir}/storage):
""" + "".join(f"  {label:<14} {host}:{port}\n" for label, host, port in ports) + f"""
Send a first metric and read it back:
  echo "hello.world 42 $(date +%s)" > /dev/tcp/{_reach(ports, "relay line")}
  echo "hello.counter:1|c" > /dev/udp/{_reach(ports, "statsd (udp)")}
  curl 'http://{_reach(ports, "api http", ":")}/render?target=hello.world&from=-5min&format=json'
  curl 'http://{_reach(ports, "api http", ":")}/metrics/find?query=stats.*'

Ctrl-C stops everything (statsd flushes, the relay drains, the cache writes to disk).
""", flush=True)
    while not stopping:
        for role, proc in procs:
            if proc.poll() is not None:
                print(f"run_suite: cadent-{role} exited with {proc.returncode}", file=sys.stderr)
                stopping = True
        time.sleep(0.5)
    code = 0
    for role, proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = 1
        print(f"run_suite: cadent-{role} stopped ({proc.returncode})", flush=True)
    return code


def _reach(ports: list[tuple[str, str, int]], label: str, sep: str = "/") -> str:
    """Where a client on this host reaches the listener ``label``: host{sep}port."""
    host, port = next((h, p) for name, h, p in ports if name == label)
    return f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}{sep}{port}"


if __name__ == "__main__":
    raise SystemExit(main())
