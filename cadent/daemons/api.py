"""``cadent-api``: the graphite HTTP API under gunicorn with gevent workers.

gunicorn's gevent worker monkey-patches each worker; the master stays unpatched and never
imports the app (``cadent.api.wsgi:app`` is loaded in the workers).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cadent-api", description="graphite-compatible HTTP API")
    parser.add_argument("--config", help="carbon.conf-style file with an [api] section")
    parser.add_argument("--instance", help="overlay [api:<instance>] (and [cache:<instance>])")
    parser.add_argument("--bind", help="host:port, overrides LISTEN_INTERFACE/LISTEN_PORT")
    parser.add_argument("--workers", type=int, help="overrides WORKERS")
    parser.add_argument("--pidfile", help="write gunicorn's master pid here")
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit")
    return parser


def _no_control_socket() -> list[str]:
    """gunicorn 24+ opens a control socket in $HOME (shared by every instance of a user);
    cadent-api does not use it."""
    from gunicorn.config import KNOWN_SETTINGS

    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        return ["--no-control-socket"]
    return []


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from cadent.compat.api_settings import ApiConfigError, read_api_settings

    try:
        settings = read_api_settings(args.config, args.instance)
    except (ApiConfigError, OSError, ValueError) as exc:
        print(f"cadent-api: {exc}", file=sys.stderr)
        return 1
    if args.check_config:
        print(f"cadent-api: config OK (bind {settings.bind}, whisper {', '.join(settings.whisper_dirs)}, "
              f"tag database {settings.tagdb_path})")
        return 0
    if args.config:
        os.environ["CADENT_API_CONFIG"] = os.path.abspath(args.config)
    if args.instance:
        os.environ["CADENT_API_INSTANCE"] = args.instance
    from gunicorn.app.wsgiapp import run

    sys.argv = [
        "cadent-api", "-k", "gevent",
        "--bind", args.bind or settings.bind,
        "--workers", str(args.workers or settings.workers),
        "--access-logfile", "-",
        # a render of thousands of long series is CPU-bound for seconds: don't let the
        # arbiter take a busy worker for a hung one
        "--timeout", "300",
        # gunicorn puts its working directory first on sys.path: never let a checkout's
        # folders shadow installed packages
        "--chdir", "/",
        *(["--pidfile", os.path.abspath(args.pidfile)] if args.pidfile else []),
        *_no_control_socket(),
        "cadent.api.wsgi:app",
    ]
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
