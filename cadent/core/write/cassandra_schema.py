"""The Cassandra data model: the schema, the statements cadent issues, and the index rows of a path.

The design's cyanite-style model is kept column for column (types ``metric_point``,
``metric_id``, ``segment_pos``; tables ``metric``, ``path``, ``segment``); the table options are
today's (no COMPACT STORAGE, TimeWindowCompactionStrategy), so the schema runs on Cassandra
4.x/5.x and ScyllaDB. ``conf/cassandra-schema.cql`` is :func:`schema_cql` for keyspace ``metric``.

Index rows a new series ``a.b.c`` writes (``length`` = number of nodes of ``path``):

* ``segment``: ``(0, 'a')``, ``(1, 'a.b')``, ``(2, 'a.b.c')`` — every prefix at its position;
* ``path``: one row per parent → child step, ``({0, 'a'}, 'a.b', 2, false)``,
  ``({1, 'a.b'}, 'a.b.c', 3, true)`` (``has_data`` is true when the child is the leaf), and the
  leaf's own row ``({2, 'a.b.c'}, 'a.b.c', 3, true)``.

``find a.b.*`` reads the one partition ``segment = {1, 'a.b'}``; a root-level glob lists
``segment WHERE pos = 0`` and reads each matching root's partition for its flags.
"""

from __future__ import annotations

from typing import Iterator

CREATE_KEYSPACE = ("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication} "
                   "AND durable_writes = true")

_SCHEMA = """\
CREATE TYPE IF NOT EXISTS {ks}.metric_point (
    max double,
    mean double,
    min double,
    sum double,
    count int
);

CREATE TYPE IF NOT EXISTS {ks}.metric_id (
    path text,
    resolution int
);

CREATE TABLE IF NOT EXISTS {ks}.metric (
    id frozen<metric_id>,
    time bigint,
    point frozen<metric_point>,
    PRIMARY KEY (id, time)
) WITH CLUSTERING ORDER BY (time ASC)
    AND compaction = {{'class': 'TimeWindowCompactionStrategy',
                      'compaction_window_unit': 'HOURS', 'compaction_window_size': '6'}}
    AND default_time_to_live = 0;

CREATE TYPE IF NOT EXISTS {ks}.segment_pos (
    pos int,
    segment text
);

CREATE TABLE IF NOT EXISTS {ks}.path (
    segment frozen<segment_pos>,
    path text,
    length int,
    has_data boolean,
    PRIMARY KEY (segment, path, has_data)
) WITH CLUSTERING ORDER BY (path ASC, has_data ASC);

CREATE TABLE IF NOT EXISTS {ks}.segment (
    pos int,
    segment text,
    PRIMARY KEY (pos, segment)
) WITH CLUSTERING ORDER BY (segment ASC);
"""

# data
INSERT_POINT = ("INSERT INTO {ks}.metric (id, time, point) VALUES (?, ?, ?) USING TTL ?")
SELECT_RANGE = ("SELECT time, point FROM {ks}.metric WHERE id = ? AND time >= ? AND time <= ?")
# index
INSERT_PATH = "INSERT INTO {ks}.path (segment, path, length, has_data) VALUES (?, ?, ?, ?)"
INSERT_SEGMENT = "INSERT INTO {ks}.segment (pos, segment) VALUES (?, ?)"
SELECT_CHILDREN = "SELECT path, has_data FROM {ks}.path WHERE segment = ?"
SELECT_ROOTS = "SELECT segment FROM {ks}.segment WHERE pos = 0"
SELECT_SEGMENTS = "SELECT segment FROM {ks}.segment WHERE pos = ?"


def replication(factor: int, local_dc: str | None = None) -> str:
    """The replication map of a keyspace cadent creates."""
    if local_dc:
        return "{'class': 'NetworkTopologyStrategy', '%s': '%d'}" % (local_dc.replace("'", "''"),
                                                                     factor)
    return "{'class': 'SimpleStrategy', 'replication_factor': '%d'}" % factor


def schema_statements(keyspace: str, factor: int = 3, local_dc: str | None = None) -> list[str]:
    """The keyspace, types and tables, one CQL statement each (all IF NOT EXISTS)."""
    body = _SCHEMA.format(ks=keyspace)
    return ([CREATE_KEYSPACE.format(ks=keyspace, replication=replication(factor, local_dc))]
            + [stmt.strip() for stmt in body.split(";") if stmt.strip()])


def schema_cql(keyspace: str = "metric", factor: int = 3, local_dc: str | None = None) -> str:
    """The whole schema as a script (what ``conf/cassandra-schema.cql`` holds for ``metric``)."""
    return "".join(stmt + ";\n\n" for stmt in schema_statements(keyspace, factor, local_dc))


def statement(template: str, keyspace: str) -> str:
    return template.format(ks=keyspace)


def segment_rows(path: str) -> Iterator[tuple[int, str]]:
    """``(pos, prefix)`` for every prefix of ``path`` (the ``segment`` table)."""
    nodes = path.split(".")
    for pos in range(len(nodes)):
        yield pos, ".".join(nodes[: pos + 1])


def path_rows(path: str) -> Iterator[tuple[tuple[int, str], str, int, bool]]:
    """``((pos, parent), child, length of child, has_data)`` rows of the ``path`` table."""
    prefixes = list(segment_rows(path))
    leaf = len(prefixes)
    for (pos, parent), (_, child) in zip(prefixes, prefixes[1:]):
        yield (pos, parent), child, pos + 2, pos + 2 == leaf
    yield (leaf - 1, path), path, leaf, True


__all__ = ["INSERT_PATH", "INSERT_POINT", "INSERT_SEGMENT", "SELECT_CHILDREN", "SELECT_RANGE",
           "SELECT_ROOTS", "SELECT_SEGMENTS", "path_rows", "replication", "schema_cql",
           "schema_statements", "segment_rows", "statement"]
