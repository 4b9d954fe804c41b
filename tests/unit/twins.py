"""What the differential tests share: a module's compiled and Python twins, side by side."""

from __future__ import annotations

import logging
import os
from types import ModuleType

import pytest

from cadent.compiled import compiled_module, python_twin


def twins(name: str) -> tuple[ModuleType, ModuleType]:
    """(compiled twin, fresh Python twin) of module ``name``; skips when the extension was not
    built, fails instead when ``CADENT_REQUIRE_COMPILED`` is set."""
    compiled = compiled_module(name)
    if compiled is None and os.environ.get("CADENT_REQUIRE_COMPILED"):
        pytest.fail(f"CADENT_REQUIRE_COMPILED is set but the compiled twin of {name} is not built")
    if compiled is None:
        pytest.skip(f"the compiled twin of {name} is not built (pip install -e . builds it "
                    "when Cython and a C compiler are present)")
    return compiled, python_twin(name)


def typed(value):
    """``value`` with every number's type spelled out (1 and 1.0 differ, NaN equals NaN)."""
    if isinstance(value, dict):
        return "dict", [(typed(k), typed(v)) for k, v in value.items()]
    if isinstance(value, (list, tuple, set)):
        items = sorted(value, key=repr) if isinstance(value, set) else value
        return type(value).__name__, [typed(v) for v in items]
    if isinstance(value, float) and value != value:
        return "float", "nan"
    return type(value).__name__, value


def outcome(call):
    """What ``call()`` returned (typed), or the type of what it raised."""
    try:
        return "ok", typed(call())
    except Exception as exc:
        return "raised", type(exc).__name__


class LogCapture(logging.Handler):
    """The messages logged while it is installed on the root logger (with the logger's name
    when ``names``)."""

    def __init__(self, names: bool = False) -> None:
        super().__init__(logging.DEBUG)
        self.names = names
        self.messages: list = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append((record.name, message) if self.names else message)

    def __enter__(self) -> "LogCapture":
        root = logging.getLogger()
        self._level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)
