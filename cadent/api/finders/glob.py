"""graphite's glob, one pattern node (no dots) at a time, in time linear in the name.

graphite-web matches a node by expanding every ``{a,b}`` group into whole variants and running
``fnmatch`` on each one, which costs the product of the group sizes: fifteen ``{0,1}`` groups
are 32,768 variants per directory entry. Here a node is parsed once into a small tree (literal
characters, ``?``, ``*``, ``[...]`` classes and brace groups of alternatives) and matched with a
lazily built automaton, so the alternatives are tried together, character by character, against
each name the walk meets. Small patterns (at most ``DIRECT_VARIANTS`` variants) keep the
variant regular expression, which is faster in C. The results are graphite's either way.
A node holds at most ``MAX_NODE_CHARS`` characters and ``MAX_BRACE_GROUPS`` brace groups.

A bracket expression that straddles brace syntax (``[a{b,c}]``) only has a meaning after
expansion; such nodes are expanded up front, at most ``MAX_EXPANSIONS`` variants, beyond which
the pattern is refused with :class:`PatternError`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

DIRECT_VARIANTS = 64
MAX_EXPANSIONS = 10_000
MAX_NODE_CHARS = 4096
MAX_BRACE_GROUPS = 128  # per node; also bounds nesting, so parsing never recurses deeply
_MAX_TRANSITIONS = 65_536
WILDCARDS = frozenset("*?[{")   # a pattern holding none of these names one path


class PatternError(ValueError):
    """A glob that cannot be matched within the limits (a 400 for the client)."""


# -- parse --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """A brace group: alternatives, each a sequence of items."""

    alternatives: tuple[tuple, ...]


class _Marker:
    """``*`` or ``?`` in a parsed node."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_STAR = _Marker("*")
_ANY = _Marker("?")


class _Straddle(Exception):
    """A ``[`` whose class depends on how braces expand."""


def _find_group(text: str) -> tuple[int, int] | None:
    """The first depth-0 ``{`` and its matching ``}`` (brace expansion's own scan)."""
    depth, start = 0, -1
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                return start, i
    return None


def _split_outside(text: str, sep: str, opening: str, closing: str) -> list[str]:
    """``text`` split on ``sep`` where no ``opening`` bracket is open (stray closers ignored)."""
    parts, depth, last = [], 0, 0
    for i, ch in enumerate(text):
        if ch in opening:
            depth += 1
        elif ch in closing and depth:
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return parts


def _split_alternatives(inner: str) -> list[str]:
    """The alternatives of a brace group's (balanced) inside."""
    return _split_outside(inner, ",", "{", "}")


def _class_end(text: str, i: int) -> int:
    """Index of the ``]`` closing the class opened at ``text[i]``, or -1 (fnmatch's rule)."""
    j = i + 1
    if j < len(text) and text[j] == "!":
        j += 1
    if j < len(text) and text[j] == "]":
        j += 1
    end = text.find("]", j)
    return end


def _literal_items(text: str) -> list:
    """Items of a brace-free piece: a char, ``"?"``/``"*"`` markers, or a class matcher."""
    items: list = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "*":
            if not items or items[-1] is not _STAR:
                items.append(_STAR)
        elif ch == "?":
            items.append(_ANY)
        elif ch == "[":
            end = _class_end(text, i)
            if end < 0:
                raise _Straddle
            items.append(_char_class(text[i : end + 1]))
            i = end
        else:
            items.append(ch)
        i += 1
    return items


def _parse(text: str) -> tuple:
    """``text`` as a sequence of items, brace groups parsed as brace expansion reads them."""
    found = _find_group(text)
    if found is None:
        return tuple(_literal_items(text))
    start, end = found
    head = _literal_items(text[:start])
    group = _Group(tuple(_parse(part) for part in _split_alternatives(text[start + 1 : end])))
    return tuple(head) + (group,) + _parse(text[end + 1 :])


@lru_cache(maxsize=1024)
def _char_class(token: str) -> Callable[[str], bool]:
    """One ``[...]`` as a one-character test, with fnmatch's exact semantics."""
    regex = re.compile(fnmatch.translate(token))
    return lambda ch: regex.match(ch) is not None


def _variant_count(seq: tuple, cap: int) -> int:
    """How many variants brace expansion makes of ``seq`` (``cap + 1`` once above ``cap``)."""
    total = 1
    for item in seq:
        if isinstance(item, _Group):
            total *= min(cap + 1, sum(_variant_count(alt, cap) for alt in item.alternatives))
            if total > cap:
                return cap + 1
    return total


# -- expansion (graphite's own way, bounded) ------------------------------------------------


def _check_groups(pattern: str) -> None:
    if pattern.count("{") > MAX_BRACE_GROUPS:
        raise PatternError(f"more than {MAX_BRACE_GROUPS} brace groups in one pattern node")


def expand_braces(pattern: str, limit: int = MAX_EXPANSIONS) -> list[str]:
    """Every variant of ``pattern`` (``a{b,c}`` → [ab, ac]), each once, in order;
    PatternError when there would be more than ``limit``."""
    _check_groups(pattern)
    out: dict[str, None] = {}
    _expand(pattern, out, limit)
    return list(out)


def _expand(pattern: str, out: dict[str, None], limit: int) -> None:
    found = _find_group(pattern)
    if found is None:
        out[pattern] = None
        if len(out) > limit:
            raise PatternError(f"pattern expands to more than {limit} variants")
        return
    start, end = found
    for part in _split_alternatives(pattern[start + 1 : end]):
        _expand(pattern[:start] + part + pattern[end + 1 :], out, limit)


# -- automaton ------------------------------------------------------------------------------


class _Program:
    """A Thompson automaton over one node: ``ops[pc]`` is ``("char", c)``, ``("test", f)``,
    ``("any",)``, ``("star",)`` (any char, stay), ``("split", targets)`` or ``("match",)``."""

    def __init__(self, seq: tuple) -> None:
        self.ops: list[tuple] = []
        self._emit(seq)
        self.ops.append(("match",))
        self._dfa: dict[tuple[frozenset, str], frozenset] = {}
        self.start = self._closure({0})

    def _emit(self, seq: tuple) -> None:
        for item in seq:
            if isinstance(item, _Group):
                split = len(self.ops)
                self.ops.append(("split", []))
                jumps = []
                for alt in item.alternatives:
                    self.ops[split][1].append(len(self.ops))
                    self._emit(alt)
                    jumps.append(len(self.ops))
                    self.ops.append(("split", []))
                after = len(self.ops)
                for pc in jumps:
                    self.ops[pc][1].append(after)
            elif item is _STAR:
                self.ops.append(("star",))
            elif item is _ANY:
                self.ops.append(("any",))
            elif isinstance(item, str):
                self.ops.append(("char", item))
            else:
                self.ops.append(("test", item))

    def _closure(self, pcs) -> frozenset:
        """The consuming states (and ``match``) reachable from ``pcs`` without input."""
        out, todo, seen = set(), list(pcs), set()
        while todo:
            pc = todo.pop()
            if pc in seen:
                continue
            seen.add(pc)
            op = self.ops[pc]
            if op[0] == "split":
                todo.extend(op[1])
            elif op[0] == "star":
                out.add(pc)
                todo.append(pc + 1)
            else:
                out.add(pc)
        return frozenset(out)

    def _step(self, state: frozenset, ch: str) -> frozenset:
        key = (state, ch)
        found = self._dfa.get(key)
        if found is not None:
            return found
        nxt = set()
        for pc in state:
            op = self.ops[pc]
            kind = op[0]
            if kind == "star":
                nxt.add(pc)
            elif kind == "any" or (kind == "char" and op[1] == ch) or (kind == "test" and op[1](ch)):
                nxt.add(pc + 1)
        found = self._closure(nxt)
        if len(self._dfa) >= _MAX_TRANSITIONS:
            self._dfa.clear()
        self._dfa[key] = found
        return found

    def matches(self, name: str) -> bool:
        state = self.start
        for ch in name:
            state = self._step(state, ch)
            if not state:
                return False
        return len(self.ops) - 1 in state


# -- the node matcher -----------------------------------------------------------------------


@lru_cache(maxsize=4096)
def node_matcher(node_pattern: str) -> Callable[[str], bool]:
    """A test ``name -> bool`` for one pattern node; PatternError when it is too big."""
    if len(node_pattern) > MAX_NODE_CHARS:
        raise PatternError(f"pattern node longer than {MAX_NODE_CHARS} characters")
    if "{" not in node_pattern:
        regex = re.compile(fnmatch.translate(node_pattern))
        return lambda name: regex.match(name) is not None
    _check_groups(node_pattern)
    try:
        seq = _parse(node_pattern)
    except _Straddle:
        seq = None
    if seq is None or _variant_count(seq, DIRECT_VARIANTS) <= DIRECT_VARIANTS:
        variants = expand_braces(node_pattern)
        regex = re.compile("|".join(f"(?:{fnmatch.translate(v)})" for v in variants), re.DOTALL)
        return lambda name: regex.match(name) is not None
    return _Program(seq).matches


def match_node(node_pattern: str, names: Sequence[str],
               check: Callable[[], None] | None = None) -> list[str]:
    """The entries of ``names`` one pattern node (no dots) matches, case-sensitively.
    ``check()`` runs every so often (a deadline check that may raise)."""
    if not WILDCARDS.intersection(node_pattern):
        return [n for n in names if n == node_pattern]
    test = node_matcher(node_pattern)
    if check is None or len(names) <= 256:
        return [n for n in names if test(n)]
    out = []
    for i, name in enumerate(names):
        if i % 256 == 0:
            check()
        if test(name):
            out.append(name)
    return out


def split_pattern(pattern: str) -> list[str]:
    """Split on dots outside ``{}`` and ``[]`` (a brace alternative may not hold a dot level)."""
    return _split_outside(pattern, ".", "{[", "}]")


__all__ = ["DIRECT_VARIANTS", "MAX_EXPANSIONS", "WILDCARDS", "PatternError", "expand_braces", "match_node",
           "node_matcher", "split_pattern"]
