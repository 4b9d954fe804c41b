"""KAFKA_*, FILE_WRITER_* and WRITER_STALL_SECONDS from carbon.conf: values and errors."""

from __future__ import annotations

import pytest

from cadent.compat.carbon_conf import read_carbon_conf
from cadent.compat.errors import ConfigError
from cadent.compat.kafka_settings import (file_writer_config, kafka_input_config,
                                          kafka_writer_config, writer_stall_seconds)


def _conf(tmp_path, text: str):
    path = tmp_path / "carbon.conf"
    path.write_text("[cache]\n" + text)
    return read_carbon_conf(str(path), "cache")


def test_defaults_and_values(tmp_path):
    conf = _conf(tmp_path, "KAFKA_BROKERS = a:9092, b:9093\nKAFKA_ACKS = 1\n"
                           "KAFKA_COMPRESSION = gzip\nKAFKA_WRITE_INDEX = false\n")
    kc = kafka_writer_config(conf)
    assert kc.brokers == ("a:9092", "b:9093") and kc.acks == 1 and kc.compression == "gzip"
    assert (kc.metric_topic, kc.index_topic, kc.write_index, kc.key_by_metric) == \
        ("cadent", "cadent", False, True)
    assert kafka_input_config(conf, "cache") is None
    fc = file_writer_config(conf)
    assert fc.max_bytes == 100 * 1024 * 1024 and fc.path.endswith("points")
    assert writer_stall_seconds(conf) == 30.0


@pytest.mark.parametrize("text, line, words", [
    ("KAFKA_BROKERS = a:9092\nKAFKA_COMPRESSION = brotli\n", 3, "must be one of"),
    ("KAFKA_BROKERS = nohost\n", 2, "host:port"),
    ("\nKAFKA_BROKERS = a:1\nKAFKA_ACKS = most\n", 4, "all, 1, 0"),
    ("KAFKA_METRIC_TOPIC = x\n", 0, "KAFKA_BROKERS is empty"),
])
def test_bad_writer_values_name_the_line(tmp_path, text, line, words):
    with pytest.raises(ConfigError) as info:
        kafka_writer_config(_conf(tmp_path, text))
    assert info.value.line == line and words in str(info.value)


def test_a_codec_whose_library_is_missing_is_a_clear_error(tmp_path):
    from kafka import codec

    missing = next((name for name in ("snappy", "lz4", "zstd")
                    if not getattr(codec, f"has_{name}")()), None)
    if missing is None:
        pytest.skip("every codec library is installed")
    with pytest.raises(ConfigError, match="not installed"):
        kafka_writer_config(_conf(tmp_path, f"KAFKA_BROKERS = a:1\nKAFKA_COMPRESSION = {missing}\n"))


def test_input_settings(tmp_path):
    conf = _conf(tmp_path, "KAFKA_INPUT_BROKERS = k:9092\nKAFKA_INPUT_PARTITIONS = 2, 0, 1\n"
                           "KAFKA_INPUT_FORMAT = cadent-json\n")
    ic = kafka_input_config(conf, "cache")
    assert ic.partitions == (0, 1, 2) and ic.format == "cadent-json" and ic.topic == "cadent"
    assert ic.state_file.endswith(".offsets")
    with pytest.raises(ConfigError, match="plaintext"):
        kafka_input_config(_conf(tmp_path, "KAFKA_INPUT_BROKERS = k:1\nKAFKA_INPUT_FORMAT = x\n"),
                           "cache")
    with pytest.raises(ConfigError, match="at least 0"):
        writer_stall_seconds(_conf(tmp_path, "WRITER_STALL_SECONDS = -1\n"))
