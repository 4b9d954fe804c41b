"""Compiled twins of hot modules, chosen at import time.

A hot module stays plain Python and is the reference. When the build had a compiler, the same
source was also compiled (Cython, pure-Python mode, types in a ``.pxd``) into an extension
module named ``_cadent_c_<module>`` beside it; a twin that needs what the Python source cannot
say (the GIL released around C system calls) is written as ``_cadent_c_<module>.pyx``. The Python module ends with::

    import_compiled(globals(), "cadent.core.parse._cadent_c_plaintext")

which replaces the module's public names with the compiled ones, unless the compiled module is
missing or ``CADENT_PURE_PYTHON`` is set to anything but ``""``/``0``/``false``/``no``.
Importing the Python module is therefore always the way to use it; callers never see the
extension's name. :func:`python_twin` loads the untouched Python source for tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

PURE_PYTHON_ENV = "CADENT_PURE_PYTHON"

# Every module that has a compiled twin, with the twin's name.
COMPILED_TWINS: dict[str, str] = {
    "cadent.core.parse.plaintext": "cadent.core.parse._cadent_c_plaintext",
    "cadent.core.parse.pickle_shape": "cadent.core.parse._cadent_c_pickle_shape",
    "cadent.core.encode.plaintext": "cadent.core.encode._cadent_c_plaintext",
    "cadent.core.route.routers": "cadent.core.route._cadent_c_routers",
    "cadent.statsd.parse": "cadent.statsd._cadent_c_parse",
    "cadent.statsd.numbers": "cadent.statsd._cadent_c_numbers",
    "cadent.statsd.graphite": "cadent.statsd._cadent_c_graphite",
    "cadent.statsd.flush": "cadent.statsd._cadent_c_flush",
    "cadent.statsd.store": "cadent.statsd._cadent_c_store",
    "cadent.core.aggregate.gather": "cadent.core.aggregate._cadent_c_gather",
    "cadent.core.write.whisper_batch": "cadent.core.write._cadent_c_whisper_batch",
    "cadent.core.cache_points": "cadent.core._cadent_c_cache_points",
}

_TWIN_SUFFIX = "__python_twin"

# module name -> "compiled" | "python"
_chosen: dict[str, str] = {}


def pure_python_requested() -> bool:
    """True when ``CADENT_PURE_PYTHON`` asks for the Python twins."""
    return os.environ.get(PURE_PYTHON_ENV, "").strip().lower() not in ("", "0", "false", "no")


def import_compiled(module_globals: dict[str, Any], compiled_name: str) -> None:
    """Replace the public names of the calling module with those of ``compiled_name``.

    Does nothing inside the compiled module itself (it runs this same last line), inside a
    :func:`python_twin`, when pure Python is requested, or when the extension was not built.
    """
    name = module_globals["__name__"]
    if name == compiled_name or name.endswith(_TWIN_SUFFIX):
        return
    if pure_python_requested():
        _chosen[name] = "python"
        return
    try:
        compiled = importlib.import_module(compiled_name)
    except ImportError:
        _chosen[name] = "python"
        return
    for key, value in vars(compiled).items():
        if not key.startswith("__"):
            module_globals[key] = value
    _chosen[name] = "compiled"


def compiled_module(name: str) -> ModuleType | None:
    """The compiled twin of module ``name``, or None when it was not built."""
    try:
        return importlib.import_module(COMPILED_TWINS[name])
    except ImportError:
        return None


def python_twin(name: str) -> ModuleType:
    """A fresh copy of module ``name`` run from its Python source, never compiled.

    Names it imported from another module's compiled twin are replaced by that module's
    Python twin, so the copy runs no compiled code of cadent's at all.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"no source for {name}")
    twin_name = name + _TWIN_SUFFIX
    twin_spec = importlib.util.spec_from_file_location(twin_name, spec.origin)
    module = importlib.util.module_from_spec(twin_spec)
    sys.modules[twin_name] = module
    twin_spec.loader.exec_module(module)
    by_twin = {compiled: dep for dep, compiled in COMPILED_TWINS.items() if dep != name}
    for key, value in list(vars(module).items()):
        dep = by_twin.get(getattr(value, "__module__", None))
        if dep is not None:
            setattr(module, key, getattr(python_twin(dep), key))
    return module


def summary() -> str:
    """One line for the start-up log: which modules run compiled and which run as Python."""
    for name in COMPILED_TWINS:
        importlib.import_module(name)
    compiled = sorted(n for n in COMPILED_TWINS if _chosen.get(n) == "compiled")
    if len(compiled) == len(COMPILED_TWINS):
        return "hot paths compiled: " + ", ".join(compiled)
    if pure_python_requested():
        why = f"{PURE_PYTHON_ENV} is set"
    elif not compiled:
        why = "the compiled modules were not built"
    else:
        why = "some compiled modules were not built"
    python = sorted(n for n in COMPILED_TWINS if n not in compiled)
    line = f"hot paths in pure Python ({why}): " + ", ".join(python)
    if compiled:
        line += "; compiled: " + ", ".join(compiled)
    return line
