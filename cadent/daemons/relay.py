"""cadent-relay: a carbon-relay drop-in.  relay = receive → filter → [rewrite] → route → send.

The white/blacklist (and rewrite rules, when RELAY_REWRITE_RULES is on) are re-read when their
files change, as carbon does every 10 s; SIGHUP re-reads those and the routing rules.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from typing import TextIO

from cadent.compat.daemon_settings import metric_filter
from cadent.compat.http_settings import health_check_config, http_config
from cadent.compat.relay_settings import (RelaySettings, build_relay_router, load_relay_settings,
                                          relay_rewrite_rules, watched_files)
from cadent.compat.spool_settings import worker_spool
from cadent.core.route.rewrite import apply_rules
from cadent.core.filewatch import FileWatcher
from cadent.core.flow import FlowControl
from cadent.core.net.inputs import Inputs
from cadent.core.net.kafka_input import relay_kafka_input
from cadent.core.net.health import HealthChecker
from cadent.core.net.output import RoutedOutput
from cadent.core.ops_http import RoutingOps, output_health, serve_ops
from cadent.core.net.preformatted import encode_raw_lines, raw_self_metrics
from cadent.core.point import Batch
from cadent.core.stats import ProcessGauges, SelfMetricsReporter, Stats, worker_instance
from cadent.daemons.cli import path_overrides
from cadent.statsd.proxy_router import router_for_format

log = logging.getLogger(__name__)


class RelayService:
    """Receivers feeding a filter and a routed output, plus carbon's relay self-metrics."""

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings
        self.flow = FlowControl()
        self.stats = Stats()
        ProcessGauges().install(self.stats)
        output = replace(settings.output,
                         spool=worker_spool(settings.output.spool, settings.workers))
        self.line_format = fmt = settings.receivers.line_format
        if fmt.keyed:  # statsd / regex lines go out as they came
            output = replace(output, protocol=encode_raw_lines)
        self.output = RoutedOutput.from_config(router_for_format(settings.router, fmt), output,
                                               flow=self.flow, stats=self.stats)
        self.metric_filter = settings.metric_filter
        self.rewrite_rules = settings.rewrite_rules
        self.watcher = FileWatcher(watched_files(settings.conf), self.reload_filters)
        self.inputs = Inputs(settings.receivers, self.ingest, flow=self.flow, stats=self.stats)
        self.kafka_input = relay_kafka_input(settings, self.ingest, self.flow, self.stats)
        sm = settings.self_metrics
        self.reporter = SelfMetricsReporter(
            self.stats, self.send_self_metrics, prefix=sm.prefix, kind="relays",
            instance=worker_instance(sm.instance, settings.workers), interval_s=sm.interval_s)
        checks = health_check_config(settings.conf)
        self.health_checker = (HealthChecker(self.output, fail_s=checks.fail_s, ok_s=checks.ok_s)
                               if checks.enabled else None)
        self.ops = RoutingOps(
            "relay", sm.instance, self.stats, self.output, lambda: output_health(self.output),
            self.reporter, ring_refusal=("WORKERS > 1: each worker has its own ring; change "
                                         "DESTINATIONS and restart" if settings.workers > 1
                                         else None))
        self.ops_server = serve_ops(http_config(settings.conf), self.ops)

    def send_self_metrics(self, batch: Batch) -> None:
        if self.line_format.keyed:
            batch = raw_self_metrics(batch, self.line_format.kind)
        self.output.send_self_metrics(batch)

    def ingest(self, batch: Batch, droppable: bool = False) -> None:
        """Entry point for every received batch."""
        if self.metric_filter is not None:
            batch = self.metric_filter.apply(batch, self.stats)
            if not batch:
                return
        if self.rewrite_rules is not None:
            batch = apply_rules(self.rewrite_rules.post, apply_rules(self.rewrite_rules.pre, batch))
        self.output.send(batch, droppable)

    def start(self) -> None:
        self.output.start()
        self.inputs.start()
        if self.kafka_input is not None:
            self.kafka_input.start()
        self.reporter.start()
        self.watcher.start()
        if self.health_checker is not None:
            self.health_checker.start()
        if self.ops_server is not None:
            self.ops_server.start()

    def stop(self) -> bool:
        """Stop receiving, deliver what is queued within SHUTDOWN_DRAIN_SECONDS (what a dead
        destination holds goes to its spool at once); False if anything was lost."""
        self.ops.stopping = True
        if self.health_checker is not None:
            self.health_checker.stop()
        self.inputs.stop()
        if self.kafka_input is not None:
            self.kafka_input.stop()
            self.kafka_input.save_safe()   # everything it read is queued by now
        self.watcher.stop()
        self.reporter.stop()
        left = self.output.stop(self.settings.drain_seconds)
        if self.ops_server is not None:
            self.ops_server.stop()
        return left == 0

    def reload_filters(self) -> None:
        """Re-read the white/blacklist and rewrite rules; on error the old ones stay."""
        conf = self.settings.conf
        self.watcher.rearm()
        self.metric_filter, self.rewrite_rules = metric_filter(conf), relay_rewrite_rules(conf)
        log.info("white/blacklist and rewrite rules reloaded")

    def reload(self) -> None:
        """SIGHUP: re-read routing rules and filters; keeps connections and queues."""
        router = router_for_format(build_relay_router(self.settings.conf), self.line_format)
        self.reload_filters()
        self.output.replace_router(router)
        log.info("routing rules reloaded")


def run_test(settings: RelaySettings, stdin: TextIO, stdout: TextIO) -> int:
    """For each metric name on stdin print ``name<TAB>host:port:instance<TAB>...``."""
    router = router_for_format(settings.router, settings.receivers.line_format)
    for line in stdin:
        name = line.rstrip("\r\n")
        if not name:
            continue
        fields = [name] + [str(d) for d in router.destinations_for(name)]
        stdout.write("\t".join(fields) + "\n")
    stdout.flush()
    return 0


def _load(args: argparse.Namespace) -> RelaySettings:
    settings = load_relay_settings(args.config, args.instance, path_overrides(args))
    http_config(settings.conf)          # bad HTTP_* or HEALTH_CHECK_* values stop here
    health_check_config(settings.conf)
    return settings


def _describe(settings: RelaySettings) -> str:
    r = settings.router
    return f"({r.method}, {len(r.destinations)} destinations, {settings.workers} worker(s))"


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()
    from cadent.daemons.cli import Role, main_for

    role = Role(name="relay", load_settings=_load, build_service=RelayService, run_test=run_test,
                workers=lambda s: s.workers, describe=_describe)
    return main_for(role, argv)


if __name__ == "__main__":
    from cadent.daemons.launch import relay as launch_relay

    raise SystemExit(launch_relay())
