"""Locate and load the shared test vectors kept beside the checkout (``../shared/vectors``)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The ``shared`` folder: ``$CADENT_SHARED`` or ``../shared`` beside the checkout."""
    return Path(os.environ.get("CADENT_SHARED", REPO_ROOT.parent / "shared"))


@lru_cache(maxsize=None)
def load_vector(name: str):
    """Parse ``shared/vectors/<name>`` (a JSON file) once per test session."""
    with open(shared_dir() / "vectors" / name, encoding="utf-8") as handle:
        return json.load(handle)


STATSD_VOLATILE = (
    "graphiteStats.calculationtime",
    "processing_time",
    "graphiteStats.last_flush",
    "graphiteStats.flush_time",
    "graphiteStats.flush_length",
    "timestamp_lag",
)


def normalise_statsd_lines(lines: list[str], suffix: str = "") -> list[str]:
    """statsd_golden.json's normalisation: ``<TS>`` timestamps, ``<V>`` for volatile values
    (matched on the name before any tags and before the global ``suffix``)."""
    out = []
    for line in lines:
        name, value, _ts = line.rstrip("\n").rsplit(" ", 2)
        base = name.split(";", 1)[0]
        if suffix and base.endswith("." + suffix):
            base = base[: -len(suffix) - 1]
        if base.endswith(STATSD_VOLATILE):
            value = "<V>"
        out.append(f"{name} {value} <TS>")
    return out
