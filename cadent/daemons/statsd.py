"""cadent-statsd: an Etsy statsd (and statsd-proxy) drop-in.

    statsd = receive → statsd aggregate → flush every interval → route → send

``cadent-statsd --config /etc/statsd/localConfig.js`` reads statsd's own ``config.js``; a
cadent/carbon-style file with a ``[statsd]`` section works too (chosen by extension, then by
content). ``--proxy``, or a config with ``nodes``, runs the cluster proxy instead. The rest of
the command line is the shared one (:mod:`cadent.daemons.cli`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass

from cadent.compat.errors import ConfigError

PROXY_FLAG = "--proxy"


@dataclass(frozen=True)
class StatsdRuntime:
    """Loaded settings plus the process paths the CLI needs."""

    settings: object  # StatsdSettings or ProxySettings
    proxy: bool
    pidfile: str
    log_dir: str

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
    if args.instance:
        name += "-" + args.instance
    pidfile = args.pidfile or settings.pidfile or os.path.join(_runtime_dir("run"), name + ".pid")
    log_dir = args.logdir or settings.log_dir or os.path.join(_runtime_dir("log"), name)
    return StatsdRuntime(settings, proxy, pidfile, log_dir)


def build_service(runtime: StatsdRuntime):
    if runtime.proxy:
        from cadent.statsd.proxy_service import ProxyService

        return ProxyService(runtime.settings)  # type: ignore[arg-type]
    from cadent.statsd.service import StatsdService

    return StatsdService(runtime.settings)  # type: ignore[arg-type]


def _describe(runtime: StatsdRuntime) -> str:
    s = runtime.settings
    if runtime.proxy:
        return f"(proxy, {len(s.nodes)} nodes)"  # type: ignore[attr-defined]
    from cadent.statsd.carbon import carbon_destinations

    carbons = ", ".join(str(d) for d in carbon_destinations(s)) or "none"  # type: ignore[arg-type]
    return f"(flushInterval {s.flush_interval_ms} ms, carbon {carbons}, {s.workers} worker(s))"  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()
    import sys

    from cadent.daemons.cli import Role, main_for

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
    return main_for(role, args)


if __name__ == "__main__":
    from cadent.daemons.launch import statsd as launch_statsd

    raise SystemExit(launch_statsd())
