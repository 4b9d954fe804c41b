"""aggregation-rules.conf parsing and matching."""

from __future__ import annotations

import pytest

from cadent.compat.aggregation_rules import (
    AGGREGATION_METHODS,
    parse_aggregation_rules,
    read_aggregation_rules,
)
from cadent.compat.errors import ConfigError

SAMPLE = """\
# comment
<env>.applications.<app>.all.requests (60) = sum <env>.applications.<app>.*.requests

   servers.all.<metric> (60) = avg servers.*.<metric>
stats.<rest>.total (10)= sum stats.<<rest>>.*
"""


def test_parse_sample():
    rules = parse_aggregation_rules(SAMPLE, "agg.conf")
    assert [(r.output_template, r.frequency, r.method, r.input_pattern, r.line) for r in rules] == [
        ("<env>.applications.<app>.all.requests", 60, "sum", "<env>.applications.<app>.*.requests", 2),
        ("servers.all.<metric>", 60, "avg", "servers.*.<metric>", 4),
        ("stats.<rest>.total", 10, "sum", "stats.<<rest>>.*", 5),
    ]
    apps, servers, stats = rules
    assert apps.output_for("prod.applications.web.host1.requests") == "prod.applications.web.all.requests"
    assert apps.output_for("prod.applications.web.requests") is None
    assert servers.output_for("servers.web01.cpu") == "servers.all.cpu"
    assert servers.output_for("servers.web01.cpu.user") is None  # <f> stays inside one part
    assert stats.output_for("stats.a.b.c.count") == "stats.a.b.c.total"  # <<f>> spans dots, lazily
    assert stats.output_for("stats.x") is None


def test_globs_and_fields_within_parts():
    (rule,) = parse_aggregation_rules("out.<a>.<b> (5) = max in.pre<a>post.x*y.*.<b>")
    assert rule.output_for("in.preAApost.xzzy.q.B") == "out.AA.B"
    assert rule.output_for("in.preAApost.xy.q.B") == "out.AA.B"  # x*y: '*' may be empty
    assert rule.output_for("in.preAApost.xy..B") is None  # a lone '*' needs a non-empty part
    assert rule.output_for("in.prepost.xy.q.B") is None  # <a> needs at least one character
    assert rule.output_for("in.preAApost.xy.q.B.extra") is None  # anchored at the end


def test_only_first_field_per_part_and_no_escaping():
    (rule,) = parse_aggregation_rules("o.<a> (1) = count i.<a>_<b>")
    # the second field stays literal text in the regex
    assert rule.output_for("i.x_<b>") == "o.x"
    assert rule.output_for("i.x_y") is None
    (rule,) = parse_aggregation_rules("o (1) = count a+.b")  # '+' keeps its regex meaning
    assert rule.output_for("aaa.b") == "o"


@pytest.mark.parametrize("method", sorted(AGGREGATION_METHODS))
def test_all_methods_accepted(method):
    (rule,) = parse_aggregation_rules(f"o (60) = {method} i")
    assert rule.method == method


def test_methods_match_carbon():
    rules = pytest.importorskip("carbon.aggregator.rules")
    assert AGGREGATION_METHODS == set(rules.AGGREGATION_METHODS)


def test_frequency_forms():
    rules = parse_aggregation_rules("a (60) = sum b\nc 30 = sum d\ne ((5)) = sum f\n")
    assert [r.frequency for r in rules] == [60, 30, 5]


@pytest.mark.parametrize(
    "line,reason",
    [
        ("no equals sign here", "expected 'output"),
        ("a (60) extra = sum b", "left of '='"),
        ("a = sum b", "left of '='"),
        ("a (60) = sum", "right of '='"),
        ("a (60) = sum b c", "right of '='"),
        ("a (sixty) = sum b", "not a number"),
        ("a (0) = sum b", "positive"),
        ("a (60) = median b", "unknown aggregation method"),
        ("a.<<x>> (60) = sum b.<<x>>", "does not capture"),
        ("a.<y> (60) = sum b.<x>", "does not capture"),
        ("a.%d (60) = sum b", "cannot be filled"),
        ("a (60) = sum b.<x-y>", "not usable"),
        ("a (60) = sum b.<x>.<x>", "not usable"),
    ],
)
def test_bad_lines_name_file_and_line(line, reason):
    with pytest.raises(ConfigError) as info:
        parse_aggregation_rules(f"# header\n\n{line}\n", "/etc/cadent/aggregation-rules.conf")
    err = info.value
    assert (err.filename, err.line) == ("/etc/cadent/aggregation-rules.conf", 3)
    assert reason in err.reason
    assert str(err).startswith("/etc/cadent/aggregation-rules.conf:3: ")


def test_matches_carbon_rule_objects():
    rules_mod = pytest.importorskip("carbon.aggregator.rules")
    lines = [
        "<env>.applications.<app>.all.requests (60) = sum <env>.applications.<app>.*.requests",
        "stats.<rest>.total (10) = sum stats.<<rest>>.*",
        "o.<a>.x (1) = p50 i.pre<a>.*x*",
        "<a>-<b> (1) = min <a>.<<b>>",
    ]
    names = ["prod.applications.web.h.requests", "stats.a.b.c", "i.preZ.y.axb", "i.preZ.q.x",
             "a.b", "a.b.c.d", "stats.", "x", "", "é.ü.ß"]
    ours = parse_aggregation_rules("\n".join(lines))
    for line, rule in zip(lines, ours):
        theirs = rules_mod.RuleManager.parse_definition(line)
        assert rule.regex.pattern == theirs.regex.pattern
        for name in names:
            assert rule.output_for(name) == theirs.get_aggregate_metric(name), (line, name)


def test_read_file(tmp_path):
    path = tmp_path / "aggregation-rules.conf"
    path.write_text("a.<x> (60) = sum b.<x>\r\nbad line\r\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_aggregation_rules(path)
    assert (info.value.filename, info.value.line) == (str(path), 2)
    path.write_text("a.<x> (60) = sum b.<x>\n", encoding="utf-8")
    assert [r.output_for("b.q") for r in read_aggregation_rules(path)] == ["a.q"]
    missing = tmp_path / "nope.conf"
    with pytest.raises(ConfigError, match="does not exist"):
        read_aggregation_rules(missing)
    assert read_aggregation_rules(missing, missing_ok=True) == []
