"""A logger call that repeats at most once per interval, however often the failure happens.

A broker that is down fails every write; logging each one would flood the log. The first
occurrence is logged at once, later ones at most once per interval with how many occurrences
the line stands for (the counting is :class:`cadent.core.lograte.LogLimiter`'s). Any OS thread
may call it: the count is taken under a native lock, the line is logged outside it.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from cadent.core.lograte import LogLimiter
from cadent.core.native import allocate_lock


class RateLimitedLog:
    """Logs through ``logger`` at most once per ``interval_s`` seconds (see module doc)."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._limiter = LogLimiter(interval_s, clock)
        self._lock = allocate_lock()

    def __call__(self, level: int, message: str, *args: object) -> bool:
        """Log ``message % args`` unless a line went out within the interval; True if logged."""
        with self._lock:
            count = self._limiter.ready()
        if not count:
            return False
        if count > 1:
            message += " (%d times since the previous report)"
            args = args + (count,)
        self._logger.log(level, message, *args)
        return True


__all__ = ["RateLimitedLog"]
