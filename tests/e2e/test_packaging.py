"""The .deb builds, installs, runs cadent-cache/-relay/-api through their init scripts, and
purges cleanly; the .rpm built from the same tree ships the same files.

Needs root and apt (it installs debhelper/rpm when missing). Skipped when a cadent package is
already installed, so an operator's installation is never touched. Everything the test
creates (package, user, /var/lib/cadent, build trees) is removed afterwards, even on failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("relay", "aggregator", "cache", "statsd", "api")
STARTED = ("cache", "relay", "api")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: needs root"),
    pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt (Debian)"),
]


def run(args, timeout=120, check=True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd="/", **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def installed(package: str) -> bool:
    result = run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
    return result.returncode == 0 and "install ok installed" in result.stdout


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def deb_paths(deb: Path) -> set[str]:
    paths = set()
    for line in run(["dpkg-deb", "-c", str(deb)]).stdout.splitlines():
        if line.startswith("d"):
            continue  # directories are implicit, as in most rpm file lists
        path = line.split(None, 5)[5].split(" -> ")[0].lstrip(".").rstrip("/")
        paths.add(path)
    return paths


def normalise(paths: set[str]) -> set[str]:
    """Same layout modulo the distribution's unit directory; docs are per-distribution."""
    out = set()
    for p in paths:
        p = re.sub(r"^/lib/systemd/", "/usr/lib/systemd/", p)
        if p and not p.startswith("/usr/share/doc"):
            out.add(p)
    # parent directories are implicit in an rpm file list
    return {p for p in out if not any(q.startswith(p + "/") for q in out)}


def configure_ports(conf: Path) -> dict[str, int]:
    """Point the installed carbon.conf at free ports (other tests may hold the defaults)."""
    names = ("cache_line", "cache_pickle", "cache_query", "cache_udp", "relay_line",
             "relay_pickle", "agg_line", "agg_pickle", "api")
    ports = dict(zip(names, free_ports(len(names))))
    text = conf.read_text()
    text = re.sub(r"(?m)^(LINE_RECEIVER_PORT = )2003$", rf"\g<1>{ports['cache_line']}", text)
    text = re.sub(r"(?m)^(PICKLE_RECEIVER_PORT = )2004$", rf"\g<1>{ports['cache_pickle']}", text)
    text = re.sub(r"(?m)^(UDP_RECEIVER_PORT = )2003$", rf"\g<1>{ports['cache_udp']}", text)
    text = re.sub(r"(?m)^(CACHE_QUERY_PORT = )7002$", rf"\g<1>{ports['cache_query']}", text)
    text = re.sub(r"(?m)^(LINE_RECEIVER_PORT = )2013$", rf"\g<1>{ports['relay_line']}", text)
    text = re.sub(r"(?m)^(PICKLE_RECEIVER_PORT = )2014$", rf"\g<1>{ports['relay_pickle']}", text)
    text = re.sub(r"(?m)^(LINE_RECEIVER_PORT = )2023$", rf"\g<1>{ports['agg_line']}", text)
    text = re.sub(r"(?m)^(PICKLE_RECEIVER_PORT = )2024$", rf"\g<1>{ports['agg_pickle']}", text)
    text = re.sub(r"(?m)^(LISTEN_PORT = )8080$", rf"\g<1>{ports['api']}", text)
    text = text.replace("127.0.0.1:2004", f"127.0.0.1:{ports['cache_pickle']}")
    text = text.replace("127.0.0.1:7002", f"127.0.0.1:{ports['cache_query']}")
    text = text.replace("CARBON_METRIC_INTERVAL = 60", "CARBON_METRIC_INTERVAL = 0")
    conf.write_text(text)
    return ports


def init(role: str, action: str, check=True) -> subprocess.CompletedProcess:
    return run([f"/etc/init.d/cadent-{role}", action], timeout=180, check=check)


@pytest.fixture
def clean_machine(tmp_path):
    if installed("cadent"):
        pytest.skip("a cadent package is installed here; not touching it")
    user_existed = run(["getent", "passwd", "cadent"], check=False).returncode == 0
    data_existed = Path("/var/lib/cadent").exists()
    needed = [p for p in ("debhelper", "rpm", "python3-venv") if not installed(p)]
    if needed:
        run(["apt-get", "install", "-y", "-q", *needed], timeout=600)
    yield tmp_path
    for role in ROLES:
        if Path(f"/etc/init.d/cadent-{role}").exists():
            run([f"/etc/init.d/cadent-{role}", "stop"], timeout=180, check=False)
    if installed("cadent") or run(["dpkg", "-s", "cadent"], check=False).returncode == 0:
        run(["apt-get", "purge", "-y", "-q", "cadent"], timeout=300, check=False)
    if not data_existed:
        shutil.rmtree("/var/lib/cadent", ignore_errors=True)
    if not user_existed:
        run(["deluser", "--system", "cadent"], check=False)
        run(["delgroup", "--system", "cadent"], check=False)


def test_deb_install_run_purge_and_rpm_layout(clean_machine):
    work = clean_machine
    rpm_build = subprocess.Popen(["sh", str(ROOT / "packaging" / "build-rpm.sh"), str(work / "rpm")],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _deb_round_trip(work)
        out, _ = rpm_build.communicate(timeout=600)
        assert rpm_build.returncode == 0, out
    finally:
        if rpm_build.poll() is None:
            rpm_build.kill()
            rpm_build.wait()
    rpm = next((work / "rpm").glob("cadent-*.rpm"))
    deb = next((work / "deb").glob("cadent_*.deb"))
    rpm_files = set(run(["rpm", "-qlp", str(rpm)]).stdout.splitlines())
    assert normalise(rpm_files) == normalise(deb_paths(deb))


def _deb_round_trip(work: Path) -> None:
    started = time.monotonic()
    run(["sh", str(ROOT / "packaging" / "build-deb.sh"), str(work / "deb")], timeout=600)
    deb = next((work / "deb").glob("cadent_*.deb"))
    build_s = time.monotonic() - started
    run(["apt-get", "install", "-y", "-q", str(deb)], timeout=300)

    # installation: user, directories, conffiles, nothing running or enabled
    assert run(["getent", "passwd", "cadent"]).returncode == 0
    for d in ("/var/lib/cadent/whisper", "/var/log/cadent", "/run/cadent"):
        assert Path(d).is_dir() and Path(d).owner() == "cadent", d
    conffiles = Path("/var/lib/dpkg/info/cadent.conffiles").read_text().split()
    assert "/etc/cadent/carbon.conf" in conffiles and "/etc/cadent/storage-schemas.conf" in conffiles
    assert not list(Path("/etc").glob("rc?.d/S*cadent*"))
    for role in ROLES:
        assert init(role, "status", check=False).returncode == 3, role

    ports = configure_ports(Path("/etc/cadent/carbon.conf"))
    for role in STARTED:
        init(role, "start")
    for role in STARTED:
        assert init(role, "status").returncode == 0

    now = int(time.time())
    lines = "".join(f"pkgtest.metric{i} {i + 0.5} {now}\n" for i in range(5)).encode()
    with socket.create_connection(("127.0.0.1", ports["relay_line"]), timeout=10) as sock:
        sock.sendall(lines)

    whisper_dir = Path("/var/lib/cadent/whisper/pkgtest")
    wait_for(lambda: len(list(whisper_dir.glob("metric*.wsp"))) == 5, 60, "5 whisper files")
    py = "/usr/lib/cadent/venv/bin/python"
    fetched = run([py, "-c", "import sys, whisper; print(whisper.fetch(sys.argv[1], %d)[1])" % (now - 120),
                   str(whisper_dir / "metric3.wsp")]).stdout
    assert "3.5" in fetched
    assert (whisper_dir / "metric3.wsp").owner() == "cadent"

    def render():
        url = (f"http://127.0.0.1:{ports['api']}/render?target=pkgtest.metric*"
               f"&format=json&from=-10min")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            return None

    series = wait_for(render, 60, "cadent-api to answer")
    by_name = {s["target"]: [v for v, _ in s["datapoints"] if v is not None] for s in series}
    assert by_name.get("pkgtest.metric3") == [3.5], by_name

    # reload (HUP after --check-config) keeps the daemons running
    init("relay", "reload")
    assert init("relay", "status").returncode == 0
    for role in reversed(STARTED):
        init(role, "stop")
        assert init(role, "status", check=False).returncode == 3, role
    assert not list(Path("/run/cadent").glob("*.pid"))

    run(["apt-get", "purge", "-y", "-q", "cadent"], timeout=300)
    assert not installed("cadent")
    assert (whisper_dir / "metric3.wsp").exists(), "purge must keep the data"
    for gone in ("/etc/cadent", "/usr/lib/cadent", "/var/log/cadent", "/run/cadent",
                 "/etc/default/cadent", "/usr/lib/tmpfiles.d/cadent.conf"):
        assert not Path(gone).exists(), gone
    for role in ROLES:
        assert not Path(f"/etc/init.d/cadent-{role}").exists()
        assert not Path(f"/usr/bin/cadent-{role}").exists()
        assert not Path(f"/lib/systemd/system/cadent-{role}.service").exists()
    print(f"deb build {build_s:.0f}s, whole round trip {time.monotonic() - started:.0f}s")
