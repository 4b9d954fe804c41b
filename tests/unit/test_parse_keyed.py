"""statsd and regex-keyed lines: splitting, keys, counters, placement and their config keys."""

from __future__ import annotations

import random

import pytest

from cadent.compat.errors import ConfigError
from cadent.compat.relay_settings import load_relay_settings
from cadent.core.net.inputs import parse_listen
from cadent.core.net.preformatted import encode_raw_lines, raw_self_metrics
from cadent.core.parse.keyed import RegexLineParser, StatsdLineParser, compile_key_regex
from cadent.core.route.destination import parse_destinations
from cadent.statsd.proxy import routing_key, split_packet
from cadent.statsd.proxy_router import StatsdProxyRouter
from tests.peers import write_carbon_conf
from tests.vectors import load_vector

PROXY = load_vector("statsd_golden.json")["proxy"]


def _lines(batch):
    return [point[1][1] for point in batch]


def test_statsd_datagrams_split_and_land_where_the_recorded_proxy_js_sent_them():
    nodes = [f"{n['host']}:{n['port']}" for n in PROXY["config"]["nodes"]]
    router = StatsdProxyRouter(parse_destinations(nodes))
    got: dict[str, list[str]] = {node: [] for node in nodes}
    parser = StatsdLineParser()
    for datagram in PROXY["forwarding"]["sent_datagrams"]:
        batch = parser.feed_datagram(datagram.encode())
        for key, (_, line) in batch:
            (dest,) = router.destinations_for(key)
            got[f"{dest.host}:{dest.port}"].append(line.decode()[:-1])  # proxy.js sends no \n
    want = PROXY["forwarding"]["received_by_node"]
    assert {n: sorted(v) for n, v in got.items()} == {n: sorted(v) for n, v in want.items()}


def test_statsd_routes_of_the_recorded_ring_phase():
    phase = {p["label"]: p for p in PROXY["phases"]}["all_up"]
    nodes = [f"{n['host']}:{n['port']}" for n in PROXY["config"]["nodes"]]
    router = StatsdProxyRouter(parse_destinations(nodes))
    got = {}
    for key in phase["routes"]:
        (dest,) = router.destinations_for(key)
        got[key] = f"{dest.host}:{dest.port}"
    assert got == phase["routes"]


def test_statsd_datagram_lines_and_keys_match_the_proxy_model_on_random_packets():
    rng = random.Random(7)
    alphabet = [b"a", b".", b":", b"|", b"\n", b"\r", b"1", b"c", b"\xff", b" "]
    parser = StatsdLineParser()
    for _ in range(3000):
        packet = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        batch = parser.feed_datagram(packet)
        want = [line for line in split_packet(packet) if line]
        assert _lines(batch) == [line + b"\n" for line in want]
        assert [key for key, _ in batch] == [routing_key(line) for line in want]


@pytest.mark.parametrize("cls", [StatsdLineParser, RegexLineParser])
def test_stream_gives_the_same_lines_whatever_the_read_boundaries(cls):
    kwargs = {"key_regex": compile_key_regex(r"^(?P<Key>[^:\s]+)")} if cls is RegexLineParser else {}
    data = b"a.b:1|c\nc.d:2|ms|@0.1\r\n\nkey\xfe:3|g\nlast:4|c\n"
    whole = cls(**kwargs).feed(data)
    for cut in range(len(data) + 1):
        parser = cls(**kwargs)
        assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == whole
        assert parser.pending_bytes == 0
    assert encode_raw_lines(whole) == data.replace(b"\n\n", b"\n")


def test_oversize_lines_are_skipped_and_counted_the_rest_kept():
    parser = StatsdLineParser(max_line_bytes=10)
    batch = parser.feed(b"ok:1|c\n" + b"x" * 11 + b"\nok2:1|c\n" + b"y" * 40)
    assert _lines(batch) == [b"ok:1|c\n", b"ok2:1|c\n"]
    assert parser.oversize_lines == 2 and parser.pending_bytes == 0
    assert _lines(parser.feed(b"yyy\nafter:1|c\n")) == [b"after:1|c\n"]


def test_regex_keys_timestamps_and_drops():
    pattern = compile_key_regex(r"^(?P<Timestamp>\S+T\S+) (?P<Key>[\w.]+)=")
    parser = RegexLineParser(pattern, "%Y-%m-%dT%H:%M:%S")
    data = (b"2023-11-14T22:13:20 web.cpu=3 \xff raw\n"
            b"no match here\n"
            b"2023-13-14T22:13:20 web.mem=1\n"
            b"2023-11-14T22:13:21 web.mem=1")
    batch = parser.feed_datagram(data)
    assert batch == [("web.cpu", (1700000000.0, b"2023-11-14T22:13:20 web.cpu=3 \xff raw\n")),
                     ("web.mem", (1700000001.0, b"2023-11-14T22:13:21 web.mem=1\n"))]
    assert (parser.unmatched_lines, parser.bad_timestamps) == (1, 1)
    epoch = RegexLineParser(compile_key_regex(r"(?P<Key>\S+) \S+ (?P<Timestamp>\S+)"))
    assert epoch.feed(b"a 1 1700000000\nb 1 nan\nc 1 soon\n") == [("a", (1700000000.0, b"a 1 1700000000\n"))]
    assert epoch.bad_timestamps == 2


def test_regex_without_a_key_group_is_refused():
    with pytest.raises(ValueError, match="Key"):
        compile_key_regex(r"(?P<key>\S+)")
    with pytest.raises(ValueError, match="regular expression"):
        compile_key_regex(r"(?P<Key>[)")


def test_self_metrics_as_lines_for_keyed_destinations():
    batch = [("carbon.relays.h-a.metricsReceived", (1700000000, 12.0)), ("x.cpu", (1700000000, 0.5))]
    assert encode_raw_lines(raw_self_metrics(batch, "statsd")) == (
        b"carbon.relays.h-a.metricsReceived:12|g\nx.cpu:0.5|g\n")
    assert encode_raw_lines(raw_self_metrics(batch, "regex")) == (
        b"carbon.relays.h-a.metricsReceived 12 1700000000\nx.cpu 0.5 1700000000\n")


@pytest.mark.parametrize("text, url", [
    ("tcp://127.0.0.1:2003", "tcp://127.0.0.1:2003"),
    (" udp://[::1]:8125 ", "udp://[::1]:8125"),
    ("unix:///run/cadent/relay.sock?mode=0666", "unix:///run/cadent/relay.sock"),
    ("http://0.0.0.0:2080/lines", "http://0.0.0.0:2080/lines"),
    ("http://0.0.0.0:2080", "http://0.0.0.0:2080/"),
])
def test_listen_urls(text, url):
    assert parse_listen(text).url == url


@pytest.mark.parametrize("text", ["ftp://h:1", "tcp://h", "tcp://h:99999", "unix://rel.sock",
                                  "unix:///x.sock?mode=999", "tcp://h:1/path", "udp://:5"])
def test_bad_listen_urls(text):
    with pytest.raises(ValueError):
        parse_listen(text)


def _load(tmp_path, **relay):
    settings = {"RELAY_METHOD": "consistent-hashing", "DESTINATIONS": "127.0.0.1:2103"}
    settings.update(relay)
    return load_relay_settings(str(write_carbon_conf(tmp_path, {"relay": settings})), "a")


def _line_of(path, key):
    return next(i for i, line in enumerate(open(path), 1) if line.startswith(key))


@pytest.mark.parametrize("settings, key", [
    ({"LINE_FORMAT": "regex", "LINE_KEY_REGEX": "(?P<Key>[a-z"}, "LINE_KEY_REGEX"),
    ({"LINE_FORMAT": "regex", "LINE_KEY_REGEX": r"(?P<Name>\S+)"}, "LINE_KEY_REGEX"),
    ({"LINE_FORMAT": "regex", "LINE_KEY_REGEX": r"(?P<Key>\S+)",
      "LINE_TIMESTAMP_FORMAT": "%%Y"}, "LINE_TIMESTAMP_FORMAT"),  # no Timestamp group
    ({"LINE_FORMAT": "regex", "LINE_KEY_REGEX": r"(?P<Key>\S+) (?P<Timestamp>\S+)",
      "LINE_TIMESTAMP_FORMAT": "%%Y-%%Q"}, "LINE_TIMESTAMP_FORMAT"),
    ({"LINE_FORMAT": "influx"}, "LINE_FORMAT"),
    ({"LINE_FORMAT": "statsd", "REPLICATION_FACTOR": 2,
      "DESTINATIONS": "127.0.0.1:1, 127.0.0.1:2"}, "REPLICATION_FACTOR"),
    ({"LINE_FORMAT": "statsd", "ROUTER_HASH_TYPE": "fnv1a_ch"}, "ROUTER_HASH_TYPE"),
    ({"LINE_FORMAT": "statsd", "PICKLE_RECEIVER_PORT": 2004}, "PICKLE_RECEIVER_PORT"),
    ({"LINE_FORMAT": "regex", "LINE_KEY_REGEX": r"(?P<Key>\S+)",
      "KAFKA_INPUT_BROKERS": "127.0.0.1:9092"}, "KAFKA_INPUT_BROKERS"),
    ({"LISTEN": "tcp://127.0.0.1:1, gopher://x:1"}, "LISTEN"),
    ({"LISTEN": "unix:///tmp/x.sock", "WORKERS": 2}, "LISTEN"),
])
def test_config_errors_name_file_and_line(tmp_path, settings, key):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, **settings)
    path = tmp_path / "conf" / "carbon.conf"
    assert caught.value.filename == str(path)
    assert caught.value.line == _line_of(path, key), str(caught.value)
    assert f"{path}:{caught.value.line}: {key}" in str(caught.value)


def test_config_reads_listeners_and_formats(tmp_path):
    settings = _load(tmp_path, LINE_FORMAT="regex",
                     LINE_KEY_REGEX=r"^(?P<Timestamp>\S+) (?P<Key>[^,\s]+), x",
                     LINE_TIMESTAMP_FORMAT="%%Y-%%m-%%dT%%H:%%M:%%S",  # carbon.conf doubles %
                     LISTEN="tcp://127.0.0.1:5000, unix:///tmp/r.sock, http://127.0.0.1:5001/in",
                     PICKLE_RECEIVER_PORT=0)
    fmt = settings.receivers.line_format
    assert fmt.kind == "regex" and fmt.key_regex.search("t a.b, x").group("Key") == "a.b"
    assert fmt.timestamp_format == "%Y-%m-%dT%H:%M:%S"
    assert [spec.url for spec in settings.receivers.listen] == [
        "tcp://127.0.0.1:5000", "unix:///tmp/r.sock", "http://127.0.0.1:5001/in"]
    assert _load(tmp_path / "s", LINE_FORMAT="statsd").receivers.line_format.kind == "statsd"
