"""Is an unpickled frame a batch exactly as carbon sends it, and can it go on as it stands?

carbon's relays and most clients pickle ``[(name, (timestamp, value)), ...]`` with str names
and float numbers. :func:`carbon_batch` recognises that shape with C-level passes over the list
and says whether the list is already a valid Batch (the common case: no copy, no per-point
Python call) or which columns the receiver checks must still go through. It has a compiled
twin (``_cadent_c_pickle_shape.pyx``): at 100k metrics these passes were a sixth of what the
receiving thread does with each point.
"""

from __future__ import annotations

import re
from math import isfinite
from operator import itemgetter

_first = itemgetter(0)
_second = itemgetter(1)
_TUPLE = {tuple}
_PAIR = {2}
_FLOAT = {float}
_NUMBER_TYPES = {float, int}
_STR = {str}

# What str.split() splits on: the ASCII ones, and (for other text) the same set as a regex.
_ASCII_SPACES = (" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")
_SPACE = re.compile(r"\s")

#: columns of a frame: names, timestamps and values (floats)
Columns = tuple[list, list, list]


def carbon_batch(obj: list, resolution: int = 0) -> list | Columns | None:
    """For a non-empty list ``obj``: ``obj`` itself when it is a valid Batch as it stands,
    its columns when it is shaped as carbon sends it but needs the receiver checks (a number
    that is an int, NaN or infinite, a timestamp at or below -1, or a ``resolution`` to
    round timestamps to), None when it is not shaped so (the caller checks item by item).

    carbon's shape: every item a tuple of a name and a tuple of two numbers (float or int),
    every name a non-empty str that UTF-8 can encode and carbon's line protocol can carry
    (no whitespace).
    """
    columns = _carbon_columns(obj)
    if columns is None:
        return None
    names, timestamps, values, floats = columns
    if (floats and not resolution and all(map(isfinite, timestamps))
            and all(map(isfinite, values)) and min(timestamps) > -1.0):
        return obj
    return names, timestamps, values


def _carbon_columns(obj: list) -> tuple[list, list, list, bool] | None:
    """Columns of a non-empty list shaped as carbon sends it (see :func:`carbon_batch`), or
    None. The last element tells whether every number was already a float. C-level passes."""
    if set(map(type, obj)) != _TUPLE or set(map(len, obj)) != _PAIR:
        return None
    points = list(map(_second, obj))
    if set(map(type, points)) != _TUPLE or set(map(len, points)) != _PAIR:
        return None
    names = list(map(_first, obj))
    timestamps = list(map(_first, points))
    values = list(map(_second, points))
    number_types = set(map(type, timestamps))
    number_types.update(map(type, values))
    if not number_types <= _NUMBER_TYPES or set(map(type, names)) != _STR:
        return None
    joined = "".join(names)
    if not encodable(joined) or not line_safe(joined, names):
        return None
    if number_types == _FLOAT:
        return names, timestamps, values, True
    try:
        return names, list(map(float, timestamps)), list(map(float, values)), False
    except OverflowError:
        return None


def encodable(text: str) -> bool:
    """False for text holding surrogates (pickle lets them through; UTF-8 cannot)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def line_safe(joined: str, names: list | tuple) -> bool:
    """True when every one of ``names`` (concatenated in ``joined``) would come out of carbon's
    line parser as one field: not empty, no whitespace. For ASCII text this is a few
    ``memchr`` passes (about 1 % of parsing a frame)."""
    if not all(names):
        return False
    if joined.isascii():
        for space in _ASCII_SPACES:
            if space in joined:
                return False
        return True
    return _SPACE.search(joined) is None


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.core.parse._cadent_c_pickle_shape")
