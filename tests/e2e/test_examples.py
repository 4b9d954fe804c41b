"""Every configuration under conf/examples/ passes each of its roles' ``--check-config``.

Every role whose daemon module is in the tree is checked on every example that configures it;
a role not written yet is skipped, by name, for that role only.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "conf" / "examples"

# example directory → (role, config file, instance) triples it configures
CHECKS: dict[str, list[tuple[str, str, str | None]]] = {
    "statsd": [("statsd", "config.js", None)],
    "cache": [("cache", "carbon.conf", None)],
    "relay-3-caches": [("relay", "carbon.conf", None)],
    "relay-filtering": [("relay", "carbon.conf", None)],
    "aggregator": [("aggregator", "carbon.conf", None)],
    "two-caches": [("relay", "carbon.conf", None), ("cache", "carbon.conf", "a"),
                   ("cache", "carbon.conf", "b")],
    "single-box": [("cache", "carbon.conf", None), ("relay", "carbon.conf", None),
                   ("statsd", "carbon.conf", None), ("api", "carbon.conf", None)],
}

CASES = [(example, role, conf, instance)
         for example, checks in CHECKS.items() for role, conf, instance in checks]


def _daemon_exists(role: str) -> bool:
    return importlib.util.find_spec(f"cadent.daemons.{role}") is not None


def test_every_example_directory_is_covered():
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == sorted(CHECKS)


@pytest.mark.parametrize("example,role,conf,instance", CASES,
                         ids=[f"{e}-{r}{'-' + i if i else ''}" for e, r, _, i in CASES])
def test_example_passes_check_config(example, role, conf, instance, tmp_path):
    if not _daemon_exists(role):
        pytest.skip(f"cadent.daemons.{role} is not in the tree yet")
    args = [sys.executable, "-m", f"cadent.daemons.{role}", "--config", str(EXAMPLES / example / conf)]
    if instance:
        args += ["--instance", instance]
    args.append("--check-config")
    env = dict(os.environ, GRAPHITE_STORAGE_DIR=str(tmp_path / "storage"))
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_check_config_rejects_a_broken_example(tmp_path):
    """The check above can fail: a bad value in a copied example is refused."""
    text = (EXAMPLES / "relay-3-caches" / "carbon.conf").read_text()
    bad = tmp_path / "carbon.conf"
    bad.write_text(text.replace("MAX_QUEUE_SIZE = 100000", "MAX_QUEUE_SIZE = lots"))
    result = subprocess.run([sys.executable, "-m", "cadent.daemons.relay", "--config", str(bad),
                             "--check-config"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
