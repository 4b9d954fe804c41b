"""A small parser for graphite target expressions.

    target   := call | string | number | bool | path
    call     := IDENT '(' [arg (',' arg)*] ')'
    arg      := IDENT '=' target | target

Strings are single- or double-quoted and kept literally (no escape processing, so ``"\\1"``
stays a regex back-reference). A path runs until a ``,`` ``)`` or ``(`` outside ``{}``/``[]``.
Calls nest at most ``MAX_DEPTH`` deep. Anything else is an ExprError, the only exception
:func:`parse` raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
MAX_DEPTH = 64


class ExprError(ValueError):
    """A target that does not parse."""


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple
    kwargs: tuple  # ((key, value), ...)
    text: str


@dataclass(frozen=True)
class Path:
    pattern: str


def parse(text: str):
    """Parse one target into Call / Path / str / int / float / bool / None."""
    value, pos = _parse(text, _skip(text, 0), 0)
    pos = _skip(text, pos)
    if pos != len(text):
        raise ExprError(f"unexpected {text[pos:]!r} at position {pos}")
    return value


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _parse(text: str, pos: int, depth: int):
    if pos >= len(text):
        raise ExprError("unexpected end of target")
    ch = text[pos]
    if ch in "'\"":
        end = text.find(ch, pos + 1)
        if end < 0:
            raise ExprError("unterminated string")
        return text[pos + 1 : end], end + 1
    ident = _IDENT.match(text, pos)
    if ident and _skip(text, ident.end()) < len(text) and text[_skip(text, ident.end())] == "(":
        if depth >= MAX_DEPTH:
            raise ExprError(f"calls nested more than {MAX_DEPTH} deep")
        return _parse_call(text, ident.group(), pos, _skip(text, ident.end()) + 1, depth + 1)
    number = _NUMBER.match(text, pos)
    if number and _at_arg_end(text, number.end()):
        literal = number.group()
        try:
            value = float(literal) if any(c in literal for c in ".eE") else int(literal)
        except ValueError:  # more digits than int() converts
            raise ExprError(f"number too long at position {pos}") from None
        return value, number.end()
    if ident and _at_arg_end(text, ident.end()) and ident.group().lower() in ("true", "false", "none"):
        return {"true": True, "false": False, "none": None}[ident.group().lower()], ident.end()
    depth = 0
    end = pos
    while end < len(text):
        c = text[end]
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        elif depth <= 0 and (c in ",)(" or c.isspace()):
            break
        end += 1
    if end == pos:
        raise ExprError(f"unexpected {text[pos]!r} at position {pos}")
    return Path(text[pos:end]), end


def _at_arg_end(text: str, pos: int) -> bool:
    pos = _skip(text, pos)
    return pos >= len(text) or text[pos] in ",)"


def _parse_call(text: str, name: str, start: int, pos: int, depth: int):
    args, kwargs = [], []
    pos = _skip(text, pos)
    if pos < len(text) and text[pos] == ")":
        return Call(name, (), (), text[start : pos + 1]), pos + 1
    while True:
        pos = _skip(text, pos)
        key = _IDENT.match(text, pos)
        after = _skip(text, key.end()) if key else pos
        if key and after < len(text) and text[after] == "=" and text[after : after + 2] != "==":
            value, pos = _parse(text, _skip(text, after + 1), depth)
            kwargs.append((key.group(), value))
        else:
            if kwargs:
                raise ExprError("positional argument after keyword argument")
            value, pos = _parse(text, pos, depth)
            args.append(value)
        pos = _skip(text, pos)
        if pos >= len(text):
            raise ExprError(f"missing ')' in call of {name}")
        if text[pos] == ")":
            return Call(name, tuple(args), tuple(kwargs), text[start : pos + 1]), pos + 1
        if text[pos] != ",":
            raise ExprError(f"unexpected {text[pos]!r} at position {pos}")
        pos += 1


def path_expressions(node) -> list[str]:
    """Every path pattern in a parsed target, in order."""
    if isinstance(node, Path):
        return [node.pattern]
    if isinstance(node, Call):
        out = []
        for arg in list(node.args) + [v for _, v in node.kwargs]:
            out.extend(path_expressions(arg))
        return out
    return []


__all__ = ["Call", "ExprError", "Path", "parse", "path_expressions"]
