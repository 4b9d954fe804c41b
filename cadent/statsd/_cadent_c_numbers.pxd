# Types for the compiled twin of numbers.py (Cython pure-Python mode).
cimport cython

cdef double _EXACT_INT_LIMIT

cpdef str js_str(x)

@cython.locals(whole=cython.longlong, text=str)
cdef str _js_double_str(double x)
