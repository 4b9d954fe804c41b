"""Real graphite-web (Debian's, through the shared harness) and cadent-api as test peers.

Used by tests/e2e/test_api_graphite_web.py and bench/api_bench.py:

* ``harness_dir()`` / ``ensure_graphite_web()`` — find the harness, install graphite-web;
* ``GraphiteWeb(port, workdir, **env)`` — one graphite-web started by ``up.sh`` and always
  stopped by ``down.sh`` (which kills only the PID it recorded);
* ``CadentApi(conf_path, port)`` — the ``cadent-api`` console script on 127.0.0.1;
* ``write_api_conf`` / ``get`` / ``post`` — a carbon.conf with an ``[api]`` section, tiny HTTP
  GET and POST (form or carbon's multipart ``path`` fields).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.peers import LOCALHOST, REPO_ROOT, PeerProcess, write_carbon_conf

HARNESS_CANDIDATES = (
    os.environ.get("CADENT_GW_HARNESS", ""),
    str(REPO_ROOT.parent / "shared" / "harness" / "graphite_web"),
    "/work/shared/harness/graphite_web",
)
SYS_PY = "/usr/bin/python3"


def harness_dir() -> Path | None:
    """The graphite-web harness directory, or None when it is not on this machine."""
    for candidate in HARNESS_CANDIDATES:
        if candidate and (Path(candidate) / "up.sh").is_file():
            return Path(candidate)
    return None


def ensure_graphite_web(timeout: float = 600.0) -> str | None:
    """Install graphite-web through the harness when missing; None when ready, else why not."""
    harness = harness_dir()
    if harness is None:
        return "graphite-web harness not found"
    if not os.path.exists(SYS_PY):
        return f"{SYS_PY} missing"
    try:
        done = subprocess.run(["bash", str(harness / "install.sh")], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "graphite-web install timed out"
    if done.returncode != 0:
        return "graphite-web install failed: " + done.stderr[-2000:]
    return None


class GraphiteWeb:
    """One real graphite-web on 127.0.0.1:``port``; ``env`` are the harness's GW_* variables."""

    def __init__(self, port: int, workdir: str | os.PathLike, **env: str) -> None:
        self.port = port
        self.dir = Path(workdir) / f"gw-{port}"
        self.env = dict(os.environ)
        self.env.update({"GW_PORT": str(port), "GW_DIR": str(self.dir), "GW_FRESH": "1"})
        self.env.update({k: str(v) for k, v in env.items()})
        self.url = f"http://{LOCALHOST}:{port}"

    def start(self, timeout: float = 120.0) -> "GraphiteWeb":
        harness = harness_dir()
        done = subprocess.run(["bash", str(harness / "up.sh")], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"graphite-web on {self.port} did not start:\n{done.stderr[-4000:]}")
        return self

    def stop(self) -> None:
        harness = harness_dir()
        if harness is not None:
            subprocess.run(["bash", str(harness / "down.sh")], env=self.env, capture_output=True,
                           timeout=60)

    def log_tail(self, chars: int = 3000) -> str:
        out = []
        for name in ("server.log", "log/exception.log", "log/info.log"):
            path = self.dir / name
            if path.exists():
                out.append(f"--- {name}\n" + path.read_text(errors="replace")[-chars:])
        return "\n".join(out)


def write_api_conf(directory: str | os.PathLike, whisper_dir: str, port: int,
                   carbonlink_hosts: str = "", workers: int = 1, **extra) -> Path:
    """A carbon.conf whose ``[api]`` section serves ``whisper_dir`` on 127.0.0.1:``port``."""
    api = {"LISTEN_INTERFACE": LOCALHOST, "LISTEN_PORT": port, "WHISPER_DIRS": whisper_dir,
           "CARBONLINK_HOSTS": carbonlink_hosts, "WORKERS": workers}
    api.update(extra)
    return Path(write_carbon_conf(directory, {"api": api}))


class CadentApi(PeerProcess):
    """``cadent-api --config <conf>`` (gunicorn, gevent workers) listening on ``port``."""

    name = "cadent-api"

    def __init__(self, conf_path: str | os.PathLike, port: int, **kw) -> None:
        script = Path(sys.executable).parent / "cadent-api"
        argv = [str(script)] if script.exists() else [sys.executable, "-m", "cadent.daemons.api"]
        argv += ["--config", str(conf_path)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        super().__init__(argv, wait_ports=[(LOCALHOST, port)], env=env, startup_timeout=30.0, **kw)
        self.url = f"http://{LOCALHOST}:{port}"


def get(base: str, path: str, params, timeout: float = 30.0) -> tuple[int, bytes]:
    """GET ``base+path?params`` (params: dict or list of pairs) → (status, body)."""
    return _open(f"{base}{path}?{urllib.parse.urlencode(params, doseq=True)}", timeout)


def post(base: str, path: str, fields, multipart: bool = False,
         timeout: float = 30.0) -> tuple[int, bytes]:
    """POST ``fields`` (pairs) to ``base+path`` urlencoded, or as multipart/form-data
    ``path`` fields the way carbon registers series → (status, body)."""
    if multipart:
        from cadent.compat.graphite_tags import multipart_paths

        assert all(name == "path" for name, _ in fields), "carbon's multipart has path fields only"
        boundary = "cadent-test-boundary"
        body = multipart_paths([value for _, value in fields], boundary)
        ctype = f"multipart/form-data; boundary={boundary}"
    else:
        body = urllib.parse.urlencode(fields).encode()
        ctype = "application/x-www-form-urlencoded"
    req = urllib.request.Request(f"{base}{path}", data=body, headers={"Content-Type": ctype})
    return _open(req, timeout)


def _open(req, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_http(url: str, timeout: float = 30.0) -> bool:
    """True once ``url`` answers any HTTP status below 500."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False
