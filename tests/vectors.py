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
