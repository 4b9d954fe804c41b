"""carbon-cache's ENABLE_TAGS: register series with graphite-web's tag database.

graphite-web's default TagDB only knows the series a cache POSTs to it, so ``seriesByTag()`` and
the ``/tags`` endpoints see nothing without this. As carbon-cache 1.1 does:

* every series whose storage is created is queued, and so is one write in every
  TAG_UPDATE_INTERVAL (one counter over all series);
* a loop POSTs the queued names, created ones first, in batches of up to TAG_BATCH_SIZE to
  ``GRAPHITE_URL/tags/tagMultiSeries`` as multipart/form-data ``path`` fields (5 s timeout),
  until both queues are empty, then rests 0.2 s;
* each queue holds at most TAG_QUEUE_SIZE names; a name beyond that, or in a batch graphite-web
  did not take, is dropped: a later write queues it again.

Unlike carbon, failures are counted (``tagsDropped``) and logged once a minute at most, not once
per batch. The queues are filled from the writer threads; the loop runs on the gevent loop.
"""

from __future__ import annotations

import http.client
import logging
import time
import uuid
from collections import deque
from typing import Callable
from urllib.parse import SplitResult, urlsplit

import gevent

from cadent.core.lograte import LogLimiter

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 5.0
REST_S = 0.2
FAILURE_LOG_INTERVAL_S = 60.0
STOP_FLUSH_S = 5.0


def tag_endpoint(graphite_url: str) -> SplitResult:
    """``GRAPHITE_URL/tags/tagMultiSeries``; ValueError unless GRAPHITE_URL is an http(s) URL."""
    url = urlsplit(graphite_url.strip().rstrip("/"))
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"GRAPHITE_URL must be an http:// or https:// URL, not {graphite_url!r}")
    return url._replace(path=url.path + "/tags/tagMultiSeries")


def multipart_paths(names: list[str], boundary: str) -> bytes:
    """A multipart/form-data body with one ``path`` field per name."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n{name}\r\n'
             for name in names]
    return ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8")


class TagRegistrar:
    """Queues series names and POSTs them to graphite-web (see the module doc)."""

    def __init__(
        self,
        graphite_url: str,
        batch_size: int = 100,
        update_interval: int = 100,
        queue_size: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        endpoint = tag_endpoint(graphite_url)
        self.url = endpoint.geturl()
        self._scheme = endpoint.scheme
        self._host = endpoint.hostname
        self._port = endpoint.port
        self._path = endpoint.path
        self.batch_size = max(1, int(batch_size))
        self.update_interval = max(1, int(update_interval))
        self.queue_size = int(queue_size)
        self._clock = clock
        self._created: deque[str] = deque()
        self._updated: deque[str] = deque()
        self._update_counter = 0
        self._greenlet: gevent.Greenlet | None = None
        self._failure_log = LogLimiter(FAILURE_LOG_INTERVAL_S, clock)
        self.registered = 0          # since the previous collect_stats (loop thread only)
        self.dropped = 0             # ditto: batches graphite-web did not take
        self.queue_full_total = 0    # names refused by a full queue (writer threads), ever
        self._queue_full_reported = 0

    # -- fed by the writer threads --------------------------------------------------------

    def created(self, name: str) -> None:
        """``name``'s storage was just created."""
        self._queue(self._created, name)

    def updated(self, name: str) -> None:
        """``name`` was just written; one write in ``update_interval`` is queued."""
        self._update_counter = self._update_counter % self.update_interval + 1
        if self._update_counter == 1:
            self._queue(self._updated, name)

    def _queue(self, queue: deque, name: str) -> None:
        if self.queue_size > 0 and len(queue) >= self.queue_size:
            self.queue_full_total += 1
            return
        queue.append(name)

    # -- the loop --------------------------------------------------------------------------

    def take_batch(self) -> list[str]:
        """Up to ``batch_size`` queued names, created ones first."""
        batch: list[str] = []
        for queue in (self._created, self._updated):
            while queue and len(batch) < self.batch_size:
                batch.append(queue.popleft())
        return batch

    def flush(self, deadline: float = float("inf")) -> None:
        """POST batches until the queues are empty (or ``deadline``, clock time, passes)."""
        while (left := deadline - self._clock()) > 0:
            batch = self.take_batch()
            if not batch:
                return
            self.post(batch, min(REQUEST_TIMEOUT_S, left))

    def post(self, names: list[str], timeout: float = REQUEST_TIMEOUT_S) -> bool:
        """One tagMultiSeries request; True when graphite-web answered 200."""
        boundary = uuid.uuid4().hex
        body = multipart_paths(names, boundary)
        connection_class = (http.client.HTTPSConnection if self._scheme == "https"
                            else http.client.HTTPConnection)
        connection = connection_class(self._host, self._port, timeout=timeout)
        try:
            connection.request("POST", self._path, body, {
                "Content-Type": f"multipart/form-data; boundary={boundary}"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise OSError(f"HTTP {response.status} {response.reason}")
        except (OSError, http.client.HTTPException) as exc:
            self._failed(names, exc)
            return False
        finally:
            connection.close()
        self.registered += len(names)
        log.debug("tagged %d series", len(names))
        return True

    def _failed(self, names: list[str], exc: Exception) -> None:
        self.dropped += len(names)
        unlogged = self._failure_log.ready(len(names))
        if unlogged:
            log.warning("registering series with %s failed (%s): %d series dropped; they are "
                        "sent again on a later write", self.url, exc, unlogged)

    def _run(self) -> None:
        while True:
            self.flush()
            gevent.sleep(REST_S)

    def start(self) -> None:
        """Run the loop on the gevent loop."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Stop the loop, then send what is queued (for at most a few seconds)."""
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        self.flush(self._clock() + STOP_FLUSH_S)

    def collect_stats(self) -> dict[str, float]:
        """Series registered and dropped since the previous call (cadent's own metrics)."""
        queue_full, self._queue_full_reported = (
            self.queue_full_total - self._queue_full_reported, self.queue_full_total)
        stats = {"tagsRegistered": self.registered, "tagsDropped": self.dropped + queue_full}
        self.registered = self.dropped = 0
        return stats


class RegisteringWriter:
    """A writer that tells ``registrar`` about every create and write of ``writer``."""

    def __init__(self, writer, registrar: TagRegistrar) -> None:
        self.writer = writer
        self.registrar = registrar

    def exists(self, name: str) -> bool:
        return self.writer.exists(name)

    def create(self, name: str) -> None:
        self.writer.create(name)
        self.registrar.created(name)

    def write(self, name: str, points) -> int:
        committed = self.writer.write(name, points)
        self.registrar.updated(name)
        return committed

    def write_each(self, items: list) -> list:
        results = self.writer.write_each(items)
        for (name, _), result in zip(items, results):
            if not isinstance(result, Exception):
                self.registrar.updated(name)
        return results

    def get_metadata(self, name: str, key: str):
        return self.writer.get_metadata(name, key)

    def set_metadata(self, name: str, key: str, value):
        return self.writer.set_metadata(name, key, value)

    def set_rules(self, schemas, aggregations) -> None:
        self.writer.set_rules(schemas, aggregations)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


__all__ = ["RegisteringWriter", "TagRegistrar", "multipart_paths", "tag_endpoint"]
