# Types for the compiled twin of plaintext.py (Cython pure-Python mode). Bounds checks stay
# on (setup.py): every index below is into network input.
cimport cython

cdef str _SENTINEL
cdef str _SPACED_SENTINEL
cdef Py_ssize_t _NEWLINE
cdef Py_ssize_t _MAX_PLAIN_DIGITS

cdef bint _is_space(unsigned char c)

@cython.locals(pos=Py_ssize_t, negative=bint, mantissa=cython.longlong, digits=Py_ssize_t,
               scale=Py_ssize_t, c=cython.uchar, number=double, power=double)
cdef object _plain_number(bytes data, Py_ssize_t start, Py_ssize_t end)

@cython.locals(batch=list, nan_values=Py_ssize_t, bad_timestamps=Py_ssize_t, end=Py_ssize_t,
               pos=Py_ssize_t, fields=Py_ssize_t, start=Py_ssize_t, name_start=Py_ssize_t,
               name_end=Py_ssize_t, value_start=Py_ssize_t, value_end=Py_ssize_t,
               ts_start=Py_ssize_t, ts_end=Py_ssize_t, value=double, ts=double)
cdef object _scan_ascii(bytes data, object now, object resolution)
