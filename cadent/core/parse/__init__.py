"""Inbound bytes → Batch: carbon's plaintext lines and pickle frames."""

from cadent.core.parse.pickle import PickleFrameParser, safe_loads
from cadent.core.parse.plaintext import LineParser

__all__ = ["LineParser", "PickleFrameParser", "safe_loads"]
