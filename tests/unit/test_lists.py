"""whitelist/blacklist files and the batch filter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cadent.compat.errors import ConfigError
from cadent.compat.lists import MetricFilter, parse_pattern_list, read_pattern_list

REPO = Path(__file__).resolve().parents[2]


def test_read_pattern_list(tmp_path):
    path = tmp_path / "whitelist.conf"
    path.write_text("# comment\n\n  \n^a\\.  \n  #b\nc$\n")
    patterns = read_pattern_list(str(path))
    assert [p.pattern for p in patterns] == ["^a\\.", "#b", "c$"]
    assert read_pattern_list(str(tmp_path / "missing.conf")) == ()


def test_parse_text():
    assert [p.pattern for p in parse_pattern_list("#x\na\n", "f")] == ["a"]
    with pytest.raises(ConfigError) as err:
        parse_pattern_list("[\n", "f")
    assert (err.value.filename, err.value.line) == ("f", 1)


def test_bad_regex_is_located(tmp_path):
    path = tmp_path / "blacklist.conf"
    path.write_text("ok\n\nbad(\n")
    with pytest.raises(ConfigError) as err:
        read_pattern_list(str(path))
    assert (err.value.filename, err.value.line) == (str(path), 3)


def test_shipped_examples_are_all_comments():
    for name in ("whitelist.conf.example", "blacklist.conf.example"):
        assert read_pattern_list(str(REPO / "conf" / name)) == ()


def _compile(*patterns):
    return tuple(re.compile(p) for p in patterns)


def test_filter_order_and_counts():
    f = MetricFilter(whitelist=_compile("^servers\\.", "^apps\\."),
                     blacklist=_compile("\\.debug\\.", "^apps\\.secret"))
    batch = [("servers.a.cpu", (1, 1)), ("servers.debug.x", (1, 2)), ("other.x", (1, 3)),
             ("apps.secret.k", (1, 4)), ("apps.web", (1, 5)), ("other.x", (2, 6))]
    kept, black, white = f.filter_batch(batch)
    assert kept == [("servers.a.cpu", (1, 1)), ("apps.web", (1, 5))]
    assert (black, white) == (2, 2)
    # The cached verdicts give the same answer the second time.
    assert f.filter_batch(batch) == (kept, black, white)


def test_empty_lists_pass_everything():
    f = MetricFilter()
    batch = [("a", (1, 1))]
    assert not f.active
    assert f.filter_batch(batch) == (batch, 0, 0)
    assert f.filter_batch(batch)[0] is batch
    only_black = MetricFilter(blacklist=_compile("^x"))
    assert only_black.filter_batch([("x1", (1, 1)), ("y", (1, 1))]) == ([("y", (1, 1))], 1, 0)


def test_case_sensitive_and_search():
    f = MetricFilter(whitelist=_compile("cpu"))
    kept, _, white = f.filter_batch([("host.cpu.user", (1, 1)), ("host.CPU", (1, 1))])
    assert kept == [("host.cpu.user", (1, 1))] and white == 1


@pytest.mark.parametrize("patterns", [
    ["(a)\\1", "^b"],             # back-reference: must not be renumbered
    ["(?i)^up", "x$"],            # inline global flag
    ["(?P<n>q)(?P=n)", "zz"],     # named group
    ["a|b", "^c"],                # alternation inside one pattern
])
def test_merged_search_equals_any(patterns):
    compiled = _compile(*patterns)
    f = MetricFilter(blacklist=compiled, cache_size=2)
    names = ["aa", "ab", "b1", "UPx", "upper", "qq", "q", "zz", "xc", "cab", "d", "yx"]
    kept, black, _ = f.filter_batch([(n, (1, 1)) for n in names])
    expected = [n for n in names if not any(p.search(n) for p in compiled)]
    assert [n for n, _ in kept] == expected
    assert black == len(names) - len(expected)
