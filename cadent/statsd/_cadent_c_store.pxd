# Types for the compiled twin of store.py (Cython pure-Python mode).
cimport cython

@cython.locals(values=list, members=set)
cpdef apply_updates(updates, dict counters, dict timers, dict timer_counters, dict gauges,
                    dict ttl, max_ttl, dict sets)
