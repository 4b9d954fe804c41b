"""Compiled twins against their Python source: same output, counters, log lines and errors.

Every module listed in ``cadent.compiled.COMPILED_TWINS`` is run twice on the same random,
adversarial and truncated input: once as its compiled extension, once as a fresh copy of its
Python source (``python_twin``). The differential tests skip only when the extension was not
built (and fail instead when ``CADENT_REQUIRE_COMPILED`` is set, as a CI that builds it should);
the loader tests (``CADENT_PURE_PYTHON``, the daemons' start-up line) always run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadent.compiled import COMPILED_TWINS, compiled_module
from cadent.core.parse._checks import assemble
from tests.peers import CadentProcess, free_port, write_carbon_conf
from tests.unit.test_fuzz_parsers import FUZZ, MAX_LINE, NOW, chunked, plaintext_line
from tests.unit.test_statsd_fuzz import _PACKET as STATSD_PACKET
from tests.unit.twins import LogCapture, outcome, twins, typed

PLAINTEXT = "cadent.core.parse.plaintext"
STATSD = "cadent.statsd.parse"


@pytest.fixture(scope="module")
def plaintext():
    return twins(PLAINTEXT)


@pytest.fixture(scope="module")
def statsd():
    return twins(STATSD)


def run_logged(call):
    with LogCapture() as logs:
        result = outcome(call)
    return result, logs.messages


# --- plaintext --------------------------------------------------------------------------------

def _stream_run(module, data: bytes, cuts: list[int], kwargs: dict):
    parser = module.LineParser(clock=lambda: NOW, **kwargs)
    steps = []
    for chunk in chunked(data, cuts):
        steps.append((outcome(lambda: parser.feed(chunk)), parser.pending_bytes))
    return steps, parser.take_counters()


ASCII_LINES = st.lists(
    st.tuples(st.sampled_from(["a.b", "x", "servers.h1.cpu", "é.n", "a;t=v"]),
              st.sampled_from(["1", "-1.25", "0", "1e3", "nan", "-inf", "7_0", "abc", "1700000000"]),
              st.sampled_from(["1700000000", "-1", "-1.5", "1.7e9", "nan", "inf", "x", "0"]),
              st.sampled_from([" ", "\t", "  ", " \r"])).map(
        lambda t: (t[0] + t[3] + t[1] + t[3] + t[2]).encode()),
    max_size=40)


@FUZZ
@given(st.lists(plaintext_line(), max_size=30) | ASCII_LINES,
       st.lists(st.integers(0, 10 ** 6), max_size=8),
       st.sampled_from([{"max_line_bytes": MAX_LINE}, {"max_line_bytes": 16384},
                        {"max_line_bytes": MAX_LINE, "min_timestamp_resolution": 10}]),
       st.booleans())
def test_plaintext_stream_same_as_python(plaintext, lines, cuts, kwargs, truncate):
    data = b"".join(line + b"\n" for line in lines)
    if truncate and data:
        data = data[: cuts[0] % len(data)] if cuts else data[:-1]
    compiled, python = plaintext
    assert run_logged(lambda: _stream_run(compiled, data, cuts, kwargs)) == \
        run_logged(lambda: _stream_run(python, data, cuts, kwargs))


@FUZZ
@given(st.lists(plaintext_line(), max_size=30) | ASCII_LINES,
       st.sampled_from([b"\n", b"\r\n", b"\r", b"\x0b"]), st.integers(0, 10 ** 6))
def test_plaintext_datagram_same_as_python(plaintext, lines, ending, cut):
    data = ending.join(lines)
    data = data[: cut % (len(data) + 1)]
    compiled, python = plaintext

    def run(module):
        parser = module.LineParser(clock=lambda: NOW)
        return outcome(lambda: parser.feed_datagram(data)), parser.take_counters()

    assert run_logged(lambda: run(compiled)) == run_logged(lambda: run(python))


DECIMALS = (st.from_regex(r"\A[+-]?[0-9]{0,20}(\.[0-9]{0,20})?\Z")
            | st.floats().map(repr) | st.integers(-10 ** 20, 10 ** 20).map(str)
            | st.from_regex(r"\A[+-]?[0-9_.eE]{1,12}\Z"))


@FUZZ
@given(st.lists(st.tuples(DECIMALS, DECIMALS), min_size=1, max_size=30))
def test_plaintext_numbers_same_as_python(plaintext, pairs):
    """The compiled scanner converts plain decimals itself: every one must equal float()."""
    data = b"".join(b"m %s %s\n" % (v.encode(), t.encode()) for v, t in pairs)
    compiled, python = plaintext
    assert run_logged(lambda: _stream_run(compiled, data, [], {})) == \
        run_logged(lambda: _stream_run(python, data, [], {}))


@FUZZ
@given(st.lists(plaintext_line(), max_size=30) | ASCII_LINES, st.sampled_from([0, 1, 60]))
def test_python_scanner_agrees_with_bulk_split(plaintext, lines, resolution):
    """The scanner's own Python source, run as Python, gives what the bulk path's columns
    give through the receiver checks."""
    _, python = plaintext
    data = b"".join(line + b"\n" for line in lines)
    if not data.isascii():
        return
    scanned = python._scan_ascii(data, NOW, resolution)
    text = data.decode("ascii")
    tokens = text.replace("\n", " \x00 ").split()
    try:
        columns = (tokens[0::4], list(map(float, tokens[2::4])), list(map(float, tokens[1::4])))
        clean = (len(tokens) == 4 * text.count("\n")
                 and tokens[3::4].count("\x00") == text.count("\n") and "\x00" not in text)
    except ValueError:
        clean = False
    if clean:
        assert typed(scanned) == typed(assemble(*columns, NOW, resolution))
    elif "\x00" not in text:
        assert scanned is None


@pytest.mark.parametrize("call", [
    lambda m: m.LineParser(max_line_bytes=0),
    lambda m: m.LineParser().feed("a 1 2\n"),
    lambda m: m.LineParser().feed(None),
    lambda m: m.LineParser().feed_datagram(b"a 1 2"),
    lambda m: m.LineParser().feed(bytearray(b"a 1 2\nb 3 4\n")),
    lambda m: m.LineParser(max_line_bytes=4).feed(b"abcdefgh\nx 1 2\n"),
])
def test_plaintext_errors_same_as_python(plaintext, call):
    compiled, python = plaintext
    assert run_logged(lambda: call(compiled)) == run_logged(lambda: call(python))


# --- statsd -----------------------------------------------------------------------------------

STATSD_SIMPLE = st.lists(
    st.tuples(st.sampled_from(["a", "b.c", "sp ace", "sl/ash", "x:y"]),
              st.sampled_from(["1", "0", "42", "+3", "-2", "1.5", "", "0x1f", "٣", "1e3", "007"]),
              st.sampled_from(["c", "ms", "g", "s", "h", "x"]),
              st.sampled_from(["", "|@0.5", "|@0", "|@x", "|@.1"])).map(
        lambda t: "%s:%s|%s%s" % t),
    max_size=40).map("\n".join)


@FUZZ
@given(STATSD_PACKET | STATSD_SIMPLE, st.booleans(), st.integers(0, 10 ** 6))
def test_statsd_packet_same_as_python(statsd, packet, sanitize, cut):
    compiled, python = statsd
    packets = [packet, packet[: cut % (len(packet) + 1)]]

    def run(module):
        parser = module.PacketParser(sanitize)
        return [outcome(lambda: parser.parse(p)) for p in packets]

    assert run_logged(lambda: run(compiled)) == run_logged(lambda: run(python))


@pytest.mark.parametrize("packet", [b"a:1|c", None, 7])
def test_statsd_errors_same_as_python(statsd, packet):
    compiled, python = statsd
    assert outcome(lambda: compiled.PacketParser().parse(packet)) == \
        outcome(lambda: python.PacketParser().parse(packet))


def test_statsd_result_pickles_and_names_match(statsd):
    import pickle

    compiled, python = statsd
    result = compiled.PacketParser().parse("a:1|c\nb:2|ms")
    assert pickle.loads(pickle.dumps(result)) == python.PacketParser().parse("a:1|c\nb:2|ms")
    assert result._fields == python.ParseResult._fields


# --- the loader -------------------------------------------------------------------------------

def _chosen_in_subprocess(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "CADENT_PURE_PYTHON"}
    if env_value is not None:
        env["CADENT_PURE_PYTHON"] = env_value
    code = ("import cadent.compiled as c, cadent.core.parse.plaintext as p, cadent.statsd.parse as s;"
            "print(p.LineParser.__module__, s.PacketParser.__module__); print(c.summary())")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


def test_pure_python_variable_selects_the_python_twins():
    out = _chosen_in_subprocess("1")
    assert "cadent.core.parse.plaintext cadent.statsd.parse" in out
    assert "hot paths in pure Python (CADENT_PURE_PYTHON is set)" in out


def test_compiled_twins_chosen_when_built():
    built = all(compiled_module(name) is not None for name in COMPILED_TWINS)
    out = _chosen_in_subprocess("0")
    if built:
        assert "_cadent_c_plaintext" in out and "_cadent_c_parse" in out
        assert "hot paths compiled: " in out
    else:
        assert "hot paths in pure Python (the compiled modules were not built)" in out


@pytest.mark.parametrize("pure", ["0", "1"])
def test_daemon_logs_which_path_it_runs(tmp_path, pure):
    port = free_port()
    conf = write_carbon_conf(tmp_path, {"relay": {
        "RELAY_METHOD": "consistent-hashing",
        "LINE_RECEIVER_INTERFACE": "127.0.0.1", "LINE_RECEIVER_PORT": port,
        "PICKLE_RECEIVER_INTERFACE": "127.0.0.1", "PICKLE_RECEIVER_PORT": free_port(),
        "DESTINATIONS": [f"127.0.0.1:{free_port()}"],
        "CARBON_METRIC_INTERVAL": 0}})
    env = {**os.environ, "CADENT_PURE_PYTHON": pure}
    with CadentProcess(conf, "relay", ports=[("127.0.0.1", port)], env=env) as relay:
        deadline = time.monotonic() + 30
        while "hot paths" not in relay.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = [line for line in relay.log_text().splitlines() if "hot paths" in line]
    assert len(lines) == 1, relay.log_text()[-2000:]
    if pure == "1":
        assert "pure Python (CADENT_PURE_PYTHON is set)" in lines[0]
    elif all(compiled_module(name) is not None for name in COMPILED_TWINS):
        assert "hot paths compiled" in lines[0]
