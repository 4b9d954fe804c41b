"""rewrite-rules.conf: parsing, ordering, errors, and batch rewriting."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cadent.compat.errors import ConfigError
from cadent.compat.rewrite_rules import (RewriteRules, apply_rules, parse_rewrite_rules,
                                         read_rewrite_rules)

REPO = Path(__file__).resolve().parents[2]

TEXT = """\
^ignored = before any header
[PRE]
  # indented comment
\\.prod\\. = .production.
^(\\w+)\\.(\\w+) = \\2.\\1
(?P<h>host\\d+) = \\g<h>_x

[post]
a = b = c
[other]
x = y
"""


def test_parse_and_apply(caplog):
    with caplog.at_level(logging.WARNING):
        rules = parse_rewrite_rules(TEXT, "rw.conf")
    assert [r.line for r in rules.pre] == [4, 5, 6]
    assert [(r.regex.pattern, r.replacement) for r in rules.post] == [("a", "b = c")]
    assert "rw.conf:1:" in caplog.text and "rw.conf:10:" in caplog.text
    name = "web.prod.host12.cpu"
    for rule in rules.pre:
        name = rule.apply(name)
    assert name == "production.web.host12_x.cpu"
    assert rules.pre[0].apply("a.prod.b.prod.c") == "a.production.b.production.c"
    assert rules.pre[1].apply("web.prod") == "prod.web"
    assert rules.post[0].apply("banana") == "bb = cnb = cnb = c"


def test_matches_carbon(tmp_path):
    from carbon.rewrite import PRE, POST, RewriteRuleManager

    path = tmp_path / "rewrite-rules.conf"
    path.write_text(TEXT)
    RewriteRuleManager.clear()
    RewriteRuleManager.rules_file = str(path)
    RewriteRuleManager.rules_last_read = 0.0
    RewriteRuleManager.read_rules()
    ours = read_rewrite_rules(str(path))
    for theirs, mine in ((RewriteRuleManager.rules(PRE), ours.pre),
                         (RewriteRuleManager.rules(POST), ours.post)):
        for name in ["web.prod.host12.cpu", "a.b", "banana", "x"]:
            expected = name
            for rule in theirs:
                expected = rule.apply(expected)
            batch = apply_rules(mine, [(name, (1.0, 2.0))])
            assert batch == [(expected, (1.0, 2.0))]
    RewriteRuleManager.clear()


def test_apply_rules_batch():
    rules = parse_rewrite_rules("[pre]\n^a\\. = b.\n", "f").pre
    point_c = ("c.x", (1.0, 3.0))
    batch = [("a.x", (1.0, 1.0)), point_c, ("a.x", (2.0, 2.0))]
    out = apply_rules(rules, batch)
    assert out == [("b.x", (1.0, 1.0)), ("c.x", (1.0, 3.0)), ("b.x", (2.0, 2.0))]
    assert out[1] is point_c  # unchanged points are reused
    assert batch[0] == ("a.x", (1.0, 1.0))  # input untouched
    assert apply_rules((), batch) is batch


def test_repeated_header_starts_afresh(caplog):
    with caplog.at_level(logging.WARNING):
        rules = parse_rewrite_rules("[pre]\na = b\n[post]\nc = d\n[pre]\ne = f\n", "f")
    assert [r.replacement for r in rules.pre] == ["f"]
    assert [r.replacement for r in rules.post] == ["d"]
    assert "f:5:" in caplog.text


@pytest.mark.parametrize("text, line", [
    ("[pre]\nok = fine\n(bad = x\n", 3),
    ("[post]\n\nnot a rule\n", 3),
    ("[pre]\n(a) = \\2\n", 2),
    ("[pre]\na = \\g<nope>\n", 2),
])
def test_errors(text, line):
    with pytest.raises(ConfigError) as err:
        parse_rewrite_rules(text, "rw.conf")
    assert (err.value.filename, err.value.line) == ("rw.conf", line)


def test_missing_and_shipped_file(tmp_path):
    assert read_rewrite_rules(str(tmp_path / "none")) == RewriteRules()
    shipped = read_rewrite_rules(str(REPO / "conf" / "rewrite-rules.conf"))
    assert shipped == RewriteRules()
