import pytest

from cadent.compat.errors import ConfigError
from cadent.compat.storage_schemas import (
    DEFAULT_SCHEMA, load_storage_schemas, parse_retention, parse_retentions,
)


@pytest.mark.parametrize("text, expected", [
    ("10s:7d", (10, 60480)), ("60:1440", (60, 1440)), ("1m:1y", (60, 525600)),
    ("7s:1m", (7, 8)), (" 1h:1w ", (3600, 168)), ("1:1d", (1, 86400)),
])
def test_retention_syntax(text, expected):
    assert parse_retention(text) == expected


@pytest.mark.parametrize("text", ["1min:1d", "10S:1d", "10s :1d", "10s", "1:2:3", "x:1", "10s:1q", ""])
def test_bad_retention(text):
    with pytest.raises(ValueError):
        parse_retention(text)


def test_retention_list_keeps_order():
    assert parse_retentions("1m:1d, 10s:6h") == [(60, 1440), (10, 2160)]


def write(tmp_path, text):
    path = tmp_path / "storage-schemas.conf"
    path.write_text(text)
    return str(path)


def test_first_match_wins_and_default(tmp_path):
    schemas = load_storage_schemas(write(tmp_path, """
# comment
[carbon]
pattern = ^carbon\\.
retentions = 60:90d

[Stats]
PATTERN = ^stats\\. # not a comment: part of the regex
Retentions = 1m:1d,10s:6h

[catchall]
pattern = stats
retentions = 1:10
"""))
    assert schemas.match("carbon.agents.x").archives == ((60, 129600),)
    # inline '#' belongs to the regex, so ^stats\. alone does not match: the next section does
    assert schemas.match("stats.a").name == "catchall"
    assert schemas.match("other.x") is DEFAULT_SCHEMA
    assert DEFAULT_SCHEMA.archives == ((60, 10080),)


def test_archives_sorted_and_search_semantics(tmp_path):
    schemas = load_storage_schemas(write(tmp_path, """
[a]
pattern = mid
retentions = 1m:1d,10s:6h
"""))
    assert schemas.match("x.mid.y").archives == ((10, 2160), (60, 1440))
    assert schemas.match("x.MID.y") is DEFAULT_SCHEMA


def test_section_without_pattern_is_skipped(tmp_path):
    schemas = load_storage_schemas(write(tmp_path, """
[nopattern]
retentions = 60:1d
[good]
pattern = .*
retentions = 10:1d
"""))
    assert [s.name for s in schemas.schemas] == ["good"]
    assert schemas.match("anything").name == "good"


@pytest.mark.parametrize("section, line, words", [
    ("[noretentions]\npattern = .*\n", 4, "no 'retentions'"),
    ("[duplicate_precision]\npattern = .*\nretentions = 60:1d,60:2d\n", 6, "60:1d,60:2d"),
    ("[not_dividing]\npattern = .*\nretentions = 10s:6h,15s:1d\n", 6, "evenly divide"),
    ("[not_growing]\npattern = .*\nretentions = 10s:1d,1m:6h\n", 6, "cover larger time intervals"),
    ("[too_few_points]\npattern = .*\nretentions = 10s:2,1m:1d\n", 6, "consolidate"),
    ("[zero_points]\npattern = .*\nretentions = 10s:0\n", 6, "positive"),
    ("[nopattern_but_invalid]\nretentions = 10s:6h,15s:1d\n", 5, "evenly divide"),
])
def test_sections_whisper_or_carbon_would_ignore_are_fatal(tmp_path, section, line, words):
    """Carbon skips these sections, so their metrics silently get 60s:7d: cadent refuses them."""
    path = write(tmp_path, "[good]\npattern = x\nretentions = 10:1d\n" + section)
    with pytest.raises(ConfigError) as info:
        load_storage_schemas(path)
    assert (info.value.filename, info.value.line) == (path, line), info.value
    assert words in info.value.reason


def test_bad_retention_is_fatal_even_without_pattern(tmp_path):
    path = write(tmp_path, "[x]\nretentions = 60:1d\n[y]\nretentions = 1min:1d\n")
    with pytest.raises(ConfigError) as info:
        load_storage_schemas(path)
    assert info.value.line == 4 and info.value.filename == path


def test_missing_file_and_syntax_errors(tmp_path):
    with pytest.raises(ConfigError):
        load_storage_schemas(str(tmp_path / "absent.conf"))
    with pytest.raises(ConfigError):
        load_storage_schemas(write(tmp_path, "[a]\npattern = x\npattern = y\nretentions = 1:2\n"))
    with pytest.raises(ConfigError):
        load_storage_schemas(write(tmp_path, "[a]\npattern = x\nretentions = 1:2\n[a]\n"))
    with pytest.raises(ConfigError) as info:
        load_storage_schemas(write(tmp_path, "[a]\npattern = 5%\nretentions = 1:2\n"))
    assert info.value.line == 2


def test_configparser_dialect(tmp_path):
    schemas = load_storage_schemas(write(tmp_path, """
; semicolon comment
[a]
pattern: ^"quoted"%%
retentions = 10s:1d,
    1m:7d
"""))
    (schema,) = schemas.schemas
    assert schema.pattern == '^"quoted"%'
    assert schema.archives == ((10, 8640), (60, 10080))
    assert schemas.match('"quoted"%.x') is schema


def test_matches_carbon(tmp_path, monkeypatch):
    """Same file through carbon's own loader (the installed package) gives the same choice."""
    from carbon.conf import settings
    monkeypatch.setitem(settings, "CONF_DIR", str(tmp_path))
    from carbon import storage
    path = write(tmp_path, """
[carbon]
pattern = ^carbon\\.
retentions = 60:90d
[stats]
pattern = ^stats\\.
retentions = 10s:6h,1m:7d,10m:5y
[x]
pattern = count$
retentions = 7s:1m
""")
    monkeypatch.setattr(storage, "STORAGE_SCHEMAS_CONFIG", path)
    theirs = storage.loadStorageSchemas()
    ours = load_storage_schemas(path)
    for name in ["carbon.a", "stats.b.count", "x.count", "nothing"]:
        expected = next(s for s in theirs if s.matches(name))
        assert list(ours.match(name).archives) == sorted(a.getTuple() for a in expected.archives)
