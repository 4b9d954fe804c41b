"""The package: its configuration, built from this tree, keeps one whisper point per statsd
flush; the .deb builds, installs, runs every role through its init script and purges cleanly;
the .rpm built from the same tree ships the same files; bin/ runs the daemons from a checkout.

The .deb test needs root and apt (it installs debhelper/rpm when missing). It is skipped when a
cadent package is already installed, so an operator's installation is never touched.
Everything it creates (package, user, /var/lib/cadent, build trees) is removed afterwards,
even on failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import whisper
from configobj import ConfigObj

from cadent.compat.statsd_config import load_config_js, load_ini_section
from cadent.compat.storage_schemas import load_storage_schemas
from tests.e2e.cache_helpers import stored
from tests.e2e.statsd_helpers import StatsdDaemon, send_udp
from tests.peers import CadentProcess, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("relay", "aggregator", "cache", "statsd", "api")
# started in this order through the init scripts, stopped in the reverse one
STARTED = ("cache", "relay", "api", "statsd")
COUNTER = "pkgtest.hits"
COUNTS = (3, 5, 7)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: needs root")
NEEDS_APT = pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt (Debian)")


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
    """Same layout modulo the distribution's unit and defaults directories; docs and license
    files are per-distribution."""
    out = set()
    for p in paths:
        p = re.sub(r"^/lib/systemd/", "/usr/lib/systemd/", p)
        p = re.sub(r"^/etc/sysconfig/", "/etc/default/", p)
        if p and not p.startswith(("/usr/share/doc", "/usr/share/licenses")):
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
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{ports['api']}")   # GRAPHITE_URL
    text = text.replace("CARBON_METRIC_INTERVAL = 60", "CARBON_METRIC_INTERVAL = 0")
    conf.write_text(text)
    return ports


def configure_statsd(config_js: Path, carbon_port: int, flush_ms: int | None = None) -> dict[str, int]:
    """Move the packaged statsd.js to free loopback ports, flushing to ``carbon_port``."""
    udp, mgmt = free_ports(2)
    text = config_js.read_text()
    for key, value in (("port", udp), ("mgmt_port", mgmt), ("graphitePort", carbon_port),
                       ("flushInterval", flush_ms)):
        if value is not None:
            text, n = re.subn(rf"(?m)^(\s*{key}:\s*)\d+", rf"\g<1>{value}", text)
            assert n == 1, key
    text = text.replace('address: "0.0.0.0"', 'address: "127.0.0.1"')
    config_js.write_text(text)
    return {"udp": udp, "mgmt": mgmt}


def whisper_points(path: Path) -> dict[int, float]:
    """The file's stored points of the last 10 minutes ({} while it is not there yet)."""
    try:
        return stored(path, time.time() - 600)
    except (OSError, struct.error, whisper.WhisperException):   # not there, or being created
        return {}


def counters_in_whisper(udp_port: int, path: Path, timeout: float) -> list[float]:
    """Send each of COUNTS as one statsd counter, the next once the last is in the whisper file;
    returns the file's non-zero values in time order (each flush's count, if none was lost)."""
    for count in COUNTS:
        send_udp(udp_port, [f"{COUNTER}:{count}|c"])
        wait_for(lambda: count in whisper_points(path).values(), timeout, f"{count} in {path}")
    return [v for _, v in sorted(whisper_points(path).items()) if v]


def packaged_etc(dest: Path) -> Path:
    """/etc/cadent as the packages ship it, laid out under ``dest``."""
    run(["sh", str(ROOT / "packaging" / "install-config.sh"), str(ROOT), str(dest)])
    return dest


FLUSHED = ("stats_counts.x", "stats.x", "stats.timers.x.mean_90", "stats.gauges.x", "stats.sets.x.count")


def _first_precision(schemas_path: Path, metric: str) -> int:
    return load_storage_schemas(str(schemas_path)).match(metric).archives[0][0]


def test_packaged_and_single_box_schemas_keep_every_statsd_flush(tmp_path):
    """The whisper precision of what statsd flushes is its flushInterval: a coarser one keeps
    only the last flush of each slot (a counter loses the others)."""
    etc = packaged_etc(tmp_path / "etc")
    single_box = ROOT / "conf" / "examples" / "single-box"
    setups = [
        ("package", load_config_js(str(etc / "statsd.js")), etc / "storage-schemas.conf"),
        ("single-box", load_ini_section(str(single_box / "carbon.conf")),
         single_box / "storage-schemas.conf"),
        ("conf/", load_config_js(str(ROOT / "conf" / "statsd.js.example")),
         ROOT / "conf" / "storage-schemas.conf"),
    ]
    for label, statsd, schemas in setups:
        for metric in FLUSHED:
            assert _first_precision(schemas, metric) == statsd.flush_interval_s, (label, metric)


def test_packaged_config_sets_every_path(tmp_path):
    """No role of the package falls back to a built-in path (carbon's /opt/graphite/storage)."""
    conf = ConfigObj(str(packaged_etc(tmp_path / "etc") / "carbon.conf"), list_values=False)
    wanted = {
        "cache": ("STORAGE_DIR", "LOCAL_DATA_DIR", "WHITELISTS_DIR", "LOG_DIR", "PID_DIR"),
        "relay": ("STORAGE_DIR", "LOCAL_DATA_DIR", "WHITELISTS_DIR", "LOG_DIR", "PID_DIR"),
        "aggregator": ("STORAGE_DIR", "LOCAL_DATA_DIR", "WHITELISTS_DIR", "LOG_DIR", "PID_DIR"),
        "api": ("STORAGE_DIR", "LOCAL_DATA_DIR", "LOG_DIR", "PID_DIR", "WHISPER_DIRS", "TAGDB_PATH"),
    }
    for section, keys in wanted.items():
        for key in keys:
            value = conf[section].get(key, "")
            assert value.startswith(("/var/lib/cadent", "/var/log/cadent", "/run/cadent")), (section, key)


def test_statsd_counters_through_the_packaged_config(tmp_path):
    """cadent-statsd → cadent-cache on the package's own files (paths and ports moved under
    tmp_path): every flush's count is in the whisper file. The flush interval is cut to 2 s and
    the stats* precision with it, by the ratio the package itself has between the two."""
    etc = packaged_etc(tmp_path / "etc")
    flush_ms = 2000
    packaged_flush_s = load_config_js(str(etc / "statsd.js")).flush_interval_s
    schemas_path = etc / "storage-schemas.conf"
    rule = load_storage_schemas(str(schemas_path)).match(f"stats_counts.{COUNTER}")
    precision = rule.archives[0][0] * flush_ms / 1000 / packaged_flush_s
    assert precision == int(precision) >= 1, precision
    schemas_path.write_text(f"[scaled_{rule.name}]\npattern = {rule.pattern}\n"
                            f"retentions = {int(precision)}s:1h\n\n" + schemas_path.read_text())
    conf = etc / "carbon.conf"
    conf.write_text(conf.read_text().replace("/var/lib/cadent", str(tmp_path / "lib"))
                    .replace("/var/log/cadent", str(tmp_path / "log"))
                    .replace("/run/cadent", str(tmp_path / "run")))
    ports = configure_ports(conf)
    statsd_ports = configure_statsd(etc / "statsd.js", ports["cache_line"], flush_ms)
    (etc / "statsd.js").write_text(
        (etc / "statsd.js").read_text().replace("/var/lib/cadent", str(tmp_path / "lib")))
    wsp = tmp_path / "lib" / "whisper" / "stats_counts" / "pkgtest" / "hits.wsp"
    with CadentProcess(conf, "cache", startup_timeout=60):
        daemon = StatsdDaemon(tmp_path / "statsd", (etc / "statsd.js").read_text(),
                              filename="statsd.js", wait_mgmt=False).start()
        try:
            wait_for_port("127.0.0.1", statsd_ports["mgmt"], 60, daemon.proc)
            assert counters_in_whisper(statsd_ports["udp"], wsp, 60) == list(COUNTS)
        finally:
            daemon.stop()


def test_checkout_launcher_runs_without_the_installed_package(tmp_path):
    """bin/cadent-cache runs from the checkout with the venv's interpreter, even where the
    installed (editable) cadent is out of reach: ``-S`` skips site-packages' .pth files."""
    site = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p, "gevent").is_dir())
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(site)}
    unreachable = subprocess.run([sys.executable, "-S", "-c", "import cadent"], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=60)
    assert unreachable.returncode != 0, "cadent must not be importable without the launcher"
    conf = tmp_path / "conf" / "carbon.conf"
    conf.parent.mkdir()
    shutil.copy(ROOT / "conf" / "examples" / "cache" / "carbon.conf", conf)
    for name in ("storage-schemas.conf", "storage-aggregation.conf"):
        shutil.copy(ROOT / "conf" / "examples" / "cache" / name, conf.parent / name)
    env["GRAPHITE_STORAGE_DIR"] = str(tmp_path / "storage")
    launcher = ROOT / "bin" / "cadent-cache"
    checked = subprocess.run([sys.executable, "-S", str(launcher), "--config", str(conf), "--check-config"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout
    usage = subprocess.run([sys.executable, "-S", str(ROOT / "bin" / "cadent-relay"), "--help"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: cadent-relay"), usage.stderr
    for role in ROLES:
        assert os.access(ROOT / "bin" / f"cadent-{role}", os.X_OK), role


def venv_interpreter(venv: Path = Path("/usr/lib/cadent/venv")) -> str:
    """The interpreter outside the venv that its bin/python links lead to."""
    path = venv / "bin" / "python"
    while path.is_symlink():
        path = Path(os.path.normpath(path.parent / os.readlink(path)))
        if venv not in path.parents:
            break
    return str(path)


def init(role: str, action: str, check=True) -> subprocess.CompletedProcess:
    return run([f"/etc/init.d/cadent-{role}", action], timeout=180, check=check)


@pytest.fixture
def clean_machine(tmp_path):
    if installed("cadent"):
        pytest.skip("a cadent package is installed here; not touching it")
    user_existed = run(["getent", "passwd", "cadent"], check=False).returncode == 0
    data_existed = Path("/var/lib/cadent").exists()
    needed = [p for p in ("debhelper", "rpm", "python3.11-venv", "python3.11-dev", "gcc")
              if not installed(p)]
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


@NEEDS_ROOT
@NEEDS_APT
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
    assert "/etc/sysconfig/cadent" in rpm_files
    assert [f for f in rpm_files if re.fullmatch(r"/usr/share/licenses/cadent[^/]*/LICENSE", f)]
    assert "python3.11" in run(["rpm", "-qp", "--requires", str(rpm)]).stdout.split()
    scripts = run(["rpm", "-qp", "--scripts", str(rpm)]).stdout
    for scriptlet in ("preuninstall", "postuninstall"):
        body = scripts.split(f"{scriptlet} scriptlet")[1].split("scriptlet")[0]
        # an upgrade ($1 >= 1) leaves the daemons running and every file in place
        assert 'if [ "$1" = 0 ]; then' in body, body
        assert not re.search(r"(?m)^\s*rm .*/var/log/cadent", body), body


def _deb_round_trip(work: Path) -> None:
    started = time.monotonic()
    run(["sh", str(ROOT / "packaging" / "build-deb.sh"), str(work / "deb")], timeout=600)
    deb = next((work / "deb").glob("cadent_*.deb"))
    build_s = time.monotonic() - started
    assert "python3.11" in run(["dpkg-deb", "-f", str(deb), "Depends"]).stdout.replace(",", " ").split()
    opt_existed = Path("/opt/graphite").exists()
    installing = run(["apt-get", "install", "-y", "-q", str(deb)], timeout=300)
    assert "home dir" not in installing.stdout + installing.stderr, installing.stderr

    # installation: user, directories, conffiles, nothing running or enabled
    assert run(["getent", "passwd", "cadent"]).returncode == 0
    for d in ("/var/lib/cadent/whisper", "/var/log/cadent", "/run/cadent"):
        assert Path(d).is_dir() and Path(d).owner() == "cadent", d
    conffiles = Path("/var/lib/dpkg/info/cadent.conffiles").read_text().split()
    assert "/etc/cadent/carbon.conf" in conffiles and "/etc/cadent/storage-schemas.conf" in conffiles
    assert not list(Path("/etc").glob("rc?.d/S*cadent*"))
    for role in ROLES:
        assert init(role, "status", check=False).returncode == 3, role
    assert venv_interpreter() == "/usr/bin/python3.11"

    ports = configure_ports(Path("/etc/cadent/carbon.conf"))
    statsd_ports = configure_statsd(Path("/etc/cadent/statsd.js"), ports["cache_line"])
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

    # the packaged statsd (10 s flushes) into the packaged cache: one whisper point per flush
    counters = Path("/var/lib/cadent/whisper/stats_counts/pkgtest/hits.wsp")
    assert counters_in_whisper(statsd_ports["udp"], counters, 60) == list(COUNTS)
    # gunicorn's control socket went to /run/cadent, nothing into cadent's home
    assert not Path("/var/lib/cadent/.gunicorn").exists()

    # reload (HUP after --check-config) keeps the daemons running
    init("relay", "reload")
    assert init("relay", "status").returncode == 0
    for role in reversed(STARTED):
        init(role, "stop")
        assert init(role, "status", check=False).returncode == 3, role
    assert not list(Path("/run/cadent").glob("*.pid"))

    assert opt_existed or not Path("/opt/graphite").exists(), "a built-in default path was used"

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
