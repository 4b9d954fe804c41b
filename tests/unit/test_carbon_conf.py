"""carbon.conf reading: dialect, typing, overlay, paths, and agreement with carbon itself."""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

import pytest

from cadent.compat import settings as registry
from cadent.compat.carbon_conf import CarbonSettings, read_carbon_conf
from cadent.compat.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CADENT_CONF = REPO / "conf" / "carbon.conf"
DEBIAN_CONF = "/etc/carbon/carbon.conf"


def _carbon_example() -> str:
    import carbon

    site = Path(carbon.__file__).resolve().parents[1]
    candidates = glob.glob(str(site.parents[2] / "conf" / "carbon.conf.example"))
    candidates += glob.glob(str(site / "**" / "carbon.conf.example"), recursive=True)
    if not candidates:
        pytest.skip("carbon.conf.example not shipped with the installed carbon")
    return candidates[0]


@pytest.fixture(autouse=True)
def _root(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHITE_ROOT", str(tmp_path / "root"))
    monkeypatch.delenv("GRAPHITE_STORAGE_DIR", raising=False)
    monkeypatch.delenv("GRAPHITE_CONF_DIR", raising=False)


def write(tmp_path: Path, text: str, name: str = "carbon.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_every_carbon_default_is_declared():
    import carbon.conf

    missing = set(carbon.conf.defaults) - registry.known_names()
    assert not missing


def test_defaults_only(tmp_path):
    s = read_carbon_conf(None, "relay")
    root = tmp_path / "root"
    assert s.MAX_QUEUE_SIZE == 10000
    assert s.WORKERS == 1 and s.MAX_QUEUE_STALL_SECONDS == 30.0
    assert s.SHUTDOWN_DRAIN_SECONDS == 30.0
    assert s.DESTINATIONS == ()
    assert s.CONF_DIR == str(root / "conf")
    assert s.STORAGE_DIR == str(root / "storage")
    assert s.LOCAL_DATA_DIR == str(root / "storage" / "whisper")
    assert s.program == "cadent-relay" and s.instance == "a" and s.path is None
    assert s.pidfile == str(root / "storage" / "cadent-relay-a.pid")
    log_dir = root / "storage" / "log" / "cadent-relay" / "cadent-relay-a"
    assert s.log_dir == s.LOG_DIR == str(log_dir)
    assert s.relay_rules == str(root / "conf" / "relay-rules.conf")
    assert s.whitelist == str(root / "conf" / "whitelist.conf")


def test_env_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHITE_STORAGE_DIR", str(tmp_path / "st"))
    monkeypatch.setenv("GRAPHITE_CONF_DIR", str(tmp_path / "cf"))
    s = read_carbon_conf(None, "cache", instance="b")
    assert s.CONF_DIR == str(tmp_path / "cf")
    assert s.LOCAL_DATA_DIR == str(tmp_path / "st" / "whisper")
    assert s.pidfile == str(tmp_path / "st" / "cadent-cache-b.pid")
    # With a file, CONF_DIR is the file's directory.
    path = write(tmp_path, "[cache]\n")
    assert read_carbon_conf(path, "cache").CONF_DIR == str(tmp_path)


def test_inline_hash_and_semicolon_stay_in_values(tmp_path):
    path = write(tmp_path, "# comment\n; other comment\n[relay]\n"
                           "CARBON_METRIC_PREFIX = carbon # prod ; x\n"
                           "   # indented comment\n"
                           "DESTINATIONS = a:1 # one, b:2\n")
    s = read_carbon_conf(path, "relay")
    assert s.CARBON_METRIC_PREFIX == "carbon # prod ; x"
    assert s.DESTINATIONS == ("a:1 # one", "b:2")


def test_keys_case_insensitive_and_colon_delimiter(tmp_path):
    path = write(tmp_path, "[relay]\nmax_queue_size = 5\nReplication_Factor: 2\n")
    s = read_carbon_conf(path, "relay")
    assert s.MAX_QUEUE_SIZE == 5 and s.REPLICATION_FACTOR == 2


def test_duplicate_key_any_case_is_an_error(tmp_path):
    path = write(tmp_path, "[relay]\nMAX_QUEUE_SIZE = 1\n\nmax_queue_size = 2\n")
    with pytest.raises(ConfigError) as err:
        read_carbon_conf(path, "relay")
    assert err.value.filename == path and err.value.line == 4


def test_duplicate_section_is_an_error(tmp_path):
    path = write(tmp_path, "[cache]\nA_B = 1\n[relay]\n[cache]\n")
    with pytest.raises(ConfigError) as err:
        read_carbon_conf(path, "relay")
    assert err.value.line == 4


def test_instance_overlay(tmp_path):
    path = write(tmp_path, "[cache]\nLINE_RECEIVER_PORT = 2003\nCACHE_QUERY_PORT = 7002\n"
                           "[cache:a]\nCACHE_QUERY_PORT = 7102\n"
                           "[cache:b]\nLINE_RECEIVER_PORT = 2103\n")
    a = read_carbon_conf(path, "cache")
    assert (a.LINE_RECEIVER_PORT, a.CACHE_QUERY_PORT) == (2003, 7102)
    b = read_carbon_conf(path, "cache", instance="b")
    assert (b.LINE_RECEIVER_PORT, b.CACHE_QUERY_PORT) == (2103, 7002)
    assert b.pidfile.endswith("cadent-cache-b.pid")


def test_empty_instance_has_no_suffix(tmp_path):
    s = read_carbon_conf(None, "cache", instance="")
    root = tmp_path / "root" / "storage"
    assert s.pidfile == str(root / "cadent-cache.pid")
    assert s.LOG_DIR == str(root / "log" / "cadent-cache")


def test_default_section_applies_under_read_section(tmp_path):
    path = write(tmp_path, "[DEFAULT]\nCARBON_METRIC_INTERVAL = 10\n[relay]\n"
                           "[cache]\nCARBON_METRIC_INTERVAL = 30\n")
    assert read_carbon_conf(path, "relay").CARBON_METRIC_INTERVAL == 10
    assert read_carbon_conf(path, "cache").CARBON_METRIC_INTERVAL == 30
    assert read_carbon_conf(path, "aggregator").CARBON_METRIC_INTERVAL == 60


def test_typing(tmp_path):
    path = write(tmp_path, "[cache]\nENABLE_UDP_LISTENER = yes\nUSE_FLOW_CONTROL = OFF\n"
                           "MAX_CACHE_SIZE = 2000000\nMAX_CREATES_PER_MINUTE = inf\n"
                           "QUEUE_LOW_WATERMARK_PCT = .5\nMAX_QUEUE_SIZE = 1e4\n"
                           "BIND_PATTERNS = a ,b,, c\nUSER = 1000\n"
                           "METRIC_CLIENT_IDLE_TIMEOUT =\nROUTER_HASH_TYPE = fnv1a_ch\n"
                           "DESTINATIONS = h:2004,\n")
    s = read_carbon_conf(path, "cache")
    assert s.ENABLE_UDP_LISTENER is True and s.USE_FLOW_CONTROL is False
    assert s.MAX_CACHE_SIZE == 2000000 and s.CACHE_SIZE_LOW_WATERMARK == 1900000.0
    assert s.MAX_CREATES_PER_MINUTE == float("inf")
    assert s.QUEUE_LOW_WATERMARK_PCT == 0.5
    assert s.MAX_QUEUE_SIZE == 10000 and isinstance(s.MAX_QUEUE_SIZE, int)
    assert s.BIND_PATTERNS == ("a", "b", "", "c")
    assert s.USER == "1000"
    assert s.METRIC_CLIENT_IDLE_TIMEOUT is None
    assert s.ROUTER_HASH_TYPE == "fnv1a_ch"
    assert s.DESTINATIONS == ("h:2004", "")


def test_continuation_lines(tmp_path):
    path = write(tmp_path, "[relay]\nDESTINATIONS = a:2004,\n   b:2004,\n\n   c:2004\n"
                           "MAX_QUEUE_SIZE = 7\n")
    s = read_carbon_conf(path, "relay")
    assert s.DESTINATIONS == ("a:2004", "b:2004", "c:2004")
    assert s.MAX_QUEUE_SIZE == 7


@pytest.mark.parametrize("line, reason", [
    ("USE_FLOW_CONTROL = maybe", "boolean"),
    ("MAX_QUEUE_SIZE = lots", "number"),
    ("LINE_RECEIVER_PORT = 20.5", "integer"),
    ("MAX_QUEUE_SIZE = nan", "integer"),
])
def test_bad_value_names_file_line_section(tmp_path, line, reason):
    path = write(tmp_path, f"[relay]\nRELAY_METHOD = rules\n\n{line}\n")
    with pytest.raises(ConfigError) as err:
        read_carbon_conf(path, "relay")
    assert err.value.filename == path and err.value.line == 4
    assert "[relay]" in err.value.reason and reason in err.value.reason
    assert str(err.value).startswith(f"{path}:4: ")


def test_bad_value_in_unread_section_is_ignored(tmp_path):
    path = write(tmp_path, "[cache]\nMAX_QUEUE_SIZE = lots\n[relay]\n")
    assert read_carbon_conf(path, "relay").MAX_QUEUE_SIZE == 10000


def test_percent(tmp_path):
    path = write(tmp_path, "[relay]\nCARBON_METRIC_PREFIX = a%%b\n")
    assert read_carbon_conf(path, "relay").CARBON_METRIC_PREFIX == "a%b"
    path = write(tmp_path, "[relay]\nCARBON_METRIC_PREFIX = a%b\n")
    with pytest.raises(ConfigError) as err:
        read_carbon_conf(path, "relay")
    assert err.value.line == 2


def test_unknown_key_warns_with_closest(tmp_path, caplog):
    path = write(tmp_path, "[relay]\n\nMAX_QUEUE_SIZES = 12\nTOTALLY_NEW = abc\n")
    with caplog.at_level(logging.WARNING, logger="cadent.compat.carbon_conf"):
        s = read_carbon_conf(path, "relay")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{path}:3:" in m and "MAX_QUEUE_SIZES" in m and "did you mean MAX_QUEUE_SIZE" in m
               for m in messages)
    assert any(f"{path}:4:" in m and "TOTALLY_NEW" in m for m in messages)
    assert s.MAX_QUEUE_SIZES == 12 and s.TOTALLY_NEW == "abc"


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError):
        read_carbon_conf(str(tmp_path / "nope.conf"), "relay")
    with pytest.raises(ConfigError) as err:
        read_carbon_conf(write(tmp_path, "MAX_QUEUE_SIZE = 1\n[relay]\n"), "relay")
    assert err.value.line == 1
    with pytest.raises(ConfigError) as err:
        read_carbon_conf(write(tmp_path, "[relay]\nthis is not a setting\n"), "relay")
    assert err.value.line == 2


def test_graphite_root_defaults_to_carbons_opt_graphite(tmp_path, monkeypatch):
    import sys

    monkeypatch.delenv("GRAPHITE_ROOT")
    s = read_carbon_conf(write(tmp_path, "[cache]\n"), "cache")
    assert s.graphite_root == "/opt/graphite"
    assert s.STORAGE_DIR == "/opt/graphite/storage"
    assert s.LOCAL_DATA_DIR == "/opt/graphite/storage/whisper"
    assert s.log_dir == "/opt/graphite/storage/log/cadent-cache/cadent-cache-a"
    assert not s.LOCAL_DATA_DIR.startswith(sys.prefix)
    assert read_carbon_conf(None, "relay").CONF_DIR == "/opt/graphite/conf"
    monkeypatch.setenv("GRAPHITE_STORAGE_DIR", str(tmp_path / "st"))
    assert read_carbon_conf(None, "cache").PID_DIR == str(tmp_path / "st")


def test_misspelt_own_section_is_an_error(tmp_path):
    path = write(tmp_path, "# cache\n[cahce]\nMAX_CACHE_SIZE = 5\n")
    with pytest.raises(ConfigError) as err:
        read_carbon_conf(path, "cache")
    assert err.value.line == 2
    assert "unknown section [cahce]; did you mean [cache]?" in str(err.value)
    # Another role reading the same file is only warned (the section is not its own).
    assert read_carbon_conf(path, "relay").MAX_QUEUE_SIZE == 10000


def test_misspelt_section_warns_with_closest(tmp_path, caplog):
    path = write(tmp_path, "[cache]\n[cahce:b]\nA = 1\n[DEFAULT]\n[aggregator-cache]\n[zzz]\n")
    with caplog.at_level(logging.WARNING, logger="cadent.compat.carbon_conf"):
        read_carbon_conf(path, "cache")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert messages == [f"{path}:2: unknown section [cahce:b] (did you mean [cache:b]?); "
                        "its settings are ignored",
                        f"{path}:6: unknown section [zzz]; its settings are ignored"]


def test_config_error_without_a_line_names_file_and_key(tmp_path):
    from cadent.compat.cache_settings import cache_config
    from cadent.compat.relay_settings import load_relay_settings

    assert str(ConfigError("f.conf", 0, "bad", key="K")) == "f.conf: K: bad"
    assert str(ConfigError("f.conf", 3, "bad", key="K")) == "f.conf:3: K: bad"
    assert str(ConfigError("f.conf", 0, "cannot read")) == "f.conf: cannot read"

    path = write(tmp_path, "[relay]\nRELAY_METHOD = consistent-hashing\n")
    with pytest.raises(ConfigError) as err:
        load_relay_settings(path)
    assert str(err.value) == f"{path}: DESTINATIONS: empty: the relay has nowhere to send"
    with pytest.raises(ConfigError) as err:
        read_carbon_conf(path, "relay", overrides={"MAX_QUEUE_SIZE": "x"})
    assert str(err.value).startswith("<overrides>: MAX_QUEUE_SIZE: expected a number")
    with pytest.raises(ConfigError) as err:
        read_carbon_conf(str(tmp_path / "missing.conf"), "relay")
    assert ":0:" not in str(err.value)

    path = write(tmp_path, "[cache]\n\nCACHE_WRITE_STRATEGY = fastest\n")
    with pytest.raises(ConfigError) as err:
        cache_config(read_carbon_conf(path, "cache"))
    assert str(err.value).startswith(f"{path}:3: CACHE_WRITE_STRATEGY: must be one of")


def test_unknown_role():
    with pytest.raises(ValueError):
        read_carbon_conf(None, "nonsense")


def test_storage_dir_in_file_moves_derived_dirs_but_not_from_instance(tmp_path):
    path = write(tmp_path, "[cache]\nSTORAGE_DIR = ~/st/\n[cache:b]\nSTORAGE_DIR = /elsewhere\n")
    a = read_carbon_conf(path, "cache")
    home = os.path.expanduser("~")
    assert a.STORAGE_DIR == f"{home}/st"
    assert a.LOCAL_DATA_DIR == f"{home}/st/whisper" and a.PID_DIR == f"{home}/st"
    b = read_carbon_conf(path, "cache", instance="b")
    assert b.STORAGE_DIR == "/elsewhere"
    assert b.LOCAL_DATA_DIR == f"{home}/st/whisper"  # carbon derives after [cache] only


def test_log_dir_and_pid_dir_from_file(tmp_path):
    path = write(tmp_path, "[relay]\nLOG_DIR = /var/log/x/\nPID_DIR = /run/x\n")
    s = read_carbon_conf(path, "relay", instance="r1")
    assert s.log_dir == "/var/log/x/cadent-relay-r1"
    assert s.pidfile == "/run/x/cadent-relay-r1.pid"


def test_overrides(tmp_path):
    path = write(tmp_path, "[relay]\nMAX_QUEUE_SIZE = 5\n")
    s = read_carbon_conf(path, "relay", overrides={
        "MAX_QUEUE_SIZE": "50", "workers": 4, "STORAGE_DIR": str(tmp_path / "s"),
        "pidfile": str(tmp_path / "p.pid"), "logdir": str(tmp_path / "logs"),
        "relay-rules": str(tmp_path / "rr.conf")})
    assert s.MAX_QUEUE_SIZE == 50 and s.WORKERS == 4
    assert s.LOCAL_DATA_DIR == str(tmp_path / "s" / "whisper")
    assert s.pidfile == str(tmp_path / "p.pid") and s.log_dir == str(tmp_path / "logs")
    assert s.relay_rules == str(tmp_path / "rr.conf")
    with pytest.raises(ConfigError):
        read_carbon_conf(path, "relay", overrides={"MAX_QUEUE_SIZ": 1})
    with pytest.raises(ConfigError):
        read_carbon_conf(path, "relay", overrides={"MAX_QUEUE_SIZE": "x"})


def test_settings_are_read_only():
    s = read_carbon_conf(None, "relay")
    assert isinstance(s, CarbonSettings)
    with pytest.raises(AttributeError):
        s.MAX_QUEUE_SIZE = 1
    with pytest.raises(TypeError):
        s["MAX_QUEUE_SIZE"] = 1  # type: ignore[index]
    assert s.get("MAX_QUEUE_SIZE") == 10000 and s.get("NOPE") is None
    assert s["RELAY_METHOD"] == "rules"
    with pytest.raises(AttributeError):
        s.NOPE


@pytest.mark.parametrize("role", ["cache", "relay", "aggregator"])
def test_shipped_conf_loads_without_warnings(role, caplog):
    with caplog.at_level(logging.WARNING):
        s = read_carbon_conf(str(CADENT_CONF), role)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert s.CONF_DIR == str(CADENT_CONF.parent)
    expected = {"cache": (2003, 2004), "relay": (2013, 2014), "aggregator": (2023, 2024)}[role]
    assert (s.LINE_RECEIVER_PORT, s.PICKLE_RECEIVER_PORT) == expected
    if role == "relay":
        assert s.RELAY_METHOD == "consistent-hashing"
        assert s.DESTINATIONS == ("127.0.0.1:2004",) and s.DESTINATION_PROTOCOL == "pickle"
    if role == "cache":
        assert s.CACHE_QUERY_PORT == 7002


def _configs() -> list[str]:
    paths = [str(CADENT_CONF)]
    if os.path.exists(DEBIAN_CONF):
        paths.append(DEBIAN_CONF)
    return paths


def _normal(value):
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, str):
        value = value.replace("carbon-", "cadent-")
        if value.startswith("/"):
            return os.path.normpath(value)
    return value


@pytest.mark.parametrize("role", ["cache", "relay", "aggregator"])
@pytest.mark.parametrize("which", ["example", "debian", "cadent"])
def test_agrees_with_carbon(role, which, tmp_path):
    """Every value carbon 1.1.x computes is what cadent computes (names aside)."""
    import carbon.conf

    path = {"example": _carbon_example, "debian": lambda: DEBIAN_CONF,
            "cadent": lambda: str(CADENT_CONF)}[which]()
    if not os.path.exists(path):
        pytest.skip(f"{path} not present")
    root = str(tmp_path / "root")
    theirs = carbon.conf.read_config(
        f"carbon-{role}", {"config": path, "instance": "a", "pidfile": None, "logdir": None},
        ROOT_DIR=root)
    ours = read_carbon_conf(path, role)
    for key, value in theirs.items():
        if key in ("ROOT_DIR", "instance"):
            continue
        if key == "pidfile":
            assert ours.pidfile == _normal(value)
        elif key == "CONF_DIR":
            assert ours.CONF_DIR == os.path.normpath(os.path.abspath(value))
        elif key == "MAX_QUEUE_SIZE" and value == 1000:
            assert ours.MAX_QUEUE_SIZE == 10000  # cadent's default; the section leaves it unset
        else:
            assert ours[key] == _normal(value), key
