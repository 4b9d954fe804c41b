"""The operational logs carbon keeps apart from console.log: ``creates.log``, ``updates.log``
and ``query.log`` in LOG_DIR, each line ``DD/MM/YYYY HH:MM:SS :: message`` as carbon writes them.

Pieces log through the loggers here (``LOG_CREATES``, ``LOG_UPDATES`` and ``LOG_CACHE_HITS``
decide whether they do); the daemon decides where the lines go: :func:`to_files` for a
daemonised process, otherwise they join the console output.
"""

from __future__ import annotations

import logging
import logging.handlers
import os

creates = logging.getLogger("cadent.creates")
updates = logging.getLogger("cadent.updates")
query = logging.getLogger("cadent.query")

KINDS = {"creates": creates, "updates": updates, "query": query}
CARBON_FORMAT = logging.Formatter("%(asctime)s :: %(message)s", datefmt="%d/%m/%Y %H:%M:%S")


def to_files(log_dir: str) -> None:
    """Send each kind to ``<kind>.log`` in ``log_dir`` (reopened when logrotate moves it)."""
    for kind, logger in KINDS.items():
        _reset(logger)
        handler = logging.handlers.WatchedFileHandler(os.path.join(log_dir, f"{kind}.log"))
        handler.setFormatter(CARBON_FORMAT)
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)


def to_console() -> None:
    """Let every kind go wherever the root logger writes."""
    for logger in KINDS.values():
        _reset(logger)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def _reset(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


__all__ = ["KINDS", "creates", "query", "to_console", "to_files", "updates"]
