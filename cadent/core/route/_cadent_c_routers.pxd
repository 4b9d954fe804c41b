# Types for the compiled twin of routers.py (Cython pure-Python mode): the per-point loops of
# batch routing. Bounds checks stay on (setup.py).
cimport cython

@cython.locals(by_pid=list, groups=dict, points=list, pid=Py_ssize_t)
cdef dict _group_by_placement(list batch, dict cache, object place)

cdef list _renamed(list points, dict renames)

@cython.locals(targets=list, points=list)
cdef _spread(list batch, dict cache, dict lists, dict renames)
