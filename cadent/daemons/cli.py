"""The command line every cadent daemon shares, carbon-style.

``cadent-<role> [--config F] [--instance I] [--debug] [--nodaemon] [--pidfile P]
[--logdir D] [--check-config] [--test] [carbon's other flags] [start|stop|status]``

``start`` (the default) daemonises unless ``--nodaemon`` or ``--debug`` is given and returns
only once the daemon listens (0) or has failed (1, with the reason on stderr). The daemon
writes its pidfile, binds its ports, switches to carbon.conf's ``USER``, opens its logs and
runs the role's service until SIGTERM or SIGINT, then stops it gracefully (the service drains
its queues or writes its cache). SIGHUP asks the service to reload its rules. ``stop`` sends
SIGTERM to the pid in the pidfile and waits for it to exit; ``status`` says whether it runs.
``--check-config`` loads every config file the role reads and exits 0 or 1.

Every flag carbon's scripts and twistd take is accepted so existing units start unchanged:
``--umask``, ``--whitelist``, ``--blacklist``, ``--rules``, ``--rewrite-rules``,
``--aggregation-rules``, ``--logfile``, ``--syslog`` and ``--rundir`` are honoured; the
others (``--profile``, ``--reactor``, ``--savestats``, ...) are logged as ignored.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable, Protocol, TextIO

from cadent.compiled import summary as compiled_summary
from cadent.daemons.logsetup import drop_console, hold_records, setup_logging
from cadent.daemons.privileges import (RunAs, StartupError, drop_privileges, hand_over,
                                       make_dir_for, resolve_user)
from cadent.daemons.startup import StartupReport, daemonize

log = logging.getLogger("cadent")

# A worker that could not start exits with this, and the supervisor gives up instead of
# restarting it.
EXIT_STARTUP_FAILED = 3
DEFAULT_UMASK = 0o022  # carbon's, whatever the caller's umask

# twistd's and carbon's options cadent accepts without acting on them.
IGNORED_VALUE_FLAGS = ("profile", "profiler", "reactor", "logger", "prefix", "chroot", "uid",
                       "gid", "python", "file", "source")
IGNORED_SWITCHES = ("savestats", "no_save", "spew", "originalname", "euid", "encrypted")
PATH_OPTIONS = ("pidfile", "logdir", "logfile", "rundir", "whitelist", "blacklist", "rules",
                "rewrite_rules", "aggregation_rules")


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
    # None: no pid file (statsd's own command line, unless asked for one)
    pidfile: Callable[[object], str | None] = lambda settings: settings.pidfile  # type: ignore[attr-defined]
    log_dir: Callable[[object], str] = lambda settings: settings.log_dir  # type: ignore[attr-defined]
    describe: Callable[[object], str] = lambda settings: ""
    user: Callable[[object], str] = lambda settings: getattr(settings, "user", "")


def _umask(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal umask: {text!r}") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"umask out of range: {text!r}")
    return value


def parse_args(role: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"cadent-{role}", description=f"cadent {role} daemon")
    parser.set_defaults(role=role)
    add = parser.add_argument
    add("action", nargs="?", default="start", choices=("start", "stop", "status"))
    add("--config", "-c", help="carbon-style config file (carbon.conf)")
    add("--instance", default=None, help="instance name; reads [%s:INSTANCE] too" % role)
    add("--debug", "-b", action="store_true", help="run in the foreground, log debug to stdout")
    add("--nodaemon", "-n", action="store_true", help="run in the foreground")
    add("--pidfile", help="pid file path (default: PID_DIR/cadent-%s-INSTANCE.pid)" % role)
    add("--logdir", help="log directory (default: LOG_DIR from the config)")
    add("--logfile", "-l", help="write the console log to this file instead ('-': stdout)")
    add("--syslog", action="store_true", help="log to the local syslog (/dev/log)")
    add("--umask", type=_umask, default=None,
        help="octal umask for every file created (default 022, as carbon)")
    add("--rundir", "-d", help="working directory of the daemon (default /)")
    add("--whitelist", help="whitelist file (default CONF_DIR/whitelist.conf)")
    add("--blacklist", help="blacklist file (default CONF_DIR/blacklist.conf)")
    add("--rules", help="relay: relay-rules file; aggregator: aggregation-rules file")
    add("--rewrite-rules", help="rewrite-rules file (default CONF_DIR/rewrite-rules.conf)")
    add("--aggregation-rules", help="aggregation-rules file (relay; aggregator: --rules)")
    for flag in IGNORED_VALUE_FLAGS:
        add(f"--{flag}", help=argparse.SUPPRESS)
    add("-r", dest="reactor", help=argparse.SUPPRESS)
    add("-p", dest="profile", help=argparse.SUPPRESS)
    add("-u", dest="uid", help=argparse.SUPPRESS)
    add("-g", dest="gid", help=argparse.SUPPRESS)
    add("-y", dest="python", help=argparse.SUPPRESS)
    add("-f", dest="file", help=argparse.SUPPRESS)
    add("-s", dest="source", help=argparse.SUPPRESS)
    for flag in IGNORED_SWITCHES:
        add(f"--{flag}", action="store_true", help=argparse.SUPPRESS)
    add("-o", dest="no_save", action="store_true", help=argparse.SUPPRESS)
    add("-e", dest="encrypted", action="store_true", help=argparse.SUPPRESS)
    add("--check-config", action="store_true", help="validate the configuration and exit")
    add("--test", action="store_true",
        help="read metric names on stdin, print the routing decisions, exit")
    args = parser.parse_args(argv)
    for option in PATH_OPTIONS:  # a daemon runs in / (or --rundir): fix them to the caller's cwd
        value = getattr(args, option)
        if value and value != "-":
            setattr(args, option, os.path.abspath(value))
    return args


def warn_ignored_flags(args: argparse.Namespace) -> list[str]:
    """Log (and return) the accepted flags that have no effect in cadent."""
    given = [flag for flag in IGNORED_VALUE_FLAGS if getattr(args, flag) is not None]
    given += [flag for flag in IGNORED_SWITCHES if getattr(args, flag)]
    names = ", ".join("--" + flag.replace("_", "-") if flag != "no_save" else "--no_save"
                      for flag in given)
    if given:
        log.warning("ignoring %s: accepted for compatibility with carbon, no effect in cadent",
                    names)
    if args.rules and args.role not in ("relay", "aggregator"):
        log.warning("ignoring --rules: cadent-%s reads no rules file", args.role)
    return given


_RULES_FILE = {"relay": "relay-rules", "aggregator": "aggregation-rules"}


def path_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The config paths given on the command line, as read_carbon_conf's override keys
    (``pidfile``, ``logdir``, ``whitelist``, ``blacklist``, ``relay-rules``, ...)."""
    given = {"pidfile": args.pidfile, "logdir": args.logdir, "whitelist": args.whitelist,
             "blacklist": args.blacklist, "rewrite-rules": args.rewrite_rules,
             "aggregation-rules": args.aggregation_rules}
    if args.rules and args.role in _RULES_FILE:
        given[_RULES_FILE[args.role]] = args.rules
    return {key: value for key, value in given.items() if value}


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


def describe_failure(exc: BaseException) -> str:
    """One line saying why start-up failed."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else None
        return f"{where}: {exc.strerror}" if where else exc.strerror
    return str(exc) or type(exc).__name__


def start_service(role: Role, settings: object, after_bind: Callable[[], None]) -> Service:
    """Build the service (which binds its ports), run ``after_bind`` (switch user, open the
    logs), start it; StartupError with the reason when any step fails."""
    from cadent.compat.errors import ConfigError

    service = None
    try:
        service = role.build_service(settings)
        after_bind()
        service.start()
        return service
    except Exception as exc:
        log.debug("start-up failed", exc_info=True)
        if service is not None:
            try:
                service.stop()
            except Exception:
                log.debug("stopping the half-started service failed", exc_info=True)
        if isinstance(exc, StartupError):
            raise
        if isinstance(exc, (OSError, ConfigError)):
            raise StartupError(describe_failure(exc)) from exc
        raise StartupError(f"{type(exc).__name__}: {exc}") from exc


def run_service(role: Role, settings: object, report: StartupReport | None = None,
                after_bind: Callable[[], None] = lambda: None) -> int:
    """Run the service in this process until SIGTERM/SIGINT; SIGHUP reloads. Reports ready
    (or why not) on ``report``; EXIT_STARTUP_FAILED when it could not start."""
    import gevent
    from gevent.event import Event

    report = report or StartupReport(f"cadent-{role.name}")
    done = Event()
    service: Service | None = None

    def on_term() -> None:
        log.info("shutdown requested")
        done.set()

    def on_hup() -> None:
        log.info("reload requested")
        if service is None:
            return
        try:
            service.reload()
        except Exception:
            log.exception("reload failed; keeping the running configuration")

    gevent.signal_handler(signal.SIGTERM, on_term)
    gevent.signal_handler(signal.SIGINT, on_term)
    gevent.signal_handler(signal.SIGHUP, on_hup)
    # before start_service: it drops privileges, and USER may not read the interpreter's tree
    log.info("%s", compiled_summary())
    try:
        service = start_service(role, settings, after_bind)
    except StartupError as exc:
        if report.fd is not None:
            log.error("cannot start: %s", exc)
        report.failed(str(exc))
        return EXIT_STARTUP_FAILED
    report.ready()
    tune_gc()
    done.wait()
    try:
        clean = service.stop()
    except Exception:
        # in the background stderr goes nowhere: the reason must reach console.log
        log.exception("stopping failed")
        return 1
    if clean:
        log.info("stopped")
        return 0
    log.error("stopped with data it could neither deliver nor spool (see above); exit status 1")
    return 1


def run_workers(role: Role, settings: object, count: int, report: StartupReport,
                run_as: RunAs | None) -> int:
    """Fork ``count`` workers that each run the service on SO_REUSEPORT sockets; supervise them.

    Each worker binds its ports, switches to ``run_as`` and reports on ``report``; the
    supervisor stays as it was started so it can start a worker again. A worker that fails to
    start stops them all.
    """
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
                code = run_service(role, settings, report, lambda: drop_privileges(run_as))
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
    report.close()  # the workers hold the pipe now; one started later reports nowhere
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
        exit_code = os.waitstatus_to_exitcode(code)
        if exit_code != 0:
            status = 1
        if exit_code == EXIT_STARTUP_FAILED and not stopping:
            log.error("worker %d could not start; stopping every worker", index)
            forward(signal.SIGTERM, None)
        elif not stopping:
            log.error("worker %d (pid %d) exited unexpectedly; restarting it", index, pid)
            time.sleep(1)
            spawn(index)
    return status


def log_destination(args: argparse.Namespace, log_dir: str) -> str:
    """Where the daemon's console log goes, for messages that point the operator there."""
    if args.syslog:
        return "syslog"
    if args.logfile:
        return args.logfile
    return os.path.join(log_dir, "console.log")


def main_for(role: Role, argv: list[str] | None = None) -> int:
    """The whole life of a daemon process for ``role``, from carbon's command line."""
    return run_command(role, parse_args(role.name, argv))


def run_command(role: Role, args: argparse.Namespace) -> int:
    """Carry out a parsed command line (:func:`parse_args`'s, or another form translated into
    it, such as statsd's): load the config, then check it, test, stop, status or start."""
    program = f"cadent-{role.name}"
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from cadent.compat.errors import ConfigError

    if args.action == "start" and not (args.debug or args.nodaemon or args.check_config
                                       or args.test):
        hold_records()
    warn_ignored_flags(args)
    instance = args.instance or "a"
    name = f"{program} (instance {instance})"
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
    pidfile = args.pidfile or role.pidfile(settings)   # None: run without a pid file

    if args.check_config:
        try:
            resolve_user(role.user(settings), switching=False)
        except StartupError as exc:
            print(f"{program}: configuration error: {exc}", file=sys.stderr)
            return 1
        print(f"{program}: configuration OK {role.describe(settings)}".rstrip())
        return 0
    if args.test:
        if role.run_test is None:
            print(f"{program}: --test is not available for this role", file=sys.stderr)
            return 2
        return role.run_test(settings, sys.stdin, sys.stdout)
    if args.action in ("stop", "status"):
        if not pidfile:
            print(f"{program}: no pid file to find the daemon by", file=sys.stderr)
            return 1
        return (do_stop if args.action == "stop" else do_status)(name, pidfile)

    pid = read_pid(pidfile) if pidfile else None
    if pid is not None and pid != os.getpid() and pid_alive(pid):
        print(f"{name} is already running with pid {pid} ({pidfile})", file=sys.stderr)
        return 1
    return start(role, settings, args, pidfile)


def start(role: Role, settings: object, args: argparse.Namespace, pidfile: str | None) -> int:
    """``start``: daemonise (unless in the foreground), then pidfile (unless None) → bind →
    USER → logs → serve, in carbon's order. 0 once stopped; 1 when it could not start."""
    program = f"cadent-{role.name}"
    report = StartupReport(program)
    try:
        run_as = resolve_user(role.user(settings))
    except StartupError as exc:
        report.failed(str(exc))
        return 1
    os.umask(DEFAULT_UMASK if args.umask is None else args.umask)
    count = role.workers(settings)
    log_dir = args.logdir or role.log_dir(settings)
    ident = f"{program}-{args.instance or 'a'}"
    if not (args.debug or args.nodaemon):
        report = daemonize(program, count, log_destination(args, log_dir))
        drop_console()
    try:
        if args.rundir:
            os.chdir(args.rundir)
        if pidfile:
            make_dir_for(os.path.dirname(os.path.abspath(pidfile)), run_as)
            write_pidfile(pidfile)
    except OSError as exc:
        report.failed(f"cannot write the pidfile: {describe_failure(exc)}")
        return 1

    def make_log_dir() -> None:
        """As root, so the directory can be created where only root may and handed over."""
        if not (args.debug or args.nodaemon or args.syslog):
            try:
                make_dir_for(log_dir, run_as)
            except OSError as exc:
                raise StartupError(f"cannot create the log directory: "
                                   f"{describe_failure(exc)}") from exc

    def open_logs() -> list[str]:
        try:
            return setup_logging(args, log_dir, ident)
        except OSError as exc:
            raise StartupError(f"cannot open the logs: {describe_failure(exc)}") from exc

    try:
        if count > 1:
            try:
                make_log_dir()
                hand_over(open_logs(), run_as)
            except (StartupError, OSError) as exc:
                report.failed(str(exc))
                return 1
            log.info("starting %d workers", count)
            return run_workers(role, settings, count, report, run_as)

        def after_bind() -> None:
            make_log_dir()
            drop_privileges(run_as)
            open_logs()

        return 1 if run_service(role, settings, report, after_bind) else 0
    finally:
        if pidfile:
            remove_pidfile(pidfile)
