# Types for the compiled twin of flush.py (Cython pure-Python mode).
# Sums run over C doubles in the Python twin's order (no reassociation, no fused multiply-add
# on a default x86-64 build), so every printed digit is the same; the differential tests check.
cimport cython

@cython.locals(v=list, n=Py_ssize_t, cum=list, cumsq=list, low=double, high=double, data=dict,
               pct=double, k=Py_ssize_t, bound=double, total=double, total_sq=double,
               mean=double, j=Py_ssize_t, diffs=double, x=double, d=double, mid=Py_ssize_t,
               hist=dict, i=Py_ssize_t, freq=Py_ssize_t, limit=double, acc=double, acc_sq=double)
cpdef dict timer_stats(values, count, interval_s, percentiles, bins=*)
