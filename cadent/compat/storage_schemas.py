"""storage-schemas.conf: which archives a new whisper file gets.

Matching, exactly as carbon-cache applies it: sections in file order; the first whose
``pattern`` (``re.search``, case-sensitive) matches the normalised name wins; nothing matching
→ 60 s × 10080 points (``60:7d``). A section without a (non-empty) ``pattern`` is skipped and
logged, as in carbon.

Fatal (ConfigError with file:line), where carbon-cache only refuses the first one and skips
the section for the other two, so that its metrics silently get the 60 s default:

* a malformed retention (even in a section skipped for having no pattern);
* a section without ``retentions`` (reported at its header line);
* an archive list whisper's ``validateArchiveList`` refuses (duplicate precision, precision
  not dividing the next, retention not growing, too few points to consolidate), or a zero
  precision or point count.

Retention syntax: ``precision:points``, each side digits or ``<digits><unit>`` with ``unit`` one
of ``s m h d w y``; a duration on the right is divided by the precision and truncated.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import whisper

from cadent.compat.carbon_ini import IniSection, file_exists, read_ini
from cadent.compat.errors import ConfigError

log = logging.getLogger(__name__)

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_WITH_UNIT = re.compile(r"(\d+)([a-z]+)")

Archive = tuple[int, int]  # (seconds per point, number of points)


def _amount(text: str, what: str) -> tuple[int, int | None]:
    """(number, unit seconds or None) of one side of a retention; ValueError when malformed."""
    if text.isdigit():
        return int(text), None
    match = _WITH_UNIT.fullmatch(text)
    if match is None:
        raise ValueError(f"Invalid {what} specification '{text}'")
    unit = match.group(2)
    if unit not in UNIT_SECONDS:
        raise ValueError(f"Invalid unit '{unit}'")
    return int(match.group(1)), UNIT_SECONDS[unit]


def parse_retention(text: str) -> Archive:
    """``'10s:7d'`` → ``(10, 60480)``; ValueError when carbon would refuse it."""
    parts = text.strip().split(":")
    if len(parts) != 2:
        raise ValueError(f"Invalid retention definition '{text.strip()}'")
    number, unit = _amount(parts[0], "precision")
    precision = number * (unit or 1)
    count, unit = _amount(parts[1], "retention")
    if unit is None:
        return precision, count
    if precision == 0:
        raise ValueError(f"Invalid retention definition '{text.strip()}': zero precision")
    return precision, count * unit // precision


def parse_retentions(text: str) -> list[Archive]:
    """A comma list of retentions, in the order written."""
    return [parse_retention(item) for item in text.split(",")]


@dataclass(frozen=True)
class Schema:
    """One usable section: its name, the compiled pattern and archives sorted by precision."""

    name: str
    pattern: str
    archives: tuple[Archive, ...]
    regex: re.Pattern | None = None

    def matches(self, metric: str) -> bool:
        return self.regex is None or self.regex.search(metric) is not None


DEFAULT_SCHEMA = Schema("default", "", ((60, 10080),), None)


class StorageSchemas:
    """The ordered schema list plus the built-in default; ``match`` is first-wins."""

    def __init__(self, schemas: list[Schema]) -> None:
        self.schemas: tuple[Schema, ...] = tuple(schemas)

    def match(self, metric: str) -> Schema:
        for schema in self.schemas:
            if schema.regex is not None and schema.regex.search(metric) is not None:
                return schema
        return DEFAULT_SCHEMA

    def archives_for(self, metric: str) -> list[Archive]:
        return list(self.match(metric).archives)

    @classmethod
    def default(cls) -> "StorageSchemas":
        return cls([])


def _archives(filename: str, section: IniSection) -> list[Archive]:
    """The section's archive list as whisper would accept it; ConfigError at file:line."""
    options = section.options
    if "retentions" not in options:
        raise ConfigError(filename, section.line, f"schema [{section.name}] has no "
                          "'retentions' (its metrics would get the 60s:7d default)")
    line = section.lines["retentions"]
    try:
        archives = parse_retentions(options["retentions"])
    except ValueError as exc:
        raise ConfigError(filename, line, f"{exc} in section [{section.name}]") from exc
    try:
        if any(precision <= 0 or points <= 0 for precision, points in archives):
            raise whisper.InvalidConfiguration("precision and points must be positive")
        whisper.validateArchiveList(list(archives))
    except whisper.InvalidConfiguration as exc:
        raise ConfigError(filename, line, f"schema [{section.name}] has an invalid retention "
                          f"definition {options['retentions']!r}: {exc}") from None
    return archives


def load_storage_schemas(filename: str) -> StorageSchemas:
    """Parse ``filename``; ConfigError (fatal at start-up) on any entry listed in the module doc."""
    if not file_exists(filename):
        raise ConfigError(filename, 0, "missing config file or wrong permissions")
    schemas: list[Schema] = []
    for section in read_ini(filename):
        archives = _archives(filename, section)
        pattern = section.options.get("pattern", "")
        if not pattern:
            log.error("%s: schema [%s] has no 'pattern', skipping", filename, section.name)
            continue
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                filename, section.lines["pattern"], f"invalid pattern {pattern!r}: {exc}"
            ) from exc
        schemas.append(Schema(section.name, pattern, tuple(sorted(archives)), regex))
    return StorageSchemas(schemas)


__all__ = [
    "Archive", "DEFAULT_SCHEMA", "Schema", "StorageSchemas", "UNIT_SECONDS",
    "load_storage_schemas", "parse_retention", "parse_retentions",
]
