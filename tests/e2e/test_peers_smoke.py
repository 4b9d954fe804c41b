"""The peer helpers drive the real carbon and carbon-c-relay and clean up after them;
scripts/install-peers.sh installs them without starting (or stopping) any service."""

import os
import shutil
import socket
import stat
import subprocess

import pytest

from tests.peers import (REPO_ROOT, CarbonCRelay, CarbonDaemon, FakeCarbonSink, free_port,
                         wait_until, write_carbon_conf)

pytestmark = [pytest.mark.peers, pytest.mark.timeout(60)]

TS = 1700000000


def _datapoints(n=300):
    return [(f"smoke.host{i % 7}.cpu{i}", float(TS + i % 5), float(i) + 0.25) for i in range(n)]


def _send_lines(port, points):
    payload = "".join(f"{name} {value} {int(ts)}\n" for name, ts, value in points).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)


def _expected_owner(names, sinks):
    """Which sink carbon's own ring (the oracle) assigns each name to."""
    from carbon.hashing import ConsistentHashRing
    nodes = [("127.0.0.1", inst) for inst in ("a", "b")]
    ring = ConsistentHashRing(nodes)
    by_node = dict(zip(nodes, sinks))
    return {name: by_node[ring.get_node(name)] for name in names}


def _check_delivery(sinks, points):
    total = len(points)
    assert wait_until(lambda: sum(s.count() for s in sinks) >= total, timeout=15)
    owner = _expected_owner({p[0] for p in points}, sinks)
    got = []
    for sink in sinks:
        for name, ts, value in sink.points():
            assert owner[name] is sink, f"{name} reached the wrong destination"
            got.append((name, float(ts), float(value)))
        assert sink.stats()["errors"] == 0
    assert sorted(got) == sorted(points)
    assert all(s.count() > 0 for s in sinks), "consistent hashing should use both sinks"


def test_carbon_relay_forwards_line_input_as_pickle(tmp_path):
    points = _datapoints()
    with FakeCarbonSink("pickle") as sink_a, FakeCarbonSink("pickle") as sink_b:
        conf = write_carbon_conf(tmp_path, {"relay": {
            "LINE_RECEIVER_INTERFACE": "127.0.0.1", "LINE_RECEIVER_PORT": free_port(),
            "PICKLE_RECEIVER_INTERFACE": "127.0.0.1", "PICKLE_RECEIVER_PORT": free_port(),
            "RELAY_METHOD": "consistent-hashing", "DESTINATION_PROTOCOL": "pickle",
            "DESTINATIONS": [sink_a.destination("a"), sink_b.destination("b")],
            "MAX_QUEUE_SIZE": 100000, "CARBON_METRIC_INTERVAL": 0}})
        relay = CarbonDaemon(conf, "relay")
        with relay:
            assert relay.alive
            _send_lines(relay.line_port, points)
            _check_delivery([sink_a, sink_b], points)
            tree = [p.pid for p in relay.tree()]
        assert not relay.alive
        assert not any(_pid_alive(pid) for pid in tree)


def test_carbon_c_relay_forwards_with_carbons_ring(tmp_path):
    if not shutil.which("carbon-c-relay"):
        pytest.skip("carbon-c-relay is not installed")
    points = _datapoints()
    with FakeCarbonSink("line") as sink_a, FakeCarbonSink("line") as sink_b:
        dests = [(sink_a.host, sink_a.port, "a"), (sink_b.host, sink_b.port, "b")]
        relay = CarbonCRelay(dests, workers=2, dir=tmp_path)
        with relay:
            _send_lines(relay.port, points)
            _check_delivery([sink_a, sink_b], points)
            tree = [p.pid for p in relay.tree()]
        assert not relay.alive
        assert not any(_pid_alive(pid) for pid in tree)
    assert "carbon_ch" in relay.conf_path.read_text()


def test_carbon_cache_writes_whisper_inside_temp_dir(tmp_path):
    conf = write_carbon_conf(tmp_path, {"cache": {
        "LINE_RECEIVER_INTERFACE": "127.0.0.1", "LINE_RECEIVER_PORT": free_port(),
        "PICKLE_RECEIVER_PORT": 0, "CACHE_QUERY_INTERFACE": "127.0.0.1",
        "CACHE_QUERY_PORT": free_port(), "CARBON_METRIC_INTERVAL": 0}})
    with CarbonDaemon(conf, "cache") as cache:
        import time
        _send_lines(cache.line_port, [("smoke.cache.x", float(int(time.time())), 3.0)])
        wsp = tmp_path / "storage" / "whisper" / "smoke" / "cache" / "x.wsp"
        assert wait_until(wsp.exists, timeout=10), cache.log_text()[-2000:]


def _pid_alive(pid):
    import psutil
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_failed_start_raises_with_log_and_leaves_nothing_running(tmp_path):
    conf = write_carbon_conf(tmp_path, {"relay": {
        "LINE_RECEIVER_INTERFACE": "127.0.0.1", "LINE_RECEIVER_PORT": free_port(),
        "PICKLE_RECEIVER_PORT": 0, "RELAY_METHOD": "consistent-hashing",
        "DESTINATIONS": "127.0.0.1"}})             # no port: carbon refuses to start
    relay = CarbonDaemon(conf, "relay", startup_timeout=15)
    with pytest.raises(RuntimeError, match="did not start"):
        relay.start()
    assert relay.proc.poll() is not None


def _fake_tools(tmp_path):
    """dpkg (nothing installed), apt-get (runs the policy as Debian's postinst would: records
    whether carbon-cache may start; fails when asked to), npm (does nothing) on a PATH."""
    fake = tmp_path / "bin"
    fake.mkdir()
    scripts = {
        "dpkg": "exit 1",
        "npm": "exit 0",
        "apt-get": f'''[ "$1" = install ] || exit 0
if [ -e "$POLICY_RC_D" ]; then "$POLICY_RC_D" carbon-cache start; echo "policy $?" >> {tmp_path}/apt.log
else echo "policy none" >> {tmp_path}/apt.log; fi
exit "${{FAKE_APT_RC:-0}}"''',
    }
    for name, body in scripts.items():
        path = fake / name
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", POLICY_RC_D=str(tmp_path / "policy-rc.d"))


def test_install_peers_denies_service_starts_and_kills_nothing(tmp_path):
    """Debian starts carbon-cache when graphite-carbon is installed: install-peers.sh keeps that
    from happening (a policy-rc.d for the duration of its apt-get, removed after, even when
    apt-get fails) instead of killing carbon-cache processes by name afterwards; an existing
    policy-rc.d is obeyed and left as it was."""
    script = REPO_ROOT / "scripts" / "install-peers.sh"
    text = script.read_text()
    assert "pkill" not in text and "killall" not in text
    env = _fake_tools(tmp_path)
    policy, log = tmp_path / "policy-rc.d", tmp_path / "apt.log"
    for rc in ("0", "100"):
        done = subprocess.run([str(script)], env=dict(env, FAKE_APT_RC=rc), capture_output=True, text=True,
                              timeout=60)
        assert (done.returncode == 0) == (rc == "0"), done.stderr
        assert log.read_text().splitlines()[-1] == "policy 101"
        assert not policy.exists()
    policy.write_text("#!/bin/sh\nexit 0\n")
    policy.chmod(0o755)
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines()[-1] == "policy 0"
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"
