"""whitelist.conf / blacklist.conf and the filter built from them.

File format (carbon's): one Python regex per line, used with ``re.search``, case-sensitive;
each line is stripped; blank lines and lines whose very first character is ``#`` are skipped
(an indented ``#`` is a regex). A missing file is an empty list. Carbon skips a bad regex;
cadent refuses it with a :class:`ConfigError` (file:line).

Filter order (carbon's): a name matching any blacklist regex is dropped and counted as a
blacklist match; otherwise, when the whitelist is non-empty and nothing in it matches, the
name is dropped and counted as a whitelist reject.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from cadent.compat.errors import ConfigError
from cadent.core.point import Batch

PASS = 0
BLACKLISTED = 1
NOT_WHITELISTED = 2

DEFAULT_CACHE_SIZE = 100_000

_PLAIN_FLAGS = re.compile("").flags


def parse_pattern_list(text: str, filename: str) -> tuple[re.Pattern[str], ...]:
    """Compile the regexes of a list file's text; ``filename`` is used in messages."""
    patterns = []
    for number, line in enumerate(text.splitlines(), start=1):
        pattern = line.strip()
        if line.startswith("#") or not pattern:
            continue
        try:
            patterns.append(re.compile(pattern))
        except re.error as exc:
            raise ConfigError(filename, number, f"invalid regex {pattern!r}: {exc}") from None
    return tuple(patterns)


def read_pattern_list(path: str) -> tuple[re.Pattern[str], ...]:
    """The regexes of list file ``path``; a missing file gives ``()``."""
    if not os.path.exists(path):
        return ()
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, 0, f"cannot read: {exc}") from None
    return parse_pattern_list(text, path)


def _any_search(patterns: Sequence[re.Pattern[str]]):
    """One callable answering "does any pattern ``search`` this name?".

    Patterns without groups or inline flags are merged into one alternation (identical
    semantics for ``search``); the others keep their own regex, since merging would renumber
    their back-references or move their flags.
    """
    mergeable = [p.pattern for p in patterns if p.groups == 0 and p.flags == _PLAIN_FLAGS]
    separate = [p.search for p in patterns if not (p.groups == 0 and p.flags == _PLAIN_FLAGS)]
    if mergeable:
        try:
            separate.insert(0, re.compile("|".join(f"(?:{p})" for p in mergeable)).search)
        except re.error:
            separate = [p.search for p in patterns]
    if len(separate) == 1:
        only = separate[0]
        return lambda name: only(name) is not None
    return lambda name: any(search(name) is not None for search in separate)


class MetricFilter:
    """Carbon's white/blacklist check over whole batches, with a bounded per-name verdict cache."""

    def __init__(self, whitelist: Sequence[re.Pattern[str]] = (),
                 blacklist: Sequence[re.Pattern[str]] = (),
                 cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.whitelist = tuple(whitelist)
        self.blacklist = tuple(blacklist)
        self._black = _any_search(self.blacklist) if self.blacklist else None
        self._white = _any_search(self.whitelist) if self.whitelist else None
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size

    @property
    def active(self) -> bool:
        """False when both lists are empty (every name passes)."""
        return self._black is not None or self._white is not None

    def verdict(self, name: str) -> int:
        """PASS, BLACKLISTED or NOT_WHITELISTED for ``name`` (uncached)."""
        if self._black is not None and self._black(name):
            return BLACKLISTED
        if self._white is not None and not self._white(name):
            return NOT_WHITELISTED
        return PASS

    def filter_batch(self, batch: Batch) -> tuple[Batch, int, int]:
        """``(kept, blacklist_matches, whitelist_rejects)``; with no patterns ``batch`` itself."""
        if not self.active or not batch:
            return batch, 0, 0
        cache = self._cache
        verdict = self.verdict
        kept: Batch = []
        keep = kept.append
        black = white = 0
        for point in batch:
            name = point[0]
            result = cache.get(name)
            if result is None:
                result = verdict(name)
                if len(cache) >= self._cache_size:
                    cache.clear()
                cache[name] = result
            if result == PASS:
                keep(point)
            elif result == BLACKLISTED:
                black += 1
            else:
                white += 1
        return kept, black, white

    def apply(self, batch: Batch, stats) -> Batch:
        """The points that pass, counting carbon's ``blacklistMatches`` / ``whitelistRejects``
        into ``stats`` (anything with ``incr(name, n)``)."""
        kept, blacklisted, rejected = self.filter_batch(batch)
        if blacklisted:
            stats.incr("blacklistMatches", blacklisted)
        if rejected:
            stats.incr("whitelistRejects", rejected)
        return kept


__all__ = ["BLACKLISTED", "MetricFilter", "NOT_WHITELISTED", "PASS", "parse_pattern_list",
           "read_pattern_list"]
