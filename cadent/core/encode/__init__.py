"""Batch → bytes for outbound connections: carbon's pickle frames and plaintext lines."""

from cadent.core.encode.pickle import encode_pickle
from cadent.core.encode.plaintext import encode_lines

__all__ = ["encode_pickle", "encode_lines"]
