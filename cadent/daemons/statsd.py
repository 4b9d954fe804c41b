"""cadent-statsd: an Etsy statsd (and statsd-proxy) drop-in.

    statsd = receive → statsd aggregate → flush every interval → route → send

Two command lines:

* statsd's own, ``cadent-statsd /etc/statsd/localConfig.js [--pidfile P] [--debug]
  [--check-config]``: runs in the foreground, logs to stdout and writes a pid file only when
  asked (``--pidfile``, or ``pidfile`` in the config), so any number of instances with their
  own configs run side by side; otherwise it starts exactly as carbon's ``--nodaemon`` does
  (it is translated into that command line), umask 022 included;
* carbon's, ``cadent-statsd --config F [--instance I] [--nodaemon] ... [start|stop|status]``
  (:mod:`cadent.daemons.cli`): daemonises with a pid file named after the instance, or else
  after the config file (``cadent-statsd-localConfig.pid``).

The config is statsd's ``config.js`` or a cadent/carbon-style file with a ``[statsd]`` section
(chosen by extension, then by content). ``--proxy``, or a config with ``nodes``, runs the
cluster proxy instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass

from cadent.compat.errors import ConfigError
from cadent.compat.http_settings import HttpConfig, statsd_http_config

PROXY_FLAG = "--proxy"
ACTIONS = ("start", "stop", "status")
STATSD_USAGE = "cadent-statsd CONFIG [--pidfile P] [--debug] [--check-config] [--proxy]"


@dataclass(frozen=True)
class StatsdRuntime:
    """Loaded settings plus the process paths the CLI needs."""

    settings: object  # StatsdSettings or ProxySettings
    proxy: bool
    pidfile: str | None  # None: statsd's command line without a pid file
    log_dir: str
    http: HttpConfig = HttpConfig()

    @property
    def workers(self) -> int:
        return 1 if self.proxy else self.settings.workers  # type: ignore[attr-defined]


def _runtime_dir(kind: str) -> str:
    """``/var/run/cadent`` / ``/var/log/cadent`` when writable, else a per-user temp dir."""
    base = "/var/run" if kind == "run" else "/var/log"
    if os.access(base, os.W_OK):
        return os.path.join(base, "cadent")
    return os.path.join(tempfile.gettempdir(), f"cadent-{os.getuid()}")


def _is_js(path: str) -> bool:
    if path.endswith((".js", ".json")):
        return True
    if path.endswith((".conf", ".ini", ".cfg")):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(65536)
    except OSError as exc:
        raise ConfigError(path, 0, f"cannot read: {exc}") from exc
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("//", "/*", "*")):
            continue
        return stripped[0] in "{("
    return False


def _wants_proxy(path: str, js: bool) -> bool:
    if not js:
        return False
    from cadent.compat.statsd_config import parse_js_object

    with open(path, encoding="utf-8", errors="replace") as handle:
        value, _ = parse_js_object(handle.read(), path)
    return isinstance(value, dict) and "nodes" in value


def load_runtime(args: argparse.Namespace, proxy: bool = False) -> StatsdRuntime:
    """Read the config file the way statsd or cadent would; ConfigError on bad values."""
    from cadent.compat.statsd_config import load_config_js, load_ini_section, load_proxy_config_js

    path = args.config
    if not path:
        raise ConfigError("<command line>", 0, "--config is required (statsd's config.js or a file with [statsd])")
    js = _is_js(path)
    proxy = proxy or _wants_proxy(path, js)
    if js:
        settings = load_proxy_config_js(path) if proxy else load_config_js(path)
    else:
        settings = load_ini_section(path, "statsd", proxy=proxy)
    name = "cadent-statsd-proxy" if proxy else "cadent-statsd"
    # one name per instance, else per config file, so instances with their own configs coexist
    name += "-" + (args.instance or os.path.splitext(os.path.basename(path))[0])
    pidfile = args.pidfile or settings.pidfile
    if pidfile is None and not getattr(args, "statsd_form", False):
        pidfile = os.path.join(_runtime_dir("run"), name + ".pid")
    log_dir = args.logdir or settings.log_dir or os.path.join(_runtime_dir("log"), name)
    http = HttpConfig() if proxy else statsd_http_config(settings.http, path)
    return StatsdRuntime(settings, proxy, pidfile, log_dir, http)


def build_service(runtime: StatsdRuntime):
    if runtime.proxy:
        from cadent.statsd.proxy_service import ProxyService

        return ProxyService(runtime.settings)  # type: ignore[arg-type]
    from cadent.statsd.service import StatsdService

    return StatsdWithHttp(StatsdService(runtime.settings), runtime.http)  # type: ignore[arg-type]


class StatsdWithHttp:
    """A statsd service plus its HTTP side (/stats, /metrics, /ops/status): statsd's own
    numbers as gauges, the carbon senders' counters, 503 while every carbon is down."""

    def __init__(self, service, http: HttpConfig) -> None:
        from cadent.core.ops_http import DaemonOps, serve_ops
        from cadent.core.stats import ProcessGauges

        self.service = service
        stats = service.stats
        ProcessGauges().install(stats)
        engine = service.engine
        internal = {"packets_received": engine.store.packets_key,
                    "metrics_received": engine.store.metrics_key,
                    "bad_lines_seen": engine.store.bad_lines_key}
        for name, key in internal.items():
            stats.gauge(f"statsd.{name}", lambda key=key: engine.store.counters.get(key, 0.0))
        stats.gauge("statsd.bad_lines_total", lambda: engine.stats.bad_lines_total)
        stats.gauge("statsd.last_msg_seen", lambda: engine.stats.last_msg_seen_s)
        for name in ("last_flush", "last_exception", "flush_time", "flush_length"):
            stats.gauge(f"graphite.{name}", lambda name=name: getattr(engine.graphite_stats, name))
        self.ops = DaemonOps("statsd", str(service.index), stats, self._health)
        self.ops_server = serve_ops(http, self.ops)

    def _health(self) -> str | None:
        from cadent.core.ops_http import output_health

        service = self.service
        if service.engine.health != "up":
            return "health set to down on the management port"
        carbon = service.carbon
        if carbon is not None and service.graphite_enabled and carbon.output is not None:
            problem = output_health(carbon.output)
            if problem:
                return f"the graphite backend fails: {problem}"
        return None

    def start(self) -> None:
        self.service.start()
        if self.ops_server is not None:
            self.ops_server.start()

    def stop(self) -> bool:
        self.ops.stopping = True
        clean = self.service.stop()
        if self.ops_server is not None:
            self.ops_server.stop()
        return clean

    def reload(self) -> None:
        self.service.reload()


def _describe(runtime: StatsdRuntime) -> str:
    s = runtime.settings
    if runtime.proxy:
        return f"(proxy, {len(s.nodes)} nodes)"  # type: ignore[attr-defined]
    from cadent.statsd.carbon import carbon_destinations

    carbons = ", ".join(str(d) for d in carbon_destinations(s)) or "none"  # type: ignore[arg-type]
    spool = f"spool {s.spool_dir}" if s.spool_dir and s.spool_max_bytes else "no spool"  # type: ignore[attr-defined]
    return (f"(flushInterval {s.flush_interval_ms} ms, carbon {carbons}, "  # type: ignore[attr-defined]
            f"{s.workers} worker(s), {spool})")


def statsd_command_line(argv: list[str]) -> argparse.Namespace | None:
    """``argv`` parsed as statsd's command line (config file first), or None when it is
    carbon's (``--config``, or an action word).

    The result is carbon's command line for the same start (:func:`cadent.daemons.cli.parse_args`)
    in the foreground, with ``statsd_form`` set: no pid file unless ``--pidfile`` or the config
    names one, logs on stdout.
    """
    from cadent.daemons.cli import parse_args

    if any(a in ("--config", "-c") or a.startswith("--config=") for a in argv):
        return None
    words = [a for a in argv if not a.startswith("-")]
    if not words or any(w in ACTIONS for w in words):
        return None
    parser = argparse.ArgumentParser(prog="cadent-statsd", usage=STATSD_USAGE,
                                     description="cadent statsd, run as statsd is: in the foreground")
    parser.add_argument("config", help="statsd's config.js, or a file with a [statsd] section")
    parser.add_argument("--pidfile", help="write this pid file (default: none)")
    parser.add_argument("--debug", action="store_true", help="log debug lines too")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    given = parser.parse_args(argv)
    carbon_argv = ["--config", given.config, "--nodaemon"]
    carbon_argv += ["--pidfile", given.pidfile] if given.pidfile else []
    carbon_argv += ["--debug"] if given.debug else []
    carbon_argv += ["--check-config"] if given.check_config else []
    args = parse_args("statsd", carbon_argv)
    args.statsd_form = True
    return args


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()
    from cadent.daemons.cli import Role, main_for, run_command

    args = list(sys.argv[1:] if argv is None else argv)
    proxy = PROXY_FLAG in args
    if proxy:
        args = [a for a in args if a != PROXY_FLAG]
    role = Role(
        name="statsd",
        load_settings=lambda ns: load_runtime(ns, proxy),
        build_service=build_service,
        workers=lambda rt: rt.workers,
        pidfile=lambda rt: rt.pidfile,
        log_dir=lambda rt: rt.log_dir,
        describe=_describe,
    )
    statsd_args = statsd_command_line(args)
    if statsd_args is not None:
        return run_command(role, statsd_args)
    if "-h" in args or "--help" in args:
        print(f"usage: {STATSD_USAGE}\n   or: the carbon-style command line below\n")
    return main_for(role, args)


if __name__ == "__main__":
    from cadent.daemons.launch import statsd as launch_statsd

    raise SystemExit(launch_statsd())
