# Compiled twin of whisper_batch.py, written in Cython rather than compiled from the .py:
# pure-Python mode cannot release the GIL around C system calls, and that is the point here
# (docs/architecture.md). The Python module stays the reference; this one must leave the
# same bytes and answer the same results (tests/unit/test_whisper_batch.py).
"""Whisper updates in batches with the GIL released (see whisper_batch.py)."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING
from libc.errno cimport errno, EIO
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from posix.unistd cimport close as c_close, fsync as c_fsync, pread, pwrite

import os as _os
import time as _time

from cadent.core.write.whisper_batch import write_one as _write_one
from cadent.core.write.whisper_update import propagate_first as _propagate_first
from cadent.core.write.whisper_update import whisper_switches_on as _whisper_switches_on

cdef extern from "<fcntl.h>" nogil:
    int c_open "open"(const char* path, int flags)
    int O_RDWR
    int O_CLOEXEC
    int posix_fadvise(int fd, long offset, long length, int advice)
    int POSIX_FADV_RANDOM

cdef extern from "<sys/file.h>" nogil:
    int flock(int fd, int operation)
    int LOCK_EX

cdef extern from "<arpa/inet.h>" nogil:
    uint32_t ntohl(uint32_t)
    uint32_t htonl(uint32_t)

cdef extern from "<endian.h>" nogil:
    uint64_t htobe64(uint64_t)

# what the C step left each file in
cdef enum:
    PENDING = 0      # for the C step; still PENDING after it: declined, the Python path
    DONE = 1         # written and closed
    PROPAGATE = 2    # first archive written, descriptor still open: lower archives follow
    OPEN_FAILED = 3  # errno in errs
    FAILED = 4       # a system call after open failed (errno in errs); descriptor closed
    EMPTY = 5        # no points: nothing to do
    PYTHON = 6       # points the C step does not take as they are: the Python path
cdef enum:
    HEAD_READ = 96   # metadata + up to 5 archive infos + the first archive's base point
    MAX_ARCHIVES = 5
    POINT_SIZE = 12
    FLAG_LOCK = 1
    FLAG_FADVISE = 2
    FLAG_FSYNC = 4


cdef int64_t MAX_INTERVAL = 0xFFFFFFFF  # whisper packs intervals as unsigned 32-bit


cdef inline uint32_t _u32(const unsigned char* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return ntohl(v)


cdef inline void _pack_point(unsigned char* p, uint32_t interval, double value) noexcept nogil:
    cdef uint32_t be_interval = htonl(interval)
    cdef uint64_t bits
    memcpy(&bits, &value, 8)
    bits = htobe64(bits)
    memcpy(p, &be_interval, 4)
    memcpy(p + 4, &bits, 8)


@cython.cdivision(True)
cdef inline int64_t _floordiv(int64_t a, int64_t b) noexcept nogil:
    """Python's ``a // b`` for b > 0."""
    cdef int64_t q = a // b
    if a % b != 0 and a < 0:
        q -= 1
    return q


@cython.cdivision(True)
cdef inline int64_t _mod(int64_t a, int64_t b) noexcept nogil:
    """Python's ``a % b`` for b > 0."""
    cdef int64_t r = a % b
    if r < 0:
        r += b
    return r


cdef int _write_all(int fd, const unsigned char* data, int64_t length, int64_t offset) noexcept nogil:
    """pwrite until everything is written; 0 or an errno."""
    cdef Py_ssize_t written
    while length > 0:
        written = pwrite(fd, data, length, offset)
        if written < 0:
            return errno
        if written == 0:
            return EIO
        data += written
        length -= written
        offset += written
    return 0


@cython.cdivision(True)
cdef int _first_archive(int fd, const int64_t* ts, const double* values, Py_ssize_t n,
                        int64_t now, int* archives_out, int64_t* step_out,
                        int* err) noexcept nogil:
    """Write ``n`` points to the first archive as whisper_update does for the drain's common
    update; DONE or PROPAGATE (more archives), PENDING when the Python path must take the
    file (nothing written), FAILED with ``err``."""
    cdef unsigned char head[HEAD_READ]
    cdef Py_ssize_t got = pread(fd, head, HEAD_READ, 0)
    cdef uint32_t count, agg_type, xff_bits, offset, step, points
    cdef uint32_t prev_step = 0, prev_points = 0, first_offset = 0, first_step = 0
    cdef uint32_t first_points = 0, base
    cdef int64_t expected, need, start, shift, aligned_start, anchor, rel, size, beyond
    cdef float xff32
    cdef double xff
    cdef Py_ssize_t i
    cdef unsigned char* packed
    cdef int failure
    if got < 16:
        return PENDING
    agg_type = _u32(head)
    xff_bits = _u32(head + 8)
    memcpy(&xff32, &xff_bits, 4)
    xff = xff32
    count = _u32(head + 12)
    if count == 0 or count > MAX_ARCHIVES or agg_type < 1 or agg_type > 8:
        return PENDING
    if not (0.0 <= xff <= 1.0):
        return PENDING
    need = 16 + POINT_SIZE * <int64_t>count
    if got < need + POINT_SIZE:
        return PENDING
    expected = need
    for i in range(count):
        offset = _u32(head + 16 + 12 * i)
        step = _u32(head + 20 + 12 * i)
        points = _u32(head + 24 + 12 * i)
        if offset != expected or step < 1 or points < 1:
            return PENDING
        if i == 0:
            first_offset, first_step, first_points = offset, step, points
        elif step <= prev_step or prev_points < step // prev_step:
            return PENDING
        prev_step, prev_points = step, points
        expected += <int64_t>points * POINT_SIZE
    # the cache's common update: one point per interval, oldest first, all in the first
    # archive's retention, no timestamp below the coarsest precision
    start = ts[0]
    for i in range(n):
        if ts[i] != start + i * <int64_t>first_step:
            return PENDING
    if start < prev_step or <int64_t>first_step * first_points < now - start:
        return PENDING
    if n > first_points:
        return PENDING
    shift = _mod(start, first_step)
    aligned_start = start - shift
    if aligned_start + (n - 1) * <int64_t>first_step > MAX_INTERVAL:
        return PENDING
    packed = <unsigned char*>malloc(n * POINT_SIZE)
    if packed == NULL:
        return PENDING
    for i in range(n):
        _pack_point(packed + POINT_SIZE * i, <uint32_t>(aligned_start + i * <int64_t>first_step),
                    values[i])
    base = _u32(head + need)
    anchor = aligned_start + (n - 1) * <int64_t>first_step  # whisper bases a fresh archive here
    size = <int64_t>first_points * POINT_SIZE
    rel = _mod(_floordiv(aligned_start - (base if base else anchor), first_step) * POINT_SIZE,
               size)
    beyond = rel + n * POINT_SIZE - size
    if beyond > 0:
        failure = _write_all(fd, packed, n * POINT_SIZE - beyond, first_offset + rel)
        if not failure:
            failure = _write_all(fd, packed + n * POINT_SIZE - beyond, beyond, first_offset)
    else:
        failure = _write_all(fd, packed, n * POINT_SIZE, first_offset + rel)
    free(packed)
    if failure:
        err[0] = failure
        return FAILED
    archives_out[0] = count
    step_out[0] = first_step
    return PROPAGATE if count > 1 else DONE


cdef int _update(const char* path, const int64_t* ts, const double* values, Py_ssize_t n,
                 int64_t now, int flags, int* fd_out, int64_t* step_out,
                 int* err) noexcept nogil:
    """One file: open, lock/advise, first archive, fsync and close (unless PROPAGATE)."""
    cdef int fd = c_open(path, O_RDWR | O_CLOEXEC)
    cdef int archives = 0, status, advice
    if fd < 0:
        err[0] = errno
        return OPEN_FAILED
    if flags & FLAG_LOCK and flock(fd, LOCK_EX) != 0:
        err[0] = errno
        c_close(fd)
        return FAILED
    if flags & FLAG_FADVISE:
        advice = posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM)
        if advice != 0:
            err[0] = advice
            c_close(fd)
            return FAILED
    status = _first_archive(fd, ts, values, n, now, &archives, step_out, err)
    if status == PROPAGATE:
        fd_out[0] = fd
        return status
    if status == PENDING or status == FAILED:
        c_close(fd)
        return status
    if flags & FLAG_FSYNC and c_fsync(fd) != 0:
        err[0] = errno
        c_close(fd)
        return FAILED
    if c_close(fd) != 0:
        err[0] = errno
        return FAILED
    return DONE


def write_batch(paths, batches, now=None, lock=False, fadvise_random=False, fsync=False):
    """Update ``paths[i]`` with ``batches[i]`` for every i; one result per file (the points
    written or the exception raised), the bytes whisper_batch.write_batch leaves."""
    if now is None:
        now = int(_time.time())
    if _whisper_switches_on():
        # every file goes through whisper_update and on to whisper
        return [_write_one(path, points, now, lock, fadvise_random, fsync)
                for path, points in zip(paths, batches)]
    cdef Py_ssize_t m = len(paths), j, total = 0, n
    cdef int64_t c_now = now
    cdef int flags = ((FLAG_LOCK if lock else 0) | (FLAG_FADVISE if fadvise_random else 0)
                      | (FLAG_FSYNC if fsync else 0))
    if len(batches) < m:
        m = len(batches)
    encoded = [None] * m
    cdef int* status = <int*>malloc(max(m, 1) * sizeof(int))
    cdef int* errs = <int*>malloc(max(m, 1) * sizeof(int))
    cdef int* fds = <int*>malloc(max(m, 1) * sizeof(int))
    cdef int64_t* steps = <int64_t*>malloc(max(m, 1) * sizeof(int64_t))
    cdef Py_ssize_t* starts = <Py_ssize_t*>malloc((m + 1) * sizeof(Py_ssize_t))
    cdef const char** cpaths = <const char**>malloc(max(m, 1) * sizeof(char*))
    cdef int64_t* ts = NULL
    cdef double* values = NULL
    if not (status and errs and fds and steps and starts and cpaths):
        free(status); free(errs); free(fds); free(steps); free(starts); free(cpaths)
        raise MemoryError()
    try:
        for j in range(m):
            points = batches[j]
            status[j] = PYTHON if points else EMPTY
            starts[j] = total
            if type(points) is list:
                total += len(<list>points)
        starts[m] = total
        ts = <int64_t*>malloc(max(total, 1) * sizeof(int64_t))
        values = <double*>malloc(max(total, 1) * sizeof(double))
        if ts == NULL or values == NULL:
            raise MemoryError()
        for j in range(m):
            if status[j] == PYTHON and type(batches[j]) is list:
                path = _encoded(paths[j])
                if path is not None and _convert(batches[j], ts + starts[j], values + starts[j]):
                    encoded[j] = path
                    cpaths[j] = PyBytes_AS_STRING(path)
                    status[j] = PENDING
        with nogil:
            for j in range(m):
                if status[j] == PENDING:
                    n = starts[j + 1] - starts[j]
                    status[j] = _update(cpaths[j], ts + starts[j], values + starts[j], n, c_now,
                                        flags, &fds[j], &steps[j], &errs[j])
        results = [None] * m
        for j in range(m):
            n = starts[j + 1] - starts[j]
            results[j] = _result(status[j], errs[j], fds[j], steps[j], paths[j], batches[j],
                                 ts[starts[j]] if n else 0, n, now, lock, fadvise_random, fsync)
        return results
    finally:
        free(status); free(errs); free(fds); free(steps); free(starts); free(cpaths)
        free(ts); free(values)


cdef object _encoded(object path):
    """The path as bytes for open(), or None (the Python path reports what is wrong)."""
    if type(path) is not bytes:
        try:
            path = _os.fsencode(path)
        except Exception:
            return None
    return None if b"\0" in path else path


cdef bint _convert(list points, int64_t* ts, double* values):
    """Fill ``ts`` and ``values`` as ``int(timestamp)`` and ``float(value)`` would, for every
    pair; False (the Python path takes the file) for anything else or an interval whisper
    cannot store."""
    cdef Py_ssize_t i = 0
    cdef double stamp
    try:
        for point in points:
            timestamp, value = point
            if type(timestamp) is float:
                stamp = timestamp
                if not 0.0 <= stamp < 4294967296.0:  # also refuses NaN
                    return False
                ts[i] = <int64_t>stamp  # truncates toward zero, as int() does
            else:
                timestamp = int(timestamp)
                if not 0 <= timestamp <= MAX_INTERVAL:
                    return False
                ts[i] = timestamp
            values[i] = value if type(value) is float else float(value)
            i += 1
    except Exception:
        return False
    return True


cdef object _result(int status, int err, int fd, int64_t step, object path, object points,
                    int64_t first, Py_ssize_t count, object now, bint lock, bint fadvise_random,
                    bint fsync):
    if status == DONE:
        return count
    if status == EMPTY:
        return 0
    if status == PENDING or status == PYTHON:
        return _write_one(path, points, now, lock, fadvise_random, fsync)
    if status == OPEN_FAILED:
        return OSError(err, _os.strerror(err), path)
    if status == FAILED:
        return OSError(err, _os.strerror(err))
    # PROPAGATE: whisper visits the lower intervals newest first
    first -= first % step
    aligned = list(range(first + (count - 1) * step, first - 1, -step))
    try:
        _propagate_first(fd, path, aligned)
        if fsync:
            _os.fsync(fd)
    except Exception as exc:
        c_close(fd)
        return exc
    if c_close(fd) != 0:
        return OSError(errno, _os.strerror(errno))
    return count


__all__ = ["write_batch"]
