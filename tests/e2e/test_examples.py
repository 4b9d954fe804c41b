"""Every configuration under conf/examples/ passes each of its roles' ``--check-config``.

Every role whose daemon module is in the tree is checked on every example that configures it;
a role not written yet is skipped, by name, for that role only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.peers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "conf" / "examples"

# example directory → (role, config file, instance) triples it configures
CHECKS: dict[str, list[tuple[str, str, str | None]]] = {
    "statsd": [("statsd", "config.js", None)],
    "cache": [("cache", "carbon.conf", None)],
    "relay-3-caches": [("relay", "carbon.conf", None)],
    "relay-filtering": [("relay", "carbon.conf", None)],
    "aggregator": [("aggregator", "carbon.conf", None)],
    "two-caches": [("relay", "carbon.conf", None), ("cache", "carbon.conf", "a"),
                   ("cache", "carbon.conf", "b")],
    "single-box": [("cache", "carbon.conf", None), ("relay", "carbon.conf", None),
                   ("statsd", "carbon.conf", None), ("api", "carbon.conf", None)],
}

CASES = [(example, role, conf, instance)
         for example, checks in CHECKS.items() for role, conf, instance in checks]


def _daemon_exists(role: str) -> bool:
    return importlib.util.find_spec(f"cadent.daemons.{role}") is not None


def test_every_example_directory_is_covered():
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == sorted(CHECKS)


@pytest.mark.parametrize("example,role,conf,instance", CASES,
                         ids=[f"{e}-{r}{'-' + i if i else ''}" for e, r, _, i in CASES])
def test_example_passes_check_config(example, role, conf, instance, tmp_path):
    if not _daemon_exists(role):
        pytest.skip(f"cadent.daemons.{role} is not in the tree yet")
    args = [sys.executable, "-m", f"cadent.daemons.{role}", "--config", str(EXAMPLES / example / conf)]
    if instance:
        args += ["--instance", instance]
    args.append("--check-config")
    env = dict(os.environ, GRAPHITE_STORAGE_DIR=str(tmp_path / "storage"))
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_check_config_rejects_a_broken_example(tmp_path):
    """The check above can fail: a bad value in a copied example is refused."""
    text = (EXAMPLES / "relay-3-caches" / "carbon.conf").read_text()
    bad = tmp_path / "carbon.conf"
    bad.write_text(text.replace("MAX_QUEUE_SIZE = 100000", "MAX_QUEUE_SIZE = lots"))
    result = subprocess.run([sys.executable, "-m", "cadent.daemons.relay", "--config", str(bad),
                             "--check-config"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def _listening(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket listening and every UDP socket bound in ``pids``."""
    import psutil

    found = set()
    for pid in pids:
        try:
            for conn in psutil.Process(pid).net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN or (conn.type == socket.SOCK_DGRAM and conn.laddr):
                    found.add((conn.laddr.ip, conn.laddr.port))
        except psutil.NoSuchProcess:
            pass
    return found


def test_single_box_suite_binds_what_it_prints(tmp_path):
    """`make run` (scripts/run_suite.py) on a copy of single-box moved to free ports: every
    socket of its daemons is on loopback and is one its banner prints, a metric sent to the
    relay comes back from cadent-api, and SIGTERM stops every daemon."""
    import psutil

    conf_dir = tmp_path / "single-box"
    shutil.copytree(EXAMPLES / "single-box", conf_dir)
    conf = conf_dir / "carbon.conf"
    text = conf.read_text()
    for port in (2003, 2004, 7002, 2013, 2014, 8080, 8125, 8126):
        text = re.sub(rf"\b{port}\b", str(free_port()), text)
    conf.write_text(text)
    out = tmp_path / "run_suite.out"
    env = dict(os.environ, CADENT_RUN_DIR=str(tmp_path / "var"))
    with open(out, "wb") as sink:
        suite = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_suite.py"), "--conf", str(conf_dir)],
                                 stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                 start_new_session=True)
    try:
        assert wait_until(lambda: "Ctrl-C stops everything" in out.read_text() or suite.poll() is not None,
                          180, interval=0.5)
        banner = out.read_text()
        assert suite.poll() is None, banner
        printed = {(host, int(port)) for host, port in re.findall(r"(?m)^  \S.*? +([\d.]+):(\d+)$", banner)}
        assert len(printed) == 8, banner
        assert all(host == "127.0.0.1" for host, _ in printed), banner
        pids = [p.pid for p in psutil.Process(suite.pid).children(recursive=True)]
        listening = _listening(pids)
        assert printed <= listening and listening <= printed, (printed, listening)

        relay = int(re.search(r"(?m)^  relay line +[\d.]+:(\d+)$", banner).group(1))
        api = re.search(r"(?m)^  api http +([\d.]+:\d+)$", banner).group(1)
        with socket.create_connection(("127.0.0.1", relay), timeout=10) as sock:
            sock.sendall(f"suite.hello 42 {int(time.time())}\n".encode())

        def rendered():
            url = f"http://{api}/render?target=suite.hello&format=json&from=-10min"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    return [v for s in json.load(response) for v, _ in s["datapoints"] if v is not None]
            except OSError:
                return []

        assert wait_until(lambda: rendered() == [42.0], 120, interval=0.5), rendered()
        suite.send_signal(signal.SIGTERM)
        assert suite.wait(180) == 0, out.read_text()
        assert not [pid for pid in pids if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE], out.read_text()
    finally:
        if suite.poll() is None:
            os.killpg(suite.pid, signal.SIGKILL)
            suite.wait(30)
