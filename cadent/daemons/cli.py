"""The command line every cadent daemon shares, carbon-style.

``cadent-<role> [--config F] [--instance I] [--debug] [--nodaemon] [--pidfile P]
[--logdir D] [--check-config] [--test] [start|stop|status]``

``start`` (the default) daemonises unless ``--nodaemon`` or ``--debug`` is given, writes the
pidfile, and runs the role's service until SIGTERM or SIGINT, then stops it gracefully (the
service drains its queues or writes its cache). SIGHUP asks the service to reload its rules.
``stop`` sends SIGTERM to the pid in the pidfile and waits for it to exit; ``status`` says
whether it runs. ``--check-config`` loads every config file the role reads and exits 0 or 1.
"""

from __future__ import annotations

import argparse
import errno
import logging
import logging.handlers
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable, Protocol, TextIO

from cadent.core import oplog

log = logging.getLogger("cadent")


class Service(Protocol):
    def start(self) -> None: ...
    def stop(self) -> bool: ...
    def reload(self) -> None: ...


@dataclass(frozen=True)
class Role:
    """What a daemon plugs into the shared command line."""

    name: str                                           # relay, cache, aggregator, statsd
    load_settings: Callable[[argparse.Namespace], object]   # raises ConfigError
    build_service: Callable[[object], Service]
    run_test: Callable[[object, TextIO, TextIO], int] | None = None
    workers: Callable[[object], int] = lambda settings: 1
    pidfile: Callable[[object], str] = lambda settings: settings.pidfile  # type: ignore[attr-defined]
    log_dir: Callable[[object], str] = lambda settings: settings.log_dir  # type: ignore[attr-defined]
    describe: Callable[[object], str] = lambda settings: ""


def parse_args(role: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"cadent-{role}", description=f"cadent {role} daemon")
    parser.add_argument("action", nargs="?", default="start", choices=("start", "stop", "status"))
    parser.add_argument("--config", help="carbon-style config file (carbon.conf)")
    parser.add_argument("--instance", default=None, help="instance name; reads [%s:INSTANCE] too" % role)
    parser.add_argument("--debug", action="store_true", help="run in the foreground, log debug to stdout")
    parser.add_argument("--nodaemon", action="store_true", help="run in the foreground")
    parser.add_argument("--pidfile", help="pid file path (default: PID_DIR/cadent-%s-INSTANCE.pid)" % role)
    parser.add_argument("--logdir", help="log directory (default: LOG_DIR from the config)")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--test", action="store_true",
                        help="read metric names on stdin, print the routing decisions, exit")
    return parser.parse_args(argv)


def path_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The config paths given on the command line (``pidfile``, ``logdir``)."""
    return {key: value for key, value in (("pidfile", args.pidfile), ("logdir", args.logdir)) if value}


def setup_logging(args: argparse.Namespace, log_dir: str | None) -> None:
    level = logging.DEBUG if args.debug else logging.INFO
    fmt = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
    root = logging.getLogger()
    root.handlers.clear()
    if log_dir and not (args.debug or args.nodaemon):
        os.makedirs(log_dir, exist_ok=True)
        handler: logging.Handler = logging.handlers.WatchedFileHandler(os.path.join(log_dir, "console.log"))
        oplog.to_files(log_dir)
    else:
        handler = logging.StreamHandler(sys.stdout if args.debug or args.nodaemon else sys.stderr)
        oplog.to_console()
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)


def read_pid(pidfile: str) -> int | None:
    try:
        with open(pidfile) as handle:
            return int(handle.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def write_pidfile(pidfile: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(pidfile)), exist_ok=True)
    tmp = f"{pidfile}.{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    os.replace(tmp, pidfile)


def remove_pidfile(pidfile: str) -> None:
    if read_pid(pidfile) == os.getpid():
        try:
            os.unlink(pidfile)
        except OSError:
            pass


def daemonize() -> None:
    """Detach from the terminal: double fork, new session, stdio to /dev/null."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def do_stop(name: str, pidfile: str, timeout_s: float = 120.0) -> int:
    pid = read_pid(pidfile)
    if pid is None or not pid_alive(pid):
        print(f"{name} is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        print(f"{name} (pid {pid}) did not stop within {timeout_s:.0f}s")
        return 1
    print(f"{name} (pid {pid}) stopped")
    return 0


def do_status(name: str, pidfile: str) -> int:
    pid = read_pid(pidfile)
    if pid is not None and pid_alive(pid):
        print(f"{name} is running with pid {pid}")
        return 0
    print(f"{name} is not running")
    return 1


def tune_gc() -> None:
    """Datapoints are short-lived acyclic tuples: collect the young generation far less often,
    and move everything built at start-up out of the collector's way."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def run_service(role: Role, settings: object) -> int:
    """Run the service in this process until SIGTERM/SIGINT; SIGHUP reloads."""
    import gevent
    from gevent.event import Event

    done = Event()
    service = role.build_service(settings)

    def on_term() -> None:
        log.info("shutdown requested")
        done.set()

    def on_hup() -> None:
        log.info("reload requested")
        try:
            service.reload()
        except Exception:
            log.exception("reload failed; keeping the running configuration")

    gevent.signal_handler(signal.SIGTERM, on_term)
    gevent.signal_handler(signal.SIGINT, on_term)
    gevent.signal_handler(signal.SIGHUP, on_hup)
    service.start()
    tune_gc()
    done.wait()
    clean = service.stop()
    log.info("stopped%s", "" if clean else " with undelivered data (see above)")
    return 0


def run_workers(role: Role, settings: object, count: int) -> int:
    """Fork ``count`` workers that each run the service on SO_REUSEPORT sockets; supervise them."""
    children: dict[int, int] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            os.environ["CADENT_WORKER"] = str(index)
            code = 1
            try:
                code = run_service(role, settings)
            except Exception:
                log.exception("worker %d failed", index)
            finally:
                os._exit(code)
        children[pid] = index

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)
            except OSError:
                pass

    for index in range(count):
        spawn(index)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    import gevent.os as gos
    status = 0
    while children:
        try:
            pid, code = gos.waitpid(-1, 0)
        except ChildProcessError:
            break
        index = children.pop(pid, None)
        if index is None:
            continue
        if os.waitstatus_to_exitcode(code) != 0:
            status = 1
        if not stopping:
            log.error("worker %d (pid %d) exited unexpectedly; restarting it", index, pid)
            time.sleep(1)
            spawn(index)
    return status


def main_for(role: Role, argv: list[str] | None = None) -> int:
    """The whole life of a daemon process for ``role``."""
    args = parse_args(role.name, argv)
    program = f"cadent-{role.name}"
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from cadent.compat.errors import ConfigError

    name = f"{program} (instance {args.instance or 'a'})"
    if args.action in ("stop", "status") and args.pidfile:
        # Stopping must not depend on a config that may have been broken since the start.
        return (do_stop if args.action == "stop" else do_status)(name, args.pidfile)
    try:
        settings = role.load_settings(args)
    except ConfigError as exc:
        print(f"{program}: configuration error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return 1
    pidfile = args.pidfile or role.pidfile(settings)

    if args.check_config:
        print(f"{program}: configuration OK {role.describe(settings)}".rstrip())
        return 0
    if args.test:
        if role.run_test is None:
            print(f"{program}: --test is not available for this role", file=sys.stderr)
            return 2
        return role.run_test(settings, sys.stdin, sys.stdout)
    if args.action == "stop":
        return do_stop(name, pidfile)
    if args.action == "status":
        return do_status(name, pidfile)

    pid = read_pid(pidfile)
    if pid is not None and pid != os.getpid() and pid_alive(pid):
        print(f"{name} is already running with pid {pid}", file=sys.stderr)
        return 1
    foreground = args.debug or args.nodaemon
    if not foreground:
        daemonize()
    setup_logging(args, args.logdir or role.log_dir(settings))
    write_pidfile(pidfile)
    try:
        count = role.workers(settings)
        if count > 1:
            log.info("starting %d workers", count)
            return run_workers(role, settings, count)
        return run_service(role, settings)
    finally:
        remove_pidfile(pidfile)
