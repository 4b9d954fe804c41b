"""Router behaviour beyond the carbon vectors: rules, batches, cache, ring changes."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.core.ring.consistent import ConsistentHashRing, FastHashRing
from cadent.core.route.destination import Destination, parse_destinations
from cadent.core.route.routers import (
    RELAY_METHODS,
    ConsistentHashingRouter,
    RulesRouter,
    build_router,
    route_batch,
)


@dataclass
class Rule:
    pattern: re.Pattern[str] | None
    destinations: list[str]
    continue_matching: bool = False
    is_default: bool = False


A, B, C = parse_destinations(["10.0.0.1:2004:a", "10.0.0.2:2004:b", "10.0.0.3:2004"])


def _rules():
    return [
        Rule(None, ["10.0.0.3:2004"], is_default=True),  # evaluated last wherever it is listed
        Rule(re.compile("^CPU\\.", re.I), ["10.0.0.1:2004:a", "10.0.0.9:2004"], continue_matching=True),
        Rule(re.compile("cpu\\.user", re.I), ["10.0.0.2:2004:b", "10.0.0.1:2004:a"]),
        Rule(re.compile("^mem", re.I), ["10.0.0.2:2104:b"]),  # port differs: never used
    ]


def test_rules_router():
    router = RulesRouter([A, B, C], _rules())
    assert router.destinations_for("cpu.user") == (A, B)  # continue, then stop; deduplicated
    assert router.destinations_for("cpu.system") == (A, C)  # continue falls through to default
    assert router.destinations_for("x.cpu.user") == (B, A)
    assert router.destinations_for("mem.free") == ()
    assert router.destinations_for("other") == (C,)


def test_rules_router_allows_shared_nodes():
    dests = parse_destinations(["h:2004", "h:2104"])
    router = build_router("rules", dests, relay_rules=[Rule(None, ["h:2104"], is_default=True)])
    assert router.destinations_for("x") == (dests[1],)
    with pytest.raises(ValueError, match="already configured"):
        build_router("consistent-hashing", dests)


def test_route_batch_splits_and_copies():
    router = RulesRouter([A, B, C], _rules())
    batch = [("cpu.user", (1.0, 1.0)), ("other", (1.0, 2.0)), ("cpu.user", (2.0, 3.0)), ("mem.x", (1.0, 4.0))]
    before = list(batch)
    for _ in range(2):
        out = route_batch(router, batch)
        assert out == {
            A: [("cpu.user", (1.0, 1.0)), ("cpu.user", (2.0, 3.0))],
            B: [("cpu.user", (1.0, 1.0)), ("cpu.user", (2.0, 3.0))],
            C: [("other", (1.0, 2.0))],
        }
        assert out[A] is not out[B]
        out[A].append("mutated")
        assert "mutated" not in out[B]
    assert batch == before
    assert route_batch(router, []) == {}
    assert router.unroutable == 2  # "mem.x" twice: its rule names an undeclared destination


def test_unroutable_counts_points_whatever_the_fanout():
    router = RulesRouter([A, B, C], _rules())
    route_batch(router, [("mem.a", (1.0, 1.0))] * 3)                       # only unroutable
    route_batch(router, [("cpu.user", (1.0, 1.0)), ("mem.b", (1.0, 1.0))])  # 2-way fan-out + 1
    assert router.unroutable == 4


def test_route_batch_single_placement_copies_input():
    router = build_router("consistent-hashing", [A])
    batch = [("a", (1.0, 1.0)), ("b", (1.0, 2.0))]
    out = router.route_batch(batch)
    assert out == {A: batch} and out[A] is not batch


def test_route_batch_matches_destinations_for_with_replicas():
    dests = parse_destinations([f"10.0.0.{i}:2004:{x}" for i in range(1, 4) for x in "ab"])
    router = build_router("consistent-hashing", dests, replication_factor=3, diverse_replicas=False)
    names = [f"m.{i}" for i in range(500)]
    batch = [(n, (float(i), 1.0)) for i, n in enumerate(names)]
    out = router.route_batch(batch)
    for dest, points in out.items():
        assert [p for p in batch if dest in router.destinations_for(p[0])] == points
    assert sum(map(len, out.values())) == 3 * len(batch)


def test_cache_is_bounded():
    router = build_router("consistent-hashing", [A, B], cache_names=100)
    for start in range(0, 1000, 50):
        router.route_batch([(f"n{i}", (1.0, 1.0)) for i in range(start, start + 50)])
        assert len(router._cache) <= 150
    assert router.destinations_for("n5") == build_router("consistent-hashing", [A, B]).destinations_for("n5")


def test_tag_relay_normalized_rewrites_forwarded_names():
    router = build_router("consistent-hashing", [A, B, C], tag_relay_normalized=True)
    plain = build_router("consistent-hashing", [A, B, C])
    name = "disk.used;mount=/var;host=db1"
    assert router.normalize(name) == "disk.used;host=db1;mount=/var"
    assert router.destinations_for(name) == plain.destinations_for("disk.used;host=db1;mount=/var")
    out = router.route_batch([(name, (1.0, 1.0)), ("a;b", (1.0, 2.0)), ("~x", (1.0, 3.0))])
    forwarded = sorted(p for pts in out.values() for p in pts)
    assert forwarded == [
        ("a;b", (1.0, 2.0)),
        ("disk.used;host=db1;mount=/var", (1.0, 1.0)),
        ("x", (1.0, 3.0)),
    ]
    assert plain.normalize(name) == name


@pytest.mark.parametrize(
    "ring_cls,hash_type",
    [
        (ConsistentHashRing, "carbon_ch"),
        (ConsistentHashRing, "fnv1a_ch"),
        (ConsistentHashRing, "mmh3_ch"),
        (FastHashRing, "mmh3_ch"),
    ],
)
def test_ring_changes_equal_fresh_build(ring_cls, hash_type):
    # fnv1a_ch hashes only the instance, so these nodes collide heavily: the hard case
    nodes = [("h1", None), ("h2", None), ("h3", "a"), ("h4", None)]
    ring = ring_cls(nodes, hash_type=hash_type)
    ring.remove_node(("h1", None))
    fresh = ring_cls(nodes[1:], hash_type=hash_type)
    names = [f"m{i}" for i in range(300)]
    assert [list(ring.get_nodes(n)) for n in names] == [list(fresh.get_nodes(n)) for n in names]
    ring.add_node(("h1", None))
    fresh = ring_cls(nodes[1:] + nodes[:1], hash_type=hash_type)
    assert [list(ring.get_nodes(n)) for n in names] == [list(fresh.get_nodes(n)) for n in names]
    if ring_cls is ConsistentHashRing:
        assert ring.entries() == fresh.entries()
    with pytest.raises(ValueError):
        ring.add_node(("h1", None))
    with pytest.raises(ValueError):
        ring.remove_node(("nope", None))


def test_router_add_remove_destination_clears_cache():
    router = ConsistentHashingRouter([A, B])
    names = [f"m{i}" for i in range(200)]
    router.route_batch([(n, (1.0, 1.0)) for n in names])
    router.add_destination(C)
    fresh = ConsistentHashingRouter([A, B, C])
    assert [router.destinations_for(n) for n in names] == [fresh.destinations_for(n) for n in names]
    router.remove_destination(A)
    fresh = ConsistentHashingRouter([B, C])
    assert [router.destinations_for(n) for n in names] == [fresh.destinations_for(n) for n in names]
    assert router.destinations == (B, C)
    with pytest.raises(ValueError):
        router.add_destination(Destination("10.0.0.2", 9999, "b"))


def test_empty_ring():
    assert list(ConsistentHashRing([]).get_nodes("x")) == []
    with pytest.raises(LookupError):
        ConsistentHashRing([]).get_node("x")
    assert build_router("consistent-hashing", []).route_batch([("x", (1.0, 1.0))]) == {}


def test_single_node_ring_yields_twice():
    ring = ConsistentHashRing([("h", None)])
    assert list(ring.get_nodes("x")) == [("h", None), ("h", None)]
    assert list(ConsistentHashRing([("h", None)], replicas=1).get_nodes("x")) == [("h", None)]


def test_build_router_defaults_and_errors():
    assert build_router("fast-hashing", [A]).hash_type == "mmh3_ch"
    assert build_router("fast-aggregated-hashing", [A]).hash_type == "mmh3_ch"
    assert build_router("consistent-hashing", [A]).hash_type == "carbon_ch"
    assert build_router("aggregated-consistent-hashing", [A], hash_type="fnv1a_ch").hash_type == "fnv1a_ch"
    assert {build_router(m, [A], relay_rules=[]).method for m in RELAY_METHODS} == set(RELAY_METHODS)
    with pytest.raises(ValueError, match="RELAY_METHOD"):
        build_router("jump_fnv1a_ch", [A])
    with pytest.raises(ValueError, match="unknown hash type"):
        build_router("consistent-hashing", [A], hash_type="md5")
    with pytest.raises(ValueError, match="relay rules"):
        build_router("rules", [A])
    with pytest.raises(ValueError, match="REPLICATION_FACTOR"):
        build_router("consistent-hashing", [A], replication_factor=0)


def test_aggregated_router_routes_inputs_with_their_aggregate():
    dests = parse_destinations([f"10.0.0.{i}:2004" for i in range(1, 6)])
    rules = parse_aggregation_rules("servers.all.<m> (60) = avg servers.*.<m>\nx.<a> (60) = sum x.<a>.*")
    agg = build_router("aggregated-consistent-hashing", dests, aggregation_rules=rules)
    plain = build_router("consistent-hashing", dests)
    for host in range(50):
        assert agg.destinations_for(f"servers.h{host}.cpu") == plain.destinations_for("servers.all.cpu")
    assert agg.destinations_for("unmatched.name") == plain.destinations_for("unmatched.name")
    agg.set_rules([])
    assert agg.destinations_for("servers.h1.cpu") == plain.destinations_for("servers.h1.cpu")
