# Types for the compiled twin of graphite.py (Cython pure-Python mode).
# The arguments stay Python objects, so a wrong argument fails as it does in the Python twin.
cimport cython

@cython.locals(lines=list, tail=str, sfx=str, rate_ns=str, count_ns=str,
               rate_end=str, count_end=str, flush_counts=bint, timer_ns=str, head=str, end=str,
               gauge_ns=str, set_ns=str, set_end=str)
cpdef list graphite_lines(names, counters, interval_s, timer_data, gauges, sets, ts)
