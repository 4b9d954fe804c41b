"""carbon.conf's spool keys (SPOOL_DIR, SPOOL_MAX_BYTES, SPOOL_AFTER_S) → a SpoolConfig."""

from __future__ import annotations

import os
from dataclasses import replace

from cadent.compat.carbon_conf import CarbonSettings
from cadent.compat.daemon_settings import real_number, whole_number
from cadent.core.spool import SpoolConfig


def spool_config(conf: CarbonSettings) -> SpoolConfig | None:
    """The spool a relay or aggregator section asks for; None when SPOOL_MAX_BYTES is 0."""
    max_bytes = whole_number(conf, "SPOOL_MAX_BYTES", 0)
    if not max_bytes:
        return None
    after = real_number(conf, "SPOOL_AFTER_S", 0)
    name = f"{conf.program}-{conf.instance}" if conf.instance else conf.program
    directory = conf.SPOOL_DIR or os.path.join(conf.STORAGE_DIR, "spool", name)
    return SpoolConfig(directory=os.path.normpath(os.path.expanduser(directory)),
                       max_bytes=max_bytes, after_s=after)


def worker_spool(config: SpoolConfig | None, workers: int) -> SpoolConfig | None:
    """Each of several worker processes spools under its own ``w<N>`` subdirectory."""
    if config is None or workers <= 1:
        return config
    directory = os.path.join(config.directory, f"w{os.environ.get('CADENT_WORKER', '0')}")
    return replace(config, directory=directory)
