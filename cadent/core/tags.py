"""carbon's tag parser: the canonical form a tagged name is cached, stored and hashed under.

Two input forms are accepted:

* carbon: ``name;tag=value;...`` — tag non-empty without any of ``;!^=``, value non-empty,
  without ``;`` and not starting with ``~``; a later duplicate tag wins.
* OpenMetrics: ``name{tag="value",...}`` (recognised when the name ends with ``"}`` and
  contains ``{``); ``\\"`` and ``\\\\`` in values are unescaped.

The canonical path is the name with leading ``~`` removed followed by the ``;tag=value`` pairs
sorted as whole strings. A tag literally called ``name`` is accepted but dropped, because the
name itself occupies that slot. Anything that does not parse is left unchanged.
"""

from __future__ import annotations

import re

_PROHIBITED_IN_TAG = frozenset(";!^=")

# One OpenMetrics label: key up to '=', a quoted value with \" and \\ escapes, then ',' or
# ':,' (the separator carbon accepts) or the end.
_OPENMETRICS_LABEL = re.compile(r'([^=]+)="((?:\\["\\]|[^"\\])+)"(?::?,|$)')


class TagParseError(ValueError):
    """A name that looks tagged but breaks carbon's tag rules."""


def _check(tag: str, value: str) -> None:
    if not tag:
        raise TagParseError("empty tag")
    if not value:
        raise TagParseError(f"empty value for tag {tag!r}")
    if not _PROHIBITED_IN_TAG.isdisjoint(tag):
        raise TagParseError(f"tag {tag!r} contains one of ';!^='")
    if ";" in value:
        raise TagParseError(f"value {value!r} of tag {tag!r} contains ';'")
    if value[0] == "~":
        raise TagParseError(f"value {value!r} of tag {tag!r} starts with '~'")


def _base_name(metric: str) -> str:
    base = metric.lstrip("~")
    if not base:
        raise TagParseError(f"name {metric!r} is empty once '~' is removed")
    return base


def _parse_openmetrics(name: str) -> tuple[str, dict[str, str]]:
    pieces = name[:-1].split("{")
    if len(pieces) != 2:
        raise TagParseError("more than one '{'")
    metric, rest = pieces
    if not metric:
        raise TagParseError("no metric before '{'")
    tags: dict[str, str] = {}
    while rest:
        m = _OPENMETRICS_LABEL.match(rest)
        if m is None:
            raise TagParseError(f"bad label segment {rest!r}")
        tag = m.group(1)
        value = m.group(2).replace('\\"', '"').replace("\\\\", "\\")
        _check(tag, value)
        tags[tag] = value
        rest = rest[m.end():]
    return _base_name(metric), tags


def _parse_carbon(name: str) -> tuple[str, dict[str, str]]:
    metric, *segments = name.split(";")
    if not metric:
        raise TagParseError("no metric before ';'")
    tags: dict[str, str] = {}
    for segment in segments:
        tag, sep, value = segment.partition("=")
        if not sep or not tag:
            raise TagParseError(f"bad tag segment {segment!r}")
        _check(tag, value)
        tags[tag] = value
    return _base_name(metric), tags


def parse_tags(name: str) -> tuple[str, dict[str, str]]:
    """Split ``name`` into (base name, tags); TagParseError if carbon would reject it.

    The returned tags never contain ``name``.
    """
    if name.endswith('"}') and "{" in name:
        base, tags = _parse_openmetrics(name)
    else:
        base, tags = _parse_carbon(name)
    tags.pop("name", None)
    return base, tags


def format_tags(base: str, tags: dict[str, str]) -> str:
    """The canonical path: ``base`` plus the ``;tag=value`` strings in sorted order."""
    return base + "".join(sorted(f";{tag}={value}" for tag, value in tags.items()))


def normalize_name(name: str) -> str:
    """Canonical form of ``name`` (see the module doc); unchanged when it does not parse."""
    if ";" not in name and name[:1] != "~" and not name.endswith('"}'):
        return name
    try:
        return format_tags(*parse_tags(name))
    except TagParseError:
        return name


def is_tagged(name: str) -> bool:
    """True when a (normalized) name carries tags, i.e. is stored under ``_tagged/``."""
    return ";" in name


__all__ = ["TagParseError", "format_tags", "is_tagged", "normalize_name", "parse_tags"]
