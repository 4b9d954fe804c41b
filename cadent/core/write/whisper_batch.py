"""Whisper updates in batches: many files per call, each with ``update_file``'s bytes.

``write_batch(paths, batches, now, lock, fadvise_random, fsync)`` updates the file
``paths[i]`` with ``batches[i]`` ((timestamp, value) pairs oldest first, as the cache pops
them; timestamps truncated to int and values made float, as carbon does) and answers one
result per file: the number of points written, or the exception that file's update raised
(the other files go on). Each file is opened read/write, locked (``flock``) when ``lock``,
advised random access when ``fadvise_random``, updated by ``whisper_update.update_file``,
``fsync``'ed when ``fsync``, and closed. ``now`` (default ``int(time.time())``) holds for
the whole batch.

This module is the reference. Its compiled twin (``_cadent_c_whisper_batch.pyx``, see
docs/architecture.md) takes the update a cache drain hands over - one point per interval,
oldest first, all within the first archive's retention - and does the open, header read,
first-archive write and close in C with the GIL released once for the whole batch instead
of once per system call; lower archives are then propagated by ``whisper_update`` with the
GIL held. Any other file is given to :func:`write_one` here before a byte is written.
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import Sequence

from gevent.monkey import get_original

from cadent.compiled import import_compiled
from cadent.core.write.whisper_update import update_file

# The unpatched close: gevent's monkey-patched os.close checks and fstat()s the descriptor
# first (two more syscalls per update) to protect descriptors its loop may be watching,
# which a whisper file never is.
_close_fd = get_original("os", "close")


def write_one(path: str, points: Sequence, now: int, lock: bool = False,
              fadvise_random: bool = False, fsync: bool = False) -> int | Exception:
    """Update one file (see the module docstring); the points written or the exception."""
    if not points:
        return 0
    try:
        fd = os.open(path, os.O_RDWR)
    except Exception as exc:
        return exc
    try:
        if lock:
            fcntl.flock(fd, fcntl.LOCK_EX)
        if fadvise_random:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        update_file(fd, path, [(int(ts), float(value)) for ts, value in points], now)
        if fsync:
            os.fsync(fd)
    except Exception as exc:
        _close_quietly(fd)
        return exc
    try:
        _close_fd(fd)
    except OSError as exc:  # a deferred write error (NFS) surfaces here
        return exc
    return len(points)


def _close_quietly(fd: int) -> None:
    try:
        _close_fd(fd)
    except OSError:
        pass


def write_batch(paths: Sequence[str], batches: Sequence[Sequence], now: int | None = None,
                lock: bool = False, fadvise_random: bool = False,
                fsync: bool = False) -> list[int | Exception]:
    """Update ``paths[i]`` with ``batches[i]`` for every i; one result per file."""
    if now is None:
        now = int(time.time())
    return [write_one(path, points, now, lock, fadvise_random, fsync)
            for path, points in zip(paths, batches)]


__all__ = ["write_batch", "write_one"]

import_compiled(globals(), "cadent.core.write._cadent_c_whisper_batch")
