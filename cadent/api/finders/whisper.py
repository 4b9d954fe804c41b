"""Find series by graphite glob over carbon's whisper tree.

Patterns are matched one dot-separated node per directory level, with ``*``, ``?``,
``[abc]``/``[a-z]``/``[!x]`` and ``{a,b}`` (nested, alternatives may hold wildcards; see
``glob.py``); a node ``**`` matches any number of levels. Directories are branches, ``*.wsp``
and ``*.wsp.gz`` files leaves; names starting with ``.`` are skipped, and nothing whose real
path leaves its root is ever listed or read.

Tagged series (``_tagged/<h[0:3]>/<h[3:6]>/<sha256>.wsp``) are not found by glob: like
graphite-web they show up as an ordinary ``_tagged`` branch. ``find_tagged(name)`` resolves a
normalised tagged name to its file (hashed or ``_DOT_`` variant) for exact-name renders;
``find_exact(name)`` does the same for any name, tagged or not (the series a tag query names).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from cadent.api.finders.glob import PatternError, match_node, split_pattern
from cadent.api.readers import file_interval
from cadent.core.ratelog import RateLimitedLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Node:
    """A branch (``fs_path`` is a directory) or a leaf (``fs_path`` is a whisper file)."""

    path: str
    is_leaf: bool
    fs_path: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def tagged_relpaths(name: str) -> tuple[str, str]:
    """The hashed and the readable ``_tagged`` relative file paths for a normalised name."""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    folder = os.path.join("_tagged", digest[:3], digest[3:6])
    return (
        os.path.join(folder, digest + ".wsp"),
        os.path.join(folder, name.replace(".", "_DOT_") + ".wsp"),
    )


class FindTimeout(PatternError):
    """A find that ran past its request's time limit."""


def deadline_check(deadline: float | None, pattern: str) -> Callable[[], None]:
    """A check raising FindTimeout once ``time.monotonic()`` passes ``deadline`` (None: never)."""

    def check() -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise FindTimeout(f"finding {pattern[:200]!r} ran past the request's time limit")

    return check


def _inside(path: str, real_root: str) -> bool:
    """Whether ``path``, every symlink resolved, lies in the directory ``real_root``."""
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _leaf_stem(entry: str) -> str:
    for suffix in (".wsp", ".wsp.gz"):
        if entry.endswith(suffix):
            return entry[: -len(suffix)]
    return ""


class WhisperFinder:
    """Glob search over one or more whisper roots (earlier roots win on duplicate paths).

    Nothing outside the roots is ever resolved: an exact name with an empty node, a ``/`` or a
    NUL is refused, and so is any file or directory whose real path (symlinks resolved) leaves
    its root; ``**`` does not descend into symlinked directories. Refusals are counted in
    ``counters["refused"]`` and logged (at most once a minute).
    """

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = [os.path.abspath(r) for r in roots]
        self.counters = {"refused": 0}
        self._refuse_log = RateLimitedLog(log)

    def find(self, pattern: str, leaves_only: bool = False,
             deadline: float | None = None) -> list[Node]:
        """Matching nodes, unique by path, in walk order. PatternError for a glob beyond the
        limits, FindTimeout once ``time.monotonic()`` passes ``deadline``."""
        seen: dict[str, Node] = {}
        pattern = pattern.strip()
        if not pattern:
            return []
        if ";" in pattern:
            for node in self.find_tagged(pattern):
                seen.setdefault(node.path, node)
        else:
            nodes = split_pattern(pattern)
            check = deadline_check(deadline, pattern)
            for root in self.roots:
                real_root = os.path.realpath(root)
                if not os.path.isdir(real_root):
                    continue
                for node in self._walk(root, real_root, nodes, [], check):
                    if leaves_only and not node.is_leaf:
                        continue
                    seen.setdefault(node.path, node)
        return list(seen.values())

    def find_tagged(self, name: str) -> Iterator[Node]:
        """The leaf for one normalised tagged name, if its file exists under a root."""
        if "\0" in name:
            self._refuse("name", name)
            return
        for root in self.roots:
            for rel in tagged_relpaths(name):
                full = os.path.join(root, rel)
                if os.path.isfile(full):
                    if not _inside(full, os.path.realpath(root)):
                        self._refuse("name", name)
                        return
                    yield Node(name, True, full)
                    return

    def find_exact(self, name: str) -> Node | None:
        """The leaf named exactly ``name`` (no globbing; tagged or not), from the first root
        that has its file."""
        if ";" in name:
            return next(self.find_tagged(name), None)
        parts = name.split(".")
        if not all(parts) or "/" in name or "\0" in name:
            self._refuse("name", name)
            return None
        for root in self.roots:
            stem = os.path.join(root, *parts)
            for full in (stem + ".wsp", stem + ".wsp.gz"):
                if os.path.isfile(full):
                    if not _inside(full, os.path.realpath(root)):
                        self._refuse("name", name)
                        return None
                    return Node(name, True, full)
        return None

    def all_leaves(self) -> list[str]:
        """Every leaf path under the roots, sorted (``_tagged`` files included, as graphite-web
        lists them); a symlink back to a directory being listed is not followed again."""
        found: set[str] = set()
        for root in self.roots:
            real_root = os.path.realpath(root)
            todo: list[tuple[str, list[str], frozenset[str]]] = [(root, [], frozenset())]
            while todo:
                directory, parts, above = todo.pop()
                real = os.path.realpath(directory)
                if real in above:
                    continue
                above = above | {real}
                dirs, leaves, _ = self._entries(directory, real_root)
                found.update(".".join(parts + [stem]) for stem in leaves)
                todo.extend((path, parts + [sub], above) for sub, path in dirs.items())
        return sorted(found)

    def intervals(self, node: Node) -> list[tuple[float, float]]:
        """When leaf ``node`` has data (see :func:`cadent.api.readers.file_interval`); none
        when its file cannot be read, so one bad file does not fail the whole find."""
        try:
            return [file_interval(node.fs_path)]
        except Exception as exc:
            log.warning("cannot read header of %s: %r", node.fs_path, exc)
            return []

    def _refuse(self, what: str, name: str) -> None:
        self.counters["refused"] += 1
        self._refuse_log(logging.WARNING, "refused %s %r: it is malformed or resolves outside "
                         "the whisper roots (%d refused so far)", what, name[:300],
                         self.counters["refused"])

    def _entries(self, directory: str, real_root: str) -> tuple[dict[str, str], dict[str, str], set[str]]:
        """``(dirs, leaves, linked)`` of one directory: branch name → path, leaf name → file
        (``.wsp`` before ``.wsp.gz``), the branch names that are symlinks. Hidden entries and
        symlinks leaving the root are left out."""
        dirs: dict[str, str] = {}
        leaves: dict[str, str] = {}
        linked: set[str] = set()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError:
            return dirs, leaves, linked
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_link = entry.is_symlink()
                if is_link and not _inside(entry.path, real_root):
                    self._refuse("symlink", entry.path)
                    continue
                if entry.is_dir():
                    dirs[entry.name] = entry.path
                    if is_link:
                        linked.add(entry.name)
                elif entry.is_file():
                    stem = _leaf_stem(entry.name)
                    if stem and (stem not in leaves or entry.name.endswith(".wsp")):
                        leaves[stem] = entry.path
            except OSError:
                continue
        return dirs, leaves, linked

    def _walk(self, directory: str, real_root: str, nodes: list[str], prefix: list[str],
              check: Callable[[], None]) -> Iterator[Node]:
        check()
        head, rest = nodes[0], nodes[1:]
        dirs, leaves, linked = self._entries(directory, real_root)
        if head == "**":
            # zero levels, then one level deeper keeping "**" (symlinked directories are not
            # descended, as graphite-web's walk does not)
            if rest:
                yield from self._walk(directory, real_root, rest, prefix, check)
            for sub in sorted(dirs):
                if not rest:
                    yield Node(".".join(prefix + [sub]), False, dirs[sub])
                if sub not in linked:
                    yield from self._walk(dirs[sub], real_root, nodes, prefix + [sub], check)
            if not rest:
                for leaf in sorted(leaves):
                    yield Node(".".join(prefix + [leaf]), True, leaves[leaf])
            return
        if rest:
            for sub in sorted(match_node(head, list(dirs), check)):
                yield from self._walk(dirs[sub], real_root, rest, prefix + [sub], check)
            return
        for sub in sorted(match_node(head, list(dirs), check)):
            yield Node(".".join(prefix + [sub]), False, dirs[sub])
        for leaf in sorted(match_node(head, list(leaves), check)):
            yield Node(".".join(prefix + [leaf]), True, leaves[leaf])


__all__ = ["FindTimeout", "Node", "PatternError", "WhisperFinder", "deadline_check",
           "tagged_relpaths"]
