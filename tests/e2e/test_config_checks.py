"""Configs carbon accepts but that silently lose or misplace data: `--check-config` and start-up
refuse them with file:line, through the real command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.cache_helpers import cache_conf
from tests.e2e.relay_helpers import relay_conf

pytestmark = pytest.mark.slow

VALIDATE_SCHEMAS = Path(sys.executable).parent / "validate-storage-schemas.py"


def daemon(role: str, conf: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"cadent.daemons.{role}", "--config", str(conf),
                           *args], capture_output=True, text=True, timeout=60)


def assert_refused(role: str, conf: Path, where: str, words: str) -> None:
    """Both --check-config and a foreground start exit 1 naming ``where`` (file:line)."""
    for args in (["--check-config"], ["--nodaemon"]):
        out = daemon(role, conf, *args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert where in out.stderr and words in out.stderr, (args, out.stderr)
        assert "OK" not in out.stdout


@pytest.mark.parametrize("schemas, line, words", [
    ("[stats]\npattern = ^stats\\.\nretentions = 10s:6h,15s:1d\n", 3, "evenly divide"),
    ("[stats]\npattern = ^stats\\.\n", 1, "no 'retentions'"),
])
def test_cache_refuses_schemas_carbon_would_skip(tmp_path, schemas, line, words):
    conf = cache_conf(tmp_path, files={"storage-schemas.conf": schemas})
    schemas_path = conf.parent / "storage-schemas.conf"
    assert_refused("cache", conf, f"{schemas_path}:{line}", words)
    # carbon's own validator flags the same file (an "Error" line, or a crash on the missing key)
    theirs = subprocess.run([sys.executable, str(VALIDATE_SCHEMAS), str(schemas_path)],
                            capture_output=True, text=True, timeout=60)
    assert "Error" in theirs.stdout or "KeyError" in theirs.stderr, (theirs.stdout, theirs.stderr)


def test_cache_accepts_valid_schemas(tmp_path):
    conf = cache_conf(tmp_path, files={"storage-schemas.conf":
                                       "[stats]\npattern = ^stats\\.\nretentions = 10s:6h,1m:1d\n"})
    out = daemon("cache", conf, "--check-config")
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr


def test_relay_refuses_rule_destination_missing_from_destinations(tmp_path):
    rules = ("[default]\ndefault = true\ndestinations = 127.0.0.1:2004:a\n\n"
             "[apps]\npattern = ^apps\\.\ndestinations = 127.0.0.1:2104:b\n")
    conf = relay_conf(tmp_path, ["127.0.0.1:2004:a", "127.0.0.1:2104"], RELAY_METHOD="rules",
                      files={"relay-rules.conf": rules})
    assert_refused("relay", conf, f"{conf.parent / 'relay-rules.conf'}:7", "127.0.0.1:2104:b")
    (conf.parent / "relay-rules.conf").write_text(rules.replace("2104:b", "2104"))
    out = daemon("relay", conf, "--check-config")
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr


@pytest.mark.parametrize("role, value", [("relay", "-1"), ("aggregator", "nan")])
def test_relay_and_aggregator_check_the_spool_keys(tmp_path, role, value):
    conf = relay_conf(tmp_path, ["127.0.0.1:2004"], SPOOL_AFTER_S=value)
    if role == "aggregator":
        conf.write_text(conf.read_text().replace("[relay]", "[aggregator]"))
    line = conf.read_text().splitlines().index(f"SPOOL_AFTER_S = {value}") + 1
    assert_refused(role, conf, f"{conf}:{line}", "SPOOL_AFTER_S")
