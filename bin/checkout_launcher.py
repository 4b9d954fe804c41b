#!/usr/bin/env python3
"""Run a cadent daemon straight from this checkout, without installing it.

``bin/cadent-relay``, ``-aggregator``, ``-cache``, ``-statsd`` and ``-api`` are links to this
file (as carbon's ``bin/carbon-cache.py`` runs carbon from its source tree). Each puts the
checkout first on ``sys.path`` and calls the entry point that setup.cfg's ``console_scripts``
gives its name. Run them with an interpreter that has cadent's dependencies, e.g.

    .venv/bin/python bin/cadent-cache --config conf/carbon.conf --check-config
"""

from __future__ import annotations

import configparser
import importlib
import os
import sys

CHECKOUT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def console_scripts() -> dict[str, str]:
    """setup.cfg's console scripts: name → ``module:function``."""
    config = configparser.ConfigParser()
    config.read(os.path.join(CHECKOUT, "setup.cfg"), encoding="utf-8")
    scripts = {}
    for line in config["options.entry_points"]["console_scripts"].splitlines():
        name, _, target = line.partition("=")
        if target.strip():
            scripts[name.strip()] = target.strip()
    return scripts


def main() -> int:
    name = os.path.basename(sys.argv[0])
    scripts = console_scripts()
    if name not in scripts:
        print(f"{name}: run this file as one of bin/{', bin/'.join(sorted(scripts))}", file=sys.stderr)
        return 2
    module, _, function = scripts[name].partition(":")
    sys.path.insert(0, CHECKOUT)
    return getattr(importlib.import_module(module), function)()


if __name__ == "__main__":
    sys.exit(main())
