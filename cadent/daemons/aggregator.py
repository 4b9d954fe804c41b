"""cadent-aggregator: a carbon-aggregator drop-in.

    aggregator = receive → filter → rewrite[pre] → aggregate → rewrite[post] → route → send

Aggregates are generated here and go straight to routing (no filter, no rewrite). Routing is
always ``consistent-hashing`` whatever RELAY_METHOD says, as in carbon. One greenlet drives the
aggregation timers (:data:`TICK_SECONDS`); another re-reads aggregation-rules.conf and
rewrite-rules.conf when their mtime changes (every 10 s, as carbon does; SIGHUP forces it).
Unlike carbon, a rules reload keeps the buffered intervals (see
:mod:`cadent.core.aggregate.buffers`). SIGTERM stops the receivers, emits every interval
holding unsent values, then drains the queues.

WORKERS must be 1: aggregates of one output computed in several processes would overwrite
each other downstream.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass
from typing import TextIO

from cadent.compat.aggregation_rules import AggregationRule, read_aggregation_rules
from cadent.compat.carbon_conf import CarbonSettings, read_carbon_conf
from cadent.compat.errors import ConfigError
from cadent.compat.lists import MetricFilter
from cadent.compat.relay_settings import (
    OutputConfig, SelfMetricsConfig, build_relay_router, metric_filter, output_config,
    receiver_config, self_metrics_config,
)
from cadent.core.aggregate.aggregator import Aggregator
from cadent.core.aggregate.pipeline import AggregatorPipeline
from cadent.core.flow import FlowControl
from cadent.core.net.inputs import Inputs, ReceiverConfig
from cadent.core.net.output import RoutedOutput
from cadent.core.point import Batch
from cadent.core.route.routers import BaseRouter
from cadent.core.stats import ProcessGauges, SelfMetricsReporter, Stats

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1
RULES_CHECK_SECONDS = 10.0


def _read_rewrite_rules(path: str):
    from cadent.compat.rewrite_rules import read_rewrite_rules

    return read_rewrite_rules(path) if os.path.exists(path) else None


@dataclass(frozen=True)
class AggregatorSettings:
    conf: CarbonSettings
    receivers: ReceiverConfig
    router: BaseRouter
    output: OutputConfig
    metric_filter: MetricFilter | None
    self_metrics: SelfMetricsConfig
    aggregation_rules: tuple[AggregationRule, ...]
    rewrite_rules: object | None  # cadent.compat.rewrite_rules.RewriteRules
    forward_all: bool
    max_aggregation_intervals: int
    write_back_frequency: float | None
    drain_seconds: float

    @property
    def pidfile(self) -> str:
        return self.conf.pidfile

    @property
    def log_dir(self) -> str:
        return self.conf.log_dir


def load_aggregator_settings(path: str | None, instance: str | None = None) -> AggregatorSettings:
    """Read carbon.conf's ``[aggregator]`` (+ ``[aggregator:instance]``) and every file it names."""
    conf = read_carbon_conf(path, "aggregator", instance, overrides={"RELAY_METHOD": "consistent-hashing"})
    if int(conf.WORKERS) != 1:
        raise ConfigError(conf.path, None, "WORKERS must be 1 for the aggregator: several processes "
                          "would each emit partial aggregates of the same outputs")
    wbf = conf.WRITE_BACK_FREQUENCY
    return AggregatorSettings(
        conf=conf,
        receivers=receiver_config(conf, reuse_port=False),
        router=build_relay_router(conf),
        output=output_config(conf),
        metric_filter=metric_filter(conf),
        self_metrics=self_metrics_config(conf),
        aggregation_rules=tuple(read_aggregation_rules(conf.aggregation_rules)),
        rewrite_rules=_read_rewrite_rules(conf.rewrite_rules),
        forward_all=bool(conf.FORWARD_ALL),
        max_aggregation_intervals=int(conf.MAX_AGGREGATION_INTERVALS),
        write_back_frequency=None if wbf in (None, "") else float(wbf),
        drain_seconds=float(conf.SHUTDOWN_DRAIN_SECONDS),
    )


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


class AggregatorService:
    """Receivers → filter → :class:`AggregatorPipeline` → routed output, plus the timers."""

    def __init__(self, settings: AggregatorSettings) -> None:
        self.settings = settings
        self.flow = FlowControl()
        self.stats = Stats()
        ProcessGauges().install(self.stats)
        out = settings.output
        self.output = RoutedOutput(
            settings.router, flow=self.flow, stats=self.stats, protocol=out.protocol,
            max_queue_points=out.max_queue_points, low_watermark_pct=out.low_watermark_pct,
            batch_points=out.batch_points, stall_seconds=out.stall_seconds)
        self.aggregator = Aggregator(
            settings.aggregation_rules, forward_all=settings.forward_all,
            max_aggregation_intervals=settings.max_aggregation_intervals,
            write_back_frequency=settings.write_back_frequency,
            log_misses=bool(settings.conf.LOG_AGGREGATOR_MISSES))
        self.pipeline = AggregatorPipeline.from_rewrite_rules(self.aggregator, settings.rewrite_rules)
        self.stats.gauge("allocatedBuffers", lambda: self.aggregator.allocated_buffers)
        self.stats.gauge("bufferedDatapoints", lambda: self.aggregator.buffered_datapoints)
        self.metric_filter = settings.metric_filter
        self.inputs = Inputs(settings.receivers, self.ingest, flow=self.flow, stats=self.stats)
        sm = settings.self_metrics
        self.reporter = SelfMetricsReporter(
            self.stats, self.output.send, prefix=sm.prefix, kind="aggregator",
            instance=sm.instance, interval_s=sm.interval_s)
        conf = settings.conf
        self._rule_files = (conf.aggregation_rules, conf.rewrite_rules)
        self._mtimes = tuple(_mtime(p) for p in self._rule_files)
        self._greenlets: list = []

    def ingest(self, batch: Batch, droppable: bool = False) -> None:
        """Entry point for every received batch."""
        if self.metric_filter is not None:
            batch, blacklisted, rejected = self.metric_filter.filter_batch(batch)
            if blacklisted:
                self.stats.incr("blacklistMatches", blacklisted)
            if rejected:
                self.stats.incr("whitelistRejects", rejected)
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

    def _watch_rules(self) -> None:
        import gevent

        while True:
            gevent.sleep(RULES_CHECK_SECONDS)
            if tuple(_mtime(p) for p in self._rule_files) != self._mtimes:
                try:
                    self.reload()
                except Exception:
                    log.exception("rules reload failed; keeping the running rules")

    def start(self) -> None:
        import gevent

        self.output.start()
        self.inputs.start()
        self.reporter.start()
        self._greenlets = [gevent.spawn(self._tick_loop), gevent.spawn(self._watch_rules)]

    def stop(self) -> bool:
        """Stop receiving, emit every unsent aggregate, deliver within SHUTDOWN_DRAIN_SECONDS."""
        import gevent

        self.inputs.stop()
        gevent.killall(self._greenlets, block=True, timeout=1)
        self._greenlets = []
        self._send_aggregates(self.pipeline.tick(time.time()))
        self._send_aggregates(self.pipeline.flush_all())
        self.reporter.stop()
        return self.output.stop(self.settings.drain_seconds) == 0

    def reload(self) -> None:
        """Re-read aggregation-rules.conf and rewrite-rules.conf (mtime change or SIGHUP)."""
        agg_path, rewrite_path = self._rule_files
        self._mtimes = tuple(_mtime(p) for p in self._rule_files)
        rules = read_aggregation_rules(agg_path)
        rewrite = _read_rewrite_rules(rewrite_path)
        self.aggregator.replace_rules(rules)
        self.pipeline.set_rewrite_rules(rewrite)
        log.info("reloaded %d aggregation rules from %s and rewrite rules from %s",
                 len(rules), agg_path, rewrite_path)


def run_test(settings: AggregatorSettings, stdin: TextIO, stdout: TextIO) -> int:
    """For each metric name on stdin print, tab-separated: the name, the name after [pre], the
    aggregate outputs it feeds (``-`` for none), ``forward``/``no-forward``, the name the raw
    point is relayed under (after [post]) and its destinations."""
    pipeline = AggregatorPipeline.from_rewrite_rules(
        Aggregator(settings.aggregation_rules, forward_all=settings.forward_all), settings.rewrite_rules)
    router = settings.router
    for line in stdin:
        name = line.rstrip("\r\n")
        if not name:
            continue
        renamed = pipeline.pre([(name, (0.0, 0.0))])[0][0] if pipeline.pre else name
        outputs, forward = pipeline.aggregator.matches(renamed)
        relayed = pipeline.post([(renamed, (0.0, 0.0))])[0][0] if pipeline.post else renamed
        dests = [f"{d.host}:{d.port}:{d.instance or ''}" for d in router.destinations_for(relayed)]
        fields = [name, renamed, ",".join(o for o, _, _ in outputs) or "-",
                  "forward" if forward else "no-forward", relayed] + dests
        stdout.write("\t".join(fields) + "\n")
    stdout.flush()
    return 0


def _load(args: argparse.Namespace) -> AggregatorSettings:
    return load_aggregator_settings(args.config, args.instance)


def _describe(settings: AggregatorSettings) -> str:
    return (f"({len(settings.aggregation_rules)} aggregation rules, "
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
