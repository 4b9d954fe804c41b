"""relay-rules.conf: order, default rule, and every start-up error carbon has."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cadent.compat.errors import ConfigError
from cadent.compat.relay_rules import read_relay_rules

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "relay-rules.conf"
    path.write_text(text)
    return str(path)


RULES = """\
# comment
[catch-all]
default = true
destinations = 127.0.0.1:2004

[Stats]
pattern = ^stats\\.  # not a comment
destinations = 10.0.0.1:2004:a, 10.0.0.2:2004:b
continue = YES

[off]
default = false
destinations = 10.0.0.9:2004

[web]
PATTERN = ^web\\.
Destinations = [::1]:2004
"""


def test_order_default_last_and_fields(tmp_path):
    path = write(tmp_path, RULES)
    rules = read_relay_rules(path)
    assert [r.name for r in rules] == ["Stats", "web", "catch-all"]
    stats, web, default = rules
    assert stats.pattern.pattern == "^stats\\.  # not a comment"
    assert stats.pattern.flags & 2  # re.IGNORECASE
    assert stats.destinations == ["10.0.0.1:2004:a", "10.0.0.2:2004:b"]
    assert stats.continue_matching and not stats.is_default and stats.line == 6
    assert web.destinations == ["[::1]:2004"] and not web.continue_matching
    assert default.is_default and default.pattern is None and default.line == 2
    assert web.matches("WEB.x") and not web.matches("x.web")
    assert default.matches("anything")


def test_agrees_with_carbon(tmp_path):
    from carbon.relayrules import loadRelayRules

    path = write(tmp_path, RULES.replace("  # not a comment", ""))
    theirs = loadRelayRules(path)
    ours = read_relay_rules(path)
    assert len(theirs) == len(ours)
    for name in ["stats.x", "STATS.y", "web.a", "other", "x.stats."]:
        assert [t.matches(name) for t in theirs] == [o.matches(name) for o in ours]
    for t, o in zip(theirs, ours):
        assert t.continue_matching == o.continue_matching
        assert [(d[0], d[1], d[2]) for d in t.destinations] == [
            (h, int(p), i) for h, p, i in (_split(d) for d in o.destinations)]


def _split(text: str):
    from cadent.core.route.destination import parse_destination

    d = parse_destination(text)
    return d.host, d.port, d.instance


@pytest.mark.parametrize("text, line, words", [
    ("[a]\npattern = x\n", 1, "destinations"),
    ("[d]\ndefault = true\ndestinations = h:1\n[a]\npattern = x\ndefault = false\n"
     "destinations = h:1\n", 4, "both"),
    ("[a]\npattern = x\ndestinations = h:1\n", 0, "no default"),
    ("[d]\ndefault = true\ndestinations = h:1\n\n[e]\ndefault = on\ndestinations = h:2\n",
     5, "second default"),
    ("[d]\ndefault = true\ndestinations = h:1\n[a]\npattern = x(\ndestinations = h:1\n",
     5, "pattern"),
    ("[d]\ndefault = perhaps\ndestinations = h:1\n", 2, "boolean"),
    ("[d]\ndefault = true\ndestinations = h:1\n[a]\npattern = x\ndestinations = h:1\n"
     "continue = sure\n", 7, "boolean"),
    ("[d]\ndefault = true\ndestinations = h:1,\n", 3, "destination"),
    ("[d]\ndefault = true\ndestinations = hostonly\n", 3, "destination"),
    ("[d]\ndefault = true\ndestinations = h:1\n[d]\ndefault = true\ndestinations = h:1\n",
     4, "section"),
    ("[d]\ndefault = true\ndestinations = h:1\nDESTINATIONS = h:2\n", 4, "duplicate"),
])
def test_startup_errors(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        read_relay_rules(path)
    assert err.value.filename == path and err.value.line == line
    assert words in str(err.value).lower()


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError):
        read_relay_rules(str(tmp_path / "none.conf"))


def test_sections_without_pattern_or_default_and_unknown_keys_warn(tmp_path, caplog):
    path = write(tmp_path, "[x]\ndestinations = h:1\n[d]\ndefault = true\n"
                           "destinations = h:1\ncolour = red\n")
    with caplog.at_level(logging.WARNING):
        rules = read_relay_rules(path)
    assert [r.name for r in rules] == ["d"]
    text = caplog.text
    assert f"{path}:1:" in text and f"{path}:6:" in text and "colour" in text


def test_shipped_file():
    rules = read_relay_rules(str(REPO / "conf" / "relay-rules.conf"))
    assert len(rules) == 1 and rules[0].is_default
    assert rules[0].destinations == ["127.0.0.1:2004"]


def relay_settings_with_rules(tmp_path: Path, rules: str, destinations: str):
    from cadent.compat.relay_settings import load_relay_settings
    (tmp_path / "relay-rules.conf").write_text(rules)
    conf = tmp_path / "carbon.conf"
    conf.write_text(f"[relay]\nRELAY_METHOD = rules\nDESTINATIONS = {destinations}\n"
                    f"STORAGE_DIR = {tmp_path}\nLOG_DIR = {tmp_path}\nPID_DIR = {tmp_path}\n")
    return load_relay_settings(str(conf))


@pytest.mark.parametrize("destinations", [
    "10.0.0.1:2004:a",   # 10.0.0.2 missing altogether
    "10.0.0.1:2004:a, 10.0.0.2:2104:b",   # another port
    "10.0.0.1:2004:a, 10.0.0.2:2004:c",   # another instance
    "10.0.0.1:2004:a, 10.0.0.2:2004",     # no instance
])
def test_rule_destination_not_in_destinations_is_an_error(tmp_path, destinations):
    rules = ("[d]\ndefault = true\ndestinations = 10.0.0.1:2004:a\n\n"
             "[stats]\npattern = ^stats\\.\ndestinations = 10.0.0.1:2004:a,10.0.0.2:2004:b\n")
    with pytest.raises(ConfigError) as err:
        relay_settings_with_rules(tmp_path, rules, destinations)
    assert (err.value.filename, err.value.line) == (str(tmp_path / "relay-rules.conf"), 7)
    assert "10.0.0.2:2004:b" in err.value.reason and "not in DESTINATIONS" in err.value.reason


def test_rule_destinations_all_configured_load(tmp_path):
    settings = relay_settings_with_rules(
        tmp_path, "[d]\ndefault = true\ndestinations = [::1]:2004, h:2104:b\n",
        "h:2104:b, [::1]:2004")
    assert {str(d) for d in settings.router.destinations_for("x")} == {"::1:2004:", "h:2104:b"}
