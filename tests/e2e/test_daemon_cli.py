"""The carbon daemons' command line and start-up, through real processes.

``start`` waits for the daemon and fails loudly; carbon's and twistd's flags are accepted and
the meaningful ones honoured; USER is switched to after binding; a misspelt section stops
``--check-config``.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.e2e.cache_helpers import cache_conf, data_dir, send_lines, wsp
from tests.e2e.relay_helpers import relay_conf
from tests.peers import LOCALHOST, REPO_ROOT, wait_until, write_carbon_conf

START_TIMEOUT_S = 90.0
ROOT = os.geteuid() == 0


def cadent_argv(program: str) -> list[str]:
    script = Path(sys.executable).parent / f"cadent-{program}"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", f"cadent.daemons.{program}"]


def run(program: str, conf: Path | str, *args: str, umask: int | None = None,
        stdin: str | None = None, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
    """``cadent-<program> --config conf args...``, waited for (a daemonising start returns
    once the daemon is ready or has failed)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run(cadent_argv(program) + ["--config", str(conf), *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec)


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/status").read_text().count("State:\tZ")


class Daemons:
    """Pidfiles of daemons a test started; each is stopped by its PID at teardown."""

    def __init__(self) -> None:
        self.pidfiles: list[Path] = []

    def track(self, pidfile: Path) -> int:
        self.pidfiles.append(pidfile)
        pid = read_pid(pidfile)
        assert pid is not None, f"no pid in {pidfile}"
        return pid

    def stop_all(self) -> None:
        for pidfile in self.pidfiles:
            wait_until(lambda: read_pid(pidfile) is not None, 5)
            pid = read_pid(pidfile)
            if pid is None or not alive(pid):
                continue
            os.kill(pid, signal.SIGTERM)
            if not wait_until(lambda: not alive(pid), 30):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def daemons():
    tracked = Daemons()
    yield tracked
    tracked.stop_all()


def quiet_cache_conf(path: Path, **settings) -> Path:
    """A cache on fresh ports, with no CarbonLink, tag registration or self-metrics."""
    settings = {"CACHE_QUERY_PORT": 0, "ENABLE_TAGS": False, "ENABLE_UDP_LISTENER": False,
                "PICKLE_RECEIVER_PORT": 0, **settings}
    return cache_conf(path, **settings)


def pidfile_of(conf: Path) -> Path:
    return conf.parent.parent / "storage" / "cadent-cache-a.pid"


def line_port(conf: Path) -> int:
    for line in conf.read_text().splitlines():
        if line.startswith("LINE_RECEIVER_PORT"):
            return int(line.split("=")[1])
    raise AssertionError("no LINE_RECEIVER_PORT")


def listening(port: int) -> bool:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=2):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- failed starts

@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        sock.listen(1)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("foreground", [False, True], ids=["daemon", "nodaemon"])
def test_port_in_use_fails_start(tmp_path, busy_port, foreground, daemons):
    conf = quiet_cache_conf(tmp_path, LINE_RECEIVER_PORT=busy_port)
    args = ["--nodaemon"] if foreground else []
    done = run("cache", conf, *args, "start")
    assert done.returncode == 1, done
    assert "cannot start: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    if foreground:
        assert done.stderr.count("cannot start") == 1
    assert wait_until(lambda: not pidfile_of(conf).exists(), 30)


def test_unwritable_log_dir_fails_daemon_start(tmp_path, daemons):
    conf = quiet_cache_conf(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    done = run("cache", conf, "--logdir", str(blocker / "logs"), "start")
    assert done.returncode == 1, done
    assert "cannot create the log directory" in done.stderr
    assert str(blocker / "logs") in done.stderr and "Not a directory" in done.stderr
    assert wait_until(lambda: not pidfile_of(conf).exists(), 30)
    assert not listening(line_port(conf))


def test_unwritable_log_file_fails_foreground_start(tmp_path):
    conf = quiet_cache_conf(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    done = run("cache", conf, "--nodaemon", "--logfile", str(blocker / "console.log"), "start")
    assert done.returncode == 1, done
    assert "cannot open the logs" in done.stderr and "Not a directory" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_start_returns_once_listening(tmp_path, daemons):
    conf = quiet_cache_conf(tmp_path)
    conf.write_text(conf.read_text() + "[relya]\nMAX_QUEUE_SIZE = 5\n")
    done = run("cache", conf, "start")
    assert done.returncode == 0, done
    daemons.track(pidfile_of(conf))
    assert listening(line_port(conf))   # no wait: start returned after the daemon was ready
    # a configuration warning reaches the terminal and the daemon's log
    warning = "unknown section [relya] (did you mean [relay]?)"
    assert warning in done.stderr
    console = conf.parent.parent / "storage" / "log" / "cadent-cache-a" / "console.log"
    assert warning in console.read_text()
    stopped = run("cache", conf, "stop")
    assert stopped.returncode == 0 and not pidfile_of(conf).exists()


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def test_workers_start_waits_for_every_worker_and_fails_together(tmp_path, shared_dir, busy_port,
                                                                daemons):
    settings = {"WORKERS": 2, "PICKLE_RECEIVER_PORT": 0, **user_paths(shared_dir)}
    if ROOT:
        settings["USER"] = "nobody"
    conf = relay_conf(shared_dir, ["127.0.0.1:9"], **settings)
    done = run("relay", conf, "start")
    assert done.returncode == 0, done
    supervisor = daemons.track(shared_dir / "data" / "cadent-relay-a.pid")
    assert listening(line_port(conf))
    workers = _children(supervisor)
    assert len(workers) == 2
    if ROOT:
        nobody = pwd.getpwnam("nobody").pw_uid
        assert _status(supervisor)["Uid"][0] == 0
        assert all(set(_status(pid)["Uid"]) == {nobody} for pid in workers)

    conf = relay_conf(tmp_path / "busy", ["127.0.0.1:9"], WORKERS=2, PICKLE_RECEIVER_PORT=0,
                      LINE_RECEIVER_PORT=busy_port)
    done = run("relay", conf, "start")
    assert done.returncode == 1, done
    assert "cannot start: Address already in use" in done.stderr
    pidfile = conf.parent.parent / "storage" / "cadent-relay-a.pid"
    assert wait_until(lambda: not pidfile.exists(), 30)


# --------------------------------------------------------------------------- flags

CARBON_FLAGS = ["--syslog", "--umask", "022", "--whitelist", "w.conf", "--blacklist", "b.conf",
                "--logfile", "x.log", "--profile", "p.out", "--profiler", "cprofile",
                "--savestats", "--reactor=epoll", "--nodaemon", "--debug", "--pidfile", "x.pid",
                "--logdir", "logs", "--instance", "a", "--logger", "twisted.logger.x",
                "--rundir", ".", "--no_save", "--spew", "--originalname", "--prefix", "x",
                "--uid", "0", "--gid", "0", "--euid", "--chroot", "/"]


@pytest.mark.parametrize("program", ["cache", "relay", "aggregator"])
def test_carbons_flags_are_accepted(tmp_path, program):
    conf = write_carbon_conf(tmp_path, {program: {"DESTINATIONS": "127.0.0.1:2004",
                                                  "RELAY_METHOD": "consistent-hashing"}})
    extra = ["--rules", str(conf.parent / "aggregation-rules.conf")] if program == "aggregator" else []
    if program == "aggregator":
        extra += ["--rewrite-rules", str(conf.parent / "rewrite-rules.conf")]
        (conf.parent / "rewrite-rules.conf").write_text("")
    if program == "relay":
        extra = ["--aggregation-rules", "a.conf"]
    done = run(program, conf, *CARBON_FLAGS, *extra, "--check-config")
    assert done.returncode == 0, done
    assert "configuration OK" in done.stdout
    assert "ignoring --profile, --profiler, --reactor, --logger" in done.stderr


def test_unknown_flag_is_still_refused(tmp_path):
    conf = quiet_cache_conf(tmp_path)
    done = run("cache", conf, "--no-such-flag", "--check-config")
    assert done.returncode == 2 and "--no-such-flag" in done.stderr


def start_and_write(daemons, conf: Path, names: list[str], *args: str, umask: int | None = None):
    """Start the cache daemonised with ``args``, send one point per name, wait for the last
    one's file; the daemon's pid."""
    done = run("cache", conf, *args, "start", umask=umask)
    assert done.returncode == 0, done
    pid = daemons.track(pidfile_of(conf))
    send_lines(line_port(conf), [f"{name} 1 {1_700_000_000 + i}" for i, name in enumerate(names)])
    assert wait_until(lambda: wsp(conf, names[-1]).exists(), 30), names[-1]
    return pid


def test_umask_default_is_carbons_022_and_flag_applies(tmp_path, daemons):
    conf = quiet_cache_conf(tmp_path / "default")
    start_and_write(daemons, conf, ["umask.default"], umask=0)
    assert stat.S_IMODE(wsp(conf, "umask.default").stat().st_mode) == 0o644

    conf = quiet_cache_conf(tmp_path / "strict")
    start_and_write(daemons, conf, ["umask.strict"], "--umask", "077", umask=0)
    assert stat.S_IMODE(wsp(conf, "umask.strict").stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir(conf) / "umask").stat().st_mode) == 0o700


def test_blacklist_and_whitelist_paths(tmp_path, daemons):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "deny").write_text("^blocked\\.\n")
    (lists / "allow").write_text("^(blocked|allowed)\\.\n")
    conf = quiet_cache_conf(tmp_path / "c", USE_WHITELIST=True)
    start_and_write(daemons, conf, ["blocked.x", "other.x", "allowed.x"],
                    "--blacklist", str(lists / "deny"), "--whitelist", str(lists / "allow"))
    assert not wsp(conf, "blocked.x").exists()
    assert not wsp(conf, "other.x").exists()


def test_logfile_and_rundir(tmp_path, daemons, monkeypatch):
    conf = quiet_cache_conf(tmp_path)
    logfile = tmp_path / "elsewhere" / "cache.log"
    logfile.parent.mkdir()
    monkeypatch.chdir(tmp_path)  # relative paths are the caller's, although the daemon moves
    pid = start_and_write(daemons, conf, ["logged.x"], "--logfile", "elsewhere/cache.log",
                          "--rundir", ".")
    assert wait_until(lambda: "receiver listening" in logfile.read_text(), 10)
    console = conf.parent.parent / "storage" / "log" / "cadent-cache-a" / "console.log"
    assert not console.exists()
    assert os.readlink(f"/proc/{pid}/cwd") == str(tmp_path)


def test_relay_rules_flag(tmp_path):
    rules = "[to_{0}]\ndestinations = 127.0.0.1:{0}\ndefault = true\n"
    conf = write_carbon_conf(tmp_path, {"relay": {"DESTINATIONS": "127.0.0.1:2104, 127.0.0.1:2204"}},
                             files={"relay-rules.conf": rules.format(2104)})
    other = tmp_path / "other-rules.conf"
    other.write_text(rules.format(2204))
    assert "127.0.0.1:2104" in run("relay", conf, "--test", stdin="a.b\n").stdout
    done = run("relay", conf, "--rules", str(other), "--test", stdin="a.b\n")
    assert done.returncode == 0, done
    assert done.stdout.strip() == "a.b\t127.0.0.1:2204:"


@pytest.mark.skipif(not ROOT or os.path.exists("/dev/log"),
                    reason="needs root and no syslog daemon on /dev/log")
def test_syslog(tmp_path):
    conf = quiet_cache_conf(tmp_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
        syslog.bind("/dev/log")
        try:
            syslog.settimeout(START_TIMEOUT_S)
            proc = subprocess.Popen(cadent_argv("cache") + ["--config", str(conf), "--nodaemon",
                                                             "--syslog", "start"],
                                    env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                seen = ""
                while "receiver listening" not in seen:
                    seen += syslog.recv(65536).decode(errors="replace")
                assert f"cadent-cache-a[{proc.pid}]: " in seen
            finally:
                proc.terminate()
                proc.wait(30)
        finally:
            os.unlink("/dev/log")


@pytest.mark.skipif(os.path.exists("/dev/log"), reason="a syslog daemon listens on /dev/log")
def test_syslog_without_a_syslog_daemon_fails_start(tmp_path):
    done = run("cache", quiet_cache_conf(tmp_path), "--nodaemon", "--syslog", "start")
    assert done.returncode == 1, done
    assert "cannot open the logs: /dev/log: no syslog listening" in done.stderr


# --------------------------------------------------------------------------- USER

@pytest.fixture
def shared_dir():
    """A directory every user may enter (pytest's own temporary tree is root's alone)."""
    import shutil

    path = Path(tempfile.mkdtemp(prefix="cadent-user-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def user_paths(root: Path) -> dict[str, Path]:
    """Every path setting under ``root/data``, which the daemon creates and hands to USER."""
    storage = root / "data"
    return {"STORAGE_DIR": storage, "LOCAL_DATA_DIR": storage / "whisper",
            "LOG_DIR": storage / "log", "PID_DIR": storage, "WHITELISTS_DIR": storage / "lists"}


def _status(pid: int) -> dict[str, list[int]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            fields[key] = [int(v) for v in value.split()]
    return fields


@pytest.mark.skipif(not ROOT, reason="switching users needs root")
def test_user_is_taken_after_binding(shared_dir, daemons):
    user = pwd.getpwnam("nobody")
    storage = shared_dir / "data"
    port = _free_privileged_port()  # only root may bind it: proves bind first, then switch
    conf = quiet_cache_conf(shared_dir, USER="nobody", LINE_RECEIVER_PORT=port,
                            **user_paths(shared_dir))
    done = run("cache", conf, "start")
    assert done.returncode == 0, done
    pid = daemons.track(storage / "cadent-cache-a.pid")
    status = _status(pid)
    assert set(status["Uid"]) == {user.pw_uid} and set(status["Gid"]) == {user.pw_gid}
    assert sorted(status["Groups"]) == sorted(set(os.getgrouplist("nobody", user.pw_gid)))

    send_lines(port, ["owned.metric 1 1700000000"])
    created = storage / "whisper" / "owned" / "metric.wsp"
    assert wait_until(created.exists, 30)
    for path in (created, created.parent, storage / "log" / "cadent-cache-a" / "console.log"):
        assert (path.stat().st_uid, path.stat().st_gid) == (user.pw_uid, user.pw_gid), path


@pytest.mark.skipif(not ROOT, reason="switching users needs root")
def test_drop_privileges_sets_groups_and_home():
    from cadent.daemons.privileges import drop_privileges, resolve_user

    user = pwd.getpwnam("nobody")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the switch is for good: do it in a child
        try:
            drop_privileges(resolve_user("nobody"))
            seen = (os.getuid(), os.geteuid(), os.getgid(), sorted(os.getgroups()),
                    os.environ["HOME"], os.environ["USER"], os.environ["LOGNAME"])
            os.write(write_fd, repr(seen).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        seen = pipe.read()
    os.waitpid(pid, 0)
    groups = sorted(set(os.getgrouplist("nobody", user.pw_gid)))
    assert seen == repr((user.pw_uid, user.pw_uid, user.pw_gid, groups, user.pw_dir,
                         "nobody", "nobody"))


def _free_privileged_port() -> int:
    for port in range(900, 1000):
        with socket.socket() as sock:
            try:
                sock.bind((LOCALHOST, port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


@pytest.mark.skipif(not ROOT, reason="switching users needs root")
def test_user_cannot_write_existing_log_dir(shared_dir, daemons):
    logs = shared_dir / "logs"
    logs.mkdir()            # root's, 0755: the switched user may not write in it
    conf = quiet_cache_conf(shared_dir, USER="nobody")
    done = run("cache", conf, "--logdir", str(logs), "start")
    assert done.returncode == 1, done
    assert "cannot open the logs" in done.stderr and "Permission denied" in done.stderr


def test_unknown_user_is_a_start_up_error(tmp_path):
    conf = quiet_cache_conf(tmp_path, USER="no-such-user-cadent")
    for args in (["--check-config"], ["--nodaemon", "start"], ["start"]):
        done = run("cache", conf, *args)
        assert done.returncode == 1, (args, done)
        assert "USER = no-such-user-cadent: no such user" in done.stderr
    assert not pidfile_of(conf).exists()


# --------------------------------------------------------------------------- sections

def test_misspelt_section(tmp_path):
    conf = quiet_cache_conf(tmp_path)
    conf.write_text(conf.read_text().replace("[cache]", "[cahce]"))
    done = run("cache", conf, "--check-config")
    assert done.returncode == 1
    assert "unknown section [cahce]; did you mean [cache]?" in done.stderr

    conf.write_text(conf.read_text().replace("[cahce]", "[cache]") + "\n[relya]\nMAX_QUEUE_SIZE = 5\n")
    done = run("cache", conf, "--check-config")
    assert done.returncode == 0, done
    assert "unknown section [relya] (did you mean [relay]?)" in done.stderr
