"""Differential test: carbon 1.1.10's own aggregator (rules, processor, buffers) against cadent's.

carbon's buffers schedule themselves with Twisted ``LoopingCall`` and read ``time.time()``;
both are pointed at one ``twisted.internet.task.Clock`` so no reactor runs. Points arrive and
the clock advances on a 0.25 s grid, which keeps every timer due time on that grid: carbon's
callbacks then see exactly the wall time cadent's ``tick`` is given.
"""

import random
from types import SimpleNamespace

import pytest
from twisted.internet import task

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.core.aggregate.aggregator import Aggregator

STEP = 0.25
START = 1_700_000_000.0


class CarbonOracle:
    """carbon's AggregationProcessor + BufferManager on a fake clock; emissions collected."""

    def __init__(self, monkeypatch, rules_text, *, forward_all, max_intervals, write_back):
        import carbon.aggregator.buffers as buffers
        import carbon.aggregator.processor as processor
        import carbon.aggregator.rules as rules
        from carbon import state
        from carbon.conf import settings

        self.clock = task.Clock()
        self.clock.advance(START)
        self.emitted = []

        def looping_call(func):
            call = task.LoopingCall(func)
            call.clock = self.clock
            return call

        monkeypatch.setattr(buffers, "LoopingCall", looping_call)
        monkeypatch.setattr(buffers, "time", SimpleNamespace(time=self.clock.seconds))
        monkeypatch.setattr(
            state, "events",
            SimpleNamespace(metricGenerated=lambda m, dp: self.emitted.append((m, dp))), raising=False,
        )
        monkeypatch.setattr(state, "instrumentation", SimpleNamespace(increment=lambda *a, **k: None), raising=False)
        monkeypatch.setattr(processor, "increment", lambda *a, **k: None)
        for key, value in (("FORWARD_ALL", forward_all), ("MAX_AGGREGATION_INTERVALS", max_intervals),
                           ("WRITE_BACK_FREQUENCY", write_back), ("LOG_AGGREGATOR_MISSES", False)):
            monkeypatch.setitem(settings, key, value)
        buffers.BufferManager.clear()
        self.buffer_manager = buffers.BufferManager
        parser = rules.RuleManager
        monkeypatch.setattr(parser, "rules", [
            parser.parse_definition(line) for line in rules_text.splitlines() if line.strip()
        ])
        self.processor = processor.AggregationProcessor()

    def add(self, batch):
        out = []
        for metric, datapoint in batch:
            out.extend(self.processor.process(metric, datapoint))
        return out

    def advance(self, amount):
        before = len(self.emitted)
        self.clock.advance(amount)
        return self.emitted[before:]

    def close(self):
        self.buffer_manager.clear()


RULES = """\
agg.<grp>.total (5) = sum agg.<grp>.*.hits
agg.all.avg (10) = avg agg.*.*.hits
agg.<grp>.p90 (5) = p90 agg.<grp>.*.hits
agg.<grp>.p50 (3) = p50 agg.<grp>.*.hits
agg.<grp>.max (7) = max agg.<grp>.*.hits
lat.<svc>.min (4) = min lat.<<svc>>.ms
lat.<svc>.count (4) = count lat.<<svc>>.ms
lat.all.p99 (6) = p99 lat.*.ms
lat.all.p999 (6) = p999 lat.<<x>>.ms
lat.all.p75 (2) = p75 lat.*.*.ms
lat.all.p80 (2) = p80 lat.*.ms
agg.g1.total (9) = sum agg.g1.*.other
self.metric (5) = sum self.metric
"""

NAMES = [f"agg.g{g}.h{h}.hits" for g in range(3) for h in range(3)] + [
    "agg.g1.h0.other", "lat.api.ms", "lat.db.ms", "lat.api.v2.ms", "self.metric", "plain.metric",
    "agg.g1.total",
]


def random_batches(seed, steps):
    rng = random.Random(seed)
    schedule = []
    for step in range(steps):
        now = START + step * STEP
        batch = []
        if rng.random() < 0.35:
            for _ in range(rng.randint(1, 12)):
                name = rng.choice(NAMES)
                # mostly current timestamps, some late, some far in the past, some float
                lag = rng.choice([0, 0, 0, 1, 3, 8, 20, 45, 400])
                ts = int(now) - lag
                if rng.random() < 0.2:
                    ts += rng.choice([0.5, 0.25, 0.75])
                value = rng.choice([float(rng.randint(-20, 100)), round(rng.uniform(0, 10), 3)])
                batch.append((name, (ts, value)))
        schedule.append(batch)
    return schedule


def by_output(batch):
    grouped = {}
    for name, point in batch:
        grouped.setdefault(name, []).append(point)
    return grouped


@pytest.mark.parametrize(
    "seed, forward_all, max_intervals, write_back",
    [(1, True, 5, None), (2, True, 2, None), (3, False, 5, 2), (4, True, 1, 1), (5, True, 3, 3.5)],
)
def test_same_aggregates_as_carbon(monkeypatch, seed, forward_all, max_intervals, write_back):
    oracle = CarbonOracle(monkeypatch, RULES, forward_all=forward_all, max_intervals=max_intervals,
                          write_back=write_back)
    mine = Aggregator(parse_aggregation_rules(RULES), forward_all=forward_all,
                      max_aggregation_intervals=max_intervals, write_back_frequency=write_back)
    try:
        total = 0
        schedule = random_batches(seed, 400)  # 100 s of traffic
        schedule += [[]] * 200                # then 50 s of silence: everything drains and expires
        for step, batch in enumerate(schedule):
            now = START + step * STEP
            assert mine.add_batch(batch, now) == oracle.add(batch)
            expected = oracle.advance(STEP)
            got = mine.tick(now + STEP)
            # Same datapoints per tick, in the same order for each output. Outputs due at the
            # very same instant may come out in another order (Twisted orders such ties by
            # scheduling history, its real reactor's heap not at all).
            assert by_output(got) == by_output(expected), f"step {step}"
            assert [type(v) for _, (_, v) in sorted(got, key=repr)] == \
                   [type(v) for _, (_, v) in sorted(expected, key=repr)]
            assert mine.allocated_buffers == len(oracle.buffer_manager)
            assert mine.buffered_datapoints == sum(b.size for b in oracle.buffer_manager.buffers.values())
            total += len(got)
        assert total > 100
        assert mine.allocated_buffers == 0
    finally:
        oracle.close()
