"""Batch → carbon's pickle frame: 4-byte big-endian length, then a protocol-2 pickle.

A Batch already has carbon's in-process layout, so the frame is one ``pickle.dumps`` and is
byte for byte what carbon-relay writes for the same datapoints.
"""

from __future__ import annotations

import pickle
from struct import Struct

from cadent.core.point import Batch

_LENGTH = Struct("!L")
_dumps = pickle.dumps


def encode_pickle(batch: Batch) -> bytes:
    """Return one length-prefixed protocol-2 pickle frame holding ``batch``."""
    body = _dumps(batch, 2)
    return _LENGTH.pack(len(body)) + body
