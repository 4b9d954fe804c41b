"""carbon.conf [cache] → CacheSettings."""

from __future__ import annotations

import math

import pytest

from cadent.compat.cache_settings import load_cache_settings
from cadent.compat.errors import ConfigError


def _write(tmp_path, text, schemas="[all]\npattern = .*\nretentions = 10s:1d\n", aggregation=None):
    (tmp_path / "carbon.conf").write_text(text)
    if schemas is not None:
        (tmp_path / "storage-schemas.conf").write_text(schemas)
    if aggregation is not None:
        (tmp_path / "storage-aggregation.conf").write_text(aggregation)
    return str(tmp_path / "carbon.conf")


def test_defaults_are_carbons(tmp_path):
    s = load_cache_settings(_write(tmp_path, "[cache]\nSTORAGE_DIR = %s\n" % tmp_path))
    assert s.cache.strategy == "sorted"
    assert s.cache.max_points == math.inf
    assert s.cache.max_updates_per_second == 500
    assert s.cache.max_creates_per_minute == math.inf
    assert s.carbonlink == ("0.0.0.0", 7002)
    assert s.receivers.line == ("0.0.0.0", 2003) and s.receivers.udp is None
    assert s.whisper.data_dir == str(tmp_path / "whisper")
    assert s.whisper.tag_hash_filenames is True
    assert s.self_metrics.instance == "a"
    assert s.schemas.archives_for("x") == [(10, 8640)]
    assert s.aggregations.settings_for("x") == (0.5, "average")


def test_instance_section_overrides(tmp_path):
    conf = _write(tmp_path, "[cache]\nSTORAGE_DIR = %s\nMAX_CACHE_SIZE = 1000\n"
                            "CACHE_WRITE_STRATEGY = max\nWHISPER_AUTOFLUSH = True\n"
                            "[cache:b]\nCACHE_QUERY_PORT = 0\nLINE_RECEIVER_PORT = 2103\n"
                            "MAX_UPDATES_PER_SECOND = 0\n" % tmp_path,
                  aggregation="[c]\npattern = count$\nxFilesFactor = 0\naggregationMethod = sum\n")
    s = load_cache_settings(conf, "b")
    assert s.carbonlink is None
    assert s.receivers.line == ("0.0.0.0", 2103)
    assert s.cache.max_points == 1000 and s.cache.strategy == "max"
    assert s.cache.max_updates_per_second == math.inf
    assert s.whisper.autoflush is True
    assert s.self_metrics.instance == "b"
    assert s.pidfile.endswith("cadent-cache-b.pid")
    assert s.aggregations.settings_for("a.count") == (0.0, "sum")


@pytest.mark.parametrize("text, where", [
    ("[cache]\nCACHE_WRITE_STRATEGY = random\n", "CACHE_WRITE_STRATEGY"),
    ("[cache]\nDATABASE = ceres\n", "DATABASE"),
    ("[cache]\nDATABASE = whisper, whisper\n", "DATABASE"),
    ("[cache]\nDATABASE = ,\n", "DATABASE"),
])
def test_bad_values_are_config_errors(tmp_path, text, where):
    with pytest.raises(ConfigError, match=where):
        load_cache_settings(_write(tmp_path, text))


def test_database_lists_backends_primary_first(tmp_path):
    conf = "[cache]\nSTORAGE_DIR = %s\n" % tmp_path
    assert load_cache_settings(_write(tmp_path, conf)).databases == ("whisper",)
    listed = load_cache_settings(_write(tmp_path, conf + "DATABASE = Cassandra , whisper\n"))
    assert listed.databases == ("cassandra", "whisper")


def test_unknown_database_names_the_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_cache_settings(_write(tmp_path, "[cache]\n\nDATABASE = whisper, ceres\n"))
    assert "carbon.conf:3:" in str(err.value) and "'ceres'" in str(err.value)


def test_missing_schemas_and_bad_entries_name_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match="storage-schemas.conf"):
        load_cache_settings(_write(tmp_path, "[cache]\n", schemas=None))
    with pytest.raises(ConfigError) as err:
        load_cache_settings(_write(tmp_path, "[cache]\n",
                                   aggregation="[x]\npattern = .*\nxFilesFactor = 2\n"))
    assert str(err.value).endswith("storage-aggregation.conf:3: xFilesFactor 2 out of [0,1] in [x]")
