"""Every vector in carbon_hashing.json and carbonlink_hash_ring.json, reproduced exactly."""

from __future__ import annotations

import pytest

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.core.ring.consistent import ConsistentHashRing
from cadent.core.ring.hashing import HASH_TYPES, position
from cadent.core.route.destination import parse_destinations
from cadent.core.route.routers import build_router
from cadent.core.tags import normalize_name
from tests.vectors import load_vector

HASHING = load_vector("carbon_hashing.json")
CARBONLINK = load_vector("carbonlink_hash_ring.json")
CASES = HASHING["cases"]


def _ring_destinations() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for case in CASES:
        assert found.setdefault(case["ring"], case["destinations"]) == case["destinations"]
    return found


RING_DESTINATIONS = _ring_destinations()


def test_vector_covers_what_we_claim():
    assert set(HASHING["hash_types"]) == set(HASH_TYPES)
    assert set(RING_DESTINATIONS) == set(HASHING["rings"])
    assert {c["relay_method"] for c in CASES} >= {
        "consistent-hashing",
        "fast-hashing",
        "aggregated-consistent-hashing",
    }


@pytest.mark.parametrize("hash_type", HASHING["hash_types"])
def test_positions(hash_type):
    expected = HASHING["positions"][hash_type]
    assert len(expected) == len(HASHING["metrics"])
    got = {metric: position(metric, hash_type) for metric in expected}
    assert got == expected


def test_tag_normalization():
    table = HASHING["tag_normalization"]
    assert len(table) == len(HASHING["metrics"])
    for metric, path in table.items():
        assert normalize_name(metric) == (metric if path is None else path), metric


@pytest.mark.parametrize(
    "ring_id,hash_type",
    [(ring_id, ht) for ring_id, by_type in HASHING["rings"].items() for ht in by_type],
)
def test_ring_dump(ring_id, hash_type):
    dests = parse_destinations(RING_DESTINATIONS[ring_id])
    ring = ConsistentHashRing([d.node for d in dests], hash_type=hash_type)
    nodes = [d.node for d in dests]
    dump = [[pos, nodes.index(node)] for pos, node in ring.entries()]
    assert dump == HASHING["rings"][ring_id][hash_type]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case):
    dests = parse_destinations(case["destinations"])
    assert [[d.host, d.port, d.instance] for d in dests] == case["parsed_destinations"]
    rules = parse_aggregation_rules("\n".join(case.get("aggregation_rules", [])))
    router = build_router(
        case["relay_method"],
        dests,
        replication_factor=case["replication_factor"],
        diverse_replicas=case["diverse_replicas"],
        hash_type=case["hash_type"],
        tag_relay_normalized=case["tag_relay_normalized"],
        aggregation_rules=rules,
    )
    assert set(case["results"]) == set(HASHING["metrics"])
    for metric, expected in case["results"].items():
        got = [dests.index(d) for d in router.destinations_for(metric)]
        if case["ordered"]:
            # carbon may yield the lone destination twice; the relay sends it once
            assert got == list(dict.fromkeys(expected)), metric
        else:
            assert sorted(got) == sorted(set(expected)) and len(got) == len(set(got)), metric

    # the batch path agrees with the per-name path, twice (cold then cached)
    batch = [(m, (1.0, float(i))) for i, m in enumerate(case["results"])]
    for _ in range(2):
        routed = router.route_batch(batch)
        for metric, expected in case["results"].items():
            forwarded = router.normalize(metric)
            holders = {
                dests.index(d) for d, pts in routed.items() for name, _ in pts if name == forwarded
            }
            assert holders == set(expected), metric


@pytest.mark.parametrize("case", CARBONLINK["cases"], ids=lambda c: f"{c['hash_type']}-{len(c['nodes'])}")
def test_carbonlink_ring(case):
    nodes = [tuple(n) for n in case["nodes"]]
    ring = ConsistentHashRing(nodes, hash_type=case["hash_type"])
    assert len(ring) == case["ring_len"]
    assert [[p, list(n)] for p, n in ring.entries()[:8]] == case["ring_first_8"]
    for metric, pos in case["metric_position"].items():
        assert position(metric, case["hash_type"]) == pos
    for metric, node in case["metric_to_node"].items():
        assert list(ring.get_node(metric)) == node, metric
        assert list(next(ring.get_nodes(metric))) == node, metric
