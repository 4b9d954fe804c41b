import pickle
from gevent import socket
import struct

import gevent
import pytest

from cadent.core.cache import MetricCache
from cadent.core.carbonlink import CarbonLinkHandler, safe_loads
from cadent.core.net.carbonlink_server import CarbonLinkServer
from cadent.core.write.whisper import WhisperWriter
from tests.vectors import load_vector

EXCHANGES = load_vector("carbon_protocol_samples.json")["carbonlink"]["exchanges"]


def sample_cache():
    cache = MetricCache()
    cache.store_batch([("sample.cached", (1700000000.0, 1.5)), ("sample.cached", (1700000060.0, 2.5)),
                       ("sample.cached", (1700000120.0, 3.0))])
    cache.store_batch([("sample.cached", (1700000120.0, 4.0))])
    return cache


@pytest.fixture
def served(tmp_path):
    cache = sample_cache()
    writer = WhisperWriter(str(tmp_path))
    writer.create("web.host1.requests")
    writer.create("hits.count")
    writer.set_metadata("hits.count", "aggregationMethod", "max")
    server = CarbonLinkServer(("127.0.0.1", 0), cache, writer, max_frame_bytes=4096)
    server.start()
    yield server, cache
    server.stop(timeout=2)


def connect(server):
    sock = socket.create_connection(server.address[:2], timeout=5)
    return sock


def recv_frame(sock):
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data
    header = exact(4)
    return header + exact(struct.unpack("!I", header)[0])


def ask(sock, request):
    body = pickle.dumps(request, protocol=5)
    sock.sendall(struct.pack("!I", len(body)) + body)
    return pickle.loads(recv_frame(sock)[4:])


@pytest.mark.parametrize("name", ["cache-query", "cache-query-miss", "cache-query-bulk",
                                  "get-metadata", "set-metadata", "invalid-type"])
def test_vectors_byte_exact(served, name):
    server, _ = served
    with gevent.Timeout(5):
        sock = connect(server)
        sock.sendall(bytes.fromhex(EXCHANGES[name]["request_hex"]))
        assert recv_frame(sock).hex() == EXCHANGES[name]["response_hex"]
        sock.close()


def test_metadata_error_is_traceback(served):
    server, _ = served
    with gevent.Timeout(5):
        sock = connect(server)
        sock.sendall(bytes.fromhex(EXCHANGES["get-metadata-badkey"]["request_hex"]))
        reply = pickle.loads(recv_frame(sock)[4:])
        assert reply["error"].startswith("Traceback (most recent call last)")
        assert reply["error"].endswith('ValueError: Unsupported metadata key "xFilesFactor"\n')
        assert "Traceback" in ask(sock, {"type": "get-metadata", "metric": "no.such",
                                        "key": "aggregationMethod"})["error"]


def test_persistent_split_and_coalesced_frames(served):
    server, _ = served
    request = bytes.fromhex(EXCHANGES["cache-query"]["request_hex"])
    expected = bytes.fromhex(EXCHANGES["cache-query"]["response_hex"])
    with gevent.Timeout(5):
        sock = connect(server)
        for i in range(len(request)):  # one byte at a time
            sock.sendall(request[i:i + 1])
            gevent.sleep(0)
        assert recv_frame(sock) == expected
        sock.sendall(request * 3)  # three in one segment
        assert [recv_frame(sock) for _ in range(3)] == [expected] * 3
        sock.close()


def test_garbage_and_malicious_pickle_keep_connection(served):
    server, _ = served
    evil = pickle.dumps(__import__("os").system)  # a global: must be refused
    reduce_evil = b"cos\nsystem\n(S'echo pwned'\ntR."
    with gevent.Timeout(5):
        sock = connect(server)
        for body in (b"not a pickle", evil, reduce_evil, pickle.dumps([1, 2]),
                     pickle.dumps({"type": "cache-query", "metric": 5})):
            sock.sendall(struct.pack("!I", len(body)) + body)
            assert "error" in pickle.loads(recv_frame(sock)[4:])
        assert ask(sock, {"type": "cache-query", "metric": "sample.cached"})["datapoints"][0] == \
            (1700000000.0, 1.5)
        sock.close()
    with pytest.raises(pickle.UnpicklingError):
        safe_loads(evil)


def test_oversized_frame_closes(served):
    server, _ = served
    with gevent.Timeout(5):
        sock = connect(server)
        sock.sendall(struct.pack("!I", 10_000_000) + b"x" * 100)
        assert "error" in pickle.loads(recv_frame(sock)[4:])
        assert sock.recv(10) == b""
        sock.close()


def test_points_in_flight_still_visible(served):
    server, cache = served
    with gevent.Timeout(5):
        sock = connect(server)
        name, points = cache.pop_next()
        assert cache.size == 0
        got = ask(sock, {"type": "cache-query", "metric": "sample.cached"})["datapoints"]
        assert got == [(1700000000.0, 1.5), (1700000060.0, 2.5), (1700000120.0, 4.0)]
        cache.done(name)
        assert ask(sock, {"type": "cache-query", "metric": "sample.cached"}) == {"datapoints": []}
        sock.close()


def test_tagged_query_is_normalised_and_stats():
    cache = MetricCache()
    cache.store_batch([("cpu;z=1;a=2", (1, 1.0))])
    handler = CarbonLinkHandler(cache)
    body = pickle.dumps({"type": "cache-query", "metric": "cpu;a=2;z=1"})
    assert pickle.loads(handler.handle_request(body)[4:]) == {"datapoints": [(1, 1.0)]}
    handler.handle_request(pickle.dumps({"type": "cache-query-bulk", "metrics": ["a", "b"]}))
    assert handler.collect_stats() == {"cache.queries": 1, "cache.bulk_queries": 1,
                                       "cache.bulk_queries_average_size": 2.0}
    assert handler.collect_stats()["cache.queries"] == 0
