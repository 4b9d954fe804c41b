"""statsd's disk spool settings: config.js keys, the [statsd] section's carbon.conf names, the
defaults, validation, and the SpoolConfig the carbon output is built with."""

from __future__ import annotations

import json
import logging
import os

import pytest

from cadent.compat.errors import ConfigError
from cadent.compat.statsd_config import load_config_js, load_ini_section
from cadent.core.flow import FlowControl
from cadent.core.stats import Stats
from cadent.statsd.carbon import CarbonOutput, carbon_spool
from cadent.statsd.config import statsd_settings


def _config_js(tmp_path, **keys) -> str:
    lines = ["{", '  graphiteHost: "127.0.0.1",']
    lines += [f"  {key}: {json.dumps(value)}," for key, value in keys.items()]
    lines.append("  flushInterval: 1000\n}")
    path = tmp_path / "config.js"
    path.write_text("\n".join(lines))
    return str(path)


def _ini(tmp_path, body: str) -> str:
    path = tmp_path / "carbon.conf"
    path.write_text("[cache]\nLINE_RECEIVER_PORT = 2003\n\n"
                    "[statsd]\ngraphiteHost = 127.0.0.1\n" + body)
    return str(path)


def test_off_by_default_with_carbon_conf_defaults_for_the_rest():
    settings = statsd_settings({"graphiteHost": "127.0.0.1"})
    assert settings.spool_dir is None
    assert settings.spool_max_bytes == 1 << 30
    assert settings.spool_after_s == 2.0
    assert carbon_spool(settings) is None


def test_config_js_keys_build_the_spool(tmp_path):
    spool_dir = tmp_path / "spool"
    settings = load_config_js(_config_js(tmp_path, spoolDir=str(spool_dir), spoolMaxBytes=5000,
                                         spoolAfterSeconds=0.5))
    config = carbon_spool(settings)
    assert config is not None
    assert (config.directory, config.max_bytes, config.after_s) == (str(spool_dir), 5000, 0.5)


def test_relative_and_home_directories_are_resolved_at_load(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert statsd_settings({"spoolDir": "spool/./a"}).spool_dir == str(tmp_path / "spool" / "a")
    assert statsd_settings({"spoolDir": "~/s"}).spool_dir == str(tmp_path / "home" / "s")
    os.chdir("/")   # a daemon changing directory later does not move the spool
    assert statsd_settings({"spoolDir": str(tmp_path / "x")}).spool_dir == str(tmp_path / "x")


@pytest.mark.parametrize("keys", [{"spoolDir": ""}, {"spoolDir": None},
                                  {"spoolDir": "/var/lib/x", "spoolMaxBytes": 0}])
def test_an_empty_directory_or_zero_bytes_turns_it_off(keys):
    assert carbon_spool(statsd_settings(keys)) is None


def test_several_workers_share_one_spool_because_only_worker_0_sends(tmp_path):
    settings = statsd_settings({"spoolDir": str(tmp_path), "workers": 3})
    assert carbon_spool(settings).directory == str(tmp_path)


@pytest.mark.parametrize("key, value, reason", [
    ("spoolMaxBytes", -1, "bytes >= 0"),
    ("spoolMaxBytes", 1.5, "integer"),
    ("spoolMaxBytes", "lots", "number"),
    ("spoolAfterSeconds", -0.5, ">= 0 seconds"),
    ("spoolAfterSeconds", "Infinity", "finite"),
    ("spoolAfterSeconds", True, "number"),
    ("spoolDir", 5, "directory"),
    ("spoolDir", ["/a"], "directory"),
])
def test_bad_values_fail_with_the_key_and_its_line(tmp_path, key, value, reason):
    path = _config_js(tmp_path, **{key: value})
    with pytest.raises(ConfigError) as info:
        load_config_js(path)
    assert info.value.line == 3
    assert key in str(info.value) and reason in str(info.value)


def test_statsd_section_takes_carbon_conf_names(tmp_path):
    spool_dir = tmp_path / "spool"
    path = _ini(tmp_path, f"SPOOL_DIR = {spool_dir}\nSPOOL_MAX_BYTES = 123456\n"
                          "SPOOL_AFTER_S = 3.5\nSHUTDOWN_DRAIN_SECONDS = 4\n")
    settings = load_ini_section(path)
    assert (settings.spool_dir, settings.spool_max_bytes, settings.spool_after_s) == \
        (str(spool_dir), 123456, 3.5)
    assert settings.drain_seconds == 4.0


def test_statsd_section_takes_statsd_names_too(tmp_path):
    path = _ini(tmp_path, f"spoolDir = {tmp_path}\nspoolMaxBytes = 0\n")
    settings = load_ini_section(path)
    assert settings.spool_dir == str(tmp_path)
    assert carbon_spool(settings) is None


def test_statsd_section_bad_value_names_the_key_and_line(tmp_path):
    path = _ini(tmp_path, "SPOOL_AFTER_S = 1\nSPOOL_MAX_BYTES = -5\n")
    with pytest.raises(ConfigError) as info:
        load_ini_section(path)
    assert "spoolMaxBytes" in str(info.value)
    assert info.value.line == 7


def test_the_carbon_output_spools_per_carbon_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cadent.statsd.carbon")
    settings = statsd_settings({"graphiteDestinations": ["127.0.0.1:2003:a", "127.0.0.1:2103:b"],
                                "spoolDir": str(tmp_path), "spoolAfterSeconds": 1})
    output = CarbonOutput(settings, flow=FlowControl(), stats=Stats()).output
    assert output is not None
    spools = sorted(sender.spool.directory for sender in output.senders.values())
    assert spools == [str(tmp_path / "127_0_0_1:2003:a"), str(tmp_path / "127_0_0_1:2103:b")]
    assert all(sender.spool_after_s == 1.0 for sender in output.senders.values())
    assert f"disk spool for unreachable carbons in {tmp_path}" in caplog.text


@pytest.mark.parametrize("keys, why", [({}, "no spoolDir configured"),
                                       ({"spoolDir": "/nonexistent", "spoolMaxBytes": 0},
                                        "spoolMaxBytes is 0")])
def test_the_carbon_output_warns_when_the_spool_is_off(caplog, keys, why):
    caplog.set_level(logging.INFO, logger="cadent.statsd.carbon")
    output = CarbonOutput(statsd_settings({"graphiteHost": "127.0.0.1", **keys}),
                          flow=FlowControl(), stats=Stats()).output
    assert all(sender.spool is None for sender in output.senders.values())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"disk spool off ({why})" in message for message in warnings)
