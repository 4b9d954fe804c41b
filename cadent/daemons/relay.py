"""cadent-relay: a carbon-relay drop-in.  relay = receive → filter → [rewrite] → route → send.

The white/blacklist (and rewrite rules, when RELAY_REWRITE_RULES is on) are re-read when their
files change, as carbon does every 10 s; SIGHUP re-reads those and the routing rules.
"""

from __future__ import annotations

import argparse
import logging
from typing import TextIO

from cadent.compat.daemon_settings import metric_filter
from cadent.compat.relay_settings import (RelaySettings, build_relay_router, load_relay_settings,
                                          relay_rewrite_rules, watched_files)
from cadent.core.route.rewrite import apply_rules
from cadent.core.filewatch import FileWatcher
from cadent.core.flow import FlowControl
from cadent.core.net.inputs import Inputs
from cadent.core.net.output import RoutedOutput
from cadent.core.point import Batch
from cadent.core.stats import ProcessGauges, SelfMetricsReporter, Stats, worker_instance
from cadent.daemons.cli import path_overrides

log = logging.getLogger(__name__)


class RelayService:
    """Receivers feeding a filter and a routed output, plus carbon's relay self-metrics."""

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings
        self.flow = FlowControl()
        self.stats = Stats()
        ProcessGauges().install(self.stats)
        self.output = RoutedOutput.from_config(settings.router, settings.output,
                                               flow=self.flow, stats=self.stats)
        self.metric_filter = settings.metric_filter
        self.rewrite_rules = settings.rewrite_rules
        self.watcher = FileWatcher(watched_files(settings.conf), self.reload_filters)
        self.inputs = Inputs(settings.receivers, self.ingest, flow=self.flow, stats=self.stats)
        sm = settings.self_metrics
        self.reporter = SelfMetricsReporter(
            self.stats, self.output.send, prefix=sm.prefix, kind="relays",
            instance=worker_instance(sm.instance, settings.workers), interval_s=sm.interval_s)

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
        self.reporter.start()
        self.watcher.start()

    def stop(self) -> bool:
        """Stop receiving, deliver what is queued within SHUTDOWN_DRAIN_SECONDS."""
        self.inputs.stop()
        self.watcher.stop()
        self.reporter.stop()
        left = self.output.stop(self.settings.drain_seconds)
        return left == 0

    def reload_filters(self) -> None:
        """Re-read the white/blacklist and rewrite rules; on error the old ones stay."""
        conf = self.settings.conf
        self.watcher.rearm()
        self.metric_filter, self.rewrite_rules = metric_filter(conf), relay_rewrite_rules(conf)
        log.info("white/blacklist and rewrite rules reloaded")

    def reload(self) -> None:
        """SIGHUP: re-read routing rules and filters; keeps connections and queues."""
        router = build_relay_router(self.settings.conf)
        self.reload_filters()
        self.output.replace_router(router)
        log.info("routing rules reloaded")


def run_test(settings: RelaySettings, stdin: TextIO, stdout: TextIO) -> int:
    """For each metric name on stdin print ``name<TAB>host:port:instance<TAB>...``."""
    router = settings.router
    for line in stdin:
        name = line.rstrip("\r\n")
        if not name:
            continue
        fields = [name] + [f"{d.host}:{d.port}:{d.instance or ''}" for d in router.destinations_for(name)]
        stdout.write("\t".join(fields) + "\n")
    stdout.flush()
    return 0


def _load(args: argparse.Namespace) -> RelaySettings:
    return load_relay_settings(args.config, args.instance, path_overrides(args))


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
