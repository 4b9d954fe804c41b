"""JavaScript number semantics that statsd's wire format depends on.

statsd accepts a value when JavaScript's ``Number(text)`` is not NaN and prints every value
with ``Number.prototype.toString``. Python's ``float()`` and ``repr()`` differ from both
(``float("1_000")``, ``float("inf")`` and non-ASCII digits parse; ``repr(1e20)`` is
``1e+20`` where JavaScript prints ``100000000000000000000``), so both directions live here.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

# JavaScript's WhiteSpace and LineTerminator code points (what String.prototype.trim and
# Number() strip, and what the regex class \s matches).
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)

_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\Z")
_RADIX = re.compile(r"0(?:[xX](?P<x>[0-9a-fA-F]+)|[oO](?P<o>[0-7]+)|[bB](?P<b>[01]+))\Z")

NAN = float("nan")
INF = float("inf")
_EXACT_INT_LIMIT = 9007199254740992.0  # 2**53: every integer below it is a double


def js_number(text: str) -> float:
    """``Number(text)`` for a string: the float, or NaN when JavaScript gives NaN."""
    s = text.strip(JS_WHITESPACE)
    if not s:
        return 0.0
    if _DECIMAL.match(s):
        if s[-1] == "y":  # [+-]Infinity
            return -INF if s[0] == "-" else INF
        return float(s)
    m = _RADIX.match(s)
    if m:
        if m.group("x") is not None:
            return float(int(m.group("x"), 16))
        if m.group("o") is not None:
            return float(int(m.group("o"), 8))
        return float(int(m.group("b"), 2))
    return NAN


def is_js_number(text: str) -> bool:
    """statsd's ``isNumber``: a non-empty string whose ``Number()`` is not NaN."""
    if not text:
        return False
    return js_number(text) == js_number(text)


def js_str(x: float) -> str:
    """``String(x)`` for a JavaScript number (shortest round-trip digits, JS exponent rules)."""
    if type(x) is int:
        return str(x)
    return _js_double_str(x)


def _js_double_str(x: float) -> str:
    if -_EXACT_INT_LIMIT < x < _EXACT_INT_LIMIT:  # false for NaN and the infinities
        whole = int(x)
        if whole == x:  # -0.0 included: JavaScript prints it as "0"
            return f"{whole}"  # one C conversion when compiled
        # repr() has JavaScript's shortest round-trip digits, and where it prints them
        # without an exponent (1e-4 <= |x| < 1e16) JavaScript does too, the same way.
        text = repr(x)
        if "e" not in text:
            return text
    return _js_str_general(x)


def _js_str_general(x: float) -> str:
    """``js_str`` by the letter of ``Number::toString``: any double, from repr()'s digits."""
    if x != x:
        return "NaN"
    if x == INF:
        return "Infinity"
    if x == -INF:
        return "-Infinity"
    if x == 0:
        return "0"
    t = Decimal(repr(abs(x))).normalize().as_tuple()
    d = "".join(map(str, t.digits))
    k = len(d)
    n = t.exponent + k
    if k <= n <= 21:
        s = d + "0" * (n - k)
    elif 0 < n <= 21:
        s = d[:n] + "." + d[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * -n + d
    else:
        e = n - 1
        s = (d if k == 1 else d[0] + "." + d[1:]) + "e" + ("+" if e > 0 else "-") + str(abs(e))
    return ("-" if x < 0 else "") + s


def round_half_up(x: float) -> float:
    """JavaScript ``Math.round``: nearest integer, ties towards +Infinity."""
    if x != x or x in (INF, -INF):
        return x
    r = math.floor(x)
    return float(r + 1 if x - r >= 0.5 else r)


__all__ = ["JS_WHITESPACE", "js_number", "is_js_number", "js_str", "round_half_up", "NAN", "INF"]


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.statsd._cadent_c_numbers")
