"""Name rewriting over a batch (the rules themselves come from rewrite-rules.conf)."""

from __future__ import annotations

import re
from typing import Protocol, Sequence

from cadent.core.point import Batch


class Rule(Protocol):
    regex: re.Pattern[str]
    replacement: str


def apply_rules(rules: Sequence[Rule], batch: Batch) -> Batch:
    """``batch`` with every name passed through ``rules`` in order.

    No rules: the same list comes back untouched. Datapoints whose name does not change are
    reused as they are; a name seen twice in the batch is rewritten once.
    """
    if not rules or not batch:
        return batch
    subs = [(rule.regex.sub, rule.replacement) for rule in rules]
    seen: dict[str, str] = {}
    out: Batch = []
    append = out.append
    for point in batch:
        name = point[0]
        new = seen.get(name)
        if new is None:
            new = name
            for sub, replacement in subs:
                new = sub(replacement, new)
            seen[name] = new
        append(point if new == name else (new, point[1]))
    return out
