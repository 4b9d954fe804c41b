"""The cache's store loop: a batch of points into its map name → {timestamp: value}.

Apart from :class:`cadent.core.cache.MetricCache` so that it can be compiled (see
:mod:`cadent.compiled`): at 100k metrics this loop is a third of what the receiving thread does
with each point, all of it holding the GIL the writer threads wait for.
"""

from __future__ import annotations


def add_points(items: list, data: dict, new: dict, since: dict, seq: int, stamps: dict) -> int:
    """Store every ``(name, (timestamp, value))`` of ``items`` in ``data``; return how many
    points were added (a timestamp a name already holds only has its value replaced).

    A name seen for the first time is also recorded in ``new`` and, with store number ``seq``,
    in ``since``. Float timestamps are interned through ``stamps`` (equal timestamps share one
    float object across metrics); an int timestamp stays an int (60 must not turn into 60.0).
    """
    added = 0
    for name, (ts, value) in items:
        if type(ts) is float:
            ts = stamps.setdefault(ts, ts)
        points = data.get(name)
        if points is None:
            data[name] = {ts: value}
            new[name] = None
            since[name] = seq
            added += 1
        else:
            if ts not in points:
                added += 1
            points[ts] = value
    return added


from cadent.compiled import import_compiled  # noqa: E402

import_compiled(globals(), "cadent.core._cadent_c_cache_points")
