"""encode_pickle / encode_lines: byte-exact against carbon's captures and carbon's own code."""

from __future__ import annotations

import ast
import math
import pickle
import random
import struct

import pytest

from cadent.core.encode import encode_lines, encode_pickle
from cadent.core.parse import LineParser, PickleFrameParser
from tests.vectors import load_vector

VECTORS = load_vector("carbon_protocol_samples.json")


def relay_batch():
    return ast.literal_eval(VECTORS["relay_pickle_output"]["decoded"])


def test_pickle_vector_byte_exact():
    vector = VECTORS["relay_pickle_output"]
    frame = encode_pickle(relay_batch())
    assert frame.hex() == vector["frame_hex"]
    assert struct.unpack("!L", frame[:4])[0] == vector["frame_length"] == len(frame) - 4


def test_line_vector_byte_exact():
    vector = VECTORS["relay_line_output"]
    out = encode_lines(relay_batch())
    assert out == bytes.fromhex(vector["bytes_hex"])
    assert out.decode() == vector["text"]


def test_aggregator_line_output_reencodes():
    text = VECTORS["aggregator_line_output"]["output_text"]
    batch = [(name, (int(ts), float(value)))
             for name, value, ts in (line.split() for line in text.splitlines())]
    assert encode_lines(batch).decode() == text


@pytest.mark.parametrize(
    "value,text",
    [(1e-12, "0"), (-1e-12, "-0"), (-0.0, "-0"), (0.1, "0.1"), (1.2345678912345679e8,
     "123456789.123456791"), (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan"),
     (2.5, "2.5"), (100.0, "100"), (1e20, "100000000000000000000"), (7, "7"), (True, "1"),
     (2 ** 70, str(2 ** 70))],
)
def test_value_format(value, text):
    assert encode_lines([("m", (1700000000, value))]) == ("m %s 1700000000\r\n" % text).encode()


@pytest.mark.parametrize("ts,text", [(1700000180.9, "1700000180"), (-1.5, "-1"), (5, "5"),
                                     (0.99, "0")])
def test_timestamp_truncates_toward_zero(ts, text):
    assert encode_lines([("m", (ts, 1.0))]) == ("m 1 %s\r\n" % text).encode()


def test_utf8_names():
    assert encode_lines([("métrique", (1.0, 2.0))]) == "métrique 2 1\r\n".encode("utf-8")


def test_unwritable_points_are_left_out_not_fatal():
    batch = [("a", (1.0, 1.0)), ("b", (math.nan, 1.0)), ("c", (math.inf, 1.0)),
             ("bad\ud800", (1.0, 1.0)), ("d", ("x", 1.0)), ("e", (2.0, 3.0))]
    assert encode_lines(batch) == b"a 1 1\r\ne 3 2\r\n"


def test_empty_batches():
    assert encode_lines([]) == b""
    assert encode_pickle([]) == b"\x00\x00\x00\x06\x80\x02]q\x00."


@pytest.fixture
def carbon_line_client():
    client = pytest.importorskip("carbon.client")
    protocol = client.CarbonLineClientProtocol.__new__(client.CarbonLineClientProtocol)
    sent: list[bytes] = []
    protocol.sendLine = sent.append

    def run(batch):
        sent.clear()
        client.CarbonLineClientProtocol._sendDatapointsNow(protocol, batch)
        return b"".join(line + b"\r\n" for line in sent)

    return run


def random_batch(rng: random.Random, size: int) -> list:
    batch = []
    for i in range(size):
        kind = rng.randrange(4)
        if kind == 0:
            value = float(rng.randint(-10 ** 6, 10 ** 6))
        elif kind == 1:
            value = rng.randint(-1000, 1000) / 1024
        elif kind == 2:
            value = rng.uniform(-1e9, 1e9)
        else:
            value = rng.randint(0, 10 ** 9)
        ts = float(rng.randint(1_600_000_000, 1_800_000_000)) + rng.choice([0.0, 0.5, 0.9])
        batch.append(("m.%d.é;t=%d" % (rng.randrange(10 ** 6), i % 3), (ts, value)))
    return batch


def test_lines_match_carbon_on_random_batches(carbon_line_client):
    rng = random.Random(3)
    for _ in range(20):
        batch = random_batch(rng, 200)
        assert encode_lines(batch) == carbon_line_client(batch)


def test_pickle_round_trip_random_batches():
    rng = random.Random(5)
    for _ in range(20):
        batch = [(name, (ts, float(value))) for name, (ts, value) in random_batch(rng, 300)]
        assert PickleFrameParser().feed(encode_pickle(batch)) == batch
        assert encode_pickle(batch) == struct.pack("!L", len(pickle.dumps(batch, 2))) + \
            pickle.dumps(batch, 2)


def test_line_round_trip_random_batches():
    """Values with few enough decimals survive carbon's 10-decimal rendering exactly."""
    rng = random.Random(11)
    for _ in range(20):
        batch = [
            ("m.%d" % rng.randrange(10 ** 6),
             (float(rng.randint(1_600_000_000, 1_800_000_000)),
              rng.choice([float(rng.randint(-10 ** 9, 10 ** 9)), rng.randint(-4096, 4096) / 1024,
                          math.inf, -math.inf])))
            for _ in range(300)
        ]
        assert LineParser().feed(encode_lines(batch)) == batch
