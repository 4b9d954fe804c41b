"""cadent-aggregator: a carbon-aggregator drop-in.

    aggregator = receive → filter → rewrite[pre] → aggregate → rewrite[post] → route → send

Aggregates are generated here and go straight to routing (no filter, no rewrite). Routing is
always ``consistent-hashing`` whatever RELAY_METHOD says, as in carbon. One greenlet drives the
aggregation timers (:data:`TICK_SECONDS`); another re-reads aggregation-rules.conf and
rewrite-rules.conf when their mtime changes (every :data:`RULES_CHECK_SECONDS`, as carbon
does; SIGHUP forces it). A bad rule file keeps the running rules. Unlike carbon, a rules reload
keeps the buffered intervals (see :mod:`cadent.core.aggregate.buffers`). SIGTERM stops the
receivers, emits every interval holding unsent values, then drains the queues.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import TextIO

from cadent.compat.aggregator_settings import (
    AggregatorSettings, load_aggregator_settings, read_aggregator_rules,
)
from cadent.compat.daemon_settings import metric_filter
from cadent.compat.errors import ConfigError
from cadent.compat.http_settings import http_config
from cadent.core.aggregate.aggregator import Aggregator
from cadent.core.aggregate.pipeline import AggregatorPipeline
from cadent.core.filewatch import FileWatcher
from cadent.core.flow import FlowControl
from cadent.core.net.inputs import Inputs
from cadent.core.net.output import RoutedOutput
from cadent.core.ops_http import RoutingOps, output_health, serve_ops
from cadent.core.point import Batch
from cadent.core.stats import ProcessGauges, SelfMetricsReporter, Stats

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1
RULES_CHECK_SECONDS = 10.0


def build_pipeline(settings: AggregatorSettings) -> AggregatorPipeline:
    """The pure aggregate stage the settings describe."""
    aggregator = Aggregator(
        settings.rules.aggregation, forward_all=settings.forward_all,
        max_aggregation_intervals=settings.max_aggregation_intervals,
        write_back_frequency=settings.write_back_frequency_s,
        log_misses=settings.log_misses)
    return AggregatorPipeline.from_rewrite_rules(aggregator, settings.rules.rewrite)


class AggregatorService:
    """Receivers → filter → :class:`AggregatorPipeline` → routed output, plus the timers."""

    def __init__(self, settings: AggregatorSettings) -> None:
        self.settings = settings
        self.flow = FlowControl()
        self.stats = Stats()
        ProcessGauges().install(self.stats)
        self.output = RoutedOutput.from_config(settings.router, settings.output,
                                               flow=self.flow, stats=self.stats)
        self.pipeline = build_pipeline(settings)
        self.aggregator = self.pipeline.aggregator
        self.stats.gauge("allocatedBuffers", lambda: self.aggregator.allocated_buffers)
        self.stats.gauge("bufferedDatapoints", lambda: self.aggregator.buffered_datapoints)
        self.metric_filter = settings.metric_filter
        self.inputs = Inputs(settings.receivers, self.ingest, flow=self.flow, stats=self.stats)
        sm = settings.self_metrics
        self.reporter = SelfMetricsReporter(
            self.stats, self.output.send_self_metrics, prefix=sm.prefix, kind="aggregator",
            instance=sm.instance, interval_s=sm.interval_s)
        self.ops = RoutingOps("aggregator", sm.instance, self.stats, self.output,
                              lambda: output_health(self.output), self.reporter)
        self.ops_server = serve_ops(http_config(settings.conf), self.ops)
        self._rule_files = settings.rule_files
        filter_files = (settings.conf.whitelist, settings.conf.blacklist) if settings.conf.USE_WHITELIST else ()
        self.watcher = FileWatcher(self._rule_files + filter_files, self.reload, RULES_CHECK_SECONDS)
        self._greenlets: list = []

    def ingest(self, batch: Batch, droppable: bool = False) -> None:
        """Entry point for every received batch."""
        if self.metric_filter is not None:
            batch = self.metric_filter.apply(batch, self.stats)
            if not batch:
                return
        forwarded = self.pipeline.received(batch, time.time())
        if forwarded:
            self.output.send(forwarded, droppable)

    def _send_aggregates(self, batch: Batch) -> None:
        if batch:
            self.stats.incr("aggregateDatapointsSent", len(batch))
            self.output.send(batch)

    def _tick_loop(self) -> None:
        import gevent

        while True:
            gevent.sleep(TICK_SECONDS)
            try:
                self._send_aggregates(self.pipeline.tick(time.time()))
            except Exception:
                log.exception("aggregation tick failed")

    def start(self) -> None:
        import gevent

        self.output.start()
        self.inputs.start()
        self.reporter.start()
        self._greenlets = [gevent.spawn(self._tick_loop)]
        self.watcher.start()
        if self.ops_server is not None:
            self.ops_server.start()

    def stop(self) -> bool:
        """Stop receiving, emit every unsent aggregate, deliver within SHUTDOWN_DRAIN_SECONDS."""
        import gevent

        self.ops.stopping = True
        self.inputs.stop()
        self.watcher.stop()
        gevent.killall(self._greenlets, block=True, timeout=1)
        self._greenlets = []
        self._send_aggregates(self.pipeline.tick(time.time()))
        self._send_aggregates(self.pipeline.flush_all())
        self.reporter.stop()
        clean = self.output.stop(self.settings.drain_seconds) == 0
        if self.ops_server is not None:
            self.ops_server.stop()
        return clean

    def reload(self) -> bool:
        """Re-read aggregation-rules.conf, rewrite-rules.conf and the white/blacklist (on a
        change, or SIGHUP).

        A bad file is logged with its ``file:line`` and the running rules stay; returns
        whether the new rules are in use.
        """
        self.watcher.rearm()
        try:
            rules = read_aggregator_rules(self.settings.conf)
            new_filter = metric_filter(self.settings.conf)
        except ConfigError as exc:
            log.error("rules not reloaded, keeping the running ones: %s", exc)
            return False
        self.metric_filter = new_filter
        self.aggregator.replace_rules(rules.aggregation)
        self.pipeline.set_rewrite_rules(rules.rewrite)
        log.info("reloaded %d aggregation rules from %s and %d+%d rewrite rules from %s",
                 len(rules.aggregation), self._rule_files[0], len(rules.rewrite.pre),
                 len(rules.rewrite.post), self._rule_files[1])
        return True


def run_test(settings: AggregatorSettings, stdin: TextIO, stdout: TextIO) -> int:
    """For each metric name on stdin print one tab-separated line:

    ``name  pre=<name after [pre]>  aggregates=<output>(<freq>,<method>),...|-
    forward=<name after [post]>|no  <destinations of the forwarded name>...``

    and one further line per aggregate output, ``  -> <output>  <its destinations>``.
    """
    pipeline = build_pipeline(settings)
    router = settings.router

    def where(name: str) -> list[str]:
        return [str(d) for d in router.destinations_for(name)]

    for line in stdin:
        name = line.strip()
        if not name:
            continue
        renamed = pipeline.pre([(name, (0.0, 0.0))])[0][0] if pipeline.pre else name
        outputs, forward = pipeline.aggregator.matches(renamed)
        aggregates = ",".join(f"{o}({f},{m})" for o, f, m in outputs) or "-"
        fields = [name, f"pre={renamed}", f"aggregates={aggregates}"]
        if forward:
            relayed = pipeline.post([(renamed, (0.0, 0.0))])[0][0] if pipeline.post else renamed
            fields += [f"forward={relayed}"] + where(relayed)
        else:
            fields.append("forward=no")
        stdout.write("\t".join(fields) + "\n")
        for output, _, _ in dict.fromkeys(outputs):
            stdout.write("\t".join(["  ->", output] + where(output)) + "\n")
    stdout.flush()
    return 0


def _load(args: argparse.Namespace) -> AggregatorSettings:
    from cadent.daemons.cli import path_overrides

    settings = load_aggregator_settings(args.config, args.instance, path_overrides(args))
    http_config(settings.conf)          # a bad HTTP_* value stops here
    return settings


def _describe(settings: AggregatorSettings) -> str:
    return (f"({len(settings.rules.aggregation)} aggregation rules, "
            f"{len(settings.router.destinations)} destinations)")


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()
    from cadent.daemons.cli import Role, main_for

    role = Role(name="aggregator", load_settings=_load, build_service=AggregatorService,
                run_test=run_test, describe=_describe)
    return main_for(role, argv)


if __name__ == "__main__":
    raise SystemExit(main())
