# Types for the compiled twin of parse.py (Cython pure-Python mode).
cimport cython

cdef object _RATE_DIGITS
cdef Py_ssize_t _KEY_CACHE_MAX

cdef class PacketParser:
    cdef public bint sanitize
    cdef dict _keys

    cpdef str _key(self, str raw)

    @cython.locals(updates=list, metrics=Py_ssize_t, bad=Py_ssize_t, lines=list, tagged=bint,
                   line=str, parts=list, raw_key=str, segments=list, tags=list, key=str,
                   index=Py_ssize_t, segment=str, bar=Py_ssize_t,
                   value_text=str, mtype=str, kind=str, rate_text=str, rest=str,
                   inv_rate=double, rate=double, value=double)
    cpdef parse(self, packet)
