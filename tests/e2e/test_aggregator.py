"""cadent-aggregator as a real process, side by side with the real carbon-aggregator."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from cadent.compat.aggregation_rules import parse_aggregation_rules
from cadent.core.stats import carbon_host_name
from tests.peers import (LOCALHOST, REPO_ROOT, CadentProcess, CarbonDaemon, FakeCarbonSink, free_port,
                         wait_until, write_carbon_conf)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BASE_TS = 1700000000  # a multiple of 2 (not of 60)

RULES = """\
# carbon-style aggregation rules
agg.<env>.requests.total (2) = sum raw.<env>.*.requests
agg.<env>.latency.avg (2) = avg raw.<env>.*.latency
agg.<env>.latency.p90 (2) = p90 raw.<env>.*.latency
agg.all.<rest>.max (2) = max raw.*.<<rest>>
raw.count.<env> (2) = count raw.<env>.*.requests
"""

REWRITE = """\
[pre]
^old\\. = raw.
[post]
^raw\\. = fwd.
"""


def aggregator_conf(tmp_path, destinations, rules=RULES, rewrite=REWRITE, **overrides):
    section = {
        "LINE_RECEIVER_INTERFACE": LOCALHOST,
        "LINE_RECEIVER_PORT": free_port(),
        "PICKLE_RECEIVER_INTERFACE": LOCALHOST,
        "PICKLE_RECEIVER_PORT": free_port(),
        "DESTINATIONS": list(destinations),
        "DESTINATION_PROTOCOL": "pickle",
        "MAX_QUEUE_SIZE": 100000,
        "CARBON_METRIC_INTERVAL": 0,
        "LOG_AGGREGATOR_MISSES": False,
    }
    section.update(overrides)
    files = {"aggregation-rules.conf": rules}
    if rewrite is not None:
        files["rewrite-rules.conf"] = rewrite
    return write_carbon_conf(tmp_path, {"aggregator": section}, files=files)


def timed_input() -> list[tuple[str, int, float]]:
    """Points over three 2-second intervals, some arriving under a [pre]-rewritten name."""
    points = []
    for step in range(6):
        ts = BASE_TS + step
        for env in ("prod", "dev"):
            for host in range(4):
                prefix = "old" if host == 3 else "raw"
                value = round(step * 1.5 + host * 0.25 + (env == "dev") * 10, 2)
                points.append((f"{prefix}.{env}.h{host}.requests", ts, value))
                points.append((f"{prefix}.{env}.h{host}.latency", ts, value / 7))
    points.append(("other.metric", BASE_TS, 42.0))
    return points


def send_lines(port, points):
    payload = "".join(f"{name} {value!r} {ts}\n" for name, ts, value in points).encode()
    with socket.create_connection((LOCALHOST, port), timeout=10) as sock:
        sock.sendall(payload)


def expected_aggregate_keys(rules_text, points):
    """(output, interval) pairs the rules produce from ``points`` (after the [pre] rewrite)."""
    rules = parse_aggregation_rules(rules_text)
    keys = set()
    for name, ts, _ in points:
        name = "raw." + name[4:] if name.startswith("old.") else name
        for rule in rules:
            output = rule.output_for(name)
            if output is not None:
                keys.add((output, ts - ts % rule.frequency))
    return keys


def collect(sink, expected_count, timeout=20.0):
    """Wait for ``expected_count`` points, then a little longer for any extra ones."""
    wait_until(lambda: sink.count() >= expected_count, timeout=timeout)
    time.sleep(1.0)
    return sorted((n, float(ts), float(v)) for n, ts, v in sink.points())


def run_aggregator(kind, tmp_path, points):
    with FakeCarbonSink("pickle") as sink:
        conf = aggregator_conf(tmp_path / kind, [sink.destination()])
        daemon = CarbonDaemon(conf, "aggregator") if kind == "carbon" else CadentProcess(conf, "aggregator")
        with daemon:
            send_lines(daemon.line_port, points)
            n_raw = sum(1 for name, _, _ in points)
            n_agg = len(expected_aggregate_keys(RULES, points))
            got = collect(sink, n_raw + n_agg)
        return got


def test_same_output_as_carbon_aggregator(tmp_path):
    points = timed_input()
    carbon = run_aggregator("carbon", tmp_path, points)
    cadent = run_aggregator("cadent", tmp_path, points)
    aggregates = {(n, ts) for n, ts, _ in cadent if n.startswith(("agg.", "raw.count."))}
    assert aggregates == expected_aggregate_keys(RULES, points)
    # [post] renames forwarded raw points, never aggregates; [pre] applied before matching
    forwarded = [p for p in cadent if p[0].startswith("fwd.")]
    assert len(forwarded) == len(points) - 1
    assert not any(n.startswith(("old.", "raw.prod.", "raw.dev.")) for n, _, _ in cadent)
    assert ("raw.count.prod", float(BASE_TS), 8) in cadent
    assert ("other.metric", float(BASE_TS), 42.0) in cadent
    assert cadent == carbon


def test_sigterm_emits_open_buckets(tmp_path):
    rules = "slow.<x>.sum (60) = sum in.<x>.*\n"
    points = [(f"in.a.{i}", BASE_TS + 5, float(i)) for i in range(10)]
    with FakeCarbonSink("pickle") as sink:
        conf = aggregator_conf(tmp_path, [sink.destination()], rules=rules, rewrite=None,
                               FORWARD_ALL=False)
        with CadentProcess(conf, "aggregator") as daemon:
            send_lines(daemon.line_port, points)
            time.sleep(0.5)  # received, but 60 s from the first tick
            assert sink.count() == 0
            daemon.proc.send_signal(signal.SIGTERM)
            assert daemon.proc.wait(15) == 0
        assert sink.wait_for_count(1, timeout=5) == 1
        assert sink.points() == [("slow.a.sum", BASE_TS - BASE_TS % 60, 45.0)]


def test_sighup_reloads_rules_and_keeps_them_on_error(tmp_path):
    with FakeCarbonSink("pickle") as sink:
        conf = aggregator_conf(tmp_path, [sink.destination()], rules="first.<x> (1) = sum in.<x>.*\n",
                               rewrite=None, FORWARD_ALL=False)
        rules_path = conf.parent / "aggregation-rules.conf"
        with CadentProcess(conf, "aggregator") as daemon:
            send_lines(daemon.line_port, [("in.a.1", BASE_TS, 1.0), ("in.a.2", BASE_TS, 2.0)])
            assert sink.wait_for_count(1, timeout=10) == 1
            rules_path.write_text("# reloaded\nsecond.<x> (1) = max in.<x>.*\n")
            daemon.proc.send_signal(signal.SIGHUP)
            assert wait_until(lambda: "reloaded 1 aggregation rules" in daemon.log_text(), timeout=10)
            send_lines(daemon.line_port, [("in.b.1", BASE_TS + 10, 1.0), ("in.b.2", BASE_TS + 10, 2.0)])
            assert sink.wait_for_count(2, timeout=10) == 2
            rules_path.write_text("second.<x> (1) = max in.<x>.*\nbroken (1) = median in.*\n")
            daemon.proc.send_signal(signal.SIGHUP)
            assert wait_until(lambda: f"{rules_path}:2:" in daemon.log_text(), timeout=10)
            send_lines(daemon.line_port, [("in.c.1", BASE_TS + 20, 5.0)])
            assert sink.wait_for_count(3, timeout=10) == 3
            assert daemon.alive
        assert sorted(sink.points()) == [("first.a", BASE_TS, 3.0), ("second.b", BASE_TS + 10, 2.0),
                                         ("second.c", BASE_TS + 20, 5.0)]


def cli(conf, *args, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "cadent.daemons.aggregator", "--config", str(conf), *args],
                          input=stdin, capture_output=True, text=True, timeout=60, env=env)


def test_bad_rule_fails_check_config_with_file_and_line(tmp_path):
    conf = aggregator_conf(tmp_path, ["127.0.0.1:2004"],
                           rules="# comment\nok.<x> (60) = sum in.<x>.*\nbad.<x> 60 = sum\n")
    done = cli(conf, "--check-config")
    assert done.returncode == 1
    assert f"{conf.parent / 'aggregation-rules.conf'}:3:" in done.stderr
    (conf.parent / "aggregation-rules.conf").write_text("ok.<x> (60) = sum in.<x>.*\n")
    assert cli(conf, "--check-config").returncode == 0


def test_test_mode_prints_rules_and_outputs(tmp_path):
    conf = aggregator_conf(tmp_path, ["127.0.0.1:2004:a", "127.0.0.2:2004:b"])
    done = cli(conf, "--test", stdin="old.prod.h1.requests\nother.metric\nraw.count.prod\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    first = lines[0].split("\t")
    assert first[:4] == ["old.prod.h1.requests", "pre=raw.prod.h1.requests",
                         "aggregates=agg.prod.requests.total(2,sum),agg.all.h1.requests.max(2,max),"
                         "raw.count.prod(2,count)", "forward=fwd.prod.h1.requests"]
    assert len(first) == 5 and first[4].startswith("127.0.0.")
    outputs = [line.split("\t")[1] for line in lines if line.startswith("  ->")]
    assert outputs[:3] == ["agg.prod.requests.total", "agg.all.h1.requests.max", "raw.count.prod"]
    assert "other.metric\tpre=other.metric\taggregates=-\tforward=other.metric\t" in done.stdout


def test_self_metrics_use_carbons_names(tmp_path):
    with FakeCarbonSink("pickle") as sink:
        conf = aggregator_conf(tmp_path, [sink.destination()], rules="s.<x> (1) = sum in.<x>.*\n",
                               rewrite=None, CARBON_METRIC_INTERVAL=1)
        base = f"carbon.aggregator.{carbon_host_name()}-a."
        wanted = {base + m for m in ("allocatedBuffers", "bufferedDatapoints", "aggregateDatapointsSent",
                                     "metricsReceived", f"destinations.127_0_0_1:{sink.port}:None.sent")}
        with CadentProcess(conf, "aggregator") as daemon:
            send_lines(daemon.line_port, [("in.a.1", BASE_TS, 1.0)])
            assert wait_until(lambda: wanted <= {n for n, _, _ in sink.points()}, timeout=15), \
                sorted({n for n, _, _ in sink.points()})


def test_vector_aggregator_line_output(tmp_path):
    from tests.vectors import load_vector

    case = load_vector("carbon_protocol_samples.json")["aggregator_line_output"]
    rules = ("agg.<grp>.total (5) = sum agg.<grp>.*.hits\nagg.all.avg (5) = avg agg.*.*.hits\n"
             "agg.<grp>.p90 (5) = p90 agg.<grp>.*.hits\n")
    rewrite = "[pre]\n^rw\\.(\\w+)\\.old = rw.\\1.new\n[post]\n\\.total$ = .sum_total\n"
    t = 1795299950
    points = [("agg.g1.h1.hits", t, 1), ("agg.g1.h2.hits", t, 2), ("agg.g1.h3.hits", t + 1, 6),
              ("agg.g2.h1.hits", t, 10), ("rw.x.old", t, 5), ("agg.g1.total", t, 99),
              ("plain.metric", t, 3)]
    expected = sorted((n, float(ts), float(v)) for n, v, ts in
                      (line.split() for line in case["output_text"].split("\r\n") if line))
    with FakeCarbonSink("line") as sink:
        conf = aggregator_conf(tmp_path, [sink.destination()], rules=rules, rewrite=rewrite,
                               DESTINATION_PROTOCOL="line")
        with CadentProcess(conf, "aggregator") as daemon:
            send_lines(daemon.line_port, points)
            got = collect(sink, len(expected), timeout=15)
    assert got == expected
