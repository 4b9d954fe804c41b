"""carbon.conf ``[aggregator]`` (plus its rule files) → the aggregator's typed settings.

RELAY_METHOD is forced to ``consistent-hashing`` whatever the file says, as carbon-aggregator
does. aggregation-rules.conf must exist (carbon-aggregator refuses to start without it);
rewrite-rules.conf is optional. Receivers, output (its spool included), filters and
self-metrics are read with the helpers the relay uses (:mod:`cadent.compat.daemon_settings`), so
``--check-config`` checks the same keys as start-up does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from cadent.compat.aggregation_rules import AggregationRule, read_aggregation_rules
from cadent.compat.carbon_conf import CarbonSettings, read_carbon_conf
from cadent.compat.daemon_settings import (DaemonPaths, OutputConfig, SelfMetricsConfig,
                                           metric_filter, output_config, receiver_config,
                                           self_metrics_config, whole_number)
from cadent.compat.lists import MetricFilter
from cadent.compat.relay_settings import build_relay_router
from cadent.compat.rewrite_rules import RewriteRules, read_rewrite_rules
from cadent.core.net.inputs import ReceiverConfig
from cadent.core.route.routers import BaseRouter

FORCED_RELAY_METHOD = "consistent-hashing"


@dataclass(frozen=True)
class AggregatorRules:
    """The two rule files the aggregator re-reads on a reload."""

    aggregation: tuple[AggregationRule, ...]
    rewrite: RewriteRules


@dataclass(frozen=True)
class AggregatorSettings(DaemonPaths):
    conf: CarbonSettings
    receivers: ReceiverConfig
    router: BaseRouter
    output: OutputConfig
    metric_filter: MetricFilter | None
    self_metrics: SelfMetricsConfig
    rules: AggregatorRules
    forward_all: bool
    max_aggregation_intervals: int
    write_back_frequency_s: float | None
    log_misses: bool
    drain_seconds: float


    @property
    def rule_files(self) -> tuple[str, str]:
        """(aggregation-rules path, rewrite-rules path)."""
        return (self.conf.aggregation_rules, self.conf.rewrite_rules)


def read_aggregator_rules(conf: CarbonSettings) -> AggregatorRules:
    """Read aggregation-rules.conf (required) and rewrite-rules.conf (optional).

    Raises :class:`ConfigError` at ``file:line`` for the first bad rule.
    """
    return AggregatorRules(
        aggregation=tuple(read_aggregation_rules(conf.aggregation_rules)),
        rewrite=read_rewrite_rules(conf.rewrite_rules),
    )


def load_aggregator_settings(path: str | None, instance: str | None = None,
                             overrides: Mapping[str, str] | None = None) -> AggregatorSettings:
    """Read carbon.conf's ``[aggregator]`` (+ ``[aggregator:instance]``) and every file it names.

    ``overrides`` are the command line's paths (``pidfile``, ``logdir``).
    """
    forced = dict(overrides or {})
    forced["RELAY_METHOD"] = FORCED_RELAY_METHOD
    conf = read_carbon_conf(path, "aggregator", instance, forced)
    if int(conf.WORKERS) != 1:
        raise conf.error("WORKERS", "must be 1 for the aggregator: several processes would "
                                    "each emit partial aggregates of the same outputs")
    wbf = conf.WRITE_BACK_FREQUENCY
    if wbf in (None, ""):
        write_back = None
    else:
        write_back = float(whole_number(conf, "WRITE_BACK_FREQUENCY", 1))
    return AggregatorSettings(
        conf=conf,
        receivers=receiver_config(conf, reuse_port=False),
        router=build_relay_router(conf),
        output=output_config(conf),
        metric_filter=metric_filter(conf),
        self_metrics=self_metrics_config(conf),
        rules=read_aggregator_rules(conf),
        forward_all=bool(conf.FORWARD_ALL),
        max_aggregation_intervals=whole_number(conf, "MAX_AGGREGATION_INTERVALS", 1),
        write_back_frequency_s=write_back,
        log_misses=bool(conf.LOG_AGGREGATOR_MISSES),
        drain_seconds=float(conf.SHUTDOWN_DRAIN_SECONDS),
    )


__all__ = ["AggregatorRules", "AggregatorSettings", "FORCED_RELAY_METHOD", "load_aggregator_settings",
           "read_aggregator_rules"]
