"""safe_loads and PickleFrameParser: no code ever runs, carbon's item rules, framing edge cases."""

from __future__ import annotations

import builtins
import logging
import math
import os
import pickle
import struct

import pytest

from cadent.core.lograte import LogLimiter
from cadent.core.parse.pickle import PickleFrameParser, safe_loads
from tests.carbon_receivers import capture_receiver
from tests.vectors import load_vector

NOW = 1234567890.5


def parser(**kwargs) -> PickleFrameParser:
    kwargs.setdefault("clock", lambda: NOW)
    return PickleFrameParser(**kwargs)


def frame(body: bytes) -> bytes:
    return struct.pack("!L", len(body)) + body


def frame_of(obj, protocol: int = 2) -> bytes:
    return frame(pickle.dumps(obj, protocol=protocol))


GOOD = [("a.b", (1700000000.0, 1.5)), ("c", (1700000060.0, -2.0))]


def test_client_pickle_example_vector():
    vector = load_vector("carbon_protocol_samples.json")["client_pickle_example"]
    p = parser()
    batch = p.feed(bytes.fromhex(vector["frame_hex"]))
    assert batch == [("foo.bar", (1700000000.0, 1.5)), ("foo.baz", (1700000000.0, 2.0))]
    assert all(type(ts) is float and type(v) is float for _, (ts, v) in batch)
    assert not any(p.take_counters().values())


def test_py2_style_pickle_vector():
    vector = load_vector("carbon_protocol_samples.json")["py2_style_pickle"]
    p = parser()
    assert p.feed(bytes.fromhex(vector["frame_hex"])) == [("py2.shortstr", (1700000000.0, 2.5))]
    assert not any(p.take_counters().values())


def test_relay_pickle_output_vector_parses_back():
    vector = load_vector("carbon_protocol_samples.json")["relay_pickle_output"]
    batch = parser().feed(bytes.fromhex(vector["frame_hex"]))
    assert repr(batch) == vector["decoded"]


def test_py2_string_safe_loads_decodes_utf8():
    body = b"\x80\x02]q\x00U\x07m\xc3\xa9tricq\x01a."
    assert safe_loads(body) == ["métric"]


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_every_protocol(protocol):
    assert parser().feed(frame_of(GOOD, protocol)) == GOOD


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_lists_instead_of_tuples(protocol):
    data = [[name, [ts, value]] for name, (ts, value) in GOOD]
    assert parser().feed(frame_of(data, protocol)) == GOOD


def test_tuple_of_items_and_empty_frames():
    p = parser()
    stream = frame_of([]) + frame_of(tuple(GOOD)) + frame_of(())
    assert p.feed(stream) == GOOD
    assert not any(p.take_counters().values())


# --- malicious pickles ----------------------------------------------------------------------

class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def malicious_bodies(marker: str) -> list[bytes]:
    touch = "touch " + marker
    create = "open(%r, 'w').close()" % marker
    bodies = []
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        bodies.append(pickle.dumps(_Reduce(os.system, touch), protocol))
        bodies.append(pickle.dumps([("a", (1, 1)), _Reduce(builtins.eval, create)], protocol))
        bodies.append(pickle.dumps(_Reduce(builtins.exec, create), protocol))
        bodies.append(pickle.dumps({1, 2}, protocol))  # a REDUCE of builtins.set below 4
    bodies += [
        b"cos\nsystem\n(S'" + touch.encode() + b"'\ntR.",                       # GLOBAL+REDUCE
        b"(S'" + touch.encode() + b"'\nios\nsystem\n.",                          # INST
        b"(cos\nsystem\nS'" + touch.encode() + b"'\no.",                        # OBJ
        b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x05" + b"touch\x85R.",       # STACK_GLOBAL
        b"\x80\x02\x82\x01.",                                                     # EXT1
        b"Pwhatever\n.",                                                          # PERSID
        b"\x80\x02}q\x00U\x03fooq\x01K\x01sb.",                                   # BUILD on a dict
    ]
    return bodies


def test_malicious_pickles_run_nothing(tmp_path):
    marker = str(tmp_path / "pwned")
    for body in malicious_bodies(marker):
        with pytest.raises(Exception):
            result = safe_loads(body)
            if isinstance(result, set):  # protocol 4+ sets need no global and are harmless
                raise ValueError("no global needed")
    assert not os.path.exists(marker)


def test_malicious_frames_cost_only_their_frame(tmp_path):
    marker = str(tmp_path / "pwned")
    bodies = malicious_bodies(marker)
    stream = b"".join(frame(body) + frame_of(GOOD) for body in bodies)
    p = parser()
    batch = p.feed(stream)
    assert not os.path.exists(marker)
    assert batch.count(GOOD[0]) == len(bodies)
    counters = p.take_counters()
    # protocol 4+ sets unpickle without a global: a valid frame holding invalid items
    assert counters["bad_frames"] + counters["bad_items"] >= len(bodies)


# --- framing ---------------------------------------------------------------------------------

def test_truncated_frame_waits_then_completes():
    data = frame_of(GOOD)
    p = parser()
    assert p.feed(data[:3]) == []
    assert p.feed(data[3:10]) == []
    assert p.pending_bytes == 10
    assert p.feed(data[10:]) == GOOD
    assert p.pending_bytes == 0


def test_every_split_point_gives_the_same_result():
    stream = (frame_of(GOOD) + frame(b"garbage!") + frame_of([("x", ("1", "2"))], 0)
              + frame(b"\x80\x02]q\x00(") + frame_of([], 4) + frame_of(GOOD[:1], 5))
    whole = parser()
    expected = whole.feed(stream)
    expected_counters = whole.take_counters()
    assert expected == GOOD + [("x", (1.0, 2.0))] + GOOD[:1]
    assert expected_counters["bad_frames"] == 2
    for cut in range(len(stream) + 1):
        p = parser()
        assert p.feed(stream[:cut]) + p.feed(stream[cut:]) == expected, cut
        assert p.take_counters() == expected_counters, cut


def test_oversize_frame_is_skipped_in_one_buffer():
    big = frame_of([("n" * 200, (1.0, 2.0))])
    p = parser(max_frame_bytes=100)
    assert p.feed(frame_of(GOOD[:1]) + big + frame_of(GOOD[1:])) == GOOD
    assert p.oversize_frames == 1


def test_oversize_frame_split_across_feeds_is_never_buffered():
    body = pickle.dumps([("n" * 50, (1.0, 2.0))] * 20000, 2)
    data = frame(body) + frame_of(GOOD)
    p = parser(max_frame_bytes=1000)
    got = []
    for i in range(0, len(data), 777):
        got += p.feed(data[i : i + 777])
        assert p.pending_bytes < 1000
    assert got == GOOD
    assert p.oversize_frames == 1


def test_frame_at_exactly_the_limit_is_accepted():
    body = pickle.dumps(GOOD, 2)
    p = parser(max_frame_bytes=len(body))
    assert p.feed(frame(body)) == GOOD
    p = parser(max_frame_bytes=len(body) - 1)
    assert p.feed(frame(body) + frame_of([])) == []
    assert p.oversize_frames == 1


def test_default_limit_is_one_mebibyte():
    assert PickleFrameParser().max_frame_bytes == 1048576


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"\x80\x02]q\x00(X\x01\x00\x00\x00a", b"\x80\x05\xff.", b"\x00\x01\x02",
     pickle.dumps(5, 2), pickle.dumps(None, 2), b"(" * 100000 + b"."],
)
def test_undecodable_or_non_iterable_frames_are_counted(body):
    p = parser()
    assert p.feed(frame(body) + frame_of(GOOD)) == GOOD
    assert p.bad_frames == 1


# --- per item rules ----------------------------------------------------------------------------

def test_item_rules():
    items = [
        ("ok", (1700000000, 2)),                # ints → floats
        ("str", ("1700000000", "3.5")),          # numeric strings convert
        (b"bytesname", (1.0, 2.0)),              # bytes name decoded (carbon crashes here)
        (b"\xff\xfe", (1.0, 2.0)),               # undecodable bytes name → bad item
        (5, (1.0, 2.0)),                         # not a name → bad item
        ("short", (1.0,)),                       # wrong shape
        ("flat", 1.0, 2.0),                      # wrong shape
        "ab",                                    # wrong shape
        ("word", ("x", 1.0)),                    # not a number
        ("none", (None, 1.0)),                   # not a number
        ("huge", (10 ** 400, 1.0)),              # overflow
        ("nanv", (1.0, math.nan)),               # NaN value dropped
        ("nant", (math.nan, 1.0)),               # NaN timestamp → bad timestamp
        ("inft", (math.inf, 1.0)),               # inf timestamp → bad timestamp
        ("now", (-1, 7.0)),                      # -1 → now
        ("infv", (5.0, math.inf)),               # inf value passes
        ("surrogate\ud800", (1.0, 2.0)),         # not encodable as UTF-8
        ("t;a=1", (1.0, 2.0)),
    ]
    p = parser()
    batch = p.feed(frame_of(items, 3))  # protocol 2 writes py3 bytes through a global
    assert batch == [
        ("ok", (1700000000.0, 2.0)),
        ("str", (1700000000.0, 3.5)),
        ("bytesname", (1.0, 2.0)),
        ("now", (NOW, 7.0)),
        ("infv", (5.0, math.inf)),
        ("t;a=1", (1.0, 2.0)),
    ]
    assert all(type(ts) is float and type(v) is float for _, (ts, v) in batch)
    assert p.take_counters() == {"bad_frames": 0, "oversize_frames": 0, "bad_items": 9,
                                 "bad_names": 0, "bad_timestamps": 2, "nan_values": 1}


def test_non_utf8_py2_string_costs_only_its_item():
    body = (b"\x80\x02]q\x00(U\x02\xff\xfeq\x01GA\xd9T\xfc@\x00\x00\x00G?\xf0\x00\x00\x00\x00"
            b"\x00\x00\x86\x86U\x02okq\x02GA\xd9T\xfc@\x00\x00\x00G@\x00\x00\x00\x00\x00\x00"
            b"\x00\x86\x86e.")
    p = parser()
    assert p.feed(frame(body)) == [("ok", (1700000000.0, 2.0))]
    assert p.bad_items == 1
    assert p.bad_frames == 0


def test_min_timestamp_resolution():
    p = parser(min_timestamp_resolution=60)
    batch = p.feed(frame_of([("a", (1700000059.5, 1.0)), ("b", (-1.0, 2.0))]))
    assert batch == [("a", (1700000040, 1.0)), ("b", (int(NOW) // 60 * 60, 2.0))]


def test_well_formed_frame_is_passed_through():
    """A carbon-shaped list of tuples needs no conversion and comes back as the same values."""
    batch = parser().feed(frame_of(GOOD * 3))
    assert batch == GOOD * 3
    assert all(type(point) is tuple and type(point[1]) is tuple for point in batch)


@pytest.fixture
def carbon_pickle_receiver(monkeypatch):
    """carbon's own MetricPickleReceiver, its output captured instead of dispatched."""
    receiver, received = capture_receiver(monkeypatch, "MetricPickleReceiver", NOW)
    from carbon.util import SafeUnpickler

    receiver.unpickler = SafeUnpickler
    return receiver, received


def test_matches_carbon_where_carbon_survives(carbon_pickle_receiver):
    receiver, received = carbon_pickle_receiver
    items = [
        ("a", (1, 2)), ["b", ["3", 4.5]], ("c", (-1, 1)), ("d", (5, math.nan)),
        ("e", "12"), ("f", ("x", 1)), ("g", (1.5, math.inf)), "xy", ("h", (1, 2, 3)),
        ("i", (-1.5, 0.25)), ("j", (True, 1)), ("k", (b"7", bytearray(b"8"))),
    ]
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        received.clear()
        body = pickle.dumps(items, protocol)
        receiver.stringReceived(body)
        assert parser().feed(frame(body)) == received
    assert len(received) == 8


# --- hostile nesting and names a line cannot carry ------------------------------------------

DEPTH = 300001


@pytest.mark.parametrize("body", [
    b"]" * DEPTH,                                                     # no STOP: undecodable
    b"\x80\x02" + b"]" * DEPTH + b"a" * (DEPTH - 1) + b".",              # nested lists
    b"\x80\x02]" + b"]" * DEPTH + b"a" * (DEPTH - 1) + b"a.",            # ... as an item
    b"\x80\x02)" + b"\x85" * DEPTH + b".",                               # nested tuples
    b"\x80\x02])" + b"\x85" * DEPTH + b"a.",                             # ... as an item
    b"(" * DEPTH + b"l" * DEPTH + b".",                                 # protocol 0 MARK/LIST
], ids=["brackets", "lists", "list-item", "tuples", "tuple-item", "marks"])
def test_deep_nesting_costs_its_frame_and_is_counted(body):
    """Each of these raised RecursionError (while being described for the log), which ended
    the connection; carbon survives them."""
    p = parser(max_frame_bytes=4 * DEPTH)
    assert p.feed(frame(body) + frame_of(GOOD)) == GOOD
    counters = p.take_counters()
    assert counters["bad_frames"] + counters["bad_items"] == 1, counters


def test_huge_int_item_is_described_without_raising():
    p = parser()
    assert p.feed(frame_of([10 ** 5000, ("x", (1, 10 ** 5000))] + GOOD)) == GOOD
    assert p.take_counters()["bad_items"] == 2


UNSAFE_NAMES = ["a b", "a\nb 1 1700000000\nevil.metric", "tab\tbed", "cr\r", "", " ",
                "vt\x0b", "ff\x0c", "fs\x1c", "us\x1f", "nel\x85", "nbsp\xa0x",
                "line\u2028sep", "ideo\u3000space"]


def test_unsafe_names_are_exactly_what_carbons_line_parser_splits():
    assert all(f"{name} 1 2".split() != [name, "1", "2"] for name in UNSAFE_NAMES)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_names_a_line_cannot_carry_are_rejected_and_counted(protocol):
    items = [(name, (1700000000.0, 1.0)) for name in UNSAFE_NAMES] + GOOD
    limiter = LogLimiter(60.0, clock=lambda: 0.0)
    p = parser(name_log=limiter)
    assert p.feed(frame_of(items, protocol)) == GOOD
    assert p.take_counters()["bad_names"] == len(UNSAFE_NAMES)


def test_names_a_line_can_carry_pass():
    """Other control characters stay inside the name, as over carbon's line protocol."""
    ok = [("métrique.µs", (1.0, 2.0)), ("emoji.\U0001f468\u200d\U0001f4bb", (1.0, 2.0)),
          ("t;a=b", (1.0, 2.0)), ("soft\u00adhyphen", (1.0, 2.0)), ("nul\x00", (1.0, 2.0)),
          ("bell\x07.del\x7f.c1\x9f", (1.0, 2.0))]
    assert all(f"{name} 1 2".split() == [name, "1", "2"] for name, _ in ok)
    p = parser()
    assert p.feed(frame_of(ok)) == ok
    assert not any(p.take_counters().values())


def test_bad_names_logged_at_most_once_a_minute(caplog):
    now = [1000.0]
    limiter = LogLimiter(60.0, clock=lambda: now[0])
    bad = frame_of([("a b", (1.0, 1.0))] + GOOD)
    with caplog.at_level(logging.WARNING, logger="cadent.core.parse.pickle"):
        for peer in ("p1", "p2", "p3"):  # a new connection each time: one shared limit
            p = parser(name_log=limiter, peer=peer)
            assert p.feed(bad + bad) == GOOD * 2
            assert p.bad_names == 2
            now[0] += 20
        assert len(caplog.records) == 1 and "1 pickled datapoint(s)" in caplog.text
        now[0] += 1
        parser(name_log=limiter, peer="p4").feed(bad)
    assert len(caplog.records) == 2
    assert "6 pickled datapoint(s)" in caplog.records[1].getMessage()  # 5 held back + 1
    assert "'a b'" in caplog.records[1].getMessage()
