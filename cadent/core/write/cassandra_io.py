"""One cassandra-driver session per process, usable from any OS thread without blocking the loop.

Under gevent's monkey patching the driver picks ``GeventConnection``, whose reader and writer
greenlets belong to the hub of the thread that connected. Used from the cache's writer threads
(each with its own hub) such a session fails with ``LoopExit`` or stalls, because nothing runs
the connecting hub while a writer thread waits (``tests/unit/test_cassandra_io.py`` shows both).
So, when the process is patched, the session lives in one dedicated OS thread whose hub runs
all the time: writer threads hand it lists of statements (``loop.run_callback_threadsafe``) and
wait on a native lock; the gevent loop of the daemon never touches the driver. Without patching
(tools, benchmarks) the driver's own reactor thread is used and statements are issued from the
calling thread.

Statements run asynchronously with at most ``max_inflight`` in flight across all callers. An
unreachable cluster is retried every ``reconnect_s`` by a background loop that logs the first
failure and then at most once a minute; until it connects, every call fails at once with
:class:`CassandraUnavailable` (the cache keeps the points).
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any, Callable, Sequence

from cadent.compat.cassandra_settings import CassandraConfig
from cadent.core.lograte import LogLimiter
from cadent.core.native import NativeSignal, allocate_lock, sleep as native_sleep
from cadent.core.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

LOG_EVERY_S = 60.0
STOP_WAIT_S = 10.0

Statement = tuple[str, Sequence[Any]]   # (CQL text, bound values)
BATCH_ROWS = 40     # rows per unlogged batch: ~4 KB, under Cassandra's 5 KB warning threshold


class RowBatch(tuple):
    """Statements sent as one UNLOGGED batch: the rows of one series write (one partition per
    resolution), at most :data:`BATCH_ROWS` of them. Not atomic across partitions."""


class CassandraUnavailable(ConnectionError):
    """No session to the cluster (yet): nothing was sent."""


def gevent_patched() -> bool:
    """Whether this process runs under gevent's monkey patching (sockets patched)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("socket"))


class _DriverLogLimit(logging.Filter):
    """The driver logs every failed (re)connection with a traceback: keep one record per
    logger and level a minute, without the traceback (cadent logs its own summary)."""

    def __init__(self) -> None:
        super().__init__()
        self._limits: dict[tuple[str, int], LogLimiter] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno)
        limit = self._limits.get(key)
        if limit is None:
            limit = self._limits[key] = LogLimiter(LOG_EVERY_S)
        if not limit.ready():
            return False
        record.exc_info = None
        record.exc_text = None
        return True


_DRIVER_LOGGERS = ("cassandra", "cassandra.cluster", "cassandra.pool", "cassandra.connection",
                   "cassandra.io.geventreactor", "cassandra.io.libevreactor", "cassandra.policies")


def limit_driver_logs() -> None:
    """Install the driver's log limit once per process."""
    for name in _DRIVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DriverLogLimit) for f in logger.filters):
            logger.addFilter(_DriverLogLimit())


class CqlRunner:
    """The driver's Cluster and Session for one process; see the module doc."""

    def __init__(self, config: CassandraConfig, on_connect: Callable[[Any], None] | None = None,
                 use_gevent: bool | None = None) -> None:
        self.config = config
        self.on_connect = on_connect          # run once in the I/O context after connecting
        self.use_gevent = gevent_patched() if use_gevent is None else use_gevent
        self.errors = 0                       # failed statements and connection attempts
        self.statements = 0                   # statements completed successfully
        self.inflight = 0
        self.peak_inflight = 0
        self.latency_sum = 0.0                # seconds, statements completed since reset
        self.latency_count = 0
        self._cluster: Any = None
        self._session: Any = None
        self._prepared: dict[str, Any] = {}
        self._lock = allocate_lock()
        self._stopping = False
        self._stopped = NativeSignal()
        self._loop: Any = None
        self._sem: Any = None
        self._error_log = RateLimitedLog(log, LOG_EVERY_S)
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._session is not None

    def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        limit_driver_logs()
        from gevent.monkey import get_original

        start_thread = get_original("_thread", "start_new_thread")
        if self.use_gevent:
            ready = NativeSignal()
            start_thread(self._gevent_main, (ready,))
            if not ready.wait(STOP_WAIT_S):
                raise RuntimeError("the Cassandra I/O thread did not start")
        else:
            import threading

            self._sem = threading.BoundedSemaphore(self.config.max_inflight)
            start_thread(self._connect_loop, ())

    def take_latency(self) -> tuple[float | None, int]:
        """(mean seconds per statement completed since the previous call or None, statements
        in flight now)."""
        with self._lock:
            mean = self.latency_sum / self.latency_count if self.latency_count else None
            self.latency_sum, self.latency_count = 0.0, 0
            return mean, self.inflight

    def wait_connected(self, timeout: float) -> bool:
        """Poll until connected or ``timeout`` seconds passed (tools and tests)."""
        deadline = time.monotonic() + timeout
        while self._session is None and time.monotonic() < deadline:
            native_sleep(0.05)
        return self._session is not None

    def close(self) -> None:
        """Shut the driver down (waits at most a few seconds)."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        self._stopped.wait(STOP_WAIT_S)       # the I/O thread or the connect loop has ended
        if not self.use_gevent:
            self._shutdown_cluster()

    # -- running statements -------------------------------------------------------------

    def run(self, statements: Sequence[Statement | RowBatch]) -> list[list]:
        """Execute ``statements`` (at most ``max_inflight`` at a time) and return each one's
        rows (not paged). Raises the first error once all of them have finished; the others
        may have been applied. Blocks the calling OS thread: never call it on a gevent loop."""
        if not statements:
            return []
        if self._session is None:
            raise CassandraUnavailable(f"not connected to Cassandra at {self.config.contact_points}")
        done = NativeSignal()
        outcome: list = []

        def finish(result: Any) -> None:
            outcome.append(result)
            done.set()

        if self.use_gevent:
            import gevent

            self._loop.run_callback_threadsafe(gevent.spawn, self._issue, statements, finish)
        else:
            self._issue(statements, finish)
        # every statement ends within request_timeout once sent; the queue ahead of it waits
        rounds = 1 + len(statements) // self.config.max_inflight
        if not done.wait(rounds * self.config.request_timeout_s + 10.0):
            raise TimeoutError(f"{len(statements)} Cassandra statements did not finish in time")
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _issue(self, statements: Sequence[Statement], finish: Callable[[Any], None]) -> None:
        """Send every statement (blocking on the in-flight bound) and call ``finish`` once with
        the list of rows or the first error. Runs in the I/O context."""
        session = self._session
        if session is None:
            finish(CassandraUnavailable(f"lost the session to {self.config.contact_points}"))
            return
        count = len(statements)
        results: list = [None] * count
        state = {"left": count, "error": None}
        lock = allocate_lock()

        def complete(index: int, value: Any, started: float, failed: bool) -> None:
            elapsed = time.perf_counter() - started
            self._sem.release()
            with self._lock:
                self.inflight -= 1
                if failed:
                    self.errors += 1
                else:
                    self.statements += 1
                    self.latency_sum += elapsed
                    self.latency_count += 1
            with lock:
                results[index] = value
                if failed and state["error"] is None:
                    state["error"] = value
                state["left"] -= 1
                last = state["left"] == 0
            if last:
                finish(state["error"] if state["error"] is not None else results)

        for index, item in enumerate(statements):
            cql, values = (item, None) if isinstance(item, RowBatch) else item
            self._sem.acquire()
            with self._lock:
                self.inflight += 1
                self.peak_inflight = max(self.peak_inflight, self.inflight)
            started = time.perf_counter()
            try:
                if isinstance(cql, RowBatch):
                    future = session.execute_async(self._batch(session, cql))
                else:
                    future = session.execute_async(self._prepare(session, cql), values)
            except Exception as exc:  # NoHostAvailable, a bad value...
                complete(index, exc, started, True)
                continue
            future.add_callbacks(lambda rows, i=index, t=started: complete(i, list(rows or ()), t, False),
                                 lambda exc, i=index, t=started: complete(i, exc, t, True))

    def _batch(self, session: Any, children: RowBatch) -> Any:
        from cassandra.query import BatchStatement, BatchType

        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for cql, values in children:
            batch.add(self._prepare(session, cql), values)
        return batch

    def _prepare(self, session: Any, cql: str) -> Any:
        prepared = self._prepared.get(cql)
        if prepared is None:
            prepared = session.prepare(cql)
            self._prepared[cql] = prepared
        return prepared

    def note_error(self, message: str, *args: Any) -> None:
        """Log an error at most once a minute, saying how many occurrences it stands for."""
        self._error_log(logging.ERROR, message, *args)

    # -- connecting ---------------------------------------------------------------------

    def _gevent_main(self, ready: NativeSignal) -> None:
        import gevent
        from gevent.lock import BoundedSemaphore

        hub = gevent.get_hub()
        self._loop = hub.loop
        self._sem = BoundedSemaphore(self.config.max_inflight)
        ready.set()
        connector = gevent.spawn(self._connect_loop)
        try:
            while not self._stopping:
                gevent.sleep(0.1)
            connector.kill(block=False)
            self._shutdown_cluster()
        finally:
            self._stopped.set()

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            if self.use_gevent:
                import gevent

                gevent.sleep(0.1)
            else:
                native_sleep(0.1)

    def _connect_loop(self) -> None:
        attempts = 0
        while not self._stopping and self._session is None:
            attempts += 1
            try:
                self._connect()
            except Exception as exc:
                with self._lock:
                    self.errors += 1
                self.note_error("cannot reach Cassandra at %s (attempt %d): %s; retrying every "
                                "%.0f s, points stay in the cache", self.config.contact_points,
                                attempts, exc, self.config.reconnect_s)
                self._shutdown_cluster()
                self._pause(self.config.reconnect_s)
            else:
                log.info("connected to Cassandra at %s (keyspace %s, consistency %s)",
                         self.config.contact_points, self.config.keyspace, self.config.consistency)
        if not self.use_gevent:
            while not self._stopping:
                native_sleep(0.1)
            self._stopped.set()

    def _connect(self) -> None:
        cluster = build_cluster(self.config, self.use_gevent)
        self._cluster = cluster
        session = cluster.connect()
        session.default_fetch_size = None     # one page: reads are one series or one partition
        if self.on_connect is not None:
            self.on_connect(session)
        self._session = session

    def _shutdown_cluster(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        self._prepared = {}
        if cluster is not None:
            try:
                cluster.shutdown()
            except Exception as exc:
                log.debug("Cassandra shutdown: %r", exc)


def build_cluster(config: CassandraConfig, use_gevent: bool | None = None) -> Any:
    """A driver ``Cluster`` for ``config`` (not connected yet)."""
    from cassandra import ConsistencyLevel
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import (DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy,
                                    RoundRobinPolicy, TokenAwarePolicy)

    if use_gevent is None:
        use_gevent = gevent_patched()
    extra: dict[str, Any] = {}
    if use_gevent:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from cassandra.io.geventreactor import GeventConnection
        extra["connection_class"] = GeventConnection
    if config.user:
        extra["auth_provider"] = PlainTextAuthProvider(config.user, config.password or "")
    balancing = (DCAwareRoundRobinPolicy(local_dc=config.local_dc) if config.local_dc
                 else RoundRobinPolicy())
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(balancing),
        consistency_level=ConsistencyLevel.name_to_value[config.consistency],
        request_timeout=config.request_timeout_s,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return Cluster(
            contact_points=list(config.hosts),
            protocol_version=config.protocol_version,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=config.connect_timeout_s,
            control_connection_timeout=config.connect_timeout_s,
            reconnection_policy=ExponentialReconnectionPolicy(0.5, config.reconnect_s),
            schema_metadata_enabled=False,
            **extra,
        )


__all__ = ["BATCH_ROWS", "CassandraUnavailable", "CqlRunner", "RowBatch", "Statement", "build_cluster",
           "gevent_patched", "limit_driver_logs"]
