"""carbon's pickle protocol: 4-byte big-endian length + pickled ``[(name, (ts, value)), ...]``.

Bodies are unpickled by an Unpickler that refuses every global, so a frame can only build
plain containers, strings and numbers and can never run code. Each item is then validated as
carbon's pickle receiver does (wrong shape skipped, ``float()`` of timestamp and value, strings
such as ``'3.5'`` accepted), then the common receiver checks. Where carbon drops the connection
(a frame over the size limit, a ``bytes`` name, a NaN/infinite timestamp, nesting deep enough
to exhaust the recursion limit) only that frame or item is lost here.

A name carbon's line protocol cannot carry — empty, or holding whitespace (anything
``str.split()`` splits on: space, tab, newline, carriage return, vertical tab, form feed,
``\x1c``-``\x1f``, ``\x85``, the Unicode spaces and separators) — is rejected: carbon
accepts it by pickle, then writes it to line destinations as an extra or a broken line, and
to the cache as a file no line client could ever write to. Such datapoints are counted
(``bad_names``) and logged at most once a minute. Other control characters (NUL, ...) pass,
as they do over carbon's line protocol, which keeps them inside the name.
"""

from __future__ import annotations

import io
import logging
import pickle
import reprlib
import time
from struct import Struct
from typing import Any, Callable

from cadent.core.lograte import LogLimiter
from cadent.core.parse._checks import assemble
from cadent.core.parse.pickle_shape import carbon_batch, encodable, line_safe
from cadent.core.point import Batch

logger = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_BYTES = 1048576

_LENGTH = Struct("!L")
_LENGTH_SIZE = _LENGTH.size

# What a hostile or broken body can raise while being unpickled (RecursionError included:
# deep nesting is cheap to write).
_UNPICKLE_ERRORS = (
    pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError, EOFError,
    AttributeError, ImportError, OverflowError, MemoryError, RecursionError,
)


_STR = {str}

# Rejected names are logged once a minute per process, whatever the connection.
BAD_NAME_LOG = LogLimiter(60.0)

_LOG_CHARS = 200
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = _LOG_CHARS


class _NoGlobalsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError("global %s.%s refused" % (module, name))


def safe_loads(body: bytes, encoding: str = "utf-8") -> Any:
    """Unpickle ``body`` (protocol 0-5) refusing every global, so no code can run.

    Python 2 8-bit strings are decoded with ``encoding`` (``"bytes"`` keeps them as bytes).
    Raises ``pickle.UnpicklingError`` for any reference to a global, and the usual unpickling
    errors (see ``_UNPICKLE_ERRORS``) for malformed input.
    """
    # The C unpickler reads a BytesIO one opcode at a time through Python method calls; a
    # BufferedReader lets it peek the whole body at once (about 3x faster).
    stream = io.BufferedReader(io.BytesIO(body), max(len(body), 1))
    return _NoGlobalsUnpickler(stream, encoding=encoding).load()


def describe(item: object) -> str:
    """A log-sized repr: bounded in depth and length, never raising (deep nesting, huge ints)."""
    try:
        text = _REPR.repr(item)
    except Exception:  # e.g. an int past sys.get_int_max_str_digits()
        text = "<%s>" % type(item).__name__
    return _clip(text)


def _clip(text: str) -> str:
    return text if len(text) <= _LOG_CHARS else text[:_LOG_CHARS] + "..."


class PickleFrameParser:
    """Stateful parser for one pickle TCP connection.

    ``feed`` takes the bytes of a stream read and returns the datapoints of every frame it
    completed. A frame announcing more than ``max_frame_bytes`` is skipped: its body is
    discarded as it arrives, never buffered. The connection always survives.

    Counters are plain ints the receiver reads and resets (or use ``take_counters``):

    * ``bad_frames``: bodies that do not unpickle (garbage, truncated, globals refused)
    * ``oversize_frames``: frames longer than ``max_frame_bytes``
    * ``bad_items``: items that are not ``(name, (timestamp, value))`` with numeric
      timestamp/value and a str (or UTF-8 bytes) name
    * ``bad_names``: datapoints whose name the line protocol cannot carry (see the module doc)
    * ``bad_timestamps``: NaN or infinite timestamps
    * ``nan_values``: datapoints dropped for a NaN value (carbon drops these silently)
    """

    COUNTERS = ("bad_frames", "oversize_frames", "bad_items", "bad_names", "bad_timestamps",
                "nan_values")

    def __init__(
        self,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        min_timestamp_resolution: int = 0,
        clock: Callable[[], float] = time.time,
        peer: str = "-",
        name_log: LogLimiter = BAD_NAME_LOG,
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.min_timestamp_resolution = int(min_timestamp_resolution or 0)
        self.clock = clock
        self.peer = peer
        self._buf = b""
        self._skip = 0
        self.bad_frames = 0
        self.oversize_frames = 0
        self.bad_items = 0
        self.bad_names = 0
        self.bad_timestamps = 0
        self.nan_values = 0
        self.name_log = name_log

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame held for the next ``feed``."""
        return len(self._buf)

    def take_counters(self) -> dict[str, int]:
        """Return the counters and reset them to zero."""
        taken = {name: getattr(self, name) for name in self.COUNTERS}
        for name in self.COUNTERS:
            setattr(self, name, 0)
        return taken

    def feed(self, data: bytes) -> Batch:
        """Parse one read of the stream; return the datapoints of the frames it completed."""
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return []
            data = data[self._skip :]
            self._skip = 0
        buf = self._buf + data if self._buf else data
        end = len(buf)
        pos = 0
        out: Batch = []
        unpack_from = _LENGTH.unpack_from
        max_frame = self.max_frame_bytes
        while end - pos >= _LENGTH_SIZE:
            (length,) = unpack_from(buf, pos)
            start = pos + _LENGTH_SIZE
            if length > max_frame:
                self.oversize_frames += 1
                logger.info(
                    "pickle frame of %d bytes from %s exceeds %d bytes, skipping it",
                    length, self.peer, max_frame,
                )
                if end - start >= length:
                    pos = start + length
                    continue
                self._skip = length - (end - start)
                pos = end
                break
            if end - start < length:
                break
            pos = start + length
            points = self._frame(buf[start:pos])
            if points:
                if out:
                    out.extend(points)
                else:
                    out = points
        self._buf = buf[pos:] if pos < end else b""
        return out

    def _frame(self, body: bytes) -> Batch:
        try:
            obj = safe_loads(body)
        except UnicodeDecodeError:
            # A Python 2 8-bit string that is not UTF-8: keep such strings as bytes so only
            # the items they belong to are lost.
            try:
                obj = safe_loads(body, encoding="bytes")
            except _UNPICKLE_ERRORS as exc:
                return self._bad_frame(body, exc)
        except _UNPICKLE_ERRORS as exc:
            return self._bad_frame(body, exc)
        if obj.__class__ is list:
            if not obj:
                return obj
            batch = carbon_batch(obj, self.min_timestamp_resolution)
            if batch is obj:
                return obj  # already a valid Batch: handed on as it is
            if batch is not None:
                return self._assemble(*batch)
        try:
            rows = [(name, float(ts), float(value)) for name, (ts, value) in obj]
        except Exception:
            return self._items_checked(obj)
        if not rows:
            return []
        names, timestamps, values = zip(*rows)
        if set(map(type, names)) != _STR:
            return self._items_checked(obj)
        joined = "".join(names)
        if not encodable(joined) or not line_safe(joined, names):
            return self._items_checked(obj)
        return self._assemble(names, timestamps, values)

    def _bad_frame(self, body: bytes, exc: BaseException) -> Batch:
        self.bad_frames += 1
        logger.info(
            "invalid pickle frame of %d bytes from %s skipped: %s: %s",
            len(body), self.peer, type(exc).__name__, _clip(str(exc)),
        )
        return []

    def _items_checked(self, obj: Any) -> Batch:
        """Item-by-item validation of a frame that failed the fast path."""
        names: list[str] = []
        timestamps: list[float] = []
        values: list[float] = []
        bad = bad_names = 0
        first = first_name = None
        try:
            items = iter(obj)
        except TypeError:
            self.bad_frames += 1
            logger.info(
                "pickle frame from %s holds a %s, not a list of datapoints",
                self.peer, type(obj).__name__,
            )
            return []
        for item in items:
            try:
                name, (ts, value) = item
                ts = float(ts)
                value = float(value)
                if name.__class__ is not str:
                    if not isinstance(name, (bytes, bytearray)):
                        raise TypeError("name is a %s" % type(name).__name__)
                    name = name.decode("utf-8")
                elif not encodable(name):
                    raise ValueError("name is not valid UTF-8")
            except Exception as exc:
                bad += 1
                if first is None:
                    first = (item, exc)
                continue
            if not line_safe(name, (name,)):
                bad_names += 1
                if first_name is None:
                    first_name = name
                continue
            names.append(name)
            timestamps.append(ts)
            values.append(value)
        if bad:
            self.bad_items += bad
            logger.info(
                "skipped %d invalid pickle item(s) from %s (first: %s: %s)",
                bad, self.peer, describe(first[0]), _clip(str(first[1])),
            )
        if bad_names:
            self.bad_names += bad_names
            reported = self.name_log.ready(bad_names)
            if reported:
                logger.warning(
                    "skipped %d pickled datapoint(s) whose name is empty or holds whitespace, "
                    "which carbon's line protocol cannot carry (e.g. %s from %s; logged at "
                    "most once a minute)",
                    reported, describe(first_name), self.peer,
                )
        return self._assemble(names, timestamps, values)

    def _assemble(self, names, timestamps, values) -> Batch:
        batch, nan_values, bad_timestamps = assemble(
            names, timestamps, values, self.clock(), self.min_timestamp_resolution
        )
        if nan_values:
            self.nan_values += nan_values
        if bad_timestamps:
            self.bad_timestamps += bad_timestamps
            logger.info(
                "%d pickled datapoint(s) from %s with a NaN or infinite timestamp skipped",
                bad_timestamps, self.peer,
            )
        return batch
