"""Live ring changes: after add/purge, placement equals a ring built fresh with the new
DESTINATIONS (carbon's own routers); a purged destination's queue and spool are re-routed."""

from __future__ import annotations

import random

import gevent
import pytest

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.core.flow import FlowControl
from cadent.core.net.health import HealthChecker
from cadent.core.net.output import RoutedOutput
from cadent.core.route.destination import Destination, parse_destinations
from cadent.core.route.routers import build_router
from cadent.core.spool import SpoolConfig
from cadent.core.stats import Stats
from tests.unit.test_ring_differential import (AGG_RULES, METHODS, carbon_router,
                                               fast_ring_has_ties, make_destinations, make_name)
from tests.unit.test_spool import Sink, free_port, wait_for

SEED = 20261202


def _expected(theirs, method, name):
    expected = [Destination(*d) for d in theirs.getDestinations(name)]
    return set(expected) if "aggregated" in method else list(dict.fromkeys(expected))


def _got(ours, method, name):
    got = list(ours.destinations_for(name))
    return set(got) if "aggregated" in method else got


@pytest.mark.parametrize("method", METHODS)
def test_add_and_purge_place_like_a_fresh_carbon_ring(method):
    rng = random.Random(f"{SEED}-{method}")
    rules = parse_aggregation_rules("\n".join(AGG_RULES))
    rounds = checked = 0
    while rounds < 8:
        dest_strings = make_destinations(rng)
        if len(dest_strings) < 3:
            continue
        hash_type = rng.choice([None, "carbon_ch", "fnv1a_ch", "mmh3_ch"])
        if "fast" in method and fast_ring_has_ties(parse_destinations(dest_strings),
                                                   hash_type or "mmh3_ch"):
            continue
        rounds += 1
        rf, diverse = rng.randint(1, 2), rng.random() < 0.5
        *first, added = dest_strings
        ours = build_router(method, parse_destinations(first), replication_factor=rf,
                            diverse_replicas=diverse, hash_type=hash_type,
                            aggregation_rules=rules)
        names = [make_name(rng) for _ in range(400)]
        for name in names:          # fill the placement cache: a change must clear it
            ours.destinations_for(name)
        ours.add_destination(parse_destinations([added])[0])
        theirs = carbon_router(method, dest_strings, rf, diverse, hash_type, AGG_RULES)
        for name in names:
            assert _got(ours, method, name) == _expected(theirs, method, name), name
        purged = rng.choice(dest_strings)
        ours.remove_destination(parse_destinations([purged])[0])
        left = [d for d in dest_strings if d != purged]
        theirs = carbon_router(method, left, rf, diverse, hash_type, AGG_RULES)
        assert list(ours.destinations) == parse_destinations(left)
        for name in names:
            assert _got(ours, method, name) == _expected(theirs, method, name), name
        checked += 2 * len(names)
    assert checked >= 6000


def test_rules_router_has_no_ring_to_change():
    a = Destination("127.0.0.1", 1, "a")
    rule = type("Rule", (), dict(pattern=None, destinations=[str(a)], continue_matching=False,
                                 is_default=True))()
    router = build_router("rules", [a], relay_rules=[rule])
    output = RoutedOutput(router, flow=FlowControl(), stats=Stats())
    with pytest.raises(ValueError, match="no ring"):
        output.add_destination(Destination("127.0.0.1", 2, "b"))


def _points(n, prefix="m"):
    return [(f"{prefix}.{i}", (1700000000.0 + i, float(i))) for i in range(n)]


def test_purge_reroutes_queue_and_spool_of_a_dead_destination(tmp_path):
    live = Sink().start()
    dead = Destination("127.0.0.1", free_port(), "dead")
    alive = Destination("127.0.0.1", live.port, "live")
    spool = SpoolConfig(directory=str(tmp_path), max_bytes=1 << 30, after_s=0.2)
    stats = Stats()
    output = RoutedOutput(build_router("consistent-hashing", [alive, dead]),
                          flow=FlowControl(), stats=stats, spool=spool, batch_points=100)
    output.start()
    try:
        batch = _points(3000)
        to_dead = sum(1 for name, _ in batch if output.router.destinations_for(name)[0] == dead)
        assert 0 < to_dead < len(batch)
        output.send(batch)
        sender = output.senders[dead]
        wait_for(lambda: sender.queue.diverted and sender.spool.points == to_dead, 20)
        output.send(_points(200, prefix="late"))  # some straight into the spool
        held = sender.spool.points + len(sender.queue)
        assert output.remove_destination(dead) == held
        assert dead not in output.senders and list(output.router.destinations) == [alive]
        wait_for(lambda: len(live.points) >= 3200, 30)
        assert sorted(live.points) == sorted(batch + _points(200, prefix="late"))
        assert not any(name.startswith(f"destinations.{dead.metric_key}.")
                       for name in stats.gauges)
    finally:
        output.stop(5)
        live.stop()


def test_replace_router_keeps_live_changes():
    a, b, c = (Destination("127.0.0.1", port, inst) for port, inst in
               ((1, "a"), (2, "b"), (3, "c")))
    output = RoutedOutput(build_router("consistent-hashing", [a, b]), flow=FlowControl(),
                          stats=Stats())
    output.add_destination(c)
    output.take_out(a)
    output.replace_router(build_router("consistent-hashing", [a, b]))   # SIGHUP
    assert list(output.router.destinations) == [b, c]
    output.put_back(a)
    assert set(output.router.destinations) == {a, b, c}
    output.stop(0)


def test_health_check_moves_a_destination_after_the_streaks():
    a, b = Destination("h1", 1, "a"), Destination("h2", 2, "b")
    output = RoutedOutput(build_router("consistent-hashing", [a, b]), flow=FlowControl(),
                          stats=Stats())
    now = [0.0]
    checker = HealthChecker(output, fail_s=3, ok_s=2, clock=lambda: now[0])
    for t, accepted in ((0, False), (1, False), (2, True), (3, False), (5.9, False)):
        now[0] = t
        checker.check(a, accepted)
        assert a in output.router.destinations
    now[0] = 6.0
    checker.check(a, False)
    assert list(output.router.destinations) == [b] and checker.out == {a}
    checker.check(b, False)                   # never the last one
    now[0] = 9.0
    checker.check(b, False)
    assert list(output.router.destinations) == [b]
    for t, accepted in ((10, True), (11, False), (12, True), (13.9, True)):
        now[0] = t
        checker.check(a, accepted)
        assert a not in output.router.destinations
    now[0] = 14.0
    checker.check(a, True)
    assert set(output.router.destinations) == {a, b}
    assert output.stats.totals["healthCheckRemoved"] == 1
    assert output.stats.totals["healthCheckRestored"] == 1
    assert output.stats.totals[f"destinations.{a.metric_key}.healthCheckRestored"] == 1
    output.stop(0)
    gevent.sleep(0)
