"""aggregation-rules.conf: ``output (frequency) = method input`` per line.

Input patterns become an anchored regex, one ``.``-separated part at a time:

* a part holding ``<<f>>`` captures ``f`` lazily across dots (``.+?``);
* else a part holding ``<f>`` captures ``f`` lazily within the part (``[^.]+?``);
* a part that is exactly ``*`` matches one non-empty part; other ``*`` match ``[^.]*``.

Only the first field of a part is recognised, and nothing else is escaped, so regex
metacharacters in a pattern keep their meaning. The output replaces each ``<f>`` with the
captured text. A rule whose output cannot be filled from its input (an unknown field,
``<<f>>`` in the output, a stray ``%``) is refused when the file is read instead of failing on
the first matching name.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from cadent.compat.errors import ConfigError

log = logging.getLogger(__name__)

AGGREGATION_METHODS: frozenset[str] = frozenset(
    ("sum", "avg", "min", "max", "count", "p50", "p75", "p80", "p90", "p95", "p99", "p999")
)


def pattern_to_regex(input_pattern: str) -> str:
    """The regex source for an input pattern (anchored by ``re.match`` and a final ``$``)."""
    parts = []
    for part in input_pattern.split("."):
        if "<<" in part and ">>" in part:
            i, j = part.find("<<"), part.find(">>")
            parts.append(f"{part[:i]}(?P<{part[i + 2:j]}>.+?){part[j + 2:]}")
            continue
        i, j = part.find("<"), part.find(">")
        if i > -1 and j > i:
            parts.append(f"{part[:i]}(?P<{part[i + 1:j]}>[^.]+?){part[j + 1:]}")
        elif part == "*":
            parts.append("[^.]+")
        else:
            parts.append(part.replace("*", "[^.]*"))
    return "\\.".join(parts) + "$"


def _output_template(output_pattern: str) -> str:
    # A %-style mapping template: <f> -> %(f)s. Other '%' keep their printf meaning, which
    # the check in AggregationRule.__post_init__ turns into an error up front.
    return output_pattern.replace("<", "%(").replace(">", ")s")


@dataclass(frozen=True)
class AggregationRule:
    """One parsed rule; :meth:`output_for` maps a matching name to its aggregate name."""

    output_template: str
    frequency: int
    method: str
    input_pattern: str
    line: int = 0
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _template: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in AGGREGATION_METHODS:
            raise ValueError(
                f"unknown aggregation method {self.method!r}; expected one of "
                + ", ".join(sorted(AGGREGATION_METHODS))
            )
        if self.frequency <= 0:
            raise ValueError(f"frequency must be a positive number of seconds, got {self.frequency}")
        try:
            regex = re.compile(pattern_to_regex(self.input_pattern))
        except re.error as exc:
            raise ValueError(f"input pattern {self.input_pattern!r} is not usable: {exc}") from None
        template = _output_template(self.output_template)
        try:
            template % {name: "" for name in regex.groupindex}
        except KeyError as exc:
            raise ValueError(
                f"output {self.output_template!r} uses field {exc.args[0]!r} that the input "
                f"{self.input_pattern!r} does not capture (write <f> in the output even for <<f>>)"
            ) from None
        except (ValueError, TypeError) as exc:
            raise ValueError(f"output {self.output_template!r} cannot be filled: {exc}") from None
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "_template", template)

    def output_for(self, name: str) -> str | None:
        """The aggregate name ``name`` feeds, or None when the rule does not match it."""
        m = self.regex.match(name)
        if m is None:
            return None
        return self._template % m.groupdict()


def parse_rule(line: str, filename: str = "<string>", lineno: int = 0) -> AggregationRule:
    """Parse one non-blank, non-comment rule line; ConfigError at ``filename:lineno``."""
    left, sep, right = line.partition("=")
    if not sep:
        raise ConfigError(filename, lineno, f"expected 'output (frequency) = method input', got {line!r}")
    left_tokens, right_tokens = left.split(), right.split()
    if len(left_tokens) != 2:
        raise ConfigError(
            filename, lineno, f"left of '=' must be 'output (frequency)', got {left.strip()!r}"
        )
    if len(right_tokens) != 2:
        raise ConfigError(
            filename, lineno, f"right of '=' must be 'method input', got {right.strip()!r}"
        )
    output, frequency_text = left_tokens
    method, input_pattern = right_tokens
    try:
        frequency = int(frequency_text.lstrip("(").rstrip(")"))
    except ValueError:
        raise ConfigError(filename, lineno, f"frequency {frequency_text!r} is not a number") from None
    try:
        return AggregationRule(output, frequency, method, input_pattern, lineno)
    except ValueError as exc:
        raise ConfigError(filename, lineno, str(exc)) from None


def parse_aggregation_rules(text: str, filename: str = "<string>") -> list[AggregationRule]:
    """Every rule in ``text`` in file order; blank lines and ``#`` lines are skipped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    rules = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        rules.append(parse_rule(line, filename, lineno))
    return rules


def read_aggregation_rules(
    path: str | os.PathLike[str], *, missing_ok: bool = False
) -> list[AggregationRule]:
    """Read and parse ``path``. A missing file is a ConfigError unless ``missing_ok``
    (the relay's aggregated routers treat it as "no rules"; the aggregator requires it)."""
    filename = os.fspath(path)
    try:
        with open(filename, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        if missing_ok:
            log.info("aggregation rules file %s does not exist: no rules", filename)
            return []
        raise ConfigError(filename, 0, "file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(filename, 0, f"cannot read: {exc}") from None
    rules = parse_aggregation_rules(text, filename)
    log.info("read %d aggregation rules from %s", len(rules), filename)
    return rules


__all__ = [
    "AGGREGATION_METHODS",
    "AggregationRule",
    "parse_aggregation_rules",
    "parse_rule",
    "pattern_to_regex",
    "read_aggregation_rules",
]
