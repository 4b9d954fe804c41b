"""rewrite-rules.conf: name rewrites the aggregator applies before (``[pre]``) and after
(``[post]``) aggregation.

File format (carbon's): ``[pre]`` / ``[post]`` headers, any case; each rule line is
``regex = replacement``, split at the first ``=`` with both sides stripped; rules apply in
file order with ``re.sub`` (every occurrence, ``\\1`` and ``\\g<name>`` back-references).
Blank lines and lines starting with ``#`` (after leading blanks) are comments. A missing file
means no rules. As in carbon, rules before any header or under another header are not used,
and a repeated header starts its rule set afresh (both logged).

Unlike carbon, which skips them, a bad regex, a replacement referring to a group the regex
lacks, or a line that is neither a header nor a rule is a :class:`ConfigError` (file:line).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from cadent.compat.errors import ConfigError
from cadent.core.route.rewrite import apply_rules

log = logging.getLogger(__name__)

PRE = "pre"
POST = "post"


@dataclass(frozen=True)
class RewriteRule:
    """``regex`` → ``replacement`` (an ``re.sub`` template), from line ``line``."""

    regex: re.Pattern[str]
    replacement: str
    line: int

    def apply(self, name: str) -> str:
        """``name`` with every match of the regex replaced."""
        return self.regex.sub(self.replacement, name)


@dataclass(frozen=True)
class RewriteRules:
    """The two rule sets of a rewrite-rules file."""

    pre: tuple[RewriteRule, ...] = ()
    post: tuple[RewriteRule, ...] = ()


def _parse_rule(text: str, filename: str, number: int) -> RewriteRule:
    pattern, _, replacement = text.partition("=")
    pattern, replacement = pattern.strip(), replacement.strip()
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(filename, number, f"invalid regex {pattern!r}: {exc}") from None
    try:
        regex.sub(replacement, "")  # the template is checked even when nothing matches
    except (re.error, IndexError) as exc:
        raise ConfigError(filename, number,
                          f"invalid replacement {replacement!r} for {pattern!r}: {exc}") from None
    return RewriteRule(regex, replacement, number)


def parse_rewrite_rules(text: str, filename: str) -> RewriteRules:
    """Parse the text of a rewrite-rules file named ``filename`` (used in messages)."""
    rulesets: dict[str, list[RewriteRule]] = {}
    section: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].lower()
            if section in rulesets and rulesets[section]:
                log.warning("%s:%d: [%s] repeated; the rules above it are discarded",
                            filename, number, section)
            rulesets[section] = []
            if section not in (PRE, POST):
                log.warning("%s:%d: unknown section [%s]; its rules are not used",
                            filename, number, section)
            continue
        if "=" not in line:
            raise ConfigError(filename, number,
                              f"neither a [section] header nor 'regex = replacement': {line!r}")
        rule = _parse_rule(line, filename, number)
        if section is None:
            log.warning("%s:%d: rule before any [pre]/[post] header is not used",
                        filename, number)
            continue
        rulesets[section].append(rule)
    return RewriteRules(tuple(rulesets.get(PRE, ())), tuple(rulesets.get(POST, ())))


def read_rewrite_rules(path: str) -> RewriteRules:
    """Rules of ``path`` (a missing file has none); ConfigError on a bad line or regex."""
    if not os.path.exists(path):
        return RewriteRules()
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, 0, f"cannot read: {exc}") from None
    return parse_rewrite_rules(text, path)


__all__ = ["POST", "PRE", "RewriteRule", "RewriteRules", "apply_rules", "parse_rewrite_rules",
           "read_rewrite_rules"]
