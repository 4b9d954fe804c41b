"""graphite's glob without up-front brace expansion: same answers, no exponential blow-up."""

from __future__ import annotations

import fnmatch
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadent.api.finders import glob
from cadent.api.finders.glob import PatternError, expand_braces, match_node, node_matcher
from cadent.api.finders.whisper import FindTimeout, WhisperFinder


def _by_expansion(pattern: str, name: str) -> bool:
    """graphite-web's way: every brace variant through fnmatch."""
    return any(fnmatch.fnmatchcase(name, v) for v in expand_braces(pattern, limit=10**6))


_PATTERNS = st.text(alphabet="ab{},*?[]!-", max_size=14)
_NAMES = st.text(alphabet="ab-!]", max_size=8)


@settings(max_examples=400, deadline=None)
@given(_PATTERNS, st.lists(_NAMES, max_size=6))
def test_matcher_equals_expansion(pattern, names):
    want = [n for n in names if _by_expansion(pattern, n)]
    assert match_node(pattern, names) == want
    try:
        seq = glob._parse(pattern)
    except glob._Straddle:
        return
    program = glob._Program(seq)  # the automaton, whatever size the pattern has
    assert [n for n in names if program.matches(n)] == want


def test_expansion_order_and_dedup():
    assert expand_braces("a{b,c{d,e}}f") == ["abf", "acdf", "acef"]
    assert expand_braces("{a,a,b}") == ["a", "b"]
    assert expand_braces("x{a,b") == ["x{a,b"]  # an unclosed brace is literal
    with pytest.raises(PatternError):
        expand_braces("{0,1}" * 14)


def test_fifteen_groups_is_linear():
    pattern = "{0,1}" * 15
    names = [format(i, "015b") for i in range(0, 1 << 15, 97)] + ["2" * 15, "0" * 16, "0" * 14]
    started = time.monotonic()
    assert match_node(pattern, names) == names[:-3]
    assert match_node("{a,aa}" * 30 + "c", ["a" * 59 + "b", "a" * 45 + "c"]) == ["a" * 45 + "c"]
    assert match_node("{*a,*b}" * 12, ["ab" * 100 + "x", "ab" * 6]) == ["ab" * 6]
    assert time.monotonic() - started < 10  # expansion took minutes; a hang guard only


def test_straddling_class_is_capped():
    assert match_node("[{a,b}]x", ["ax", "bx", "{x"]) == ["ax", "bx"]
    with pytest.raises(PatternError):
        node_matcher("[" + "{a,b}" * 14 + "]")
    for huge in ("a" * (glob.MAX_NODE_CHARS + 1) + "*", "{" * 2000 + "}" * 2000,
                 "{" * 1000 + "a,b" + "}" * 1000, "{a}" * 1000 + "[", "{a,b}" * 800):
        with pytest.raises(PatternError):
            node_matcher(huge)
    assert node_matcher("{" * 100 + "a,b" + "}" * 100)("b")


def test_finder_walks_fifteen_groups(tmp_path):
    for bits in ("000000000000000", "101010101010101", "111111111111111", "0000000000000002"):
        os.makedirs(tmp_path / "deep" / bits)
        open(tmp_path / "deep" / bits / "m.wsp", "wb").close()
    finder = WhisperFinder([str(tmp_path)])
    found = sorted(n.path for n in finder.find("deep." + "{0,1}" * 15 + ".m"))
    assert found == ["deep.000000000000000.m", "deep.101010101010101.m", "deep.111111111111111.m"]


def test_finder_deadline(tmp_path):
    os.makedirs(tmp_path / "a" / "b")
    finder = WhisperFinder([str(tmp_path)])
    with pytest.raises(FindTimeout):
        finder.find("a.*", deadline=time.monotonic() - 1)
    assert [n.path for n in finder.find("a.*", deadline=time.monotonic() + 60)] == ["a.b"]
