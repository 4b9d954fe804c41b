"""CarbonLink, the cache query protocol graphite-web speaks to carbon-cache (port 7002).

Frames in both directions: 4-byte unsigned big-endian length + pickle. Requests are dicts
unpickled with an unpickler that refuses every global (only builtin containers, strings and
numbers can come out). Replies are dicts of builtins pickled with protocol 2, byte for byte
what carbon sends:

* ``cache-query`` (``metric``)             → ``{'datapoints': [(ts, value), ...]}``
* ``cache-query-bulk`` (``metrics``)       → ``{'datapointsByMetric': {name: [...], ...}}``
* ``get-metadata`` (``metric``, ``key``)   → ``{'value': ...}``
* ``set-metadata`` (+ ``value``)           → ``{'old_value': ..., 'new_value': ...}``
* unknown type                             → ``{'error': 'Invalid request type "<type>"'}``

Metadata failures reply ``{'error': <traceback text>}`` like carbon; any other malformed
request gets ``{'error': <reason>}`` and is counted in ``errors``. Queried names are normalised
like stored names. :class:`RequestFramer` cuts the byte stream into request bodies, holding at
most one incomplete frame of at most ``max_frame_bytes``.
"""

from __future__ import annotations

import logging
import pickle
import struct
import traceback
from typing import Any, Callable

from cadent.core import oplog
from cadent.core.parse.pickle import describe, safe_loads
from cadent.core.tags import normalize_name

log = logging.getLogger(__name__)

HEADER = struct.Struct("!I")
REPLY_PROTOCOL = 2


def frame(body: bytes) -> bytes:
    """Length-prefix ``body``."""
    return HEADER.pack(len(body)) + body


def encode_reply(result: dict) -> bytes:
    """A framed protocol-2 pickle of ``result``."""
    return frame(pickle.dumps(result, protocol=REPLY_PROTOCOL))


class RequestFramer:
    """Cuts one connection's byte stream into request bodies (frames may span reads, or
    several share one). Holds at most one incomplete frame. A header announcing more than
    ``max_frame_bytes`` sets ``oversize`` to its length and ends the stream: nothing of that
    frame is buffered, and nothing after it is parsed (there is no way to resynchronise)."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.oversize: int | None = None
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame held for the next ``feed``."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The bodies of the frames ``data`` completes, in order (none once ``oversize``)."""
        if self.oversize is not None:
            return []
        buffer = self._buffer
        buffer += data
        bodies = []
        while len(buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer)
            if length > self.max_frame_bytes:
                self.oversize = length
                buffer.clear()
                break
            end = HEADER.size + length
            if len(buffer) < end:
                break
            bodies.append(bytes(buffer[HEADER.size:end]))
            del buffer[:end]
        return bodies


class CarbonLinkHandler:
    """Answers CarbonLink requests from a MetricCache and a Writer (metadata).

    ``run_io(func, *args)`` runs blocking storage calls; the server passes a thread-pool
    runner, the default calls directly.
    """

    def __init__(self, cache, writer=None,
                 run_io: Callable[..., Any] | None = None, log_hits: bool = False) -> None:
        self.cache = cache
        self.log_hits = log_hits
        self.writer = writer
        self._run_io = run_io or (lambda func, *args: func(*args))
        self.queries = 0
        self.bulk_queries = 0
        self._bulk_sizes: list[int] = []
        self.errors = 0
        self._errors_reported = 0

    def handle_frame(self, data: bytes) -> bytes:
        """A complete frame (header + body) in, a framed reply out."""
        if len(data) < HEADER.size or HEADER.unpack_from(data)[0] != len(data) - HEADER.size:
            self.errors += 1
            return encode_reply({"error": "malformed frame"})
        return self.handle_request(data[HEADER.size:])

    def handle_request(self, body: bytes, peer: str = "-") -> bytes:
        """One request body (the pickle) in, a framed reply out. Never raises.

        With ``log_hits`` each query is logged to query.log as carbon does (``peer``: host:port).
        """
        try:
            request = safe_loads(body)
        except Exception as exc:
            self.errors += 1
            log.info("unreadable CarbonLink request: %s", exc)
            return encode_reply({"error": f"invalid request: {exc}"})
        try:
            result = self._dispatch(request)
            if self.log_hits:
                _log_hit(peer, request, result)
        except _BadRequest as exc:
            self.errors += 1
            result = {"error": str(exc)}
        except Exception as exc:  # whatever a hostile request trips over: never the connection
            self.errors += 1
            log.info("CarbonLink request %s from %s failed: %s", describe(request), peer,
                     type(exc).__name__)
            result = {"error": f"invalid request: {type(exc).__name__}"}
        try:
            return encode_reply(result)
        except Exception as exc:  # a stored value pickle cannot encode
            self.errors += 1
            log.error("cannot encode CarbonLink reply: %s", exc)
            return encode_reply({"error": f"cannot encode reply: {exc}"})

    def _dispatch(self, request: Any) -> dict:
        if not isinstance(request, dict) or "type" not in request:
            raise _BadRequest("request must be a dict with a 'type'")
        kind = request["type"]
        if kind == "cache-query":
            name = _name(request, "metric")
            self.queries += 1
            return {"datapoints": self.cache.get(normalize_name(name))}
        if kind == "cache-query-bulk":
            names = request.get("metrics")
            if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
                raise _BadRequest("'metrics' must be a list of names")
            self.bulk_queries += 1
            self._bulk_sizes.append(len(names))
            get = self.cache.get
            return {"datapointsByMetric": {name: get(normalize_name(name)) for name in names}}
        if kind == "get-metadata":
            name, key = _name(request, "metric"), _name(request, "key")
            return self._metadata(lambda: {"value": self._run_io(
                self.writer.get_metadata, normalize_name(name), key)})
        if kind == "set-metadata":
            name, key = _name(request, "metric"), _name(request, "key")
            if "value" not in request:
                raise _BadRequest("missing 'value'")
            value = request["value"]
            return self._metadata(lambda: {"old_value": self._run_io(
                self.writer.set_metadata, normalize_name(name), key, value), "new_value": value})
        self.errors += 1
        return {"error": 'Invalid request type "%s"' % (kind if isinstance(kind, str)
                                                         else describe(kind))}

    def _metadata(self, call: Callable[[], dict]) -> dict:
        if self.writer is None:
            return {"error": "no storage to read metadata from"}
        try:
            return call()
        except Exception:
            self.errors += 1
            return {"error": traceback.format_exc()}

    def collect_stats(self) -> dict[str, float]:
        """carbon's query self-metrics since the previous call, plus ``cache.bad_queries``
        (requests answered with an error) when there were any."""
        stats: dict[str, float] = {"cache.queries": self.queries,
                                   "cache.bulk_queries": self.bulk_queries}
        if self._bulk_sizes:
            stats["cache.bulk_queries_average_size"] = sum(self._bulk_sizes) / len(self._bulk_sizes)
        if self.errors != self._errors_reported:
            stats["cache.bad_queries"] = self.errors - self._errors_reported
            self._errors_reported = self.errors
        self.queries = self.bulk_queries = 0
        self._bulk_sizes = []
        return stats


class _BadRequest(Exception):
    pass


def _log_hit(peer: str, request: dict, result: dict) -> None:
    if "datapoints" in result:
        oplog.query.info('[%s] cache query for "%s" returned %d values',
                         peer, request["metric"], len(result["datapoints"]))
    elif "datapointsByMetric" in result:
        found = result["datapointsByMetric"]
        oplog.query.info('[%s] cache query bulk for "%d" metrics returned %d values',
                         peer, len(request["metrics"]), sum(len(v) for v in found.values()))


def _name(request: dict, key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str):
        raise _BadRequest(f"'{key}' must be a string")
    return value


__all__ = ["CarbonLinkHandler", "HEADER", "RequestFramer", "encode_reply", "frame",
           "safe_loads"]
