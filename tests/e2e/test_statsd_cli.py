"""cadent-statsd's two command lines as running processes: statsd's (config file first, in the
foreground, a pid file only when asked) and carbon's (``--config``, a pid file per instance or
per config file), each letting instances with their own configs run side by side."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from contextlib import contextmanager

import pytest

from cadent.daemons.cli import pid_alive, read_pid
from cadent.daemons.statsd import _runtime_dir
from tests.e2e.statsd_helpers import RawCarbonSink, StatsdDaemon, base_config, js_literal, send_udp
from tests.peers import REPO_ROOT, wait_for_port, wait_until

pytestmark = pytest.mark.slow


def _statsd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cadent.daemons.statsd", *args], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=60)


def _flushes_metric(sink: RawCarbonSink, name: str) -> bool:
    return any(line.startswith(f"stats_counts.{name} 1 ") for line in sink.flush(10))


@contextmanager
def _two_instances(tmp_path, names: list[str], **kw):
    """Two daemons, each with its own config (ports) and carbon sink, started side by side."""
    sinks = [RawCarbonSink(), RawCarbonSink()]
    configs = [base_config(sink.port, 500) for sink in sinks]
    daemons = [StatsdDaemon(tmp_path / name, config, filename=f"{name}.js", **kw)
               for name, config in zip(names, configs)]
    try:
        for daemon in daemons:
            daemon.start()
        yield daemons, configs, sinks
    finally:
        for daemon in daemons:
            daemon.stop()
        for sink in sinks:
            sink.close()


def test_statsd_command_line_runs_two_instances_in_the_foreground_without_pid_files(tmp_path):
    instances = _two_instances(tmp_path, ["config", "other"], form="statsd", cwd=str(tmp_path))
    with instances as (daemons, configs, sinks):
        for n, (config, sink) in enumerate(zip(configs, sinks)):
            send_udp(config["port"], [f"side.by.side{n}:1|c"])
            assert wait_until(lambda: _flushes_metric(sink, f"side.by.side{n}"), 30)
        assert all(daemon.alive for daemon in daemons)  # the processes started: not forked away
        for daemon in daemons:
            assert "already running" not in daemon.log_text()
            assert not list(daemon.log_path.parent.glob("*.pid"))
        assert not list(tmp_path.glob("*.pid"))  # the working directory
        assert not os.path.exists(os.path.join(_runtime_dir("run"), "cadent-statsd-config.pid"))
        for daemon in daemons:
            daemon.proc.send_signal(signal.SIGTERM)
            assert daemon.proc.wait(30) == 0


def test_statsd_command_line_writes_a_pid_file_when_asked(tmp_path):
    sink = RawCarbonSink()
    pidfile = tmp_path / "run" / "statsd.pid"
    pidfile.parent.mkdir()
    daemon = StatsdDaemon(tmp_path, base_config(sink.port, 500), form="statsd",
                          extra_args=["--pidfile", str(pidfile)])
    try:
        daemon.start()
        assert wait_until(pidfile.exists, 10)
        assert int(pidfile.read_text()) == daemon.pid
        again = _statsd(str(daemon.conf_path), "--pidfile", str(pidfile))
        assert again.returncode == 1 and "already running" in again.stderr
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(30) == 0
        assert not pidfile.exists()
    finally:
        daemon.stop()
        sink.close()


def test_carbon_command_line_names_the_default_pid_file_after_the_config(tmp_path):
    names = [f"cli-{os.getpid()}-{n}" for n in range(2)]
    with _two_instances(tmp_path, names, form="carbon-default") as (daemons, _, _):
        for daemon, name in zip(daemons, names):
            pidfile = os.path.join(_runtime_dir("run"), f"cadent-statsd-{name}.pid")
            assert wait_until(lambda: os.path.exists(pidfile), 10)
            with open(pidfile) as handle:
                assert int(handle.read()) == daemon.pid
            status = _statsd("--config", str(daemon.conf_path), "status")
            assert status.returncode == 0 and f"pid {daemon.pid}" in status.stdout


def test_statsd_command_line_checks_the_config(tmp_path):
    good = tmp_path / "good.js"
    good.write_text("{ port: 8125, flushInterval: 1000, }\n")
    run = _statsd(str(good), "--check-config")
    assert run.returncode == 0 and "configuration OK" in run.stdout
    bad = tmp_path / "bad.js"
    bad.write_text("{ flushInterval: \"soon\" }\n")
    run = _statsd(str(bad), "--check-config")
    assert run.returncode == 1 and "flushInterval" in run.stderr
    missing = _statsd(str(tmp_path / "missing.js"))
    assert missing.returncode == 1 and "missing.js" in missing.stderr


def test_carbon_command_line_daemonises_and_stops_through_the_pid_file(tmp_path):
    sink = RawCarbonSink()
    config = base_config(sink.port, 500)
    conf = tmp_path / "daemon.js"
    conf.write_text(js_literal(config))
    pidfile = tmp_path / "daemon.pid"
    common = ["--config", str(conf), "--pidfile", str(pidfile), "--logdir", str(tmp_path / "log")]
    try:
        started = _statsd(*common, "start")
        assert started.returncode == 0, started.stderr
        assert wait_until(pidfile.exists, 30)
        pid = int(pidfile.read_text())
        send_udp(config["port"], ["daemonised:1|c"])
        assert wait_until(lambda: _flushes_metric(sink, "daemonised"), 30)
        assert _statsd(*common, "status").returncode == 0
        stopped = _statsd(*common, "stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert not pid_alive(pid)
    finally:
        pid = read_pid(str(pidfile))
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        sink.close()


@pytest.mark.parametrize("form", ["statsd", "carbon"])
def test_both_command_lines_create_files_with_carbons_umask(tmp_path, form):
    """Whatever umask the caller has, the pid file (and the directory made for it) are created
    under carbon's 022, by statsd's command line as by carbon's."""
    sink = RawCarbonSink()
    config = base_config(sink.port, 500)
    conf = tmp_path / "umask.js"
    conf.write_text(js_literal(config))
    pidfile = tmp_path / "run" / "statsd.pid"
    args = {"statsd": [str(conf), "--pidfile", str(pidfile)],
            "carbon": ["--config", str(conf), "--nodaemon", "--pidfile", str(pidfile)]}[form]
    with open(tmp_path / "statsd.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cadent.daemons.statsd", *args],
                                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=lambda: os.umask(0))
    try:
        assert wait_until(lambda: read_pid(str(pidfile)) == proc.pid, 30), \
            (tmp_path / "statsd.log").read_text()
        assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
        assert stat.S_IMODE(pidfile.parent.stat().st_mode) == 0o755
        wait_for_port(config["mgmt_address"], config["mgmt_port"], 30, proc)   # bound: serving
        send_udp(config["port"], ["umask.kept:1|c"])
        assert wait_until(lambda: _flushes_metric(sink, "umask.kept"), 30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not pidfile.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sink.close()
