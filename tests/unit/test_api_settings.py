import pytest

from cadent.compat.api_settings import ApiConfigError, read_api_settings
from cadent.daemons.api import main


def test_defaults_and_overlay(tmp_path):
    conf = tmp_path / "carbon.conf"
    conf.write_text(
        "[cache]\nLOCAL_DATA_DIR = /data/whisper\n"
        "[api]\nLISTEN_PORT = 9090\nCARBONLINK_HOSTS = 127.0.0.1:7002:a, 127.0.0.1:7102:b\n"
        "[api:b]\nLISTEN_PORT = 9091\nCARBONLINK_TIMEOUT = 0.25\n"
    )
    s = read_api_settings(str(conf))
    assert s.listen_port == 9090 and s.whisper_dirs == ("/data/whisper",)
    assert s.carbonlink_hosts == ("127.0.0.1:7002:a", "127.0.0.1:7102:b")
    s = read_api_settings(str(conf), "b")
    assert s.listen_port == 9091 and s.carbonlink_timeout_s == 0.25 and s.bind == "0.0.0.0:9091"
    assert read_api_settings(None).carbonlink_hosts == ("127.0.0.1:7002",)


@pytest.mark.parametrize("line", ["LISTEN_PORT = x", "CARBONLINK_HOSTS = nohostport",
                                  "CARBONLINK_HASHING_TYPE = md5", "REPLICATION_FACTOR = 2"])
def test_bad_values(tmp_path, line):
    conf = tmp_path / "carbon.conf"
    conf.write_text(f"[api]\n{line}\n")
    with pytest.raises(ApiConfigError):
        read_api_settings(str(conf))


def test_check_config_cli(tmp_path, capsys):
    conf = tmp_path / "carbon.conf"
    conf.write_text(f"[api]\nWHISPER_DIRS = {tmp_path}\n")
    assert main(["--config", str(conf), "--check-config"]) == 0
    assert "config OK" in capsys.readouterr().out
    conf.write_text("[api]\nLISTEN_PORT = nope\n")
    assert main(["--config", str(conf), "--check-config"]) == 1


def test_read_through_carbon_conf(tmp_path, caplog):
    conf = tmp_path / "carbon.conf"
    conf.write_text(f"[api]\nSTORAGE_DIR = {tmp_path}\nCARBONLINK_HOSTS =\nLISTEN_PROT = 1\nWORKERS = 3\n")
    with caplog.at_level("WARNING"):
        s = read_api_settings(str(conf))
    assert "unknown setting LISTEN_PROT; did you mean LISTEN_PORT?" in caplog.text
    assert s.whisper_dirs == (str(tmp_path / "whisper"),)
    assert s.carbonlink_hosts == () and s.workers == 3
    assert read_api_settings(None).workers == 1
