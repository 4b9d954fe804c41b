"""Find series by graphite glob over carbon's whisper tree.

Patterns are matched one dot-separated node per directory level, with ``*``, ``?``,
``[abc]``/``[a-z]``/``[!x]`` and ``{a,b}`` (nested, alternatives may hold wildcards);
a node ``**`` matches any number of levels. Directories are branches, ``*.wsp`` and
``*.wsp.gz`` files leaves; names starting with ``.`` are skipped.

Tagged series (``_tagged/<h[0:3]>/<h[3:6]>/<sha256>.wsp``) are not found by glob: like
graphite-web they show up as an ordinary ``_tagged`` branch. ``find_tagged(name)`` resolves a
normalised tagged name to its file (hashed or ``_DOT_`` variant) for exact-name renders;
``find_exact(name)`` does the same for any name, tagged or not (the series a tag query names).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from collections.abc import Iterator, Sequence


@dataclass(frozen=True)
class Node:
    """A branch (``fs_path`` is a directory) or a leaf (``fs_path`` is a whisper file)."""

    path: str
    is_leaf: bool
    fs_path: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def expand_braces(pattern: str) -> list[str]:
    """All alternatives of the first ``{...}`` group, recursively: ``a{b,c}`` → [ab, ac]."""
    depth = 0
    start = -1
    for i, ch in enumerate(pattern):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                inner = pattern[start + 1 : i]
                parts, level, last = [], 0, 0
                for j, c in enumerate(inner):
                    if c == "{":
                        level += 1
                    elif c == "}":
                        level -= 1
                    elif c == "," and level == 0:
                        parts.append(inner[last:j])
                        last = j + 1
                parts.append(inner[last:])
                out: list[str] = []
                for part in parts:
                    for expanded in expand_braces(pattern[:start] + part + pattern[i + 1 :]):
                        if expanded not in out:
                            out.append(expanded)
                return out
    return [pattern]


@lru_cache(maxsize=4096)
def _node_regex(node_pattern: str) -> re.Pattern[str]:
    alternatives = [fnmatch.translate(alt) for alt in expand_braces(node_pattern)]
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.DOTALL)


def match_node(node_pattern: str, names: Sequence[str]) -> list[str]:
    """The entries of ``names`` one pattern node (no dots) matches, case-sensitively."""
    if not any(c in node_pattern for c in "*?[{"):
        return [n for n in names if n == node_pattern]
    regex = _node_regex(node_pattern)
    return [n for n in names if regex.match(n)]


def split_pattern(pattern: str) -> list[str]:
    """Split on dots outside ``{}`` and ``[]`` (a brace alternative may not hold a dot level)."""
    nodes, depth, last = [], 0, 0
    for i, ch in enumerate(pattern):
        if ch in "{[":
            depth += 1
        elif ch in "}]" and depth:
            depth -= 1
        elif ch == "." and depth == 0:
            nodes.append(pattern[last:i])
            last = i + 1
    nodes.append(pattern[last:])
    return nodes


def tagged_relpaths(name: str) -> tuple[str, str]:
    """The hashed and the readable ``_tagged`` relative file paths for a normalised name."""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    folder = os.path.join("_tagged", digest[:3], digest[3:6])
    return (
        os.path.join(folder, digest + ".wsp"),
        os.path.join(folder, name.replace(".", "_DOT_") + ".wsp"),
    )


class WhisperFinder:
    """Glob search over one or more whisper roots (earlier roots win on duplicate paths)."""

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = [os.path.abspath(r) for r in roots]

    def find(self, pattern: str, leaves_only: bool = False) -> list[Node]:
        """Matching nodes, unique by path, in walk order."""
        seen: dict[str, Node] = {}
        pattern = pattern.strip()
        if not pattern:
            return []
        if ";" in pattern:
            for node in self.find_tagged(pattern):
                seen.setdefault(node.path, node)
        else:
            nodes = split_pattern(pattern)
            for root in self.roots:
                if not os.path.isdir(root):
                    continue
                for node in self._walk(root, nodes, []):
                    if leaves_only and not node.is_leaf:
                        continue
                    seen.setdefault(node.path, node)
        return list(seen.values())

    def find_tagged(self, name: str) -> Iterator[Node]:
        """The leaf for one normalised tagged name, if its file exists under a root."""
        for root in self.roots:
            for rel in tagged_relpaths(name):
                full = os.path.join(root, rel)
                if os.path.isfile(full):
                    yield Node(name, True, full)
                    return

    def find_exact(self, name: str) -> Node | None:
        """The leaf named exactly ``name`` (no globbing; tagged or not), from the first root
        that has its file."""
        if ";" in name:
            return next(self.find_tagged(name), None)
        parts = name.split(".")
        if not all(parts) or any(part.startswith(".") for part in parts):
            return None
        for root in self.roots:
            stem = os.path.join(root, *parts)
            for full in (stem + ".wsp", stem + ".wsp.gz"):
                if os.path.isfile(full):
                    return Node(name, True, full)
        return None

    def _walk(self, directory: str, nodes: list[str], prefix: list[str]) -> Iterator[Node]:
        head, rest = nodes[0], nodes[1:]
        try:
            entries = [e for e in os.listdir(directory) if not e.startswith(".")]
        except OSError:
            return
        if head == "**":
            # zero levels, then one level deeper keeping "**"
            if rest:
                yield from self._walk(directory, rest, prefix)
            for sub in sorted(e for e in entries if os.path.isdir(os.path.join(directory, e))):
                if not rest:
                    yield Node(".".join(prefix + [sub]), False, os.path.join(directory, sub))
                yield from self._walk(os.path.join(directory, sub), nodes, prefix + [sub])
            if not rest:
                for leaf in sorted(_leaf_names(directory, entries)):
                    yield Node(".".join(prefix + [leaf[0]]), True, leaf[1])
            return
        dirs = [e for e in entries if os.path.isdir(os.path.join(directory, e))]
        if rest:
            for sub in sorted(match_node(head, dirs)):
                yield from self._walk(os.path.join(directory, sub), rest, prefix + [sub])
            return
        for sub in sorted(match_node(head, dirs)):
            yield Node(".".join(prefix + [sub]), False, os.path.join(directory, sub))
        leaves = dict(_leaf_names(directory, entries))
        for leaf in sorted(match_node(head, list(leaves))):
            yield Node(".".join(prefix + [leaf]), True, leaves[leaf])


def _leaf_names(directory: str, entries: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for entry in entries:
        if entry.endswith(".wsp"):
            stem = entry[:-4]
        elif entry.endswith(".wsp.gz"):
            stem = entry[:-7]
        else:
            continue
        full = os.path.join(directory, entry)
        if stem and os.path.isfile(full):
            out.append((stem, full))
    return out


def walk_leaves(roots: Sequence[str]) -> list[str]:
    """Every leaf path under the roots (``_tagged`` files included, as graphite-web lists them)."""
    found: set[str] = set()
    for root in roots:
        root = os.path.abspath(root)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, root)
            parts = [] if rel == "." else rel.split(os.sep)
            for stem, _ in _leaf_names(dirpath, [f for f in filenames if not f.startswith(".")]):
                found.add(".".join(parts + [stem]))
    return sorted(found)


__all__ = ["Node", "WhisperFinder", "expand_braces", "match_node", "split_pattern", "tagged_relpaths", "walk_leaves"]
