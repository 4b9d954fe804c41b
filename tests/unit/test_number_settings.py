"""The two number readers every carbon.conf key goes through (``whole_number``, ``real_number``)
and the keys that used to check numbers their own way (Kafka, Cassandra, WAL, cache limits,
health checks)."""

from __future__ import annotations

import math

import pytest

from cadent.compat.cache_settings import cache_config
from cadent.compat.carbon_conf import CarbonSettings, read_carbon_conf
from cadent.compat.cassandra_settings import cassandra_config
from cadent.compat.daemon_settings import real_number, whole_number
from cadent.compat.errors import ConfigError
from cadent.compat.http_settings import health_check_config
from cadent.compat.kafka_settings import (file_writer_config, kafka_writer_config,
                                          writer_stall_seconds)
from cadent.compat.wal_settings import wal_config


def _values(**values) -> CarbonSettings:
    """Settings holding exactly ``values`` (any Python type, as no file would give them)."""
    names = CarbonSettings.__slots__[1:]
    attributes = {name: None for name in names}
    attributes.update(path="carbon.conf", role="cache", lines={"X": 7})
    return CarbonSettings(values, **attributes)


def _conf(tmp_path, body: str, role: str = "cache") -> CarbonSettings:
    path = tmp_path / "carbon.conf"
    path.write_text(f"[{role}]\n{body}")
    return read_carbon_conf(str(path), role)


@pytest.mark.parametrize("value, least, expected", [
    (5, 1, 5), ("12", 0, 12), (0, 0, 0), (-3, -5, -3),
])
def test_whole_number_takes_integers_and_digit_text(value, least, expected):
    number = whole_number(_values(X=value), "X", least)
    assert number == expected and type(number) is int


@pytest.mark.parametrize("value", [True, False, 2.0, 2.5, math.inf, math.nan, "2.5", "two", None, 0])
def test_whole_number_refuses_the_rest_naming_key_and_line(value):
    with pytest.raises(ConfigError) as info:
        whole_number(_values(X=value), "X", 1)
    assert (info.value.key, info.value.line) == ("X", 7)
    assert f"must be a whole number of at least 1, not {value!r}" in str(info.value)


@pytest.mark.parametrize("value, least, expected", [
    (5, 1, 5.0), (0.25, 0.1, 0.25), ("1.5", 0, 1.5), (0, 0, 0.0), (-2, -math.inf, -2.0),
])
def test_real_number_takes_finite_numbers(value, least, expected):
    number = real_number(_values(X=value), "X", least)
    assert number == expected and type(number) is float


@pytest.mark.parametrize("value", [True, False, math.nan, "nan", math.inf, "inf", "soon", None,
                                   0.05, -1])
def test_real_number_refuses_booleans_nan_inf_text_and_small_values(value):
    with pytest.raises(ConfigError) as info:
        real_number(_values(X=value), "X", 0.1)
    assert (info.value.key, info.value.line) == ("X", 7)
    assert f"must be a number of at least 0.1, not {value!r}" in str(info.value)


def test_real_number_takes_inf_only_when_asked():
    assert real_number(_values(X=math.inf), "X", 0, infinite=True) == math.inf
    with pytest.raises(ConfigError, match=r"a number \(inf allowed\), not nan"):
        real_number(_values(X=math.nan), "X", -math.inf, infinite=True)


@pytest.mark.parametrize("value", [0, 0.0, "0", -1])
def test_real_number_above_refuses_the_bound_itself(value):
    with pytest.raises(ConfigError, match=f"must be a number above 0, not {value!r}"):
        real_number(_values(X=value), "X", 0, above=True)
    assert real_number(_values(X=0.001), "X", 0, above=True) == 0.001


# Each of these was accepted (or crashed with something other than a ConfigError) while the
# key had its own check.
@pytest.mark.parametrize("body, read, key", [
    ("KAFKA_BROKERS = a:1\nKAFKA_WRITER_THREADS = inf\n", kafka_writer_config, "KAFKA_WRITER_THREADS"),
    ("KAFKA_BROKERS = a:1\nKAFKA_TIMEOUT_SECONDS = nan\n", kafka_writer_config,
     "KAFKA_TIMEOUT_SECONDS"),
    ("FILE_WRITER_MAX_BYTES = inf\n", file_writer_config, "FILE_WRITER_MAX_BYTES"),
    ("MAX_CACHE_SIZE = nan\n", cache_config, "MAX_CACHE_SIZE"),
    ("WAL_SYNC_INTERVAL = inf\n", wal_config, "WAL_SYNC_INTERVAL"),
    ("CASSANDRA_RECENT_BINS = -1\n", cassandra_config, "CASSANDRA_RECENT_BINS"),
    ("DESTINATION_HEALTH_CHECK = true\nHEALTH_CHECK_FAIL_S = 0\n", health_check_config,
     "HEALTH_CHECK_FAIL_S"),
])
def test_every_number_key_refuses_what_its_reader_refuses(tmp_path, body, read, key):
    with pytest.raises(ConfigError) as info:
        read(_conf(tmp_path, body))
    assert info.value.key == key and info.value.line == body.count("\n") + 1


def test_a_boolean_is_not_a_number_for_any_key():
    with pytest.raises(ConfigError, match="CASSANDRA_MAX_INFLIGHT"):
        cassandra_config(_values(CASSANDRA_HOSTS=("db",), CASSANDRA_KEYSPACE="metric",
                                 CASSANDRA_CONSISTENCY="ONE", CASSANDRA_PROTOCOL_VERSION=4,
                                 CASSANDRA_USER=None, CASSANDRA_PASSWORD=None,
                                 CASSANDRA_MAX_INFLIGHT=True, CASSANDRA_LOCAL_DC=None,
                                 CASSANDRA_CREATE_SCHEMA=False, CASSANDRA_REPLICATION_FACTOR=1,
                                 CASSANDRA_CONNECT_TIMEOUT=1, CASSANDRA_REQUEST_TIMEOUT=1,
                                 CASSANDRA_RECONNECT_SECONDS=1, CASSANDRA_RECENT_BINS=1,
                                 CASSANDRA_BIN_WINDOW=1, CONF_DIR="."))
    with pytest.raises(ConfigError, match="MAX_UPDATES_PER_SECOND"):
        cache_config(_values(CACHE_WRITE_STRATEGY="sorted", MAX_CACHE_SIZE=None,
                             MIN_TIMESTAMP_LAG=0, MAX_UPDATES_PER_SECOND=True, MAX_CREATES_PER_MINUTE=None))


def test_limits_and_stall_keep_their_meaning(tmp_path):
    conf = _conf(tmp_path, "MAX_CACHE_SIZE = 0\nMAX_UPDATES_PER_SECOND = inf\n"
                           "MAX_CREATES_PER_MINUTE = 30\nWRITER_STALL_SECONDS = inf\n")
    cache = cache_config(conf)
    assert (cache.max_points, cache.max_updates_per_second, cache.max_creates_per_minute) == \
        (math.inf, math.inf, 30.0)
    assert writer_stall_seconds(conf) == math.inf
