"""A log line at most once per interval, with how many occurrences it stands for."""

from __future__ import annotations

import time
from typing import Callable


class LogLimiter:
    """Gate for a recurring log line: :meth:`ready` is True at most once per ``interval_s``.

    Occurrences seen while the gate is closed are added up, so the next line can say how many
    it stands for (``ready`` returns that count, the current one included, or 0 when closed).
    """

    def __init__(self, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._next = float("-inf")
        self._pending = 0

    def ready(self, count: int = 1) -> int:
        """Record ``count`` occurrences; the number to report if a line is due now, else 0."""
        self._pending += count
        now = self.clock()
        if now < self._next:
            return 0
        self._next = now + self.interval_s
        pending, self._pending = self._pending, 0
        return pending


__all__ = ["LogLimiter"]
