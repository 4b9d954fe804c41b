import pytest

from cadent.compat.errors import ConfigError
from cadent.compat.storage_aggregation import load_storage_aggregation


def write(tmp_path, text):
    path = tmp_path / "storage-aggregation.conf"
    path.write_text(text)
    return str(path)


def test_missing_file_is_defaults(tmp_path):
    agg = load_storage_aggregation(str(tmp_path / "absent.conf"))
    assert agg.settings_for("a.b") == (0.5, "average")


def test_first_match_and_partial_sections(tmp_path):
    agg = load_storage_aggregation(write(tmp_path, """
[min]
pattern = \\.min$
xFilesFactor = 0.1
aggregationMethod = min
[count]
pattern = \\.count$
AGGREGATIONMETHOD = sum
[xffonly]
pattern = ^lossy\\.
xfilesfactor = 0
[all_count]
pattern = count
aggregationMethod = max
"""))
    assert agg.settings_for("a.min") == (0.1, "min")
    assert agg.settings_for("a.count") == (0.5, "sum")
    assert agg.settings_for("lossy.x") == (0.0, "average")
    assert agg.settings_for("x.counter") == (0.5, "max")
    assert agg.settings_for("x.y") == (0.5, "average")


def test_skips_and_fatal(tmp_path):
    agg = load_storage_aggregation(write(tmp_path, """
[nonnumeric]
pattern = .*
xFilesFactor = half
[nopattern]
aggregationMethod = sum
[last]
pattern = .*
aggregationMethod = last
"""))
    assert [r.name for r in agg.rules] == ["last"]
    for bad in ("xFilesFactor = 1.5", "aggregationMethod = median", "xFilesFactor = -0.1"):
        with pytest.raises(ConfigError) as info:
            load_storage_aggregation(write(tmp_path, f"[a]\npattern = x\n{bad}\n"))
        assert info.value.line == 3


def test_all_whisper_methods_accepted(tmp_path):
    import whisper
    for method in whisper.aggregationMethods:
        agg = load_storage_aggregation(write(tmp_path, f"[a]\npattern = .\naggregationMethod = {method}\n"))
        assert agg.settings_for("x") == (0.5, method)
