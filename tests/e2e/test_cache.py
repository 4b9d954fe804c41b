"""cadent-cache as a real process: real sockets in, real whisper files out, CarbonLink queries."""

from __future__ import annotations

import hashlib
import pickle
import re
import signal
import subprocess
import sys
import time

import pytest
import whisper

from tests.e2e.cache_helpers import (CarbonLink, cache_conf, data_dir, send_lines, send_pickle,
                                     send_udp, stored, wait_for, wsp)
from tests.peers import LOCALHOST, CadentProcess, free_port, write_carbon_conf

pytestmark = pytest.mark.slow


def _base(step: int = 10) -> int:
    return int(time.time()) // step * step - 1200


def _stop(proc: CadentProcess, timeout: float = 40) -> int:
    """SIGTERM and wait for the exit code (the drain must finish on its own)."""
    proc.proc.send_signal(signal.SIGTERM)
    code = proc.proc.wait(timeout)
    proc.stop()
    return code


def test_line_pickle_udp_to_whisper_with_schemas_and_aggregation(tmp_path):
    conf = cache_conf(tmp_path, CARBON_METRIC_INTERVAL=1)
    base = _base()
    line = [f"test.line.count {i} {base + 10 * i}" for i in range(20)]
    pick = [("test.pickle.max", (float(base + 10 * i), i * 1.5)) for i in range(20)]
    udp = [f"test.udp.gauge {100 + i} {base + 10 * i}" for i in range(20)]
    fine = [f"test.fine.x {i} {int(time.time()) - 100 + i}" for i in range(50)]
    with CadentProcess(conf, "cache") as cache:
        s = cache.settings
        send_lines(int(s["LINE_RECEIVER_PORT"]), line + fine)
        send_pickle(int(s["PICKLE_RECEIVER_PORT"]), pick)
        send_udp(int(s["UDP_RECEIVER_PORT"]), udp)
        names = ("test.line.count", "test.pickle.max", "test.udp.gauge", "test.fine.x")
        assert wait_for(lambda: all(wsp(conf, n).exists() for n in names), 60), \
            cache.log_text()[-3000:]
        agents = data_dir(conf) / "carbon" / "agents"
        assert wait_for(lambda: list(agents.glob("*-a/metricsReceived.wsp"))
                        and list(agents.glob("*-a/committedPoints.wsp")), 60), \
            sorted(str(p) for p in agents.rglob("*.wsp"))
        assert _stop(cache) == 0

    info = whisper.info(str(wsp(conf, "test.line.count")))
    assert [(a["secondsPerPoint"], a["points"]) for a in info["archives"]] == [(10, 2160), (60, 1440)]
    assert (info["xFilesFactor"], info["aggregationMethod"]) == (pytest.approx(0.1), "sum")
    info = whisper.info(str(wsp(conf, "test.pickle.max")))
    assert (info["xFilesFactor"], info["aggregationMethod"]) == (0.5, "max")
    info = whisper.info(str(wsp(conf, "test.fine.x")))
    assert [(a["secondsPerPoint"], a["points"]) for a in info["archives"]] == [(1, 600), (10, 360)]
    assert (info["xFilesFactor"], info["aggregationMethod"]) == (0.5, "average")

    assert stored(wsp(conf, "test.line.count"), base - 10) == {base + 10 * i: i for i in range(20)}
    assert stored(wsp(conf, "test.pickle.max"), base - 10) == {base + 10 * i: i * 1.5 for i in range(20)}
    assert stored(wsp(conf, "test.udp.gauge"), base - 10) == {base + 10 * i: 100 + i for i in range(20)}
    assert len(stored(wsp(conf, "test.fine.x"), time.time() - 500)) == 50
    # self-metrics written like any series: metricsReceived counted what came in
    received = sum(v for f in (data_dir(conf) / "carbon" / "agents").glob("*-a/metricsReceived.wsp")
                   for v in stored(f, time.time() - 300).values())
    assert received >= 110


def test_slow_disk_keeps_points_queryable_and_sigterm_writes_everything(tmp_path):
    conf = cache_conf(tmp_path, MAX_UPDATES_PER_SECOND=2)
    base = _base()
    metrics = [f"test.slow.m{i}" for i in range(60)]
    text = [f"{m} {j} {base + 10 * j}" for j in range(10) for m in metrics]
    tagged = "test.tagged;dc=par;host=a"
    with CadentProcess(conf, "cache") as cache:
        s = cache.settings
        send_lines(int(s["LINE_RECEIVER_PORT"]), text + [f"{tagged} 7 {base}"])
        with CarbonLink(int(s["CACHE_QUERY_PORT"])) as link:
            # the tagged point was sent last on the same connection: once it is in, all are
            assert wait_for(lambda: link.query("test.tagged;host=a;dc=par"), 30)
            # each new metric's file exists at once (well before its turn to be written)
            assert wait_for(lambda: all(wsp(conf, m).exists() for m in metrics), 30)
            answers = link.request(type="cache-query-bulk", metrics=metrics)["datapointsByMetric"]
            expected = {float(base + 10 * j): float(j) for j in range(10)}
            for m in metrics:
                # cache first, then disk: a point leaves the cache only once it is written
                seen = dict(answers[m])
                seen.update({float(t): v for t, v in stored(wsp(conf, m), base - 10).items()})
                assert seen == expected, m
            # two updates a second: most metrics are still only in memory ...
            assert sum(len(answers[m]) == 10 for m in metrics) > 30
            assert link.query("test.tagged;host=a;dc=par") == [(float(base), 7.0)]
        assert _stop(cache) == 0
        log = cache.log_text()
    assert "cache written to disk" in log, log[-2000:]
    for m in metrics:
        assert stored(wsp(conf, m), base - 10) == {base + 10 * j: j for j in range(10)}, m
    digest = hashlib.sha256(tagged.encode()).hexdigest()
    tagged_file = data_dir(conf) / "_tagged" / digest[:3] / digest[3:6] / f"{digest}.wsp"
    assert stored(tagged_file, base - 10) == {base: 7}


def test_full_cache_pauses_senders_instead_of_dropping(tmp_path):
    conf = cache_conf(tmp_path, MAX_CACHE_SIZE=300, MAX_UPDATES_PER_SECOND=40)
    base = _base()
    metrics = [f"test.bp.m{i}" for i in range(40)]
    text = [f"{m} {j} {base + 10 * j}" for j in range(30) for m in metrics]
    with CadentProcess(conf, "cache") as cache:
        send_lines(int(cache.settings["LINE_RECEIVER_PORT"]), text)
        assert wait_for(lambda: "resuming receivers" in cache.log_text(), 20)
        assert _stop(cache) == 0
        log = cache.log_text()
    assert "pausing receivers" in log
    for m in metrics:
        assert stored(wsp(conf, m), base - 10) == {base + 10 * j: j for j in range(30)}, m


def test_metric_over_the_create_limit_keeps_its_points(tmp_path):
    conf = cache_conf(tmp_path, MAX_CREATES_PER_MINUTE=3)
    base = _base()
    metrics = [f"test.create.m{i}" for i in range(6)]
    with CadentProcess(conf, "cache") as cache:
        s = cache.settings
        send_lines(int(s["LINE_RECEIVER_PORT"]), [f"{m} 5 {base}" for m in metrics])
        assert wait_for(lambda: sum(wsp(conf, m).exists() for m in metrics) == 3, 30)
        time.sleep(0.5)
        assert sum(wsp(conf, m).exists() for m in metrics) == 3
        waiting = [m for m in metrics if not wsp(conf, m).exists()]
        with CarbonLink(int(s["CACHE_QUERY_PORT"])) as link:
            for m in waiting:
                assert link.query(m) == [(float(base), 5.0)]
        assert _stop(cache) == 0
    for m in metrics:
        assert stored(wsp(conf, m), base - 10) == {base: 5}


def test_carbonlink_survives_garbage(tmp_path):
    conf = cache_conf(tmp_path)
    base = _base()
    with CadentProcess(conf, "cache") as cache:
        s = cache.settings
        send_lines(int(s["LINE_RECEIVER_PORT"]), [f"test.cl.a 1 {base}"])
        port = int(s["CACHE_QUERY_PORT"])
        with CarbonLink(port) as link:
            assert "error" in link.raw(b"\x80\x02not a pickle at all")
            evil = b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
            assert "error" in link.raw(evil)
            assert "error" in link.request(type="no-such-type")
            assert "error" in link.raw(pickle.dumps(["not", "a", "dict"], protocol=2))
            assert wait_for(lambda: wsp(conf, "test.cl.a").exists(), 30)
            meta = link.request(type="get-metadata", metric="test.cl.a", key="aggregationMethod")
            assert meta == {"value": "average"}
        import socket
        with socket.create_connection((LOCALHOST, port), timeout=5) as raw:
            raw.sendall(b"\xff\xff\xff\xff" + b"junk" * 10)
            raw.settimeout(5)
            assert raw.recv(65536)  # an error reply, then the server closes it
        assert cache.alive
        assert _stop(cache) == 0
    assert not (tmp_path / "pwned").exists()


def test_check_config_reports_bad_schema_with_file_and_line(tmp_path):
    conf = cache_conf(tmp_path, files={"storage-schemas.conf":
                                       "[ok]\npattern = ^a\nretentions = 10s:1d\n\n"
                                       "[bad]\npattern = .*\nretentions = 10x:1d\n"})
    out = subprocess.run([sys.executable, "-m", "cadent.daemons.cache", "--config", str(conf),
                          "--check-config"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "storage-schemas.conf:7" in out.stderr, out.stderr


def test_two_instances_behind_a_consistent_hashing_relay(tmp_path):
    pa, pb = free_port(), free_port()
    common = {"LINE_RECEIVER_INTERFACE": LOCALHOST, "PICKLE_RECEIVER_INTERFACE": LOCALHOST,
              "CACHE_QUERY_INTERFACE": LOCALHOST, "CARBON_METRIC_INTERVAL": 1,
              "LINE_RECEIVER_PORT": 0}
    from tests.e2e.cache_helpers import AGGREGATION, SCHEMAS
    relay_port = free_port()
    conf = write_carbon_conf(tmp_path, {
        "cache": dict(common, PICKLE_RECEIVER_PORT=pa, CACHE_QUERY_PORT=free_port()),
        "cache:b": {"PICKLE_RECEIVER_PORT": pb, "CACHE_QUERY_PORT": free_port(),
                    "LOCAL_DATA_DIR": tmp_path / "storage" / "whisper-b"},
        "relay": {"LINE_RECEIVER_INTERFACE": LOCALHOST, "LINE_RECEIVER_PORT": relay_port,
                  "PICKLE_RECEIVER_PORT": 0, "RELAY_METHOD": "consistent-hashing",
                  "DESTINATIONS": [f"127.0.0.1:{pa}:a", f"127.0.0.1:{pb}:b"],
                  "CARBON_METRIC_INTERVAL": 0},
    }, files={"storage-schemas.conf": SCHEMAS, "storage-aggregation.conf": AGGREGATION})
    base = _base()
    names = [f"test.ring.m{i}" for i in range(200)]
    test = subprocess.run([sys.executable, "-m", "cadent.daemons.relay", "--config", str(conf),
                           "--test"], input="\n".join(names) + "\n", capture_output=True,
                          text=True, timeout=60)
    assert test.returncode == 0, test.stderr
    where = {line.split("\t")[0]: line.split("\t")[1] for line in test.stdout.splitlines()}
    dirs = {"a": tmp_path / "storage" / "whisper", "b": tmp_path / "storage" / "whisper-b"}
    with CadentProcess(conf, "cache", "a", ports=[(LOCALHOST, pa)]) as ca, \
            CadentProcess(conf, "cache", "b", ports=[(LOCALHOST, pb)]) as cb, \
            CadentProcess(conf, "relay", ports=[(LOCALHOST, relay_port)]) as relay:
        send_lines(relay_port, [f"{n} 1 {base}" for n in names])

        def files(inst):
            root = dirs[inst] / "test" / "ring"
            return {f"test.ring.{p.stem}" for p in root.glob("*.wsp")}

        assert wait_for(lambda: len(files("a")) + len(files("b")) == len(names), 20)
        for inst, proc in (("a", ca), ("b", cb)):
            agents = dirs[inst] / "carbon" / "agents"
            assert wait_for(lambda: list(agents.glob(f"*-{inst}/metricsReceived.wsp")), 30)
            assert not list(agents.glob(f"*-{'b' if inst == 'a' else 'a'}/*.wsp"))
        relay.stop()
        assert _stop(ca) == 0 and _stop(cb) == 0
    for inst in ("a", "b"):
        expected = {n for n in names if where[n] == f"127.0.0.1:{pa if inst == 'a' else pb}:{inst}"}
        assert expected and files(inst) == expected


def test_sighup_reloads_storage_rules_for_new_files(tmp_path):
    conf = cache_conf(tmp_path)
    base = _base()
    with CadentProcess(conf, "cache") as cache:
        port = int(cache.settings["LINE_RECEIVER_PORT"])
        send_lines(port, [f"test.before.x 1 {base}"])
        assert wait_for(lambda: wsp(conf, "test.before.x").exists(), 30)
        (conf.parent / "storage-schemas.conf").write_text(
            "[new]\npattern = ^test\\.after\\.\nretentions = 30s:2h\n")
        (conf.parent / "storage-aggregation.conf").write_text(
            "[new]\npattern = .*\nxFilesFactor = 0.25\naggregationMethod = last\n")
        cache.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reloaded" in cache.log_text(), 30)
        send_lines(port, [f"test.after.x 1 {base}"])
        assert wait_for(lambda: wsp(conf, "test.after.x").exists(), 30)
        assert _stop(cache) == 0
    before = whisper.info(str(wsp(conf, "test.before.x")))
    after = whisper.info(str(wsp(conf, "test.after.x")))
    assert [(a["secondsPerPoint"], a["points"]) for a in before["archives"]] == [(10, 2160), (60, 1440)]
    assert [(a["secondsPerPoint"], a["points"]) for a in after["archives"]] == [(30, 240)]
    assert (after["xFilesFactor"], after["aggregationMethod"]) == (0.25, "last")


def test_daemonised_cache_keeps_carbons_creates_updates_and_query_logs(tmp_path):
    files = {"storage-schemas.conf": "[logs]\npattern = ^log\\.\nretentions = 1m:1d\n",
             "storage-aggregation.conf": "[means]\npattern = ^log\\.\nxFilesFactor = 0.2\n"
                                         "aggregationMethod = average\n"}
    conf = cache_conf(tmp_path, files=files, LOG_CREATES=True, LOG_UPDATES=True,
                      LOG_CACHE_HITS=True, ENABLE_TAGS=False, MAX_UPDATES_PER_SECOND=1000)
    pidfile, logdir = tmp_path / "cache.pid", tmp_path / "logs"
    cli = [sys.executable, "-m", "cadent.daemons.cache", "--config", str(conf),
           "--pidfile", str(pidfile), "--logdir", str(logdir)]
    started = subprocess.run(cli + ["start"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    try:
        s = CadentProcess(conf, "cache").settings
        assert wait_for(lambda: pidfile.exists(), 30)
        now = int(time.time()) // 60 * 60
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the receiver may still be binding
            try:
                send_lines(int(s["LINE_RECEIVER_PORT"]), [f"log.test.a 1 {now - 120}",
                                                          f"log.test.a 2 {now - 60}"])
                break
            except OSError:
                time.sleep(0.2)
        path = wsp(conf, "log.test.a")
        want = {now - 120: 1.0, now - 60: 2.0}
        assert wait_for(lambda: path.exists() and stored(path, now - 600) == want, 20)
        with CarbonLink(int(s["CACHE_QUERY_PORT"])) as link:
            link.query("log.test.a")
    finally:
        stopped = subprocess.run(cli + ["stop"], capture_output=True, text=True, timeout=90)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    creates = (logdir / "creates.log").read_text().splitlines()
    stamp = r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d :: "
    assert [re.sub(stamp, "", line) for line in creates if "log.test.a" in line] == [
        "new metric log.test.a matched schema logs",
        "new metric log.test.a matched aggregation schema means",
        "creating database metric log.test.a (archive=[(60, 1440)] xff=0.2 agg=average)"]
    assert all(re.match(stamp, line) for line in creates)
    updates = [line for line in (logdir / "updates.log").read_text().splitlines()
               if "log.test.a" in line]
    assert updates and all(re.fullmatch(stamp + r"wrote \d datapoints for log\.test\.a in "
                                        r"\d+\.\d{5} seconds", line) for line in updates)
    assert sum(int(line.split("wrote ")[1].split()[0]) for line in updates) == 2
    query = [re.sub(stamp, "", line) for line in (logdir / "query.log").read_text().splitlines()]
    assert [line.split(" ", 1)[1] for line in query] == [
        "connected", 'cache query for "log.test.a" returned 0 values', "disconnected"]
    assert "wrote" not in (logdir / "console.log").read_text()
