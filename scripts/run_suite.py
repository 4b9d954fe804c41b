#!/usr/bin/env python3
"""Run the whole single-box suite in the foreground: statsd → relay → cache → whisper → API.

Uses conf/examples/single-box/ with every file written under ./var (or $CADENT_RUN_DIR).
Prints the ports and how to send a first metric, and stops everything in pipeline order on
Ctrl-C or SIGTERM so each stage can hand its data to the next before it exits.
"""

from __future__ import annotations

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

# (role, extra arguments); started in this order, stopped in the same order so that data
# flows downstream while upstream stages drain.
STAGES = [
    ("statsd", ["--config", str(CONF_DIR / "carbon.conf")]),
    ("relay", ["--config", str(CONF_DIR / "carbon.conf")]),
    ("cache", ["--config", str(CONF_DIR / "carbon.conf")]),
    ("api", ["--config", str(CONF_DIR / "carbon.conf")]),
]
PORTS = [("statsd (udp)", 8125), ("relay line", 2013), ("relay pickle", 2014),
         ("cache line", 2003), ("carbonlink", 7002), ("api http", 8080)]


def wait_port(port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def main() -> int:
    run_dir = Path(os.environ.get("CADENT_RUN_DIR", REPO / "var")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GRAPHITE_ROOT=str(run_dir), GRAPHITE_STORAGE_DIR=str(run_dir / "storage"),
               PYTHONUNBUFFERED="1")
    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for role, args in STAGES:
        exe = BIN / f"cadent-{role}"
        argv = [str(exe) if exe.exists() else shutil.which(f"cadent-{role}") or f"cadent-{role}", *args]
        if role != "api":  # the API runs gunicorn in the foreground already
            argv.append("--nodaemon")
        procs.append((role, subprocess.Popen(argv, env=env, start_new_session=True)))
    for label, port in PORTS:
        if label.endswith("(udp)"):
            continue
        if not wait_port(port):
            print(f"run_suite: {label} did not come up on port {port}", file=sys.stderr)
            stopping = True
            break
    if not stopping:
        print(f"""
cadent single-box suite is running (data under {run_dir}/storage):
""" + "".join(f"  {label:<14} 127.0.0.1:{port}\n" for label, port in PORTS) + """
Send a first metric and read it back:
  echo "hello.world 42 $(date +%s)" > /dev/tcp/127.0.0.1/2013
  echo "hello.counter:1|c" > /dev/udp/127.0.0.1/8125
  curl 'http://127.0.0.1:8080/render?target=hello.world&from=-5min&format=json'
  curl 'http://127.0.0.1:8080/metrics/find?query=stats.*'

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


if __name__ == "__main__":
    raise SystemExit(main())
