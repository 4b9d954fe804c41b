"""bench/loadgen.py sends exactly what it says; bench/relay_bench.py measures real relays."""

import importlib.util
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.peers import FakeCarbonSink

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module             # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["line", "pickle"])
def test_loadgen_sends_exact_count_over_all_names(protocol):
    loadgen = _load("loadgen")
    with FakeCarbonSink(protocol) as sink:
        result = loadgen.run_load(sink.host, sink.port, names=1234, points=5003,
                                  connections=3, protocol=protocol, ts=1700000000)
        assert result.sent == 5003 and result.errors == 0
        assert sink.wait_for_count(5003, timeout=10) == 5003
        points = sink.points()
        assert sink.count() == 5003
    per_name = Counter(name for name, _, _ in points)
    assert len(per_name) == 1234
    assert set(per_name.values()) <= {4, 5}           # names cycled evenly
    assert {float(ts) for _, ts, _ in points} == {1700000000.0}


@pytest.mark.timeout(60)
def test_loadgen_fixed_rate_paces_sending():
    loadgen = _load("loadgen")
    with FakeCarbonSink("line", record=False) as sink:
        result = loadgen.run_load(sink.host, sink.port, names=500, points=8000,
                                  connections=2, rate=20000)
        assert sink.wait_for_count(8000, timeout=10) == 8000
    assert 0.3 <= result.duration_s < 2.0


@pytest.mark.peers
@pytest.mark.timeout(90)
@pytest.mark.parametrize("target", ["carbon-relay", "carbon-c-relay"])
def test_relay_bench_measures_a_peer(target):
    if target == "carbon-c-relay" and not shutil.which("carbon-c-relay"):
        pytest.skip("carbon-c-relay is not installed")
    bench = _load("relay_bench")
    args = bench.build_parser().parse_args(["--stall", "5", "--timeout", "40"])
    row = bench.run_one(target, names=1000, points=20000, args=args)
    assert row["sent"] == 20000
    assert row["received"] == 20000 and row["lost"] == 0
    assert row["rate"] > 0 and row["cpu_s"] > 0 and row["peak_rss_mb"] > 0
    assert min(row["split"]) > 0                      # both destinations used
    assert row["alive"]
