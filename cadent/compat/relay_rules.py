"""relay-rules.conf: the ``rules`` router's table.

Semantics (carbon's): sections in file order; a section with ``pattern`` (case-insensitive
``re.search``) and ``destinations`` (comma list), optionally ``continue = true``; exactly one
section with ``default = true`` (``default = false`` sections are ignored), which is moved to
the end. Start-up errors, each reported as ``file:line``: a section without ``destinations``,
a section with both ``pattern`` and ``default``, no default, two defaults, a bad regex, a bad
boolean, a malformed destination, and (checked by the relay's settings, which know
``DESTINATIONS``) a destination missing from ``DESTINATIONS`` — carbon silently skips it, so
the rule's metrics may go nowhere. A section with neither pattern nor default is ignored with a
warning; so are keys carbon does not read.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Iterable

from cadent.compat.carbon_ini import IniSection, read_ini
from cadent.compat.errors import ConfigError
from cadent.compat.settings import parse_value
from cadent.core.route.destination import Destination, parse_destination

log = logging.getLogger(__name__)

_KEYS = frozenset({"pattern", "destinations", "continue", "default"})
_DEFAULT_SECTION = "DEFAULT"


@dataclass(frozen=True)
class RelayRule:
    """One rule: ``pattern`` is None for the default rule; ``line`` is its section header,
    ``destinations_line`` the line of its ``destinations`` key."""

    name: str
    pattern: re.Pattern[str] | None
    destinations: list[str]
    continue_matching: bool
    is_default: bool
    line: int
    destinations_line: int = 0

    def matches(self, name: str) -> bool:
        """True when this rule applies to metric ``name`` (the default rule always does)."""
        return self.pattern is None or self.pattern.search(name) is not None


def _bool(filename: str, section: IniSection, key: str, options: dict[str, str]) -> bool:
    try:
        return parse_value("bool", options[key])
    except ValueError as exc:
        raise ConfigError(filename, section.lines.get(key, section.line),
                          f"[{section.name}] {key}: {exc}") from None


def _rule(filename: str, section: IniSection, defaults: dict[str, str]) -> RelayRule | None:
    options = {**defaults, **section.options}
    lines = section.lines
    for key in options:
        if key not in _KEYS:
            log.warning("%s:%d: [%s] unknown key %r ignored", filename,
                        lines.get(key, section.line), section.name, key)
    if "destinations" not in options:
        raise ConfigError(filename, section.line,
                          f"[{section.name}] does not define a 'destinations' list")
    line = lines.get("destinations", section.line)
    destinations = [item.strip() for item in options["destinations"].split(",")]
    for item in destinations:
        try:
            parse_destination(item)
        except ValueError as exc:
            raise ConfigError(filename, line, f"[{section.name}] destinations: {exc}") from None

    if "pattern" in options:
        if "default" in options:
            raise ConfigError(filename, section.line,
                              f"[{section.name}] has both 'pattern' and 'default'; use one")
        try:
            pattern = re.compile(options["pattern"], re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(filename, lines.get("pattern", section.line),
                              f"[{section.name}] pattern {options['pattern']!r}: {exc}") from None
        continue_matching = ("continue" in options
                             and _bool(filename, section, "continue", options))
        return RelayRule(section.name, pattern, destinations, continue_matching, False,
                         section.line, line)

    if "default" in options:
        if not _bool(filename, section, "default", options):
            return None
        return RelayRule(section.name, None, destinations, False, True, section.line, line)

    log.warning("%s:%d: [%s] has neither 'pattern' nor 'default'; ignored",
                filename, section.line, section.name)
    return None


def rules_from_sections(sections: list[IniSection], filename: str) -> list[RelayRule]:
    """Build the rule list from parsed sections (file order), the default rule last."""
    defaults: dict[str, str] = {}
    rules: list[RelayRule] = []
    default_rule: RelayRule | None = None
    for section in sections:
        if section.name == _DEFAULT_SECTION:
            defaults = dict(section.options)
    for section in sections:
        if section.name == _DEFAULT_SECTION:
            continue
        rule = _rule(filename, section, defaults)
        if rule is None:
            continue
        if rule.is_default:
            if default_rule is not None:
                raise ConfigError(filename, rule.line,
                                  f"[{rule.name}] is a second default rule (first: "
                                  f"[{default_rule.name}] on line {default_rule.line})")
            default_rule = rule
        else:
            rules.append(rule)
    if default_rule is None:
        raise ConfigError(filename, 0, "no default rule: exactly one section needs "
                                       "'default = true' instead of a pattern")
    rules.append(default_rule)
    return rules


def check_rule_destinations(rules: list[RelayRule], configured: Iterable[Destination],
                            filename: str) -> None:
    """ConfigError at the rule's ``destinations`` line for a destination not in
    ``configured`` (DESTINATIONS, compared as the exact host, port and instance)."""
    known = set(configured)
    for rule in rules:
        for text in rule.destinations:
            if parse_destination(text) not in known:
                raise ConfigError(filename, rule.destinations_line or rule.line,
                                  f"[{rule.name}] sends to {text}, which is not in DESTINATIONS "
                                  f"({', '.join(sorted(d.key for d in known))})")


def read_relay_rules(path: str) -> list[RelayRule]:
    """Rules of ``path``; ConfigError (file:line) on anything carbon would refuse at start-up."""
    return rules_from_sections(read_ini(path), path)


__all__ = ["RelayRule", "check_rule_destinations", "read_relay_rules", "rules_from_sections"]
