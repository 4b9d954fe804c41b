"""The writer loop: moves points from the MetricCache to a Writer in a real OS thread.

Each step first creates storage for metrics that arrived since the previous step (so a new
series gets its whisper file at once and graphite-web can see it), then writes one metric
chosen by the cache's strategy.

* MAX_CREATES_PER_MINUTE: a token bucket (capacity N, N/60 per second). A metric over the limit
  keeps its points in the cache and is created when a token frees up (``droppedCreates`` stays
  0: nothing is dropped).
* MAX_UPDATES_PER_SECOND: a blocking token bucket (capacity N, N per second) taken before each
  write.
* A failed create or write (disk full, permissions) is logged and counted in ``errors``; the
  points go back into the cache and that metric is retried after a growing delay, while the
  other metrics keep flowing. When every attempt fails the whole loop backs off too.
* ``stop(timeout)`` writes everything left, ignoring both rate limits, and says whether the
  cache ended empty.

The thread comes from a one-worker ``gevent.threadpool.ThreadPool``: a genuine OS thread
whose completion the gevent loop can wait on with a timeout.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

from cadent.core.cache import MetricCache
from cadent.core.native import allocate_lock, sleep
from cadent.core.write.base import Writer

log = logging.getLogger(__name__)

IDLE_WAIT_S = 1.0
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
LOOP_BACKOFF_MAX_S = 5.0


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; infinite rate = no limit."""

    def __init__(self, capacity: float, rate: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.rate) or self.rate <= 0

    def take(self) -> float:
        """Take a token and return 0, or return the seconds until one is available."""
        if self.unlimited:
            return 0.0
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate

    def wait_time(self) -> float:
        """Seconds until a token is available (0 if one is), without taking it."""
        if self.unlimited:
            return 0.0
        tokens = min(self.capacity, self._tokens + (self._clock() - self._stamp) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate


class _Skip:
    """Names the next pop must leave alone: awaiting creation, or backing off after errors."""

    def __init__(self, pending: dict[str, None], retry_at: dict[str, float], now: float) -> None:
        self.pending = pending
        self.retry_at = retry_at
        self.now = now

    def __contains__(self, name: object) -> bool:
        if name in self.pending:
            return True
        until = self.retry_at.get(name)  # type: ignore[arg-type]
        return until is not None and until > self.now


class Drainer:
    """Writes the cache out through ``writer`` (see module doc)."""

    def __init__(
        self,
        cache: MetricCache,
        writer: Writer,
        max_updates_per_second: float = 500,
        max_creates_per_minute: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.writer = writer
        self._clock = clock
        self._updates = TokenBucket(max_updates_per_second, max_updates_per_second, clock)
        self._creates = TokenBucket(max_creates_per_minute, max_creates_per_minute / 60, clock)
        self._known: set[str] = set()
        self._pending: dict[str, None] = {}
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._loop_failures = 0
        self._stopping = False
        self._deadline = math.inf
        self._stats_lock = allocate_lock()
        self._reset_counters()
        self._pool = None
        self._result = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in its own OS thread."""
        from gevent.threadpool import ThreadPool

        self._pool = ThreadPool(1)
        self._result = self._pool.spawn(self._run)

    def stop(self, timeout: float = 60.0) -> bool:
        """Write everything left (within ``timeout`` s); True when nothing remains cached."""
        self._deadline = self._clock() + timeout
        # everything goes to disk now, including points MIN_TIMESTAMP_LAG would hold back
        self.cache.min_timestamp_lag = 0
        self._stopping = True
        self.cache.data_ready.set()
        if self._result is not None:
            try:
                self._result.get(timeout=timeout + 1.0)
            except Exception:
                log.exception("writer thread did not finish cleanly")
            self._pool.kill()
            self._pool = self._result = None
        else:
            self.flush_all(self._deadline)
        left = self.cache.size
        if left or self._pending:
            log.error("stopping with %d points not written", left)
            return False
        return True

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            try:
                worked = self.step()
            except Exception:
                log.exception("unexpected error in the writer loop")
                worked = False
            if worked:
                continue
            if self._loop_failures:
                sleep(min(0.05 * 2 ** self._loop_failures, LOOP_BACKOFF_MAX_S))
            else:
                self.cache.data_ready.wait(self._idle_wait())
        self.flush_all(self._deadline)

    def _idle_wait(self) -> float:
        wait = IDLE_WAIT_S
        if self._pending:
            wait = min(wait, max(self._creates.wait_time(), 0.01))
        if self._retry_at:
            wait = min(wait, max(min(self._retry_at.values()) - self._clock(), 0.01))
        return wait

    def step(self, limit: bool = True) -> bool:
        """Create pending files, then write one metric; True if anything was done."""
        worked = self._create_pending(limit)
        if limit:
            wait = self._updates.take()
            while wait > 0:
                sleep(min(wait, 0.1))
                if self._stopping:
                    return worked
                # new metrics get their files while the update budget refills
                worked = self._create_pending(limit) or worked
                wait = self._updates.take()
        item = self.cache.pop_next(_Skip(self._pending, self._retry_at, self._clock()))
        if item is None:
            return worked
        name, points = item
        if name not in self._known:
            if not self._ensure_exists(name, limit):
                self.cache.requeue(name, points)
                return True
        self._write(name, points)
        return True

    def flush_all(self, deadline: float) -> None:
        """Write until the cache is empty or ``deadline`` (clock time) passes; no rate limits."""
        while self._clock() < deadline:
            self._retry_at.clear()
            self._loop_failures = 0
            while self._clock() < deadline and self.step(limit=False):
                pass
            if not self.cache.size and not self._pending:
                return
            sleep(min(RETRY_MIN_S, max(deadline - self._clock(), 0)))

    # -- creates and writes ---------------------------------------------------------------

    def _create_pending(self, limit: bool) -> bool:
        for name in self.cache.take_new_names():
            if name not in self._known:
                self._pending[name] = None
        worked = False
        now = self._clock()
        for name in list(self._pending):
            until = self._retry_at.get(name)
            if until is not None and until > now:
                continue
            if self._ensure_exists(name, limit):
                worked = True
            elif limit and self._creates.wait_time() > 0:
                break  # out of create tokens: the rest waits
        return worked

    def _ensure_exists(self, name: str, limit: bool) -> bool:
        """True once ``name`` has storage; False if rate-limited or failing (kept pending)."""
        try:
            if self.writer.exists(name):
                self._pending.pop(name, None)
                self._known.add(name)
                return True
        except Exception:
            log.exception("checking storage of %s failed", name)
            self._failed(name)
            return False
        if limit and self._creates.take() > 0:
            self._pending[name] = None
            return False
        try:
            self.writer.create(name)
        except Exception as exc:
            log.error("creating %s failed: %s", name, exc)
            self._pending[name] = None
            self._failed(name)
            return False
        self._pending.pop(name, None)
        self._known.add(name)
        self._succeeded(name)
        with self._stats_lock:
            self._c_creates += 1
        return True

    def _write(self, name: str, points: list) -> None:
        started = time.perf_counter()
        try:
            committed = self.writer.write(name, points)
        except Exception as exc:
            log.error("writing %d points of %s failed: %s", len(points), name, exc)
            self.cache.requeue(name, points)
            self._known.discard(name)  # re-check (and re-create) before the retry
            self._failed(name)
            return
        elapsed = time.perf_counter() - started
        self.cache.done(name)
        self._succeeded(name)
        with self._stats_lock:
            self._c_committed += committed
            self._c_updates += 1
            self._c_update_time += elapsed

    def _failed(self, name: str) -> None:
        count = self._failures.get(name, 0) + 1
        self._failures[name] = count
        self._retry_at[name] = self._clock() + min(RETRY_MIN_S * 2 ** (count - 1), RETRY_MAX_S)
        self._loop_failures = min(self._loop_failures + 1, 16)
        with self._stats_lock:
            self._c_errors += 1

    def _succeeded(self, name: str) -> None:
        self._loop_failures = 0
        if self._failures:
            self._failures.pop(name, None)
        if self._retry_at:
            self._retry_at.pop(name, None)

    # -- self-metrics -------------------------------------------------------------------

    def _reset_counters(self) -> None:
        self._c_updates = 0
        self._c_committed = 0
        self._c_creates = 0
        self._c_errors = 0
        self._c_update_time = 0.0

    def collect_stats(self) -> dict[str, float]:
        """carbon's writer self-metrics since the previous call (avg/ppu only if updates)."""
        with self._stats_lock:
            stats: dict[str, float] = {
                "updateOperations": self._c_updates,
                "committedPoints": self._c_committed,
                "creates": self._c_creates,
                "droppedCreates": 0,
                "errors": self._c_errors,
            }
            if self._c_updates:
                stats["avgUpdateTime"] = self._c_update_time / self._c_updates
                stats["pointsPerUpdate"] = self._c_committed / self._c_updates
            self._reset_counters()
        return stats

    @property
    def pending_creates(self) -> int:
        return len(self._pending)


__all__ = ["Drainer", "TokenBucket"]
