"""Requests that used to raise inside the CarbonLink server (and end the connection)."""

import pickle
import struct

import gevent

from tests.net.test_carbonlink import ask, connect, recv_frame, served  # noqa: F401 (fixture)

DEPTH = 300001
HOSTILE_BODIES = [
    pickle.dumps({"type": 10 ** 5000}, 2),                                    # str() refuses it
    b"\x80\x02}U\x04type" + b"]" * DEPTH + b"a" * (DEPTH - 1) + b"s.",         # deep nesting
    b"\x80\x02]" + b"]" * DEPTH + b"a" * (DEPTH - 1) + b"a.",
    pickle.dumps({"type": "cache-query-bulk", "metrics": ["a;b=~c", "", "~", ";", "x{"]}, 2),
]


def test_hostile_requests_get_an_answer_and_keep_the_connection(served):  # noqa: F811
    server, _ = served
    server.max_frame_bytes = 4 * DEPTH
    with gevent.Timeout(20):
        sock = connect(server)
        for body in HOSTILE_BODIES:
            sock.sendall(struct.pack("!I", len(body)) + body)
            reply = pickle.loads(recv_frame(sock)[4:])
            assert isinstance(reply, dict) and reply, reply
        assert ask(sock, {"type": "cache-query", "metric": "sample.cached"})["datapoints"][0] == \
            (1700000000.0, 1.5)
        sock.close()


def test_frames_before_an_oversized_one_are_answered(served):  # noqa: F811
    server, _ = served
    good = pickle.dumps({"type": "cache-query", "metric": "sample.cached"}, 2)
    with gevent.Timeout(5):
        sock = connect(server)
        sock.sendall(struct.pack("!I", len(good)) + good + struct.pack("!I", 10_000_000) + b"x")
        assert pickle.loads(recv_frame(sock)[4:])["datapoints"][0] == (1700000000.0, 1.5)
        assert "exceeds" in pickle.loads(recv_frame(sock)[4:])["error"]
        assert sock.recv(10) == b""
        sock.close()
