"""DESTINATIONS parsing and the Destination value type."""

from __future__ import annotations

import pytest

from cadent.core.route.destination import (
    Destination,
    check_unique_nodes,
    parse_destination,
    parse_destinations,
)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("127.0.0.1:2004", ("127.0.0.1", 2004, None)),
        ("127.0.0.1:2004:a", ("127.0.0.1", 2004, "a")),
        ("  h:2004:a  ", ("h", 2004, "a")),
        ("h:2004:", ("h", 2004, "")),
        ("h:2004:a:b", ("h", 2004, "a:b")),
        ("[::1]:2004", ("::1", 2004, None)),
        ("[2001:db8::1]:2004:a", ("2001:db8::1", 2004, "a")),
        ("[::1]:2004:x:y", ("::1", 2004, "x:y")),
        ("localhost:2004", ("localhost", 2004, None)),
        ("h: 2004", ("h", 2004, None)),
    ],
)
def test_parse(text, expected):
    assert parse_destination(text) == Destination(*expected)


@pytest.mark.parametrize(
    "text", ["", "host", "h:", "h:abc", "h::a", "[::1]", "[::1]:", "[::1]:x", "h:70000", "h:-1"]
)
def test_bad_entries(text):
    with pytest.raises(ValueError, match="invalid destination"):
        parse_destination(text)


def test_matches_carbon_on_valid_entries():
    util = pytest.importorskip("carbon.util")
    entries = ["127.0.0.1:2004", "h:2004:", "h:2004:a:b", "[::1]:2004:x", " [fe80::1%eth0]:2104:b ",
               "h: 2004", "a.b.c:1:None", "[h]:1", "ü:2:ñ"]
    for entry in entries:
        d = parse_destination(entry)
        assert (d.host, d.port, d.instance) == util.parseDestination(entry), entry


def test_parse_list_keeps_order_and_duplicates():
    dests = parse_destinations(["b:1", "a:2:x", "b:1"])
    assert dests == [Destination("b", 1, None), Destination("a", 2, "x"), Destination("b", 1, None)]


def test_keys_and_str():
    d = Destination("127.0.0.1", 2004, None)
    assert d.node == ("127.0.0.1", None)
    assert d.key == "127.0.0.1:2004:None"
    assert d.metric_key == "127_0_0_1:2004:None"
    assert str(d) == "127.0.0.1:2004:"
    e = Destination("::1", 2104, "b")
    assert e.key == "::1:2104:b" and str(e) == "::1:2104:b" and e.metric_key == "::1:2104:b"
    assert Destination("h", 1, "").key == "h:1:"
    assert hash(d) == hash(Destination("127.0.0.1", 2004, None))
    with pytest.raises(AttributeError):
        d.port = 1  # type: ignore[misc]


def test_unique_nodes():
    check_unique_nodes(parse_destinations(["h:2004:a", "h:2104:b", "g:2004:a", "h:2204"]))
    with pytest.raises(ValueError, match=r"\(h, None\) already configured"):
        check_unique_nodes(parse_destinations(["h:2004", "h:2104"]))
    with pytest.raises(ValueError, match="already configured"):
        check_unique_nodes(parse_destinations(["h:2004:a", "h:2104:a"]))
    # an empty instance and no instance are different identities
    check_unique_nodes(parse_destinations(["h:2004", "h:2104:"]))
