"""Real peer programs and fake carbon sinks for side-by-side tests and benchmarks.

Everything here runs on 127.0.0.1, writes only inside a temporary directory, and
stops every process it started (SIGTERM, then SIGKILL of the whole process group
after a timeout), also when a test fails.

* ``free_port()``, ``wait_for_port()`` – socket helpers.
* ``write_carbon_conf()`` – carbon.conf (+ rules files) whose paths all point into
  a temporary directory.
* ``CarbonDaemon`` – the real carbon-relay / carbon-aggregator / carbon-cache.
* ``CarbonCRelay`` – carbon-c-relay with a generated ``carbon_ch`` cluster config.
* ``CadentProcess`` – cadent's own daemons with the carbon command line.
* ``FakeCarbonSink`` – a line or pickle receiver in a subprocess that records
  (or, for benchmarks, only counts) every datapoint it gets.

This file is also the sink's subprocess entry point: ``python peers.py sink ...``
(stdlib only on that path).
"""

from __future__ import annotations

import atexit
import configparser
import io
import json
import os
import pickle
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Iterable, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCALHOST = "127.0.0.1"

# Every directory setting carbon derives from STORAGE_DIR, written explicitly
# into each base section so no daemon falls back to a system path.
_PATH_SETTINGS = ("STORAGE_DIR", "LOCAL_DATA_DIR", "LOG_DIR", "PID_DIR", "WHITELISTS_DIR")
_DEFAULT_SCHEMAS = "[default]\npattern = .*\nretentions = 60s:1d\n"


# --------------------------------------------------------------------------- sockets

def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that was free on ``host`` a moment ago (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 10.0,
                  proc: "subprocess.Popen | None" = None) -> None:
    """Block until a TCP connect to ``host:port`` succeeds.

    Raises ``TimeoutError`` after ``timeout`` seconds, or ``RuntimeError`` at once
    if ``proc`` (the process expected to listen) has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} "
                               f"before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
            time.sleep(0.05)


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds passed; its last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


# --------------------------------------------------------------------------- carbon.conf

def _format_value(value) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def write_carbon_conf(dir: str | os.PathLike, sections: Mapping[str, Mapping[str, object]],
                      files: Mapping[str, str] | None = None) -> Path:
    """Write ``<dir>/conf/carbon.conf`` and return its path.

    ``sections`` maps a section name (``relay``, ``cache``, ``cache:b``, ...) to its
    settings; values may be str, int, float, bool or a list (joined with ``, ``).
    Every base section (no ``:instance``) gets STORAGE_DIR, LOCAL_DATA_DIR, LOG_DIR,
    PID_DIR and WHITELISTS_DIR inside ``<dir>/storage`` unless given. ``files`` maps
    a file name to its content, written beside carbon.conf (``relay-rules.conf``,
    ``aggregation-rules.conf``, ...). A default ``storage-schemas.conf`` (carbon
    refuses to start any daemon without one) and an empty ``aggregation-rules.conf``
    (carbon-aggregator exits without one) are added when not given.
    """
    root = Path(dir).resolve()
    conf_dir = root / "conf"
    storage = root / "storage"
    conf_dir.mkdir(parents=True, exist_ok=True)
    storage.mkdir(parents=True, exist_ok=True)
    defaults = {
        "STORAGE_DIR": storage,
        "LOCAL_DATA_DIR": storage / "whisper",
        "LOG_DIR": storage / "log",
        "PID_DIR": storage,
        "WHITELISTS_DIR": storage / "lists",
    }
    out = io.StringIO()
    for name, settings in sections.items():
        given = {k.upper() for k in settings}
        out.write(f"[{name}]\n")
        for key, value in settings.items():
            out.write(f"{key.upper()} = {_format_value(value)}\n")
        if ":" not in name:
            for key in _PATH_SETTINGS:
                if key not in given:
                    out.write(f"{key} = {defaults[key]}\n")
        out.write("\n")
    path = conf_dir / "carbon.conf"
    path.write_text(out.getvalue())
    extra = {"storage-schemas.conf": _DEFAULT_SCHEMAS, "aggregation-rules.conf": ""}
    extra.update(files or {})
    for fname, content in extra.items():
        (conf_dir / fname).write_text(content)
    return path


def read_conf_section(conf_path: str | os.PathLike, section: str,
                      instance: str | None = None) -> dict[str, str]:
    """Settings of ``[section]`` overlaid with ``[section:instance]``, keys upper-case."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(conf_path)
    result: dict[str, str] = {}
    for name in (section, f"{section}:{instance}" if instance else None):
        if name and parser.has_section(name):
            result.update({k.upper(): v for k, v in parser.items(name)})
    return result


def _listen_addresses(conf_path, section, instance) -> list[tuple[str, int]]:
    settings = read_conf_section(conf_path, section, instance)
    found = []
    for kind, default in (("LINE_RECEIVER", 2003), ("PICKLE_RECEIVER", 2004),
                          ("CACHE_QUERY", 7002)):
        if kind == "CACHE_QUERY" and section != "cache":
            continue
        port = int(settings.get(f"{kind}_PORT", default))
        if port:
            iface = settings.get(f"{kind}_INTERFACE", "0.0.0.0")
            found.append((LOCALHOST if iface in ("0.0.0.0", "", "::") else iface, port))
    return found


# --------------------------------------------------------------------------- processes

_LIVE: "weakref.WeakSet[PeerProcess]" = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_LIVE):
        proc.stop(timeout=2.0)


class PeerProcess:
    """A child process in its own session, logging to a file, stopped for sure.

    Use as a context manager, or ``start()`` / ``stop()``. ``wait_ports`` are the
    (host, port) pairs that must accept connections before ``start()`` returns.
    """

    name = "peer"

    def __init__(self, argv: Sequence[str], *, wait_ports: Iterable[tuple[str, int]] = (),
                 env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
                 log_path: str | os.PathLike | None = None, startup_timeout: float = 20.0,
                 stop_timeout: float = 10.0):
        self.argv = [str(a) for a in argv]
        self.wait_ports = list(wait_ports)
        self.env = dict(os.environ if env is None else env)
        self.cwd = str(cwd) if cwd else None
        self._own_tmp: str | None = None
        if log_path is None:
            self._own_tmp = tempfile.mkdtemp(prefix=f"{self.name}-")
            log_path = Path(self._own_tmp) / f"{self.name}.log"
        self.log_path = Path(log_path)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    # lifecycle
    def start(self) -> "PeerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                     start_new_session=True)
        _LIVE.add(self)
        try:
            deadline = time.monotonic() + self.startup_timeout
            for host, port in self.wait_ports:
                wait_for_port(host, port, max(0.1, deadline - time.monotonic()), self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{self.name} did not start ({exc}); argv={self.argv}\n"
                               f"--- log tail ---\n{self.log_text()[-4000:]}") from exc
        return self

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM the main process, wait, then SIGKILL its whole process group."""
        proc = self.proc
        if proc is None:
            return None
        timeout = self.stop_timeout if timeout is None else timeout
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # the group we created: leftover workers
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        _LIVE.discard(self)
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        return proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._own_tmp and exc[0] is None:
            shutil.rmtree(self._own_tmp, ignore_errors=True)

    # inspection
    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tree(self) -> list:
        """psutil.Process objects for the main process and all its descendants."""
        import psutil
        try:
            main = psutil.Process(self.pid)
            return [main] + main.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User+system CPU seconds of the live process tree (children's own times included)."""
        import psutil
        total = 0.0
        for p in self.tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def peak_rss(self) -> int:
        """Sum over the live tree of each process's peak resident size (VmHWM), bytes."""
        total = 0
        for p in self.tree():
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            total += int(line.split()[1]) * 1024
                            break
            except OSError:
                pass
        return total


class _ConfDaemon(PeerProcess):
    """A daemon driven by a carbon.conf: knows its section, instance and ports."""

    def __init__(self, argv, conf_path, section, instance, ports, **kw):
        self.conf_path = Path(conf_path).resolve()
        self.section = section
        self.instance = instance
        self.ports = list(ports) if ports is not None else _listen_addresses(
            self.conf_path, section, instance)
        settings = read_conf_section(self.conf_path, section, instance)
        self.settings = settings
        root = self.conf_path.parent.parent
        kw.setdefault("log_path", root / "logs" / f"{self.name}-{section}-{instance}.log")
        super().__init__(argv, wait_ports=self.ports, **kw)

    def _port(self, kind: str, default: int) -> int:
        return int(self.settings.get(f"{kind}_PORT", default))

    @property
    def host(self) -> str:
        iface = self.settings.get("LINE_RECEIVER_INTERFACE", "0.0.0.0")
        return LOCALHOST if iface in ("0.0.0.0", "", "::") else iface

    @property
    def line_port(self) -> int:
        return self._port("LINE_RECEIVER", 2003)

    @property
    def pickle_port(self) -> int:
        return self._port("PICKLE_RECEIVER", 2004)


def _venv_script(name: str) -> Path:
    here = Path(sys.executable).parent / name
    if here.exists():
        return here
    found = shutil.which(name)
    if found:
        return Path(found)
    return REPO_ROOT / ".venv" / "bin" / name


class CarbonDaemon(_ConfDaemon):
    """The real carbon daemon ``program`` (relay, aggregator, cache) on ``conf_path``.

    ``impl="pypi"`` runs ``carbon-<program>.py`` of the PyPI carbon installed next to
    this interpreter (1.1.10); ``impl="debian"`` runs ``/usr/bin/carbon-<program>``
    (Debian's carbon under /usr/bin/python3). GRAPHITE_ROOT is the temp dir that holds
    ``conf/``. ``ports`` defaults to the enabled receiver ports of the conf.
    """

    name = "carbon"

    def __init__(self, conf_path: str | os.PathLike, program: str = "relay",
                 instance: str = "a", *, ports: Iterable[tuple[str, int]] | None = None,
                 impl: str = "pypi", debug: bool = False,
                 env: Mapping[str, str] | None = None, **kw):
        conf_path = Path(conf_path).resolve()
        if impl == "pypi":
            argv = [sys.executable, _venv_script(f"carbon-{program}.py")]
        elif impl == "debian":
            argv = ["/usr/bin/python3", f"/usr/bin/carbon-{program}"]
        else:
            raise ValueError(f"unknown carbon impl {impl!r}")
        argv += ["--config", conf_path, "--nodaemon", "--instance", instance]
        if debug:
            argv.append("--debug")
        argv.append("start")
        full_env = dict(os.environ if env is None else env)
        root = conf_path.parent.parent
        full_env.update(GRAPHITE_ROOT=str(root), GRAPHITE_STORAGE_DIR=str(root / "storage"),
                        PYTHONUNBUFFERED="1")
        full_env.pop("GRAPHITE_CONF_DIR", None)
        self.program = program
        super().__init__(argv, conf_path, program, instance, ports, env=full_env, cwd=root, **kw)


class CadentProcess(_ConfDaemon):
    """A cadent daemon (``cadent-<program>``) with carbon's command line.

    Runs the console script next to this interpreter if installed, else
    ``python -m cadent.daemons.<program>`` from the checkout.
    """

    name = "cadent"

    def __init__(self, conf_path: str | os.PathLike, program: str = "relay",
                 instance: str = "a", *, ports: Iterable[tuple[str, int]] | None = None,
                 debug: bool = False, env: Mapping[str, str] | None = None,
                 extra_args: Sequence[str] = (), **kw):
        conf_path = Path(conf_path).resolve()
        script = Path(sys.executable).parent / f"cadent-{program}"
        if script.exists():
            argv = [str(script)]
        else:
            argv = [sys.executable, "-m", f"cadent.daemons.{program}"]
        argv += ["--config", conf_path, "--nodaemon", "--instance", instance]
        if debug:
            argv.append("--debug")
        argv += list(extra_args)
        full_env = dict(os.environ if env is None else env)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else []))
        full_env["PYTHONUNBUFFERED"] = "1"
        self.program = program
        super().__init__(argv, conf_path, program, instance, ports, env=full_env,
                         cwd=conf_path.parent.parent, **kw)


def cadent_available(program: str = "relay", timeout: float = 30.0) -> bool:
    """True when ``cadent.daemons.<program>`` imports cleanly (checked in a subprocess)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    try:
        done = subprocess.run([sys.executable, "-c", f"import cadent.daemons.{program}"],
                              env=env, cwd=REPO_ROOT, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def carbon_c_relay_config(destinations: Sequence[tuple[str, int, str | None]], port: int,
                          *, hash: str = "carbon_ch", replication: int = 1,
                          host: str = LOCALHOST) -> str:
    """carbon-c-relay config routing everything through one consistent-hash cluster.

    ``destinations`` are (host, port, instance) in DESTINATIONS order; an instance
    becomes ``host:port=instance``, which carbon-c-relay hashes exactly like carbon's
    ring node (host, instance).
    """
    members = []
    for dhost, dport, inst in destinations:
        dh = f"[{dhost}]" if ":" in dhost else dhost
        members.append(f"        {dh}:{dport}" + (f"={inst}" if inst else ""))
    return ("cluster dest\n"
            f"    {hash} replication {replication}\n" + "\n".join(members) + "\n    ;\n"
            "match * send to dest stop;\n"
            f"listen type linemode {host}:{port} proto tcp ;\n")


class CarbonCRelay(PeerProcess):
    """carbon-c-relay listening (line protocol, TCP) on ``host:port``.

    Sends line protocol (the only output it has) to ``destinations`` through one
    ``carbon_ch`` cluster. Runs in submission mode (``-s``: no self-metrics).
    ``workers`` is ``-w``; ``queue_size`` ``-q``; ``batch_size`` ``-b``.
    """

    name = "carbon-c-relay"

    def __init__(self, destinations: Sequence[tuple[str, int, str | None]], *,
                 port: int | None = None, host: str = LOCALHOST, workers: int = 2,
                 hash: str = "carbon_ch", replication: int = 1,
                 queue_size: int | None = None, batch_size: int | None = None,
                 submission: bool = True, dir: str | os.PathLike | None = None,
                 binary: str = "carbon-c-relay", extra_args: Sequence[str] = (), **kw):
        self.host = host
        self.port = port or free_port(host)
        self.line_port = self.port
        self.workers = workers
        self._own_dir = None
        if dir is None:
            self._own_dir = dir = tempfile.mkdtemp(prefix="carbon-c-relay-")
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_path = self.dir / "carbon-c-relay.conf"
        self.conf_path.write_text(carbon_c_relay_config(
            destinations, self.port, hash=hash, replication=replication, host=host))
        argv = [shutil.which(binary) or binary, "-f", self.conf_path, "-w", workers]
        if submission:
            argv.append("-s")
        if queue_size:
            argv += ["-q", queue_size]
        if batch_size:
            argv += ["-b", batch_size]
        argv += list(extra_args)
        kw.setdefault("log_path", self.dir / "carbon-c-relay.log")
        super().__init__(argv, wait_ports=[(host, self.port)], cwd=self.dir, **kw)

    def __exit__(self, *exc):
        super().__exit__(*exc)
        if self._own_dir and exc[0] is None:
            shutil.rmtree(self._own_dir, ignore_errors=True)


# --------------------------------------------------------------------------- fake sink

class FakeCarbonSink:
    """A carbon receiver in a subprocess: ``protocol`` is ``"pickle"`` or ``"line"``.

    With ``record=True`` every datapoint is kept as ``(name, ts, value)`` (see
    ``points()``); with ``record=False`` it only counts (benchmarks: line input is
    counted by newlines, pickle frames by unpickled length). Listens on
    ``127.0.0.1:port`` (0 = any free port); ``port`` is known after ``start()``.
    The subprocess exits when this object stops or its parent dies.
    """

    def __init__(self, protocol: str = "pickle", *, record: bool = True,
                 host: str = LOCALHOST, port: int = 0, startup_timeout: float = 10.0):
        if protocol not in ("pickle", "line"):
            raise ValueError(f"protocol must be 'pickle' or 'line', not {protocol!r}")
        self.protocol = protocol
        self.record = record
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._tmp: str | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def destination(self, instance: str | None = None) -> str:
        """This sink as a carbon DESTINATIONS item ``host:port[:instance]``."""
        return f"{self.host}:{self.port}" + (f":{instance}" if instance is not None else "")

    def start(self) -> "FakeCarbonSink":
        argv = [sys.executable, str(Path(__file__).resolve()), "sink", "--protocol",
                self.protocol, "--host", self.host, "--port", str(self.port)]
        if self.record:
            argv.append("--record")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     start_new_session=True)
        _LIVE_SINKS.add(self)
        line = self._readline(self.startup_timeout)
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"fake sink did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def _readline(self, timeout: float) -> str:
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not result:
            raise TimeoutError("fake sink did not answer")
        return result[0].decode().strip()

    def _ask(self, command: str, timeout: float = 30.0) -> str:
        with self._lock:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError("fake sink is not running")
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()
            return self._readline(timeout)

    def stats(self) -> dict:
        """``count`` (datapoints), ``bytes``, ``connections`` (accepted so far), ``open``
        (currently connected), ``frames``, ``errors``, ``first_time`` / ``last_time``
        (``time.time()`` of the first / latest received data, or None)."""
        return json.loads(self._ask("stats"))

    def count(self) -> int:
        """Datapoints received so far."""
        return self.stats()["count"]

    def wait_for_count(self, n: int, timeout: float = 10.0) -> int:
        """Wait until at least ``n`` datapoints arrived (or timeout); the count reached."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.count()
            if c >= n or time.monotonic() >= deadline:
                return c
            time.sleep(0.05)

    def points(self) -> list[tuple[str, float, float]]:
        """Every recorded datapoint as (name, ts, value), in arrival order (record mode)."""
        if not self.record:
            raise RuntimeError("sink was started with record=False")
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="fake-sink-")
        path = Path(self._tmp) / "points.pickle"
        answer = self._ask(f"dump {path}")
        if answer != "ok":
            raise RuntimeError(f"fake sink dump failed: {answer}")
        with open(path, "rb") as f:
            return pickle.load(f)

    def reset(self) -> None:
        """Forget every point and zero the counters (connections stay open)."""
        self._ask("reset")

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
        _LIVE_SINKS.discard(self)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


_LIVE_SINKS: "weakref.WeakSet[FakeCarbonSink]" = weakref.WeakSet()


@atexit.register
def _stop_leftover_sinks() -> None:
    for sink in list(_LIVE_SINKS):
        sink.stop()


# ---- the sink subprocess (stdlib only) ----

class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"global {module}.{name} refused")


def _unpickle(body: bytes):
    return _NoGlobals(io.BytesIO(body)).load()


class _SinkState:
    def __init__(self, protocol: str, record: bool):
        self.protocol = protocol
        self.record = record
        self.reset()

    def reset(self):
        self.count = 0
        self.nbytes = 0
        self.frames = 0
        self.errors = 0
        self.connections = 0
        self.first_time = None
        self.last_time = None
        self.points: list = []

    def feed(self, buf: bytearray) -> None:
        """Consume every complete line / frame at the head of ``buf``."""
        if self.protocol == "line":
            end = buf.rfind(b"\n")
            if end < 0:
                return
            if self.record:
                for raw in bytes(buf[:end]).split(b"\n"):
                    fields = raw.split()
                    if not fields:
                        continue
                    try:
                        name, value, ts = fields
                        self.points.append((name.decode(), float(ts), float(value)))
                        self.count += 1
                    except (ValueError, UnicodeDecodeError):
                        self.errors += 1
            else:
                self.count += buf.count(b"\n", 0, end + 1)
            del buf[:end + 1]
            return
        pos = 0
        size = len(buf)
        while size - pos >= 4:
            (length,) = struct.unpack_from("!L", buf, pos)
            if size - pos - 4 < length:
                break
            body = bytes(buf[pos + 4:pos + 4 + length])
            pos += 4 + length
            self.frames += 1
            try:
                batch = _unpickle(body)
            except Exception:
                self.errors += 1
                continue
            if self.record:
                for item in batch:
                    try:
                        name, (ts, value) = item
                        self.points.append((name, ts, value))
                        self.count += 1
                    except (TypeError, ValueError):
                        self.errors += 1
            else:
                self.count += len(batch)
        if pos:
            del buf[:pos]


def _run_sink(protocol: str, host: str, port: int, record: bool) -> None:
    state = _SinkState(protocol, record)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(128)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, "listen")
    stdin = sys.stdin.buffer
    sel.register(stdin, selectors.EVENT_READ, "control")
    out = sys.stdout
    out.write(f"PORT {lsock.getsockname()[1]}\n")
    out.flush()
    buffers: dict[socket.socket, bytearray] = {}
    control = b""
    while True:
        for key, _ in sel.select():
            what = key.data
            if what == "listen":
                try:
                    conn, _addr = lsock.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                buffers[conn] = bytearray()
                sel.register(conn, selectors.EVENT_READ, "conn")
                state.connections += 1
            elif what == "conn":
                conn = key.fileobj
                try:
                    data = conn.recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(conn)
                    conn.close()
                    buffers.pop(conn, None)
                    continue
                now = time.time()
                if state.first_time is None:
                    state.first_time = now
                state.last_time = now
                state.nbytes += len(data)
                buf = buffers[conn]
                buf += data
                state.feed(buf)
            else:
                chunk = os.read(stdin.fileno(), 65536)
                if not chunk:                       # parent gone or stop(): exit
                    return
                control += chunk
                while b"\n" in control:
                    cmd, control = control.split(b"\n", 1)
                    out.write(_sink_command(state, cmd.decode().strip(), len(buffers)) + "\n")
                    out.flush()


def _sink_command(state: _SinkState, cmd: str, open_conns: int) -> str:
    if cmd == "stats":
        return json.dumps({"count": state.count, "bytes": state.nbytes, "frames": state.frames,
                           "errors": state.errors, "connections": state.connections,
                           "open": open_conns, "first_time": state.first_time,
                           "last_time": state.last_time})
    if cmd.startswith("dump "):
        try:
            with open(cmd[5:], "wb") as f:
                pickle.dump(state.points, f, protocol=pickle.HIGHEST_PROTOCOL)
            return "ok"
        except OSError as exc:
            return f"error {exc}"
    if cmd == "reset":
        state.reset()
        return "ok"
    return f"error unknown command {cmd!r}"


def _main(argv: list[str]) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="fake carbon sink")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("sink")
    sp.add_argument("--protocol", choices=("pickle", "line"), default="pickle")
    sp.add_argument("--host", default=LOCALHOST)
    sp.add_argument("--port", type=int, default=0)
    sp.add_argument("--record", action="store_true")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _run_sink(args.protocol, args.host, args.port, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
