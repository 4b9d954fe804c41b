# Types for the compiled twin of cache_points.py (Cython pure-Python mode).
cimport cython

@cython.locals(added=Py_ssize_t, points=dict)
cpdef Py_ssize_t add_points(list items, dict data, dict new, dict since, object seq,
                            dict stamps) except -1
