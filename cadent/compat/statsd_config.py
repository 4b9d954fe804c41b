"""Read statsd configuration: Etsy statsd's ``config.js`` or a ``[statsd]`` INI section.

``config.js`` is a JavaScript object literal that statsd evaluates. It is read here with a
small tokenizer and recursive-descent parser (no code runs): ``//`` and ``/* */`` comments,
unquoted keys, single or double quoted strings with JavaScript escapes, trailing commas,
nested objects and arrays, numbers (decimal, ``.5``, exponents, hex/octal/binary, signs,
``Infinity``/``NaN``), ``true``/``false``/``null``/``undefined``. An optional wrapping
``( … )`` and a trailing ``;`` are accepted.

A cadent/carbon-style file may instead carry a ``[statsd]`` section (configobj syntax) using
statsd's key names (any case) with a ``[[graphite]]`` subsection; structured values
(``histogram``, ``servers``, ``repeater``, ``nodes``) are written as a JSON/JS literal.
cadent's own keys may also be spelled as in carbon.conf: ``SPOOL_DIR``, ``SPOOL_MAX_BYTES``,
``SPOOL_AFTER_S``, ``SHUTDOWN_DRAIN_SECONDS``, ``WORKERS`` and ``HTTP_PORT`` /
``HTTP_INTERFACE`` / ``HTTP_TOKEN``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from cadent.compat.errors import ConfigError
from cadent.statsd.config import (
    GRAPHITE_SETTINGS,
    PROXY_SETTINGS,
    STATSD_SETTINGS,
    ProxySettings,
    StatsdSettings,
    proxy_settings,
    statsd_settings,
)
from cadent.statsd.numbers import js_number

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n\v\f\u00a0\ufeff\u2028\u2029]+)
  | (?P<line_comment>//[^\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.|\\\n)*"|'(?:[^'\\\n]|\\.|\\\n)*')
  | (?P<number>0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<ident>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<punct>[{}\[\]:,()+\-;])
    """,
    re.VERBOSE | re.DOTALL,
)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
_KEYWORDS = {"true": True, "false": False, "null": None, "undefined": None, "Infinity": math.inf, "NaN": math.nan}


def _unescape(body: str) -> str:
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        i += 2
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
        elif nxt == "x":
            out.append(chr(int(body[i : i + 2], 16)))
            i += 2
        elif nxt == "u":
            if body[i : i + 1] == "{":
                end = body.index("}", i)
                out.append(chr(int(body[i + 1 : end], 16)))
                i = end + 1
            else:
                out.append(chr(int(body[i : i + 4], 16)))
                i += 4
        elif nxt == "\n":
            pass
        else:
            out.append(nxt)
    return "".join(out)


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        line = 1
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                what = "unterminated comment" if text.startswith("/*", pos) else (
                    "unterminated string" if text[pos] in "'\"" else f"unexpected character {text[pos]!r}")
                raise ConfigError(filename, line, what)
            kind = m.lastgroup
            value = m.group()
            if kind not in ("ws", "line_comment", "block_comment"):
                self.tokens.append((kind, value, line))
            line += value.count("\n")
            pos = m.end()
        self.tokens.append(("eof", "", line))
        self.i = 0
        self.top_lines: dict[str, int] = {}

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, value: str) -> None:
        kind, text, line = self.take()
        if text != value or kind not in ("punct",):
            shown = "end of file" if kind == "eof" else repr(text)
            raise ConfigError(self.filename, line, f"expected {value!r}, found {shown}")

    def document(self) -> Any:
        parens = 0
        while self.peek()[1] == "(" and self.peek()[0] == "punct":
            self.take()
            parens += 1
        value = self.value(depth=0)
        for _ in range(parens):
            self.expect(")")
        while self.peek()[1] == ";" and self.peek()[0] == "punct":
            self.take()
        kind, text, line = self.peek()
        if kind != "eof":
            raise ConfigError(self.filename, line, f"unexpected {text!r} after the config object")
        return value

    def value(self, depth: int) -> Any:
        kind, text, line = self.take()
        if kind == "punct" and text == "{":
            return self.obj(depth)
        if kind == "punct" and text == "[":
            return self.array(depth)
        if kind == "string":
            return _unescape(text[1:-1])
        if kind == "number":
            number = js_number(text)
            radix = text[:2].lower() in ("0x", "0o", "0b")
            plain = radix or not any(c in text for c in ".eE")
            return int(number) if plain and abs(number) < 2**53 else number
        if kind == "punct" and text in "+-":
            operand = self.value(depth)
            if isinstance(operand, bool) or not isinstance(operand, (int, float)):
                raise ConfigError(self.filename, line, f"'{text}' must precede a number")
            return -operand if text == "-" else operand
        if kind == "ident" and text in _KEYWORDS:
            return _KEYWORDS[text]
        shown = "end of file" if kind == "eof" else repr(text)
        raise ConfigError(self.filename, line, f"expected a value, found {shown}")

    def obj(self, depth: int) -> dict:
        out: dict[str, Any] = {}
        while True:
            kind, text, line = self.take()
            if kind == "punct" and text == "}":
                return out
            if kind == "string":
                key = _unescape(text[1:-1])
            elif kind in ("ident", "number"):
                key = text if kind == "ident" else str(js_number(text)).removesuffix(".0")
            else:
                shown = "end of file" if kind == "eof" else repr(text)
                raise ConfigError(self.filename, line, f"expected a key or '}}', found {shown}")
            self.expect(":")
            out[key] = self.value(depth + 1)
            if depth == 0:
                self.top_lines[key] = line
            kind, text, line = self.take()
            if kind == "punct" and text == "}":
                return out
            if not (kind == "punct" and text == ","):
                shown = "end of file" if kind == "eof" else repr(text)
                raise ConfigError(self.filename, line, f"expected ',' or '}}', found {shown}")

    def array(self, depth: int) -> list:
        out: list[Any] = []
        while True:
            kind, text, _line = self.peek()
            if kind == "punct" and text == "]":
                self.take()
                return out
            out.append(self.value(depth + 1))
            kind, text, line = self.take()
            if kind == "punct" and text == "]":
                return out
            if not (kind == "punct" and text == ","):
                shown = "end of file" if kind == "eof" else repr(text)
                raise ConfigError(self.filename, line, f"expected ',' or ']', found {shown}")


def parse_js_object(text: str, filename: str = "<config.js>") -> tuple[Any, dict[str, int]]:
    """Parse a JavaScript object literal; returns (value, line of each top-level key)."""
    parser = _Parser(text, filename)
    value = parser.document()
    return value, parser.top_lines


def _read(filename: str) -> str:
    try:
        with open(filename, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(filename, 0, f"cannot read: {exc}") from exc


def load_config_js(filename: str) -> StatsdSettings:
    """Read a statsd ``config.js`` into :class:`StatsdSettings`."""
    value, lines = parse_js_object(_read(filename), filename)
    if not isinstance(value, dict):
        raise ConfigError(filename, 1, "the config must be an object literal { ... }")
    return statsd_settings(value, filename, lines)


def load_proxy_config_js(filename: str) -> ProxySettings:
    """Read a statsd ``proxyConfig.js`` into :class:`ProxySettings`."""
    value, lines = parse_js_object(_read(filename), filename)
    if not isinstance(value, dict):
        raise ConfigError(filename, 1, "the config must be an object literal { ... }")
    return proxy_settings(value, filename, lines)


_STRUCTURED = {"histogram", "servers", "repeater", "nodes", "log", "keyFlush", "console"}


def _ini_lines(filename: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    section = ""
    try:
        text = _read(filename)
    except ConfigError:
        return lines
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[]").strip().lower()
            continue
        if section == "statsd" and "=" in stripped and not stripped.startswith("#"):
            lines.setdefault(stripped.split("=", 1)[0].strip().lower(), number)
    return lines


# carbon.conf's names of keys whose attribute is named otherwise (SPOOL_* match theirs)
_CARBON_NAMES = {"SHUTDOWN_DRAIN_SECONDS": "shutdownDrainSeconds"}


def _ini_mapping(section, names: tuple, filename: str,
                 spelled: dict[str, str] | None = None) -> dict[str, Any]:
    """The section's keys under their statsd names; ``spelled`` gets each name's key as
    written (lower-cased), which is how :func:`_ini_lines` finds its line."""
    by_lower = {}
    for decl in names:
        by_lower[decl.name.lower()] = decl.name
        by_lower[decl.attr.lower()] = decl.name
    declared = set(by_lower.values())
    for carbon_name, name in _CARBON_NAMES.items():
        if name in declared:
            by_lower[carbon_name.lower()] = name
    out: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, dict) or hasattr(value, "sections"):
            continue
        name = by_lower.get(key.lower(), key)
        if name in _STRUCTURED and isinstance(value, str):
            value, _ = parse_js_object(value, filename)
        out[name] = value
        if spelled is not None:
            spelled[name] = key.lower()
    return out


_HTTP_KEYS = ("HTTP_PORT", "HTTP_INTERFACE", "HTTP_TOKEN")   # [statsd]'s form of http: {...}


def load_ini_section(filename: str, section: str = "statsd", proxy: bool = False):
    """Read the ``[statsd]`` section of a configobj/INI file into the same settings object."""
    from configobj import ConfigObj, ConfigObjError

    try:
        config = ConfigObj(filename, file_error=True, encoding="utf-8", interpolation=False)
    except (ConfigObjError, OSError) as exc:
        raise ConfigError(filename, getattr(exc, "line_number", 0) or 0, str(exc)) from exc
    found = None
    for name in config.sections:
        if name.lower() == section.lower():
            found = config[name]
    if found is None:
        raise ConfigError(filename, 0, f"no [{section}] section")
    lines = _ini_lines(filename)
    decls = PROXY_SETTINGS if proxy else STATSD_SETTINGS
    spelled: dict[str, str] = {}
    raw = _ini_mapping(found, decls, filename, spelled)
    if not proxy:
        http = {key[5:].lower().replace("interface", "address"): raw.pop(key)
                for key in [k for k in raw if k.upper() in _HTTP_KEYS]}
        if http:
            raw["http"] = {k: int(v) if k == "port" and str(v).strip().isdigit() else v
                           for k, v in http.items()}
    for sub in found.sections:
        if sub.lower() == "graphite" and not proxy:
            raw["graphite"] = _ini_mapping(found[sub], GRAPHITE_SETTINGS, filename)
    key_lines = {k: lines.get(spelled.get(k, k.lower()), 0) for k in raw}
    if proxy:
        return proxy_settings(raw, filename, key_lines)
    return statsd_settings(raw, filename, key_lines)


__all__ = ["parse_js_object", "load_config_js", "load_proxy_config_js", "load_ini_section"]
