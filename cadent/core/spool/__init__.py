"""The per-destination disk spool: append-only segment files of framed, checksummed messages."""

from cadent.core.spool.spool import Spool, SpoolConfig

__all__ = ["Spool", "SpoolConfig"]
