# Types for the compiled twin of gather.py (Cython pure-Python mode).
cimport cython

cdef object _EXACT

@cython.locals(groups=dict, firsts=list, forwarded=list, index=Py_ssize_t, entry=tuple,
               outputs=tuple, out=tuple, group=list)
cpdef tuple group_by_output(object batch, dict matches, object match)

@cython.locals(added=Py_ssize_t, index=Py_ssize_t, end=Py_ssize_t, count=Py_ssize_t,
               pairs=list)
cpdef tuple take_groups(dict buffers, object generation, dict groups, list firsts,
                        Py_ssize_t start, Py_ssize_t room)

@cython.locals(values=list, intervals=dict, held=list)
cpdef bint take_group(object buf, list pairs) except -1

@cython.locals(low=double, high=double, seconds=double, period=double)
cpdef object common_interval(list pairs, object frequency)
