"""statsd pieces: JS numbers, packet parsing, store semantics, inspect, config readers."""

from __future__ import annotations

import logging
import math

import pytest

from cadent.compat.errors import ConfigError
from cadent.compat.statsd_config import load_config_js, load_ini_section, load_proxy_config_js, parse_js_object
from cadent.statsd.config import statsd_settings
from cadent.statsd.engine import StatsdEngine
from cadent.statsd.flush import percentile, timer_stats
from cadent.statsd.mgmt import config_reply, handle_command, inspect
from cadent.statsd.numbers import is_js_number, js_number, js_str, round_half_up
from cadent.statsd.parse import COUNTER, GAUGE, SET, TIMER, PacketParser
from cadent.statsd.store import MetricStore, js_key_order, partition_updates


@pytest.mark.parametrize(
    "value, text",
    [
        (1e21, "1e+21"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-0.0, "0"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (math.nan, "NaN"),
        (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (1.5e-10, "1.5e-10"),
        (-2.5, "-2.5"),
        (2.0**53 + 2, "9007199254740994"),
        (12, "12"),
    ],
)
def test_js_str(value, text):
    assert js_str(value) == text


@pytest.mark.parametrize(
    "text, value",
    [
        ("0x10", 16.0), ("0XfF", 255.0), ("0o17", 15.0), ("0b101", 5.0), ("1e3", 1000.0),
        (" 5 ", 5.0), ("\t3\t", 3.0), ("+2", 2.0), ("1.", 1.0), (".5", 0.5),
        ("Infinity", math.inf), ("-Infinity", -math.inf), ("  ", 0.0), ("-0", -0.0),
        ("\u00a07\u3000", 7.0),
    ],
)
def test_js_number_accepts(text, value):
    assert js_number(text) == value and is_js_number(text)


@pytest.mark.parametrize("text", ["", "inf", "nan", "NaN", "infinity", "1_000", "-0x1", "0x", ".", "1e", "٣", "1,5", "\x1c1"])
def test_js_number_rejects(text):
    assert not is_js_number(text)


def test_round_half_up_is_math_round():
    assert round_half_up(4.5) == 5 and round_half_up(-4.5) == -4 and round_half_up(0.49999999999999994) == 0
    assert round_half_up(0.9 * 5) == 5


def parse(packet: str, sanitize: bool = True):
    return PacketParser(sanitize).parse(packet)


def test_parse_types_and_rates():
    result = parse("k:1|c:2|ms:5|g:x|s\nh:5|h\nr:5|c|@0.75\n\nt:3|ms|@0.5\ng:-1|g\nw:1|MS")
    assert result.metrics == 6 and result.bad == 0
    assert result.updates == [
        (COUNTER, "k", 1.0), (TIMER, "k", 2.0, 1.0), (GAUGE, "k", 5.0, False), (SET, "k", "x"),
        (COUNTER, "h", 5.0), (COUNTER, "r", 6.666666666666666), (TIMER, "t", 3.0, 2.0),
        (GAUGE, "g", -1.0, True), (COUNTER, "w", 1.0),
    ]


@pytest.mark.parametrize(
    "line",
    ["k", "k:5", "k:abc|c", "k:1|c|0.5", "k:1|c|@-1", "k:1|c|@", "k:1|c|@x", "k:-5|ms", "k:|c",
     "k:|ms", "k:1|c|@+0.5", "k:1|c|@ 0.5", "k:1|ms|@Infinity", "k:1|g|@+1", "k:abc|s\r"],
)
def test_bad_segments_are_counted_not_raised(line):
    result = parse(line)
    assert (result.metrics, result.bad, result.updates) == (1, 1, [])


def test_rate_edge_values():
    assert parse("a:1|c|@0").updates == [(COUNTER, "a", math.inf)]
    assert parse("a:10|c|@1e-1").updates == [(COUNTER, "a", 10.0)]
    assert parse("a:-5|ms ").updates == [(TIMER, "a", -5.0, 1.0)]
    assert parse("a:|s").updates == [(SET, "a", "0")]


@pytest.mark.parametrize("digits", ["0", "007", "9" * 15, "9" * 16, "1" + "0" * 16, "12345678901234567",
                                    "7" * 400, "3" * 5000])
def test_plain_digit_values_are_what_float_makes_of_them(digits):
    assert parse(f"a:{digits}|g").updates == [(GAUGE, "a", float(digits), False)]
    assert parse(f"a:{digits}|c").updates == [(COUNTER, "a", float(digits))]


def test_tags_found_in_any_line_of_a_packet():
    packet = "a:1|c\nb#x:2|c\nc:3|c|#k:v\nd:4|c"
    assert [u[1] for u in parse(packet).updates] == ["a", "bx", "c;k=v", "d"]


def test_tags_and_sanitising():
    assert parse("tagq:1|c|#a;b;c:d,e f:g/h").updates[0][1] == "tagq;a_b;c=d;e_f=g-h"
    assert parse("x y/z:1|c|#").updates[0][1] == "x_y-z"
    assert parse("raw key/x!:1|c", sanitize=False).updates[0][1] == "raw key/x!"


def test_store_gauge_rules_and_internal_nan():
    store = MetricStore()
    store.apply([(GAUGE, "g", -10.0, True), (GAUGE, "z", 0.0, False), (GAUGE, "z", -3.0, True)])
    assert store.gauges == {"g": -10.0, "z": -3.0}
    store.apply([(GAUGE, "g", 4.0, True)])
    assert store.gauges["g"] == -6.0
    assert store.delete_matching("counters", ["statsd.*"]) == [
        "deleted: statsd.bad_lines_seen", "deleted: statsd.packets_received", "deleted: statsd.metrics_received",
    ]
    store.count_packet(1, 1, 0)
    assert math.isnan(store.counters["statsd.packets_received"])
    store.reset_after_flush()
    assert store.counters["statsd.packets_received"] == 0


def test_js_key_order_and_partition():
    d = dict.fromkeys(["zeta", "10", "2", "007", "4294967295", "4294967294", "0"])
    assert js_key_order(d) == ["0", "2", "10", "4294967294", "zeta", "007", "4294967295"]
    updates = [(COUNTER, f"k{i}", 1.0) for i in range(50)] + [(COUNTER, "k1", 2.0)]
    shards = partition_updates(updates, 4)
    assert sum(map(len, shards)) == 51
    owners = {u[1]: i for i, shard in enumerate(shards) for u in shard}
    assert len(owners) == 50  # every key lives in exactly one shard
    merged = MetricStore()
    for shard in shards:
        part = MetricStore()
        part.apply(shard)
        merged.merge(part)
    assert merged.counters["k1"] == 3.0


def test_timer_stats_top_percentile_and_histogram():
    data = timer_stats([3.0, 1.0, 2.0], 3.0, 1.0, [percentile(-100), percentile(50)], (("bin_2", 2.0), ("bin_inf", math.inf)))
    assert list(data)[:5] == ["count_top100", "mean_top100", "lower_top100", "sum_top100", "sum_squares_top100"]
    assert math.isnan(data["sum_top100"])  # statsd reads cumulativeValues[-1] (undefined)
    assert data["count_50"] == 2 and data["upper_50"] == 2.0
    assert data["histogram"] == {"bin_2": 1, "bin_inf": 2}
    assert data["median"] == 2.0 and data["std"] == math.sqrt(2 / 3)
    assert timer_stats([], 0.0, 1.0, []) == {"count_ps": 0, "count": 0}


def test_inspect_layout():
    assert inspect({}) == "{}"
    assert inspect({"m.t": [5.0, 7.0]}) == "{ 'm.t': [ 5, 7 ] }"
    assert inspect({"a": -0.0, "it's": math.nan}) == "{ a: -0, \"it's\": NaN }"
    long = {f"some.long.metric.name.{i}": float(i) for i in range(4)}
    assert inspect(long).startswith("{\n  'some.long.metric.name.0': 0,\n")
    assert inspect([float(i) for i in range(10)]) == "[\n  0, 1, 2, 3, 4,\n  5, 6, 7, 8, 9\n]"


def test_mgmt_commands():
    engine = StatsdEngine(statsd_settings({"healthStatus": "down"}), now=0)
    assert handle_command(engine, "health").text == "health: down\n"
    assert handle_command(engine, "health up\n").text == "health: up\n"
    assert handle_command(engine, "delgauges nope").text == "metric nope not found\nEND\n\n"
    assert handle_command(engine, "quit").close
    assert handle_command(engine, "").text == "ERROR\n"


def test_delete_and_flush_interval_rules():
    s = statsd_settings({"deleteIdleStats": True, "deleteGauges": False, "gaugesMaxTTL": 1.5})
    assert (s.delete_counters, s.delete_timers, s.delete_sets, s.delete_gauges) == (True, True, True, False)
    assert s.gauges_max_ttl == 1
    assert statsd_settings({"gaugesMaxTTL": 4}).gauges_max_ttl == 4
    assert [p.suffix for p in statsd_settings({"percentThreshold": [99.9, -10]}).percent_threshold] == ["99_9", "top10"]


CONFIG_JS = """/* example statsd config */
(
{
  graphitePort: 2003   // carbon
, graphiteHost: 'graphite.example.com'
, "port": 8125,
  percentThreshold: [90, 99.9,],
  histogram: [ { metric: 'foo', bins: [ 10, 0.5, 'inf' ], }, ],
  graphite: { legacyNamespace: false, globalSuffix: "h1" },
  flushInterval: 0x2710, title: 'it\\'s', debug: true, gaugesMaxTTL: -0,
  keyFlush: { interval: 10000, percent: +10.5, log: null },
}
);
"""


def test_config_js(tmp_path, caplog):
    path = tmp_path / "config.js"
    path.write_text(CONFIG_JS + "\n// trailing comment\n")
    settings = load_config_js(str(path))
    assert settings.graphite_host == "graphite.example.com" and settings.graphite_port == 2003
    assert [p.pct for p in settings.percent_threshold] == [90, 99.9]
    assert settings.histogram[0].bins == (("bin_10", 10.0), ("bin_0_5", 0.5), ("bin_inf", math.inf))
    assert settings.legacy_namespace is False and settings.global_suffix == "h1"
    assert settings.flush_interval_ms == 10000 and settings.title == "it's" and settings.debug
    assert settings.key_flush["percent"] == 10.5
    assert config_reply(settings.raw).startswith("\ngraphitePort: 2003\ngraphiteHost: graphite.example.com\n")
    path.write_text("{ flushInterval: 1000, flushIntervall: 5, graphite: { legacyNamspace: true } }")
    with caplog.at_level(logging.WARNING):
        load_config_js(str(path))
    assert "did you mean 'flushInterval'" in caplog.text and "'legacyNamespace'" in caplog.text
    caplog.clear()
    path.write_text("{\n  keyFlush: { interval: 1000, percent: 10 }\n}")
    with caplog.at_level(logging.WARNING):
        load_config_js(str(path))
    assert f"{path}:2: keyFlush is read but not acted on" in caplog.text


@pytest.mark.parametrize(
    "text, line",
    [
        ("{\n  port: 'abc'\n}", 2),
        ("{\n  flushInterval: -5\n}", 2),
        ("{\n port: 1,\n\n bad bad\n}", 4),
        ("{ a: 1 ", 1),
        ("{ a: 'open }", 1),
        ("{ a: 1 } /* open", 1),
        ("{ a: require('x') }", 1),
        ("[1, 2]", 1),
        ("{\n histogram: [{ metric: 'x' }]\n}", 2),
    ],
)
def test_config_js_errors(tmp_path, text, line):
    path = tmp_path / "config.js"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config_js(str(path))
    assert err.value.line == line and err.value.filename == str(path)


def test_parse_js_object_values():
    value, lines = parse_js_object("{a:-Infinity, 'b': \"x\\u0041\\n\", c: [], d: {}, e: undefined, 1: 0b11}")
    assert value == {"a": -math.inf, "b": "xA\n", "c": [], "d": {}, "e": None, "1": 3}
    assert lines["a"] == 1


def test_proxy_config_js(tmp_path):
    path = tmp_path / "proxyConfig.js"
    path.write_text("{ nodes: [ {host: '127.0.0.1', port: 8127, adminport: 8128}, ], checkInterval: 1000, forkCount: 0 }")
    settings = load_proxy_config_js(str(path))
    assert [n.node_id for n in settings.nodes] == ["127.0.0.1:8127"] and settings.check_interval_ms == 1000
    path.write_text("{ port: 1 }")
    with pytest.raises(ConfigError):
        load_proxy_config_js(str(path))


def test_ini_statsd_section(tmp_path):
    path = tmp_path / "cadent.conf"
    path.write_text(
        "[cache]\nLINE_RECEIVER_PORT = 2003\n\n[statsd]\nflushinterval = 2000\npercentThreshold = 90, 99\n"
        "deleteIdleStats = true\nhistogram = \"[{metric: '', bins: [1, 'inf']}]\"\n"
        "[[graphite]]\nlegacyNamespace = false\nglobalPrefix = app\n"
    )
    settings = load_ini_section(str(path))
    assert settings.flush_interval_ms == 2000 and [p.pct for p in settings.percent_threshold] == [90, 99]
    assert settings.delete_counters and settings.histogram[0].bins[-1][0] == "bin_inf"
    assert not settings.legacy_namespace and settings.global_prefix == "app"
    path.write_text("[statsd]\nflushInterval = soon\n")
    with pytest.raises(ConfigError) as err:
        load_ini_section(str(path))
    assert err.value.line == 2
