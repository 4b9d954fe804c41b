"""The on-disk format of the spool and of cadent-cache's write-ahead log, as plain synchronous
file functions (run them in a thread).

A spool directory holds append-only *segments* named ``<16-digit id>.seg`` and one ``cursor``
file (the write-ahead log's directory has segments only). A segment is a sequence of records::

    length  u32 big-endian   bytes of the body
    points  u32 big-endian   datapoints the body carries
    crc     u32 big-endian   crc32 of the points field and the body
    body    length bytes     one encoded message, exactly as the sender writes it to the wire

A record whose header or body runs past the end of the file (a write torn by a crash) or
whose crc does not match ends the readable part of its segment: the rest of that segment is
skipped and counted. The cursor file holds the segment id and byte offset of the first record
not yet delivered (two u64, rewritten in place).

:class:`SegmentFile` is the writing side both share: the one open segment, appended to with
``writev`` (a record's header and body go as two buffers, so the body is never copied).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import Sequence

HEADER = struct.Struct("!III")
CURSOR = struct.Struct("!QQ")
SUFFIX = ".seg"
CURSOR_NAME = "cursor"
MAX_RECORD_BYTES = 256 << 20
#: buffers handed to one writev call (the kernel's IOV_MAX)
IOV_MAX = 1024


def segment_path(directory: str, segment: int) -> str:
    return os.path.join(directory, f"{segment:016d}{SUFFIX}")


def list_segments(directory: str) -> list[int]:
    """Ids of the segment files in ``directory``, oldest first."""
    ids = []
    for name in os.listdir(directory):
        stem = name[:-len(SUFFIX)]
        if name.endswith(SUFFIX) and len(stem) == 16 and stem.isdigit():
            ids.append(int(stem))
    return sorted(ids)


def record_header(points: int, body: bytes) -> bytes:
    """The 12 bytes that go before ``body`` in its record (no copy of the body is made)."""
    return HEADER.pack(len(body), points, zlib.crc32(body, zlib.crc32(struct.pack("!I", points))))


class SegmentFile:
    """The open segment of a directory, appended to; one thread only uses it.

    ``active`` is the open segment's id (-1 when none is open), ``size`` its length in bytes,
    ``dirty`` whether it was written since its last fsync.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.fd: int | None = None
        self.active = -1
        self.size = 0
        self.dirty = False

    def open(self, segment: int) -> None:
        """Make ``segment`` the open one (sealing the previous), created if it is new."""
        if segment == self.active and self.fd is not None:
            return
        self.seal()
        self.fd = os.open(segment_path(self.directory, segment),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.active = segment
        self.size = os.fstat(self.fd).st_size

    def append(self, parts: Sequence[bytes]) -> int:
        """Append ``parts`` (whole records: headers and bodies) to the open segment; returns
        the bytes written. On an error the partial write is cut off again before it is raised,
        so what is appended later stays readable."""
        if self.fd is None:
            raise ValueError("no segment is open")
        fd, total = self.fd, 0
        start = os.lseek(fd, 0, os.SEEK_END)    # not self.size: a failed cut-off leaves more
        try:
            for first in range(0, len(parts), IOV_MAX):
                chunk = parts[first:first + IOV_MAX]
                size = sum(map(len, chunk))
                done = os.writev(fd, chunk)
                if done < size:                       # short write: the rest, plainly
                    rest = memoryview(b"".join(chunk))[done:]
                    while rest:
                        rest = rest[os.write(fd, rest):]
                total += size
        except OSError:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise
        finally:
            self.dirty = self.dirty or total > 0
        self.size = start + total
        return total

    def sync(self) -> None:
        """fsync the open segment if it was written since its last fsync."""
        if self.fd is not None and self.dirty:
            os.fsync(self.fd)
        self.dirty = False

    def seal(self) -> int:
        """fsync and close the open segment; returns its id (-1 when none was open)."""
        if self.fd is None:
            return -1
        segment, fd = self.active, self.fd
        self.fd, self.active, self.size = None, -1, 0
        try:
            if self.dirty:
                os.fsync(fd)
        finally:
            self.dirty = False
            os.close(fd)
        return segment

    def unlink(self, segment: int) -> None:
        """Delete ``segment`` (closing it first if it is the open one); gone already is fine."""
        if segment == self.active:
            self.seal()
        try:
            os.unlink(segment_path(self.directory, segment))
        except FileNotFoundError:
            pass


@dataclass
class ReadResult:
    """Records read from one segment: their bodies, their datapoints, where reading stopped."""

    bodies: list[bytes]
    points: int
    end: int
    corrupt: bool = False


def read_records(path: str, start: int, end: int, max_bytes: int) -> ReadResult:
    """Records from byte ``start`` up to ``end`` (at most about ``max_bytes`` of bodies).

    ``corrupt`` is set when a torn or damaged record was met: ``end`` is then the offset of
    that record and nothing after it in the segment can be trusted.
    """
    result = ReadResult([], 0, start)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(min(end - start, max(max_bytes, HEADER.size) + HEADER.size))
        pos = 0
        while pos < len(data):
            if len(data) - pos < HEADER.size:
                if start + pos + HEADER.size > end:
                    result.corrupt = True
                break
            length, points, crc = HEADER.unpack_from(data, pos)
            if length > MAX_RECORD_BYTES or start + pos + HEADER.size + length > end:
                result.corrupt = True
                break
            body_at = pos + HEADER.size
            if body_at + length > len(data):
                if result.bodies:
                    break
                f.seek(start + body_at)          # one record larger than max_bytes
                data = data[:body_at] + f.read(length)
                if len(data) < body_at + length:
                    result.corrupt = True
                    break
            body = data[body_at:body_at + length]
            if zlib.crc32(struct.pack("!I", points) + body) != crc:
                result.corrupt = True
                break
            result.bodies.append(body)
            result.points += points
            pos = body_at + length
            result.end = start + pos
            if pos >= max_bytes:
                break
    return result


@dataclass
class SegmentScan:
    """What a start-up scan of one segment found: its readable end, datapoints and damage."""

    end: int
    points: int
    corrupt: bool


def scan_segment(path: str, start: int) -> SegmentScan:
    """Walk the record headers (checking crcs) from ``start`` to the end of the file."""
    size = os.path.getsize(path)
    pos, points = start, 0
    while pos < size:
        got = read_records(path, pos, size, 4 << 20)
        points += got.points
        pos = got.end
        if got.corrupt:
            return SegmentScan(pos, points, True)
        if not got.bodies:
            break
    return SegmentScan(pos, points, False)


def read_cursor(directory: str) -> tuple[int, int] | None:
    try:
        with open(os.path.join(directory, CURSOR_NAME), "rb") as f:
            data = f.read(CURSOR.size)
    except FileNotFoundError:
        return None
    if len(data) != CURSOR.size:
        return None
    return CURSOR.unpack(data)


class CursorFile:
    """The cursor, rewritten in place with one 16-byte write per update."""

    def __init__(self, directory: str) -> None:
        self._fd = os.open(os.path.join(directory, CURSOR_NAME), os.O_RDWR | os.O_CREAT, 0o644)

    def write(self, segment: int, offset: int) -> None:
        os.pwrite(self._fd, CURSOR.pack(segment, offset), 0)

    def close(self) -> None:
        os.close(self._fd)
