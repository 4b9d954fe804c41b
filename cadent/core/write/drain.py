"""The writer loop: moves points from the MetricCache to a Writer in real OS threads.

Each step first creates storage for metrics that arrived since the previous step (so a new
series gets its whisper file at once and graphite-web can see it), then writes one metric
chosen by the cache's strategy.

* ``threads`` writer threads run the loop side by side (the disk syscalls release the GIL).
  A metric is never written by two threads at once: the cache does not pop a metric while a
  batch of it is in flight, and a file is created by the one thread that claimed its name.
* MAX_CREATES_PER_MINUTE: a token bucket (capacity N, N/60 per second) shared by the threads.
  A metric over the limit keeps its points in the cache and is created when a token frees up
  (``droppedCreates`` stays 0: nothing is dropped).
* MAX_UPDATES_PER_SECOND: a blocking token bucket (capacity N, N per second) shared by the
  threads, taken before each write.
* A failed create or write (disk full, permissions) is logged and counted in ``errors``; the
  points go back into the cache and that metric is retried after a growing delay, while the
  other metrics keep flowing. When every attempt fails the whole loop backs off too.
* ``stop(timeout)`` writes everything left, ignoring both rate limits, and says whether the
  cache ended empty.
* ``batch`` > 1 with a writer that has ``write_many`` (a network writer that waits for an
  acknowledgement, such as Kafka) pops up to that many metrics per step and hands them over
  at once, so one round trip covers them all; a failure puts every one of them back.
* A writer with ``write_each`` (the whisper writer) gets up to ``EACH_BATCH`` metrics per
  step, as many as the update budget has tokens for at that moment (each metric still takes
  one), unless LOG_UPDATES is on: each is written, counted and retried on its own, and the
  compiled whisper writer releases the GIL once per batch instead of once per system call,
  which lets the receivers run meanwhile.
* Errors are counted one by one but logged at most once a minute (a dead backend fails every
  write).

The threads come from a ``gevent.threadpool.ThreadPool``: genuine OS threads whose completion
the gevent loop can wait on with a timeout. The shared bookkeeping sits behind one native lock
held only for dict and bucket operations, never across disk I/O.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable, Container

from cadent.core import oplog
from cadent.core.cache import MetricCache
from cadent.core.native import allocate_lock, sleep
from cadent.core.ratelog import RateLimitedLog
from cadent.core.write.base import Writer

log = logging.getLogger(__name__)

IDLE_WAIT_S = 1.0
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
LOOP_BACKOFF_MAX_S = 5.0
FLUSH_POLL_S = 0.05
CREATE_CHUNK = 64
#: metrics handed to a ``write_each`` writer per step
EACH_BATCH = 64


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; infinite rate = no limit.

    Not locked itself: the Drainer calls it under its own lock.
    """

    def __init__(self, capacity: float, rate: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @rate.setter
    def rate(self, rate: float) -> None:
        self._rate = rate
        self.unlimited = math.isinf(rate) or rate <= 0

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

    def take_up_to(self, count: int) -> int:
        """Take as many of ``count`` tokens as are available now (none waited for); return how
        many were taken."""
        if self.unlimited:
            return count
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        taken = max(0, min(count, int(self._tokens)))
        self._tokens -= taken
        return taken

    def refund(self, count: int = 1) -> None:
        """Give back tokens taken for work that turned out not to exist."""
        if not self.unlimited:
            self._tokens = min(self.capacity, self._tokens + count)

    def wait_time(self) -> float:
        """Seconds until a token is available (0 if one is), without taking it."""
        if self.unlimited:
            return 0.0
        tokens = min(self.capacity, self._tokens + (self._clock() - self._stamp) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate


class _Skip:
    """Names the next pop must leave alone: awaiting creation, or backing off after errors.

    Only membership tests (atomic on dicts and sets) run against the live maps.
    """

    def __init__(self, pending: dict[str, None], creating: set[str],
                 retry_at: dict[str, float], now: float) -> None:
        self.pending = pending
        self.creating = creating
        self.retry_at = retry_at
        self.now = now

    def __contains__(self, name: object) -> bool:
        if name in self.pending or name in self.creating:
            return True
        until = self.retry_at.get(name)  # type: ignore[arg-type]
        return until is not None and until > self.now


class Drainer:
    """Writes the cache out through ``writer`` with ``threads`` threads (see module doc)."""

    def __init__(
        self,
        cache: MetricCache,
        writer: Writer,
        max_updates_per_second: float = 500,
        max_creates_per_minute: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
        threads: int = 1,
        log_updates: bool = False,
        batch: int = 1,
        name: str = "",
    ) -> None:
        self.cache = cache
        self.log_updates = log_updates
        self.writer = writer
        self.threads = max(1, int(threads))
        self.batch = max(1, int(batch)) if hasattr(writer, "write_many") else 1
        self.each = hasattr(writer, "write_each")
        self._what = f"{name} " if name else ""
        self._error_log = RateLimitedLog(log)
        self._clock = clock
        self._lock = allocate_lock()
        self._updates = TokenBucket(max_updates_per_second, max_updates_per_second, clock)
        self._creates = TokenBucket(max_creates_per_minute, max_creates_per_minute / 60, clock)
        self._known: set[str] = set()
        self._pending: dict[str, None] = {}      # awaiting creation, claimed by no thread
        self._creating: set[str] = set()         # claimed by one thread for exists/create
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._loop_failures = 0
        self._stopping = False
        self._deadline = math.inf
        self._reset_counters()
        self._pool = None
        self._results: list = []

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in ``threads`` OS threads."""
        from gevent.threadpool import ThreadPool

        self._pool = ThreadPool(self.threads)
        self._results = [self._pool.spawn(self._run) for _ in range(self.threads)]

    def stop(self, timeout: float = 60.0) -> bool:
        """Write everything left (within ``timeout`` s); True when nothing remains cached."""
        self._deadline = self._clock() + timeout
        # everything goes to disk now, including points MIN_TIMESTAMP_LAG would hold back
        self.cache.min_timestamp_lag = 0
        self._stopping = True
        self.cache.data_ready.set()  # each thread passes the wake-up on as it leaves
        if self._results:
            until = time.monotonic() + timeout + 1.0
            for result in self._results:
                try:
                    result.get(timeout=max(until - time.monotonic(), 0.01))
                except Exception:
                    log.exception("writer thread did not finish cleanly")
            self._pool.kill()
            self._pool = None
            self._results = []
        else:
            self.flush_all(self._deadline)
        left = self.cache.size
        if left or self.pending_creates:
            log.error("stopping with %d points not written", left)
            return False
        return True

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                try:
                    worked = self.step()
                except Exception:
                    log.exception("unexpected error in the writer loop")
                    worked = False
                if worked:
                    continue
                backoff = self._loop_failures
                if backoff:
                    sleep(min(0.05 * 2 ** backoff, LOOP_BACKOFF_MAX_S))
                else:
                    self.cache.data_ready.wait(self._idle_wait())
        finally:
            self.cache.data_ready.set()  # wake the next idle thread so it sees the stop too
        self.flush_all(self._deadline)

    def _idle_wait(self) -> float:
        wait = IDLE_WAIT_S
        with self._lock:
            if self._pending:
                wait = min(wait, max(self._creates.wait_time(), 0.01))
            if self._retry_at:
                wait = min(wait, max(min(self._retry_at.values()) - self._clock(), 0.01))
        return wait

    def step(self, limit: bool = True) -> bool:
        """Create pending files, then write one metric; True if anything was done."""
        worked = self._create_pending(limit)
        budget = limit and not self._updates.unlimited  # an update budget to wait for
        waited = 0.0
        if budget:
            waiting_since = time.perf_counter()
            with self._lock:
                wait = self._updates.take()
            while wait > 0:
                sleep(min(wait, 0.1))
                if self._stopping:
                    return worked
                # new metrics get their files while the update budget refills
                worked = self._create_pending(limit) or worked
                with self._lock:
                    wait = self._updates.take()
            waited = time.perf_counter() - waiting_since
        item = self.cache.pop_next(self._skip())
        if item is None:
            if budget:
                with self._lock:
                    self._updates.refund()
            return worked
        if self.threads > 1 and self.cache.size:
            self.cache.data_ready.set()  # more to do: wake an idle writer thread
        name, points = item
        if name not in self._known:
            with self._lock:
                claimed = name not in self._creating
                if claimed:
                    self._pending.pop(name, None)
                    self._creating.add(name)
            if not claimed or not self._create_claimed(name, limit):
                self.cache.requeue(name, points)
                return True
        if self.batch > 1:
            self._write_many(self._more([(name, points)], self.batch))
        elif self.each and not self.log_updates:
            self._write_each(self._more_budgeted(name, points, budget))
        else:
            self._write(name, points, waited)
        return True

    def _skip(self) -> Container[str]:
        """What the next pop must leave alone; nothing (no per-name check) in the usual case."""
        if self._pending or self._creating or self._retry_at:
            return _Skip(self._pending, self._creating, self._retry_at, self._clock())
        return ()

    def _more_budgeted(self, name: str, points: list, budget: bool) -> list:
        """(name, points) plus further metrics up to EACH_BATCH, one update token each."""
        size = EACH_BATCH
        if budget:
            with self._lock:
                size = 1 + self._updates.take_up_to(EACH_BATCH - 1)
        items = self._more([(name, points)], size)
        if budget and len(items) < size:
            with self._lock:
                self._updates.refund(size - len(items))
        return items

    def _more(self, items: list, size: int) -> list:
        """``items`` plus further metrics (already created) up to ``size``, popped under one
        lock; a metric still to be created ends the batch (its storage comes first)."""
        if len(items) < size:
            items.extend(self.cache.pop_many(size - len(items), self._skip(), self._known))
        return items

    def flush_all(self, deadline: float) -> None:
        """Write until the cache is empty or ``deadline`` (clock time) passes; no rate limits."""
        while self._clock() < deadline:
            with self._lock:
                self._retry_at.clear()
                failing, self._loop_failures = self._loop_failures, 0
            while self._clock() < deadline and self.step(limit=False):
                pass
            if not self.cache.size and not self.pending_creates:
                return
            # other threads may still hold the rest in flight; failures retry more slowly
            pause = RETRY_MIN_S if failing or self._loop_failures else FLUSH_POLL_S
            sleep(min(pause, max(deadline - self._clock(), 0)))

    # -- creates and writes ---------------------------------------------------------------

    def _create_pending(self, limit: bool) -> bool:
        """Claim up to CREATE_CHUNK pending names and create their storage."""
        new = self.cache.take_new_names()
        if not new and not self._pending:
            return False
        with self._lock:
            for name in new:
                if name not in self._known and name not in self._creating:
                    self._pending[name] = None
            if not self._pending:
                return False
            # out of create tokens: still check one name, its file may exist already
            # (a batched writer creates nothing slow: claim a whole batch's worth of chunks)
            chunk = 1 if limit and self._creates.wait_time() > 0 else CREATE_CHUNK * self.batch
            now = self._clock()
            claimed = []
            for name in self._pending:
                until = self._retry_at.get(name)
                if until is not None and until > now:
                    continue
                claimed.append(name)
                if len(claimed) >= chunk:
                    break
            for name in claimed:
                del self._pending[name]
                self._creating.add(name)
        worked = False
        for i, name in enumerate(claimed):
            if self._create_claimed(name, limit):
                worked = True
            elif limit and self._creates_exhausted():
                self._release(claimed[i + 1:])  # out of create tokens: the rest waits
                break
        return worked

    def _creates_exhausted(self) -> bool:
        with self._lock:
            return self._creates.wait_time() > 0

    def _release(self, names: list[str]) -> None:
        with self._lock:
            for name in names:
                self._creating.discard(name)
                if name not in self._known:
                    self._pending[name] = None

    def _create_claimed(self, name: str, limit: bool) -> bool:
        """True once ``name`` (claimed in ``_creating``) has storage; else it goes back pending."""
        try:
            exists = self.writer.exists(name)
        except Exception:
            log.exception("checking storage of %s failed", name)
            self._failed(name, pending=True)
            return False
        if not exists:
            if limit:
                with self._lock:
                    wait = self._creates.take()
                if wait > 0:
                    self._release([name])
                    return False
            try:
                self.writer.create(name)
            except Exception as exc:
                self._error_log(logging.ERROR, "%screating %s failed: %s", self._what, name, exc)
                self._failed(name, pending=True)
                return False
        with self._lock:
            self._creating.discard(name)
            self._pending.pop(name, None)
            self._known.add(name)
            if not exists:
                self._c_creates += 1
            self._succeeded_locked(name)
        return True

    def _write(self, name: str, points: list, waited: float = 0.0) -> None:
        """Write one metric; ``waited``: seconds spent waiting for the update budget."""
        started = time.perf_counter()
        try:
            committed = self.writer.write(name, points)
        except Exception as exc:
            self._write_failed(name, points, exc)
            return
        elapsed = time.perf_counter() - started
        if self.log_updates:
            # carbon's updates.log lines
            if waited > 0.001:
                oplog.updates.info("wrote %d datapoints for %s in %.5f seconds after waiting "
                                   "%.5f seconds", committed, name, elapsed, waited)
            else:
                oplog.updates.info("wrote %d datapoints for %s in %.5f seconds",
                                   committed, name, elapsed)
        self.cache.done(name)
        with self._lock:
            self._succeeded_locked(name)
            self._c_committed += committed
            self._c_updates += 1
            self._c_update_time += elapsed

    def _write_failed(self, name: str, points: list, exc: Exception) -> None:
        """Log and count a failed write; the points go back and ``name`` backs off."""
        self._error_log(logging.ERROR, "%swriting %d points of %s failed: %s", self._what,
                        len(points), name, exc)
        with self._lock:
            self._known.discard(name)  # re-check (and re-create) before the retry
        self.cache.requeue(name, points)
        self._failed(name)

    def _write_each(self, items: list) -> None:
        """Write several metrics in one call, each succeeding or failing on its own."""
        started = time.perf_counter()
        try:
            results = self.writer.write_each(items)  # type: ignore[attr-defined]
        except Exception as exc:  # the call itself failed: every metric is retried
            results = [exc] * len(items)
        elapsed = time.perf_counter() - started
        written = []
        committed = 0
        for (name, points), result in zip(items, results):
            if isinstance(result, Exception):
                self._write_failed(name, points, result)
            else:
                written.append(name)
                committed += result
        self.cache.done_many(written)
        with self._lock:
            for name in written:
                self._succeeded_locked(name)
            self._c_committed += committed
            self._c_updates += len(written)
            self._c_update_time += elapsed * len(written) / len(items)

    def _write_many(self, items: list) -> None:
        """Write several metrics in one call; any failure puts all of them back."""
        started = time.perf_counter()
        try:
            committed = self.writer.write_many(items)  # type: ignore[attr-defined]
        except Exception as exc:
            self._error_log(logging.ERROR, "%swriting %d metrics failed: %s", self._what,
                            len(items), exc)
            for name, points in items:
                self.cache.requeue(name, points)
            with self._lock:
                self._loop_failures = min(self._loop_failures + 1, 16)
                self._c_errors += 1
            return
        elapsed = time.perf_counter() - started
        self.cache.done_many([name for name, _ in items])
        with self._lock:
            self._loop_failures = 0
            self._c_committed += committed
            self._c_updates += len(items)
            self._c_update_time += elapsed

    def _failed(self, name: str, pending: bool = False) -> None:
        """Count an error and back ``name`` off; ``pending``: its claim returns to pending."""
        with self._lock:
            if pending:
                self._creating.discard(name)
                self._pending.pop(name, None)
                self._pending[name] = None  # to the back of the line
            count = self._failures.get(name, 0) + 1
            self._failures[name] = count
            self._retry_at[name] = self._clock() + min(RETRY_MIN_S * 2 ** (count - 1),
                                                       RETRY_MAX_S)
            self._loop_failures = min(self._loop_failures + 1, 16)
            self._c_errors += 1

    def _succeeded_locked(self, name: str) -> None:
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
        with self._lock:
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
    def failing_rounds(self) -> int:
        """Rounds in a row in which every attempt failed (0 once a write succeeds)."""
        return self._loop_failures

    @property
    def pending_creates(self) -> int:
        """Metrics waiting for (or in the middle of) their storage creation."""
        with self._lock:
            return len(self._pending) + len(self._creating)


__all__ = ["Drainer", "TokenBucket"]
