"""Differential test: cadent's rings and routers against the real carbon package.

Random rings (host/instance counts, RF, diverse, every hash type) and generated names
(ascii, unicode, tagged, OpenMetrics, odd) from a seeded RNG are routed by both.
"""

from __future__ import annotations

import random

import pytest

carbon_routers = pytest.importorskip("carbon.routers")
carbon_hashing = pytest.importorskip("carbon.hashing")
carbon_rules = pytest.importorskip("carbon.aggregator.rules")
carbon_util = pytest.importorskip("carbon.util")

from cadent.compat.aggregation_rules import parse_aggregation_rules  # noqa: E402
from cadent.core.ring.consistent import ConsistentHashRing  # noqa: E402
from cadent.core.ring.hashing import HASH_TYPES, position  # noqa: E402
from cadent.core.route.destination import Destination, parse_destinations  # noqa: E402
from cadent.core.route.routers import build_router  # noqa: E402
from cadent.core.tags import normalize_name  # noqa: E402

SEED = 20240611
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_-"
UNICODE = "éüßжא中文😀αβγ市"
AGG_RULES = [
    "<env>.applications.<app>.all.requests (60) = sum <env>.applications.<app>.*.requests",
    "servers.all.<metric> (60) = avg servers.*.<metric>",
    "stats.<rest>.total (10) = sum stats.<<rest>>.*",
    "agg.<a>.x<b>y (5) = p99 agg.<a>.x<b>y.*",
]


class Settings(dict):
    """The slice of carbon's settings object its routers read."""

    __getattr__ = dict.__getitem__


def _part(rng: random.Random) -> str:
    pool = ALPHABET + (UNICODE if rng.random() < 0.2 else "")
    return "".join(rng.choice(pool) for _ in range(rng.randint(1, 10)))


def make_name(rng: random.Random) -> str:
    kind = rng.random()
    base = ".".join(_part(rng) for _ in range(rng.randint(1, 6)))
    if kind < 0.1:
        base = rng.choice(["servers.", "stats.", "prod.applications.", "agg."]) + base
    if kind < 0.55:
        return base
    if kind < 0.8:
        tags = ";".join(f"{_part(rng)}={_part(rng)}" for _ in range(rng.randint(1, 4)))
        return f"{base};{tags}"
    if kind < 0.88:
        labels = ",".join(f'{_part(rng)}="{_part(rng)}"' for _ in range(rng.randint(1, 3)))
        return f"{base}{{{labels}}}"
    return rng.choice(["", "~", "~" + base, base + ";", base + ";=x", base + ";a=~b", base + ";a=1;a=2",
                       base + ";name=z", "a;b", base + " " + base, base + "..", base + "\t"])


def make_destinations(rng: random.Random) -> list[str]:
    hosts = [f"10.0.0.{i}" for i in range(1, rng.randint(1, 4) + 1)]
    out = []
    port = 2004
    for host in hosts:
        instances = rng.choice([[None], ["a"], ["a", "b"], ["a", "b", "c"], ["", "x:y"]])
        for inst in instances:
            out.append(f"{host}:{port}" + ("" if inst is None else f":{inst}"))
            port += 100
    rng.shuffle(out)
    return out


def carbon_router(method, dest_strings, rf, diverse, hash_type, rules):
    settings = Settings(
        REPLICATION_FACTOR=rf,
        DIVERSE_REPLICAS=diverse,
        ROUTER_HASH_TYPE=hash_type,
        **{"aggregation-rules": None},
    )
    cls = carbon_routers.DatapointRouter.plugins[method]
    router = cls(settings)
    if "aggregated" in method:
        router.agg_rules_manager = type("Rules", (), {})()
        router.agg_rules_manager.rules = [
            carbon_rules.RuleManager.parse_definition(line) for line in rules
        ]
    for dest in carbon_util.parseDestinations(dest_strings):
        router.addDestination(dest)
    return router


def fast_ring_has_ties(dests: list[Destination], hash_type: str) -> bool:
    # carbon orders equal-hash nodes by set iteration order (random per process); skip those
    keys = [position(str(d.node), hash_type) for d in dests]
    return len(set(keys)) != len(keys)


def test_hash_positions_match_carbon():
    rng = random.Random(SEED)
    names = [make_name(rng) for _ in range(3000)]
    for hash_type in HASH_TYPES:
        for name in names:
            assert position(name, hash_type) == carbon_hashing.carbonHash(name, hash_type), name


def test_tag_normalization_matches_carbon():
    rng = random.Random(SEED + 1)
    names = [make_name(rng) for _ in range(5000)]
    names += ['a{b="c\\"d"}', 'a{b="c\\\\d"}', 'a{b="1":,c="2"}', 'a{b="1",}', 'a{{b="1"}', '{b="1"}',
              'a{b=""}', 'a{b="~x"}', 'a{b!="x"}', '~{b="x"}', 'a;b=c{d="e"}', 'a{b="x;y"}']
    for name in names:
        try:
            expected = carbon_util.TaggedSeries.parse(name).path
        except Exception:
            expected = name
        assert normalize_name(name) == expected, name


@pytest.mark.parametrize("hash_type", HASH_TYPES)
def test_ring_entries_match_carbon(hash_type):
    rng = random.Random(SEED + 2)
    for _ in range(6):
        nodes = [d.node for d in parse_destinations(make_destinations(rng))]
        replicas = rng.choice([1, 2, 3, 100])
        ours = ConsistentHashRing(nodes, hash_type=hash_type, replicas=replicas)
        theirs = carbon_hashing.ConsistentHashRing(nodes, replica_count=replicas, hash_type=hash_type)
        assert ours.entries() == theirs.ring
        for _ in range(200):
            name = make_name(rng)
            assert list(ours.get_nodes(name)) == list(theirs.get_nodes(name)), name


METHODS = ["consistent-hashing", "fast-hashing", "aggregated-consistent-hashing", "fast-aggregated-hashing"]


@pytest.mark.parametrize("method", METHODS)
def test_routers_match_carbon(method):
    rng = random.Random(f"{SEED}-{method}")
    rules = parse_aggregation_rules("\n".join(AGG_RULES))
    rounds = 0
    while rounds < 18:
        dest_strings = make_destinations(rng)
        dests = parse_destinations(dest_strings)
        hash_type = rng.choice([None, *HASH_TYPES])
        rf = rng.randint(1, 3)
        diverse = rng.random() < 0.5
        if "fast" in method and fast_ring_has_ties(dests, hash_type or "mmh3_ch"):
            continue
        rounds += 1
        normalized = rng.random() < 0.3
        ours = build_router(
            method, dests, replication_factor=rf, diverse_replicas=diverse, hash_type=hash_type,
            tag_relay_normalized=normalized, aggregation_rules=rules,
        )
        theirs = carbon_router(method, dest_strings, rf, diverse, hash_type, AGG_RULES)
        names = [make_name(rng) for _ in range(250)]
        for name in names:
            key = name
            if normalized:
                try:
                    key = carbon_util.TaggedSeries.parse(name).path
                except Exception:
                    pass
            expected = [Destination(*d) for d in theirs.getDestinations(key)]
            got = list(ours.destinations_for(name))
            if "aggregated" in method:
                assert set(got) == set(expected) and len(got) == len(set(got)), name
            else:
                assert got == list(dict.fromkeys(expected)), name
            assert ours.normalize(name) == key
        routed = ours.route_batch([(n, (0.0, 1.0)) for n in names])
        assert sum(len(v) for v in routed.values()) == sum(len(ours.destinations_for(n)) for n in names)
