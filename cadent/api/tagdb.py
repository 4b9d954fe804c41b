"""graphite-web's tag database (its default ``LocalDatabaseTagDB``) in one SQLite file.

Series are registered by ``POST /tags/tagMultiSeries`` (cadent-cache or carbon-cache with
``ENABLE_TAGS``) and looked up by ``seriesByTag(...)`` and the ``/tags`` endpoints. Answers follow
graphite-web 1.1:

* a registered path is normalised as graphite does (``name;tag=value`` pairs sorted as whole
  strings, a leading ``~`` dropped); the metric name is stored as the tag ``name``;
* tag expressions are ``tag=spec``, ``tag!=spec``, ``tag=~regex``, ``tag!=~regex``; an expression
  whose condition holds for the empty value also matches series without that tag, and at least
  one expression must need a non-empty value;
* a regex not starting with ``^`` becomes ``^(regex)``: anchored at the start only;
* results are sorted by path; tag and value lists by name; auto-completion keeps the first
  ``limit`` (default 100) names in sort order;
* row ids are handed out in graphite's order, so ``/tags`` answers carry the same ``id`` values.

Bad input (a malformed path, expression, regex or limit) is a ``ValueError``: a 400, never a 500.

The file is shared by every cadent-api worker: WAL journal, a busy timeout, and per process a
small pool holding one connection per thread that needs one (opened on first use; a forked child
opens its own). Every call is short local I/O; request handlers still run it in a thread.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cadent.core.tags import TagParseError, format_tags, parse_tags

AUTOCOMPLETE_LIMIT = 100
BUSY_TIMEOUT_S = 30.0

_TAGSPEC = re.compile(r"^([^;!=]+)(!?=~?)([^;]*)$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS tag (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tag TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS tag_value (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    value TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS series_tag (
    series_id INTEGER NOT NULL,
    tag_id INTEGER NOT NULL,
    value_id INTEGER NOT NULL,
    PRIMARY KEY (series_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS series_tag_by_tag ON series_tag (tag_id, value_id);
"""


class TagQueryError(ValueError):
    """A tag expression, filter regex or limit that cannot be used (HTTP 400)."""


def parse_series(path: str) -> tuple[str, dict[str, str]]:
    """(normalised path, tags with ``name``) of a series path; TagParseError if graphite refuses it.

    The tags keep graphite's order, which fixes the order new tags and values get their ids in:
    as written, the metric's ``name`` where a ``;name=`` segment stood, else last.
    """
    base, tags = parse_tags(path)
    normalised = format_tags(base, tags)
    if ";name=" in path and not (path.endswith('"}') and "{" in path):
        keys = dict.fromkeys(segment.partition("=")[0] for segment in path.split(";")[1:])
        tags = {key: base if key == "name" else tags[key] for key in keys}
    else:
        tags["name"] = base
    return normalised, tags


def parse_tagspec(expr: str) -> tuple[str, str, str]:
    """``tag``, operator (``=``, ``!=``, ``=~``, ``!=~``) and spec of one tag expression."""
    m = _TAGSPEC.match(expr)
    if m is None:
        raise TagQueryError(f"Invalid tagspec {expr}")
    return m.group(1), m.group(2), m.group(3)


def _anchored(regex: str) -> str:
    return regex if regex.startswith("^") else f"^({regex})"


def _compiled(regex: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as exc:
        raise TagQueryError(f"invalid regular expression {regex!r} in {where}: {exc}") from None


def _limit(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TagQueryError(f"limit must be an integer, not {value!r}") from None


def _regexp(pattern: str, value: str) -> bool:
    """SQLite's ``value REGEXP pattern``: a search, as in graphite-web's SQL database."""
    return re.search(pattern, str(value)) is not None


def _tags_of(path: str) -> dict[str, str] | None:
    try:
        return parse_series(path)[1]
    except TagParseError:
        return None


def _first(names: set[str], limit: int) -> list[str]:
    """The first ``limit`` names in sort order (none for a limit below 1)."""
    return sorted(names)[:max(limit, 0)]


class TagDB:
    """The tag database in the SQLite file ``path`` (created with its schema when missing)."""

    def __init__(self, path: str, busy_timeout_s: float = BUSY_TIMEOUT_S,
                 autocomplete_limit: int = AUTOCOMPLETE_LIMIT) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.autocomplete_limit = autocomplete_limit
        self._pid = os.getpid()
        self._idle: list[sqlite3.Connection] = []

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                             check_same_thread=False)
        try:
            db.create_function("regexp", 2, _regexp, deterministic=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection of this process's pool, inside one transaction when ``write``."""
        if self._pid != os.getpid():  # forked: the parent's connections are not ours to use
            self._pid, self._idle = os.getpid(), []
        try:
            db = self._idle.pop()
        except IndexError:
            db = self._connect()
        try:
            if write:
                db.execute("BEGIN IMMEDIATE")
            yield db
            if write:
                db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
        finally:
            self._idle.append(db)

    def close(self) -> None:
        """Close the idle connections of this process."""
        while self._idle:
            self._idle.pop().close()

    # -- registration -----------------------------------------------------------------------

    def tag_series(self, path: str) -> str:
        """Register one series; its normalised path."""
        return self.tag_multi_series([path])[0]

    def tag_multi_series(self, paths: Sequence[str]) -> list[str]:
        """Register series; their normalised paths. As in graphite-web, a malformed path raises
        TagParseError once the paths before it are registered."""
        done: list[str] = []
        with self._db(write=True) as db:
            for path in paths:
                try:
                    normalised, tags = parse_series(path)
                except TagParseError:
                    db.execute("COMMIT")
                    raise
                self._store(db, normalised, tags)
                done.append(normalised)
        return done

    @staticmethod
    def _store(db: sqlite3.Connection, path: str, tags: dict[str, str]) -> None:
        row = db.execute("SELECT id FROM series WHERE path = ?", (path,)).fetchone()
        if row is not None:
            known = dict(db.execute(
                "SELECT t.tag, v.value FROM series_tag AS st JOIN tag AS t ON t.id = st.tag_id"
                " JOIN tag_value AS v ON v.id = st.value_id WHERE st.series_id = ?", row))
            if known == tags:
                return
            series_id = row[0]
        else:
            series_id = db.execute("INSERT INTO series (path) VALUES (?)", (path,)).lastrowid
        db.executemany("INSERT OR IGNORE INTO tag (tag) VALUES (?)", [(t,) for t in tags])
        db.executemany("INSERT OR IGNORE INTO tag_value (value) VALUES (?)",
                       [(v,) for v in tags.values()])
        db.executemany(
            "INSERT OR IGNORE INTO series_tag (series_id, tag_id, value_id) VALUES"
            " (?, (SELECT id FROM tag WHERE tag = ?), (SELECT id FROM tag_value WHERE value = ?))",
            [(series_id, tag, value) for tag, value in tags.items()])

    def del_series(self, paths: Sequence[str]) -> bool:
        """Forget series (tags and values stay known, as in graphite-web); True. A malformed
        path raises TagParseError once the paths before it are forgotten."""
        with self._db(write=True) as db:
            for path in paths:
                try:
                    normalised = parse_series(path)[0]
                except TagParseError:
                    db.execute("COMMIT")
                    raise
                db.execute("DELETE FROM series_tag WHERE series_id IN"
                           " (SELECT id FROM series WHERE path = ?)", (normalised,))
                db.execute("DELETE FROM series WHERE path = ?", (normalised,))
        return True

    # -- queries ----------------------------------------------------------------------------

    def find_series(self, exprs: Sequence[str]) -> list[str]:
        """Paths of the series matching every tag expression (see the module doc), sorted."""
        joins: list[str] = []
        join_params: list[str] = []
        where: list[str] = []
        where_params: list[str] = []
        filters: list[tuple[str, str, str | re.Pattern[str]]] = []
        for i, expr in enumerate(exprs):
            tag, op, spec = parse_tagspec(expr)
            if op in ("=~", "!=~"):
                spec = _anchored(spec)
                empty_matches = _compiled(spec, expr).match("") is not None
                matches_empty = empty_matches if op == "=~" else not empty_matches
            else:
                matches_empty = (spec == "") if op == "=" else (spec != "")
            if matches_empty:
                filters.append((tag, op, re.compile(spec) if "~" in op else spec))
                continue
            joins.append(f" JOIN series_tag AS st{i} ON st{i}.series_id = s.id"
                         f" AND st{i}.tag_id = (SELECT id FROM tag WHERE tag = ?)"
                         f" JOIN tag_value AS v{i} ON v{i}.id = st{i}.value_id")
            join_params.append(tag)
            where.append({"=": f"v{i}.value = ?", "!=": f"v{i}.value <> ?",
                          "=~": f"v{i}.value REGEXP ?", "!=~": f"NOT (v{i}.value REGEXP ?)"}[op])
            where_params.append(spec)
        if not joins:
            raise TagQueryError("At least one tagspec must not match the empty string")
        sql = "SELECT s.path FROM series AS s" + "".join(joins)
        sql += " WHERE " + " AND ".join(where) + " ORDER BY s.path"
        with self._db() as db:
            paths = [row[0] for row in db.execute(sql, join_params + where_params)]
        if not filters:
            return paths
        return [path for path in paths if _passes(path, filters)]

    def list_tags(self, tag_filter: str | None = None, limit: Any = None) -> list[dict]:
        """``[{"id", "tag"}]`` of every known tag (regex ``tag_filter``), sorted, at most ``limit``."""
        rows = self._listing("SELECT id, tag FROM tag", [], "tag", tag_filter, " ORDER BY tag", limit)
        return [{"id": tag_id, "tag": tag} for tag_id, tag in rows]

    def get_tag(self, tag: str, value_filter: str | None = None, limit: Any = None) -> dict | None:
        """``{"id", "tag", "values": list_values(...)}``, or None for an unknown tag."""
        with self._db() as db:
            row = db.execute("SELECT id, tag FROM tag WHERE tag = ?", (tag,)).fetchone()
        if row is None:
            return None
        return {"id": row[0], "tag": row[1], "values": self.list_values(tag, value_filter, limit)}

    def list_values(self, tag: str, value_filter: str | None = None, limit: Any = None) -> list[dict]:
        """``[{"id", "value", "count"}]``: values ``tag`` has on some series, with how many, sorted."""
        rows = self._listing(
            "SELECT v.id, v.value, COUNT(*) FROM tag_value AS v"
            " JOIN series_tag AS st ON st.value_id = v.id JOIN tag AS t ON t.id = st.tag_id"
            " WHERE t.tag = ?", [tag], "v.value", value_filter,
            " GROUP BY v.id, v.value ORDER BY v.value", limit)
        return [{"id": value_id, "value": value, "count": count} for value_id, value, count in rows]

    def _listing(self, sql: str, params: list, column: str, regex: str | None, order: str,
                 limit: Any) -> list[tuple]:
        """Rows of ``sql`` whose ``column`` matches ``regex`` (anchored), ``order`` appended,
        at most ``limit`` (graphite-web applies any limit that is set, even "0")."""
        if regex:
            regex = _anchored(regex)
            _compiled(regex, "filter")
            sql += (" AND " if " WHERE " in sql else " WHERE ") + f"{column} REGEXP ?"
            params = params + [regex]
        sql += order
        if limit:
            sql += " LIMIT ?"
            params = params + [_limit(limit)]
        with self._db() as db:
            return db.execute(sql, params).fetchall()

    # -- auto-completion (graphite-web's answer: its TagDB's, then sorted and cut at limit) --

    def auto_complete_tags(self, exprs: Sequence[str], tag_prefix: str | None = None,
                           limit: Any = None) -> list[str]:
        """Tags of the series matching ``exprs`` (all tags without exprs), minus the tags the
        exprs name, starting with ``tag_prefix``; sorted, at most ``limit`` (default 100)."""
        count = self.autocomplete_limit if limit is None else _limit(limit)
        if not exprs:
            prefix = f"^({re.escape(tag_prefix)})" if tag_prefix else None
            found = [t["tag"] for t in self.list_tags(prefix, count)]
        else:
            searched = {parse_tagspec(expr)[0] for expr in exprs}
            names: set[str] = set()
            for path in self.find_series(exprs):
                tags = _tags_of(path) or {}
                names.update(t for t in tags if t not in searched
                             and (not tag_prefix or t.startswith(tag_prefix)))
            found = _first(names, count)
        return _cut(found, limit)

    def auto_complete_values(self, exprs: Sequence[str], tag: str, value_prefix: str | None = None,
                             limit: Any = None) -> list[str]:
        """Values of ``tag`` on the series matching ``exprs`` (on all series without exprs),
        starting with ``value_prefix``; sorted, at most ``limit`` (default 100)."""
        count = self.autocomplete_limit if limit is None else _limit(limit)
        if not exprs:
            prefix = f"^({re.escape(value_prefix)})" if value_prefix else None
            found = [v["value"] for v in self.list_values(tag, prefix, count)]
        else:
            values: set[str] = set()
            for path in self.find_series(list(exprs) + [tag + "!="]):
                value = (_tags_of(path) or {}).get(tag)
                if value is not None and (not value_prefix or value.startswith(value_prefix)):
                    values.add(value)
            found = _first(values, count)
        return _cut(found, limit)


def _cut(names: list[str], limit: Any) -> list[str]:
    """graphite-web's last step over its tag databases' answers: unique, sorted, ``[:limit]``."""
    names = sorted(set(names))
    return names[:_limit(limit)] if limit else names


def _passes(path: str, filters: list[tuple[str, str, str | re.Pattern[str]]]) -> bool:
    """Whether ``path`` meets every condition that also holds for a missing tag."""
    tags = _tags_of(path)
    if tags is None:
        return False
    for tag, op, spec in filters:
        value = tags.get(tag, "")
        if op == "=":
            ok = value == spec
        elif op == "!=":
            ok = value != spec
        elif op == "=~":
            ok = spec.match(value) is not None
        else:
            ok = spec.match(value) is None
        if not ok:
            return False
    return True


__all__ = ["AUTOCOMPLETE_LIMIT", "TagDB", "TagQueryError", "parse_series", "parse_tagspec"]
