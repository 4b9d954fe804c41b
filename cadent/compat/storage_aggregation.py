"""storage-aggregation.conf: the xFilesFactor and aggregationMethod of a new whisper file.

Same matching as storage-schemas.conf (file order, ``re.search``, first match wins). Keys
``xFilesFactor`` and ``aggregationMethod`` may each be absent: whisper's default (0.5,
``average``) then applies. Nothing matching → 0.5 / ``average``. A missing file is not an
error (all defaults). A non-numeric xFilesFactor skips the section (logged); an xFilesFactor
outside [0, 1] or an unknown method is fatal (ConfigError), like carbon's start-up failure.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from cadent.compat.carbon_ini import file_exists, read_ini
from cadent.compat.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_XFF = 0.5
DEFAULT_METHOD = "average"
METHODS = frozenset({"average", "sum", "last", "max", "min", "avg_zero", "absmax", "absmin"})


@dataclass(frozen=True)
class AggregationRule:
    """One usable section; ``xff``/``method`` are None when the section leaves them out."""

    name: str
    pattern: str
    xff: float | None
    method: str | None
    regex: re.Pattern | None = None

    def matches(self, metric: str) -> bool:
        return self.regex is None or self.regex.search(metric) is not None


DEFAULT_AGGREGATION = AggregationRule("default", "", None, None, None)


class StorageAggregation:
    """Ordered rules; ``match`` returns the first matching rule, ``settings_for`` the values."""

    def __init__(self, rules: list[AggregationRule]) -> None:
        self.rules: tuple[AggregationRule, ...] = tuple(rules)

    def match(self, metric: str) -> AggregationRule:
        for rule in self.rules:
            if rule.regex is not None and rule.regex.search(metric) is not None:
                return rule
        return DEFAULT_AGGREGATION

    def settings_for(self, metric: str) -> tuple[float, str]:
        """(xFilesFactor, aggregationMethod) a new file for ``metric`` is created with."""
        rule = self.match(metric)
        xff = DEFAULT_XFF if rule.xff is None else rule.xff
        method = DEFAULT_METHOD if rule.method is None else rule.method
        return xff, method

    @classmethod
    def default(cls) -> "StorageAggregation":
        return cls([])


def load_storage_aggregation(filename: str) -> StorageAggregation:
    """Parse ``filename`` (absent → defaults only); ConfigError when carbon would refuse."""
    if not file_exists(filename):
        log.info("%s not found or not readable, using default aggregation", filename)
        return StorageAggregation([])
    rules: list[AggregationRule] = []
    for section in read_ini(filename):
        options = section.options
        raw_xff = options.get("xfilesfactor")
        method = options.get("aggregationmethod")
        xff: float | None = None
        if raw_xff is not None:
            try:
                xff = float(raw_xff)
            except ValueError:
                log.error("%s: invalid xFilesFactor %r in [%s], skipping section",
                          filename, raw_xff, section.name)
                continue
            if not 0 <= xff <= 1:
                raise ConfigError(filename, section.lines["xfilesfactor"],
                                  f"xFilesFactor {raw_xff} out of [0,1] in [{section.name}]")
        if method is not None and method not in METHODS:
            raise ConfigError(filename, section.lines["aggregationmethod"],
                              f"unknown aggregationMethod {method!r} in [{section.name}]")
        pattern = options.get("pattern", "")
        if not pattern:
            log.error("%s: section [%s] has no 'pattern', skipping", filename, section.name)
            continue
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(filename, section.lines["pattern"],
                              f"invalid pattern {pattern!r}: {exc}") from exc
        rules.append(AggregationRule(section.name, pattern, xff, method, regex))
    return StorageAggregation(rules)


__all__ = [
    "AggregationRule", "DEFAULT_AGGREGATION", "DEFAULT_METHOD", "DEFAULT_XFF", "METHODS",
    "StorageAggregation", "load_storage_aggregation",
]
