"""CASSANDRA_* settings, the shipped schema and the index rows of a path."""

from __future__ import annotations

import logging

import pytest

from cadent.compat.api_settings import ApiConfigError, read_api_settings
from cadent.compat.carbon_conf import read_carbon_conf
from cadent.compat.cassandra_settings import CassandraConfig, cassandra_config, parse_host
from cadent.compat.errors import ConfigError
from cadent.core.write.cassandra import resolutions
from cadent.core.write.cassandra_schema import path_rows, schema_cql, schema_statements, segment_rows
from tests.cassandra_helpers import SCHEMA_FILE, started_stub


def _conf(tmp_path, section: str, body: str):
    path = tmp_path / "carbon.conf"
    path.write_text(f"[{section}]\n{body}")
    return read_carbon_conf(str(path), section)


def test_defaults_are_the_issues(tmp_path):
    config = cassandra_config(_conf(tmp_path, "cache", "DATABASE = cassandra\n"))
    assert config == CassandraConfig(hosts=(("127.0.0.1", 9042),), conf_dir=str(tmp_path))
    assert (config.keyspace, config.consistency, config.protocol_version, config.create_schema) == \
        ("metric", "LOCAL_QUORUM", 4, False)


def test_every_key_is_read_and_known_to_cache_and_api(tmp_path, caplog):
    body = ("CASSANDRA_HOSTS = db1, db2:9043, [::1]:9044\nCASSANDRA_KEYSPACE = graphite\n"
            "CASSANDRA_USER = u\nCASSANDRA_PASSWORD = p\nCASSANDRA_LOCAL_DC = dc1\n"
            "CASSANDRA_CONSISTENCY = one\nCASSANDRA_PROTOCOL_VERSION = 5\n"
            "CASSANDRA_MAX_INFLIGHT = 7\nCASSANDRA_CREATE_SCHEMA = true\n"
            "CASSANDRA_REPLICATION_FACTOR = 2\nCASSANDRA_CONNECT_TIMEOUT = 2.5\n"
            "CASSANDRA_REQUEST_TIMEOUT = 3\nCASSANDRA_RECONNECT_SECONDS = 4\n"
            "CASSANDRA_RECENT_BINS = 100\nCASSANDRA_BIN_WINDOW = 1200\n")
    for section in ("cache", "api"):
        with caplog.at_level(logging.WARNING):
            config = cassandra_config(_conf(tmp_path, section, body))
        assert not [r for r in caplog.records if "unknown" in r.getMessage().lower()]
        assert config.hosts == (("db1", 9042), ("db2", 9043), ("::1", 9044))
        assert (config.keyspace, config.user, config.password, config.local_dc) == ("graphite", "u", "p", "dc1")
        assert (config.consistency, config.protocol_version, config.max_inflight) == ("ONE", 5, 7)
        assert (config.create_schema, config.replication_factor) == (True, 2)
        assert (config.connect_timeout_s, config.request_timeout_s, config.reconnect_s) == (2.5, 3.0, 4.0)
        assert (config.recent_bins, config.bin_window_s) == (100, 1200)


@pytest.mark.parametrize("line, key", [
    ("CASSANDRA_HOSTS = db:99999", "CASSANDRA_HOSTS"),
    ("CASSANDRA_HOSTS = ,", "CASSANDRA_HOSTS"),
    ("CASSANDRA_CONSISTENCY = HALF", "CASSANDRA_CONSISTENCY"),
    ("CASSANDRA_PROTOCOL_VERSION = 2", "CASSANDRA_PROTOCOL_VERSION"),
    ("CASSANDRA_MAX_INFLIGHT = 0", "CASSANDRA_MAX_INFLIGHT"),
    ("CASSANDRA_KEYSPACE = bad-name", "CASSANDRA_KEYSPACE"),
    ("CASSANDRA_USER = someone", "CASSANDRA_USER"),
    ("CASSANDRA_REQUEST_TIMEOUT = 0", "CASSANDRA_REQUEST_TIMEOUT"),
])
def test_a_bad_value_names_file_line_and_key(tmp_path, line, key):
    with pytest.raises(ConfigError) as info:
        cassandra_config(_conf(tmp_path, "cache", f"DATABASE = cassandra\n\n{line}\n"))
    assert info.value.line == 4 and info.value.key == key
    assert str(info.value).startswith(f"{tmp_path / 'carbon.conf'}:4: {key}:")


def test_parse_host_forms():
    assert parse_host("a") == ("a", 9042)
    assert parse_host("a:1") == ("a", 1)
    assert parse_host("[fe80::1]") == ("fe80::1", 9042)
    assert parse_host("[fe80::1]:7") == ("fe80::1", 7)
    for bad in ("", ":1", "a:", "a:b", "[x", "[x]y"):
        with pytest.raises(ValueError):
            parse_host(bad)


def test_api_database_selects_cassandra(tmp_path):
    path = tmp_path / "carbon.conf"
    path.write_text("[api]\nDATABASE = cassandra\nCASSANDRA_HOSTS = db:9050\n")
    settings = read_api_settings(str(path))
    assert settings.database == "cassandra" and settings.cassandra.hosts == (("db", 9050),)
    assert read_api_settings(None).database == "whisper"
    path.write_text("[api]\nDATABASE = ceres\n")
    with pytest.raises(ApiConfigError, match="DATABASE"):
        read_api_settings(str(path))
    path.write_text("[api]\nDATABASE = cassandra\nCASSANDRA_CONSISTENCY = some\n")
    with pytest.raises(ApiConfigError, match="carbon.conf:3: CASSANDRA_CONSISTENCY"):
        read_api_settings(str(path))


def test_shipped_schema_is_the_generated_one_and_keeps_the_data_model():
    shipped = SCHEMA_FILE.read_text()
    assert shipped.split("\n\n", 1)[1] == schema_cql("metric")
    assert "COMPACT STORAGE" not in shipped and "DateTiered" not in shipped
    assert "TimeWindowCompactionStrategy" in shipped
    for part in ("metric_point (\n    max double,\n    mean double,\n    min double,\n    sum double,\n    count int",
                 "metric_id (\n    path text,\n    resolution int", "PRIMARY KEY (id, time)",
                 "segment_pos (\n    pos int,\n    segment text", "PRIMARY KEY (segment, path, has_data)",
                 "PRIMARY KEY (pos, segment)"):
        assert part in shipped


def test_schema_applies_through_the_driver_and_twice_is_harmless():
    from cassandra.cluster import Cluster

    stub = started_stub(schema=False)
    try:
        cluster = Cluster([("127.0.0.1", stub.port)], protocol_version=4)
        session = cluster.connect()
        for _ in range(2):
            for stmt in schema_statements("metric", 1, "dc1"):
                session.execute(stmt)
        cluster.shutdown()
    finally:
        stub.stop()
    assert set(stub.catalog["metric"]["tables"]) == {"metric", "path", "segment"}
    assert set(stub.catalog["metric"]["types"]) == {"metric_point", "metric_id", "segment_pos"}
    assert stub.catalog["metric"]["repl"]["dc1"] == "1"


def test_index_rows_of_a_path():
    assert list(segment_rows("a.b.c")) == [(0, "a"), (1, "a.b"), (2, "a.b.c")]
    assert list(path_rows("a.b.c")) == [((0, "a"), "a.b", 2, False), ((1, "a.b"), "a.b.c", 3, True),
                                        ((2, "a.b.c"), "a.b.c", 3, True)]
    assert list(path_rows("top")) == [((0, "top"), "top", 1, True)]


def test_resolutions_and_ttls_from_retentions():
    assert resolutions([(10, 60480), (60, 43200)]) == ((10, 7 * 86400), (60, 30 * 86400))
    assert resolutions([(60, 10), (60, 20), (1, 5)]) == ((1, 5), (60, 1200))
