"""The spool's on-disk format, as plain synchronous file functions (run them in a thread).

A spool directory holds append-only *segments* named ``<16-digit id>.seg`` and one ``cursor``
file. A segment is a sequence of records::

    length  u32 big-endian   bytes of the body
    points  u32 big-endian   datapoints the body carries
    crc     u32 big-endian   crc32 of the points field and the body
    body    length bytes     one encoded message, exactly as the sender writes it to the wire

A record whose header or body runs past the end of the file (a write torn by a crash) or
whose crc does not match ends the readable part of its segment: the rest of that segment is
skipped and counted. The cursor file holds the segment id and byte offset of the first record
not yet delivered (two u64, rewritten in place).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

HEADER = struct.Struct("!III")
CURSOR = struct.Struct("!QQ")
SUFFIX = ".seg"
CURSOR_NAME = "cursor"
MAX_RECORD_BYTES = 256 << 20


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


def pack_record(points: int, body: bytes) -> bytes:
    return record_header(points, body) + body


def record_header(points: int, body: bytes) -> bytes:
    """The 12 bytes that go before ``body`` in its record (no copy of the body is made)."""
    return HEADER.pack(len(body), points, zlib.crc32(body, zlib.crc32(struct.pack("!I", points))))


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
