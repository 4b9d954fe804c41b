"""What a cached metric costs in memory: 2 000 metrics × 10 points, each point arriving as its
own float objects (as the pickle and line parsers hand them over)."""

import gc
import tracemalloc

from cadent.core.cache import MetricCache

METRICS = 2000
POINTS = 10


def test_ten_cached_points_cost_their_values_and_dict_not_a_timestamp_each():
    names = [f"bench.host{i % 10}.metric{i}" for i in range(METRICS)]
    cache = MetricCache()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(POINTS):
            stamp = str(1_700_000_000 + 60 * k)
            batch = [(name, (float(stamp), float(i))) for i, name in enumerate(names)]
            cache.store_batch(batch)
            del batch  # the parsed batch is gone once stored, as in the daemon
        cache.take_new_names()
        gc.collect()
        per_metric = (tracemalloc.get_traced_memory()[0] - before) / METRICS
    finally:
        tracemalloc.stop()
    assert cache.size == METRICS * POINTS
    # one dict of 10 slots (~290 B), 10 value floats (240 B), the name's entries in the
    # cache's maps (~100 B); a float timestamp per point would add 240 B more
    assert per_metric < 800, per_metric
