"""Console-script entry points: monkey-patch gevent before any daemon module is imported."""

from __future__ import annotations

import importlib


def _run(role: str) -> int:
    from gevent import monkey

    monkey.patch_all()
    return importlib.import_module(f"cadent.daemons.{role}").main()


def relay() -> int:
    return _run("relay")


def aggregator() -> int:
    return _run("aggregator")


def cache() -> int:
    return _run("cache")


def statsd() -> int:
    return _run("statsd")
