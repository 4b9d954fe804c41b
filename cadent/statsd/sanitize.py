"""statsd's key sanitising (``keyNameSanitize``), applied to a key after tags were appended.

Runs of JavaScript whitespace become one ``_``, ``/`` becomes ``-``, and every character
outside ``[A-Za-z0-9_.;=-]`` (non-ASCII letters included) is removed.
"""

from __future__ import annotations

import re

from cadent.statsd.numbers import JS_WHITESPACE

_WS_RUN = re.compile("[" + re.escape(JS_WHITESPACE) + "]+")
_DISALLOWED = re.compile(r"[^A-Za-z0-9_.;=\-]")
_CLEAN = re.compile(r"[A-Za-z0-9_.;=\-]*\Z")


def sanitize_key(key: str) -> str:
    """The key as statsd stores it with ``keyNameSanitize: true``."""
    if _CLEAN.match(key):
        return key
    key = _WS_RUN.sub("_", key)
    key = key.replace("/", "-")
    return _DISALLOWED.sub("", key)


__all__ = ["sanitize_key"]
