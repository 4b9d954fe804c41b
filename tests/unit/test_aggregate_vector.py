"""The captured carbon-aggregator run (vector ``aggregator_line_output``) replayed through cadent:
rewrite [pre] → aggregate → rewrite [post] for raw points, aggregates straight out."""

import importlib.util
import re

import pytest

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.core.aggregate.aggregator import Aggregator
from cadent.core.aggregate.pipeline import AggregatorPipeline
from cadent.core.encode.plaintext import encode_lines
from tests.vectors import load_vector

RULES = """\
agg.<grp>.total (5) = sum agg.<grp>.*.hits
agg.all.avg (5) = avg agg.*.*.hits
agg.<grp>.p90 (5) = p90 agg.<grp>.*.hits
"""
REWRITE = """\
[pre]
^rw\\.(\\w+)\\.old = rw.\\1.new
[post]
\\.total$ = .sum_total
"""


def vector():
    return load_vector("carbon_protocol_samples.json")["aggregator_line_output"]


def vector_inputs():
    """The input lines listed in the vector's setup text, as the line receiver parses them."""
    setup = vector()["setup"]
    t = int(re.search(r"timestamp T = (\d+)", setup).group(1))
    listed = setup.split("Input (", 1)[1].split(": ", 1)[1]
    batch = []
    for item in listed.split("; "):
        name, value, ts = item.split()
        ts = t + int(ts[2:]) if ts.startswith("T+") else t
        batch.append((name, (float(ts), float(value))))
    return t, batch


def rewrite_stages(tmp_path):
    """[pre]/[post] callables from cadent's rewrite-rules reader (carbon's rule class until it exists)."""
    if importlib.util.find_spec("cadent.compat.rewrite_rules") is not None:
        from cadent.compat.rewrite_rules import read_rewrite_rules

        path = tmp_path / "rewrite-rules.conf"
        path.write_text(REWRITE)
        pipeline = AggregatorPipeline.from_rewrite_rules(None, read_rewrite_rules(path))
        return pipeline.pre, pipeline.post
    from carbon.rewrite import RewriteRule

    def stage(rules):
        def apply(batch):
            out = []
            for name, point in batch:
                for rule in rules:
                    name = rule.apply(name)
                out.append((name, point))
            return out
        return apply

    return stage([RewriteRule(r"^rw\.(\w+)\.old", r"rw.\1.new")]), stage([RewriteRule(r"\.total$", ".sum_total")])


def test_vector_setup_matches_the_rules_used_here():
    setup = vector()["setup"]
    for line in RULES.splitlines():
        assert f"'{line}'" in setup
    assert "'^rw\\.(\\w+)\\.old = rw.\\1.new'" in setup and "'\\.total$ = .sum_total'" in setup
    assert "FORWARD_ALL=True" in setup


def test_replay_gives_the_captured_output_byte_for_byte(tmp_path):
    t, batch = vector_inputs()
    pre, post = rewrite_stages(tmp_path)
    pipeline = AggregatorPipeline(Aggregator(parse_aggregation_rules(RULES)), pre, post)
    arrival = t + 0.2  # received a moment after T, as in the capture
    forwarded, due = pipeline.run(batch, arrival)
    assert due == []
    assert pipeline.tick(arrival + 4.9) == []
    aggregates = pipeline.tick(arrival + 5.0)
    assert pipeline.tick(arrival + 10.0) == []  # nothing new: nothing re-emitted
    expected = vector()["output_text"].encode()
    assert encode_lines(forwarded) + encode_lines(aggregates) == expected


def test_aggregates_skip_post_rewrite(tmp_path):
    t, batch = vector_inputs()
    pre, post = rewrite_stages(tmp_path)
    pipeline = AggregatorPipeline(Aggregator(parse_aggregation_rules(RULES)), pre, post)
    forwarded = pipeline.received(batch, t)
    aggregates = pipeline.flush_all()
    assert "agg.g1.sum_total" in {n for n, _ in forwarded}
    assert "agg.g1.total" in {n for n, _ in aggregates}
    assert not any(n.endswith("sum_total") for n, _ in aggregates)


def test_pre_rewrite_runs_before_matching():
    seen = []

    def pre(batch):
        seen.append(list(batch))
        return [("agg.g9.h.hits" if n == "renamed" else n, p) for n, p in batch]

    pipeline = AggregatorPipeline(Aggregator(parse_aggregation_rules(RULES)), pre, None)
    forwarded = pipeline.received([("renamed", (100.0, 1.0))], 1000.0)
    assert forwarded == [("agg.g9.h.hits", (100.0, 1.0))]
    assert {n for n, _ in pipeline.tick(1005.0)} == {"agg.g9.total", "agg.all.avg", "agg.g9.p90"}


@pytest.mark.parametrize("tick_every", [0.1, 0.5, 1.0])
def test_daemon_style_periodic_tick_gives_same_datapoints(tmp_path, tick_every):
    t, batch = vector_inputs()
    pre, post = rewrite_stages(tmp_path)
    pipeline = AggregatorPipeline(Aggregator(parse_aggregation_rules(RULES)), pre, post)
    arrival = t + 0.37
    pipeline.received(batch, arrival)
    emitted = []
    now = arrival
    for _ in range(int(20 / tick_every)):
        now += tick_every
        emitted += pipeline.tick(now)
    expected_lines = vector()["output_text"].split("\r\n")[7:-1]
    assert encode_lines(emitted).decode().split("\r\n")[:-1] == expected_lines
