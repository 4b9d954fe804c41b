# Compiled twin of pickle_shape.py, written in Cython rather than compiled from the .py: the
# Python module recognises carbon's shape with C-level passes over whole columns (map, set,
# join), which compiling would not speed up; here one loop looks at each item in place and
# builds nothing. Anything but a batch that goes on as it stands is answered by the Python
# module itself, so the two cannot differ there (tests/unit/test_pickle_shape.py).
"""carbon's pickled batch recognised in one pass (see pickle_shape.py)."""

from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.unicode cimport Py_UNICODE_ISSPACE
from libc.math cimport isfinite

from cadent.core.parse.pickle_shape import carbon_batch as _reference


def carbon_batch(obj, resolution=0):
    """``obj`` itself when it is a valid Batch as it stands; otherwise what the Python module
    answers (its columns, or None): see pickle_shape.carbon_batch."""
    if not resolution and type(obj) is list and _as_it_stands(<list>obj):
        return obj
    return _reference(obj, resolution)


cdef bint _as_it_stands(list batch) except -1:
    """Every item ``(str name, (float, float))``, the name one field of carbon's line protocol
    and UTF-8 encodable, both numbers finite, the timestamp above -1; not empty."""
    cdef double timestamp, value
    cdef object item, point, name
    if not batch:
        return False
    for item in batch:
        if type(item) is not tuple or len(<tuple>item) != 2:
            return False
        point = (<tuple>item)[1]
        if type(point) is not tuple or len(<tuple>point) != 2:
            return False
        if type((<tuple>point)[0]) is not float or type((<tuple>point)[1]) is not float:
            return False
        timestamp = PyFloat_AS_DOUBLE((<tuple>point)[0])
        value = PyFloat_AS_DOUBLE((<tuple>point)[1])
        if not (isfinite(timestamp) and isfinite(value) and timestamp > -1.0):
            return False
        name = (<tuple>item)[0]
        if type(name) is not str or not _name_ok(<str>name):
            return False
    return True


cdef bint _name_ok(str name):
    """Not empty, no character str.split() splits on (the ``\\s`` of the Python module's
    regex), no surrogate (what UTF-8 cannot encode)."""
    cdef Py_UCS4 c
    if not name:
        return False
    for c in name:
        if Py_UNICODE_ISSPACE(c) or 0xD800 <= c <= 0xDFFF:
            return False
    return True
