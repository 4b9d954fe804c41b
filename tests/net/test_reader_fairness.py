"""A reader whose socket always has data still lets the loop poll its other sockets and timers
(CarbonLink queries, statsd's flush) after every batch, not after dozens."""

import pickle
import socket
import struct
import threading
import time

import gevent

from cadent.core.flow import FlowControl
from cadent.core.net.listen import bind_socket
from cadent.core.net.receivers import TcpReceiver
from cadent.core.parse.pickle import PickleFrameParser
from cadent.core.stats import Stats

BATCH_WORK_S = 0.002
STREAM_BYTES = 8 << 20


def _frames(total_bytes: int) -> bytes:
    body = pickle.dumps([(f"fair.m{i}", (1700000000.0, float(i))) for i in range(200)], protocol=2)
    frame = struct.pack("!L", len(body)) + body
    return frame * (total_bytes // len(frame) + 1)


def test_a_due_timer_runs_within_a_batch_or_two_of_a_busy_reader():
    batches = []

    def slow_sink(batch, droppable):
        batches.append(len(batch))
        started = time.perf_counter()
        while time.perf_counter() - started < BATCH_WORK_S:
            pass

    listener = bind_socket("127.0.0.1", 0, socket.SOCK_STREAM)
    receiver = TcpReceiver("pickle", listener, PickleFrameParser, slow_sink,
                           flow=FlowControl(), stats=Stats())
    receiver.start()
    payload = _frames(STREAM_BYTES)
    sender = socket.create_connection(receiver.address[:2], timeout=30)

    def send() -> None:
        try:
            sender.sendall(payload)
        except OSError:  # the test is over and shut the connection down
            pass

    # a real thread: sendall keeps the receiver's socket full without the gevent loop's help
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        with gevent.Timeout(30):
            while len(batches) < 3:
                gevent.sleep(0.001)
        lags = []
        for _ in range(5):
            seen = len(batches)
            gevent.sleep(0.0005)   # due before the reader's current batch is done
            lags.append(len(batches) - seen)
        assert max(lags) <= 3, lags
    finally:
        sender.shutdown(socket.SHUT_RDWR)
        receiver.stop()
        thread.join(timeout=10)
        sender.close()
