"""carbon.conf's write-ahead log keys of cadent-cache (ENABLE_WAL, WAL_DIR, WAL_SYNC_INTERVAL,
WAL_SEGMENT_BYTES) → a :class:`cadent.core.wal.WalConfig`; a bad value is a ConfigError at its
file line."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cadent.compat.settings import CACHE, Setting, register
from cadent.core.wal import WalConfig

if TYPE_CHECKING:
    from cadent.compat.carbon_conf import CarbonSettings

MIN_SEGMENT_BYTES = 1 << 16

register(*(Setting(name, default, kind, doc, (CACHE,)) for name, default, kind, doc in [
    ("ENABLE_WAL", True, "bool",
     "log every accepted batch to disk before it is cached, replayed at start (False: off)"),
    ("WAL_DIR", None, "str",
     "write-ahead log directory; default STORAGE_DIR/wal/<program>[-<instance>]"),
    ("WAL_SYNC_INTERVAL", 1.0, "float",
     "seconds between the log's writes+fsyncs (a SIGKILL loses at most this much); 0: every "
     "batch is fsynced before it is cached"),
    ("WAL_SEGMENT_BYTES", 64 << 20, "int",
     "the log starts a new segment file at this size; a segment is deleted once every writer "
     "has written its points"),
]))


def wal_config(conf: CarbonSettings) -> WalConfig | None:
    """The write-ahead log a cache section asks for; None when ENABLE_WAL is off."""
    from cadent.compat.daemon_settings import real_number, whole_number  # it imports our users

    if not conf.ENABLE_WAL:
        return None
    interval = real_number(conf, "WAL_SYNC_INTERVAL", 0)
    segment_bytes = whole_number(conf, "WAL_SEGMENT_BYTES", MIN_SEGMENT_BYTES)
    name = f"{conf.program}-{conf.instance}" if conf.instance else conf.program
    directory = conf.WAL_DIR or os.path.join(conf.STORAGE_DIR, "wal", name)
    return WalConfig(directory=os.path.normpath(os.path.expanduser(directory)),
                     sync_interval_s=interval, segment_bytes=segment_bytes)
