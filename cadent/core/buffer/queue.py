"""Bounded point queues with watermarks that drive flow control.

A queue is counted in datapoints, not batches. It holds whole batches and splits one only
when a consumer takes fewer points than the head batch holds, so enqueueing and dequeueing
stay per-batch operations.

Above ``max_points`` the queue pauses the shared :class:`~cadent.core.flow.FlowControl`
(TCP receivers stop reading) and resumes it once it falls to the low watermark. A batch
put by a TCP receiver is always accepted, because its bytes were already read. Two cases
drop, and count every point they drop:

* a *droppable* put (UDP, which cannot be slowed down) while the queue is full;
* any put while the queue is *stalled*: full for longer than ``stall_seconds`` without
  reaching the low watermark (typically a destination that is down). The queue then
  releases the receivers so the other destinations keep flowing, and drops what it cannot
  hold until it drains again.

A queue with a disk spool is instead *diverted* (:meth:`PointQueue.divert`): what it holds and
every later put go to the spool's ``append`` in order, the receivers are released, and only
points the spool refuses (full) are dropped and counted. :meth:`PointQueue.undivert` returns
to memory once the spool has been replayed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable

from gevent.event import Event

from cadent.core.flow import FlowControl
from cadent.core.point import Batch

log = logging.getLogger(__name__)


class PointQueue:
    """A FIFO of datapoints bounded by ``max_points`` with a low watermark."""

    def __init__(
        self,
        name: str,
        max_points: int,
        *,
        low_watermark_pct: float = 0.8,
        flow: FlowControl | None = None,
        stall_seconds: float = 30.0,
    ) -> None:
        if max_points < 1:
            raise ValueError("max_points must be at least 1")
        self.name = name
        self.max_points = max_points
        self.low_watermark = int(max_points * low_watermark_pct)
        self.stall_seconds = stall_seconds
        self._flow = flow
        self._reason = f"queue {name} full"
        self._chunks: deque[Batch] = deque()
        self._size = 0
        self._not_empty = Event()
        self._emptied = Event()
        self._emptied.set()
        self._full_since: float | None = None
        self.stalled = False
        self._overflow: Callable[[Batch], int] | None = None
        self.dropped = 0
        self.max_seen = 0

    def __len__(self) -> int:
        return self._size

    @property
    def is_full(self) -> bool:
        return self._size >= self.max_points

    def put(self, batch: Batch, droppable: bool = False) -> int:
        """Append ``batch``, taking ownership of the list; returns how many points were dropped."""
        if not batch:
            return 0
        if self._overflow is not None:
            dropped = self._overflow(batch)
            self.dropped += dropped
            return dropped
        room = self.max_points - self._size
        dropped = 0
        if (droppable or self.stalled) and len(batch) > room:
            if room <= 0:
                dropped = len(batch)
                self.dropped += dropped
                return dropped
            dropped = len(batch) - room
            batch = batch[:room]
            self.dropped += dropped
        self._chunks.append(batch)
        self._size += len(batch)
        if self._size > self.max_seen:
            self.max_seen = self._size
        self._not_empty.set()
        self._emptied.clear()
        if self._size >= self.max_points and self._full_since is None:
            self._full_since = time.monotonic()
            if self._flow is not None and not self.stalled:
                self._flow.pause(self._reason)
        return dropped

    def put_front(self, batch: Batch) -> None:
        """Return points a consumer took but could not deliver, ahead of everything else.

        While diverted they go to the spool, after what it already holds."""
        if not batch:
            return
        if self._overflow is not None:
            self.dropped += self._overflow(batch)
            return
        self._chunks.appendleft(batch)
        self._size += len(batch)
        self._not_empty.set()
        self._emptied.clear()

    def take(self, max_points: int) -> Batch:
        """Remove and return up to ``max_points`` datapoints from the head."""
        out: Batch = []
        chunks = self._chunks
        while chunks and len(out) < max_points:
            head = chunks[0]
            want = max_points - len(out)
            if len(head) <= want:
                chunks.popleft()
                if out:
                    out.extend(head)
                else:
                    out = head
            else:
                out.extend(head[:want])
                chunks[0] = head[want:]
        self._size -= len(out)
        if not chunks:
            self._not_empty.clear()
            self._emptied.set()
        if self._full_since is not None and self._size <= self.low_watermark:
            self._full_since = None
            if self.stalled:
                self.stalled = False
                log.warning("queue %s drained below its low watermark; no longer dropping", self.name)
            elif self._flow is not None:
                self._flow.resume(self._reason)
        return out

    def check_stall(self) -> bool:
        """Enter the stalled state if full for too long; call periodically. True when stalled."""
        if self._full_since is None or self.stalled:
            return self.stalled
        if time.monotonic() - self._full_since >= self.stall_seconds:
            self.stalled = True
            log.error(
                "queue %s full for %.0fs: releasing receivers and dropping new points "
                "for it until it drains", self.name, self.stall_seconds)
            if self._flow is not None:
                self._flow.resume(self._reason)
        return self.stalled

    @property
    def diverted(self) -> bool:
        """True while puts go to a spool instead of memory."""
        return self._overflow is not None

    def full_for(self) -> float:
        """Seconds the queue has been full without reaching its low watermark (0 if not)."""
        return 0.0 if self._full_since is None else time.monotonic() - self._full_since

    def divert(self, overflow: Callable[[Batch], int]) -> int:
        """Send what is queued, then every later put, to ``overflow``; release the receivers.

        ``overflow(batch)`` returns how many points it refused; the total is returned."""
        self._overflow = overflow
        dropped = 0
        while self._chunks:
            dropped += overflow(self._chunks.popleft())
        self.dropped += dropped
        self._size = 0
        self._not_empty.clear()
        self._emptied.set()
        self._full_since = None
        self.stalled = False
        if self._flow is not None:
            self._flow.resume(self._reason)
        return dropped

    def undivert(self) -> None:
        """Queue in memory again."""
        self._overflow = None

    def wait_not_empty(self, timeout: float | None = None) -> bool:
        return self._not_empty.wait(timeout)

    def wait_empty(self, timeout: float | None = None) -> bool:
        return self._emptied.wait(timeout)

    def close(self) -> None:
        """Release the flow gate this queue may hold (shutdown)."""
        if self._flow is not None:
            self._flow.resume(self._reason)
