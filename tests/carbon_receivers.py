"""carbon's own receivers (from the ``carbon`` package) as an oracle for cadent's parsers."""

from __future__ import annotations

import pytest


def capture_receiver(monkeypatch, class_name: str, now: float):
    """(receiver, received): an instance of ``carbon.protocols.<class_name>`` whose datapoints
    are appended to ``received`` instead of dispatched, with ``time.time()`` fixed at ``now``;
    skips the test when the carbon package is missing."""
    protocols = pytest.importorskip("carbon.protocols")
    received: list = []
    monkeypatch.setattr(protocols.events, "metricReceived",
                        lambda metric, datapoint: received.append((metric, datapoint)))
    monkeypatch.setattr(protocols.time, "time", lambda: now)
    cls = getattr(protocols, class_name)
    receiver = cls.__new__(cls)
    receiver.peerName = "test"
    receiver.resetTimeout = lambda: None
    return receiver, received
