"""Flow control: the gate every TCP receiver passes before it reads more.

Any stage that is over its high watermark (a destination queue, the cache) pauses the gate
under its own reason and resumes it under the same reason once below its low watermark. The
gate is open only while no reason holds it, so two full queues need two resumes. Receivers
that wait on a closed gate stop reading their sockets: the kernel buffers fill and the clients
stall, which is how a TCP sender is slowed down without losing anything it already sent.
"""

from __future__ import annotations

import logging
import time

from gevent.event import Event

log = logging.getLogger(__name__)


class FlowControl:
    """A gate closed while at least one named reason holds it."""

    def __init__(self) -> None:
        self._open = Event()
        self._open.set()
        self._reasons: dict[str, float] = {}
        self.pauses = 0

    @property
    def is_open(self) -> bool:
        return not self._reasons

    def pause(self, reason: str) -> None:
        """Close the gate under ``reason`` (idempotent per reason)."""
        if reason in self._reasons:
            return
        if not self._reasons:
            self._open.clear()
            self.pauses += 1
            log.info("pausing receivers: %s", reason)
        self._reasons[reason] = time.monotonic()

    def resume(self, reason: str) -> None:
        """Drop ``reason``; the gate opens when no reason is left."""
        if self._reasons.pop(reason, None) is None:
            return
        if not self._reasons:
            log.info("resuming receivers (%s cleared)", reason)
            self._open.set()

    def paused_for(self, reason: str) -> float:
        """Seconds ``reason`` has held the gate closed (0 when it does not)."""
        since = self._reasons.get(reason)
        return 0.0 if since is None else time.monotonic() - since

    def reasons(self) -> tuple[str, ...]:
        return tuple(self._reasons)

    def wait(self, timeout: float | None = None) -> bool:
        """Block the calling greenlet until the gate is open; True if it is."""
        if not self._reasons:
            return True
        return self._open.wait(timeout)
