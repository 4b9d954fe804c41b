"""Builds the optional compiled twins of cadent's hot modules (see docs/architecture.md).

Everything else is declared in setup.cfg. Each twin is the module's own Python source compiled
by Cython in pure-Python mode, typed by the ``_cadent_c_<module>.pxd`` beside it, or the
twin's own ``_cadent_c_<module>.pyx`` where one is written. Without
Cython or a working C compiler the build warns and installs pure Python; set
``CADENT_NO_COMPILE=1`` to skip compiling on purpose.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext



def compiled_twins() -> list[tuple[str, str]]:
    """(extension module, Python source) for every entry of cadent/compiled.py's
    COMPILED_TWINS, read without importing the package (its dependencies may not be here yet)."""
    namespace: dict = {}
    with open(os.path.join("cadent", "compiled.py"), encoding="utf-8") as f:
        exec(compile(f.read(), "cadent/compiled.py", "exec"), namespace)
    return [(twin, _source(module, twin)) for module, twin in namespace["COMPILED_TWINS"].items()]


def _source(module: str, twin: str) -> str:
    """The twin's source: its own ``.pyx`` where one is written (a twin that needs C the
    Python source cannot say), else the module's ``.py``."""
    pyx = twin.replace(".", "/") + ".pyx"
    return pyx if os.path.exists(pyx) else module.replace(".", "/") + ".py"


# Parsers of network input keep Cython's bounds and negative-index checks on.
DIRECTIVES = {
    "language_level": "3",
    "boundscheck": True,
    "wraparound": True,
    "annotation_typing": False,
    "binding": False,
}


def _warn(message: str) -> None:
    print(f"WARNING: {message}; cadent installs its pure-Python modules", file=sys.stderr)


def compiled_extensions() -> list:
    if os.environ.get("CADENT_NO_COMPILE", "").strip().lower() not in ("", "0", "false", "no"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn("Cython is not available")
        return []
    extensions = [
        Extension(name, [source],
                  # no fused multiply-add: sums must round exactly as the Python twin's do;
                  # no debug information: a third of the compile time, for C that is generated
                  extra_compile_args=["-ffp-contract=off", "-g0"],
                  depends=_types(name, source))
        for name, source in compiled_twins()
    ]
    try:
        # force: Cython's change tracking does not see a .pxd named after the extension.
        return cythonize(extensions, compiler_directives=DIRECTIVES, build_dir="build/cython",
                         quiet=True, force=True)
    except Exception as exc:  # a Cython error must not make the install fail
        _warn(f"Cython could not translate the compiled twins ({exc})")
        return []


def _types(name: str, source: str) -> list[str]:
    """The ``.pxd`` typing a twin compiled from its module's ``.py``."""
    pxd = os.path.join(os.path.dirname(source), name.rsplit(".", 1)[1] + ".pxd")
    return [pxd] if source.endswith(".py") else []


class OptionalBuildExt(build_ext):
    """build_ext that turns a missing compiler or a failed compile into a warning."""

    def finalize_options(self) -> None:
        # compiling (most of the build's time) runs on every core, in threads: translating
        # in worker processes saves little more and, where those cannot start, would fail
        # the whole compile into the pure-Python fallback
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            _warn(f"building the compiled twins failed ({exc})")

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            _warn(f"compiling {ext.name} failed ({exc})")


setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": OptionalBuildExt})
