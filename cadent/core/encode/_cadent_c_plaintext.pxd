# Types for the compiled twin of plaintext.py (Cython pure-Python mode). Bounds checks stay
# on (setup.py): every write into the output buffer is checked.
cimport cython

cdef Py_ssize_t _LINE_SLACK
cdef double _EXACT_LIMIT
cdef double _TS_LIMIT

@cython.locals(rest=cython.ulonglong, width=Py_ssize_t, scale=cython.ulonglong, end=Py_ssize_t,
               index=Py_ssize_t)
cdef Py_ssize_t _put_digits(bytearray out, Py_ssize_t pos, cython.longlong number) except -1

@cython.locals(char=Py_UCS4)
cdef Py_ssize_t _put_text(bytearray out, Py_ssize_t pos, str text) except -1

@cython.locals(index=Py_ssize_t)
cdef Py_ssize_t _put_bytes(bytearray out, Py_ssize_t pos, bytes data) except -1

@cython.locals(whole=cython.longlong)
cdef object _float_value_text(double value)

cdef object _utf8(str name)

cdef object _line_bytes(object point)

@cython.locals(out=bytearray, size=Py_ssize_t, pos=Py_ssize_t, need=Py_ssize_t, usual=bint,
               ts_float=bint, value_float=bint, number=double, whole=cython.longlong,
               line=bytes, text=str, encoded=bytes, value_text=str, ts_text=str)
cdef object _encode_direct(list batch)
