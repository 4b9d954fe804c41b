"""cadent-relay with RELAY_METHOD = aggregated-consistent-hashing, as a real process.

Every input of one aggregate must reach the destination that owns the aggregate's output
name, so that a carbon-aggregator behind the relay sees all of them; placements are checked
against the vectors recorded from carbon and against carbon's own ring.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.relay_helpers import BASE_TS, pickle_frame, relay_conf, send_raw, wait_total
from tests.peers import REPO_ROOT, CadentProcess, FakeCarbonSink
from tests.vectors import load_vector

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

CASE_ID = "R1_one_host_3_instances/aggregated-consistent-hashing/carbon_ch/rf1/diverse"


def vector_case():
    for case in load_vector("carbon_hashing.json")["cases"]:
        if case["id"] == CASE_ID:
            return case
    raise LookupError(CASE_ID)


def carbon_owner(name: str) -> str:
    """The instance carbon's own ring assigns ``name`` to (the oracle)."""
    from carbon.hashing import ConsistentHashRing

    ring = ConsistentHashRing([("127.0.0.1", inst) for inst in ("a", "b", "c")])
    return ring.get_node(name)[1]


def test_inputs_of_one_aggregate_reach_the_same_destination(tmp_path):
    case = vector_case()
    instances = [d[2] for d in case["parsed_destinations"]]
    rules = "\n".join(case["aggregation_rules"]) + "\n"
    # vector names that survive the wire (no whitespace, not empty), each with its expected sink
    expected = {name: {instances[i] for i in where} for name, where in case["results"].items()
                if name.strip() and not any(c.isspace() for c in name)}
    groups = {
        "prod.applications.shop.all.requests": [f"prod.applications.shop.web{i}.requests" for i in range(40)],
        "servers.all.load": [f"servers.host{i}.load" for i in range(40)],
        "stats.timers.api.total": [f"stats.timers.api.node{i}" for i in range(40)],
    }
    sinks = [FakeCarbonSink("pickle") for _ in instances]
    try:
        for sink in sinks:
            sink.start()
        by_instance = dict(zip(instances, sinks))
        conf = relay_conf(tmp_path, [s.destination(i) for i, s in by_instance.items()],
                          RELAY_METHOD="aggregated-consistent-hashing",
                          files={"aggregation-rules.conf": rules})
        points = [(name, (BASE_TS, 1.0)) for name in expected]
        points += [(name, (BASE_TS, 2.0)) for names in groups.values() for name in names]
        with CadentProcess(conf) as relay:
            send_raw(relay.pickle_port, b"".join(pickle_frame(points[i:i + 100])
                                                 for i in range(0, len(points), 100)))
            assert wait_total(sinks, len(points), timeout=20) == len(points)
        got: dict[str, set[str]] = {}
        for inst, sink in by_instance.items():
            for name, _, _ in sink.points():
                got.setdefault(name, set()).add(inst)
    finally:
        for sink in sinks:
            sink.stop()
    for name, where in expected.items():
        assert got[name] == where, name
    for output, inputs in groups.items():
        owner = carbon_owner(output)
        assert {inst for name in inputs for inst in got[name]} == {owner}, output
    # the groups are not all owned by one instance, so the check above can tell them apart
    assert len({carbon_owner(output) for output in groups}) > 1


def test_missing_aggregation_rules_means_no_rules(tmp_path):
    conf = relay_conf(tmp_path, ["127.0.0.1:2004:a", "127.0.0.1:2104:b"],
                      RELAY_METHOD="aggregated-consistent-hashing")
    (conf.parent / "aggregation-rules.conf").unlink()
    done = subprocess.run([sys.executable, "-m", "cadent.daemons.relay", "--config", str(conf), "--test"],
                          input="servers.host1.cpu.user\n", capture_output=True, text=True, timeout=60,
                          cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    name, dest = done.stdout.strip().split("\t")
    assert dest.endswith(":" + carbon_owner(name))
