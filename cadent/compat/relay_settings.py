"""carbon.conf ``[relay]`` (plus its rule files) → the relay's typed settings.

The relay's pieces never see carbon's setting names: this module reads them once and hands
over a :class:`RelaySettings` holding the receiver config, the router and the output config.
"""

from __future__ import annotations

from dataclasses import dataclass

from cadent.compat.aggregation_rules import read_aggregation_rules
from cadent.compat.carbon_conf import CarbonSettings, read_carbon_conf
from cadent.compat.daemon_settings import (DaemonPaths, OutputConfig, SelfMetricsConfig,
                                           metric_filter, output_config, receiver_config,
                                           self_metrics_config, whole_number)
from cadent.compat.lists import MetricFilter
from cadent.compat.relay_rules import check_rule_destinations, read_relay_rules
from cadent.compat.rewrite_rules import RewriteRules, read_rewrite_rules
from cadent.core.net.inputs import ReceiverConfig
from cadent.core.route.destination import parse_destinations
from cadent.core.route.routers import BaseRouter, build_router


@dataclass(frozen=True)
class RelaySettings(DaemonPaths):
    conf: CarbonSettings
    receivers: ReceiverConfig
    router: BaseRouter
    output: OutputConfig
    metric_filter: MetricFilter | None
    rewrite_rules: RewriteRules | None
    self_metrics: SelfMetricsConfig
    workers: int
    drain_seconds: float



def relay_rewrite_rules(conf: CarbonSettings) -> RewriteRules | None:
    """rewrite-rules.conf when RELAY_REWRITE_RULES asks the relay to apply it, else None."""
    return read_rewrite_rules(conf.rewrite_rules) if conf.RELAY_REWRITE_RULES else None


def watched_files(conf: CarbonSettings) -> tuple[str, ...]:
    """The files carbon re-reads when they change: white/blacklist (and rewrite rules)."""
    paths = (conf.whitelist, conf.blacklist) if conf.USE_WHITELIST else ()
    return paths + ((conf.rewrite_rules,) if conf.RELAY_REWRITE_RULES else ())


def build_relay_router(conf: CarbonSettings) -> BaseRouter:
    """The router RELAY_METHOD asks for, with the rule files it needs (re-read on reload)."""
    method = conf.RELAY_METHOD
    try:
        destinations = parse_destinations(conf.DESTINATIONS)
    except ValueError as exc:
        raise conf.error("DESTINATIONS", str(exc)) from None
    if not destinations:
        raise conf.error("DESTINATIONS", "empty: the relay has nowhere to send")
    relay_rules = None
    if method == "rules":
        relay_rules = read_relay_rules(conf.relay_rules)
        check_rule_destinations(relay_rules, destinations, conf.relay_rules)
    aggregation_rules = None
    if method in ("aggregated-consistent-hashing", "fast-aggregated-hashing"):
        aggregation_rules = read_aggregation_rules(conf.aggregation_rules, missing_ok=True)
    try:
        return build_router(
            method, destinations,
            replication_factor=int(conf.REPLICATION_FACTOR),
            diverse_replicas=bool(conf.DIVERSE_REPLICAS),
            hash_type=conf.ROUTER_HASH_TYPE or None,
            tag_relay_normalized=bool(conf.TAG_RELAY_NORMALIZED),
            relay_rules=relay_rules,
            aggregation_rules=aggregation_rules,
        )
    except ValueError as exc:
        raise conf.error(None, str(exc)) from None  # the message names the setting


def load_relay_settings(path: str | None, instance: str | None = None,
                        overrides: dict | None = None) -> RelaySettings:
    """Read carbon.conf's ``[relay]`` (+ ``[relay:instance]``) and every file it names.

    ``overrides`` are the command line's paths (``pidfile``, ``logdir``).
    """
    conf = read_carbon_conf(path, "relay", instance, overrides)
    workers = whole_number(conf, "WORKERS", 1)
    return RelaySettings(
        conf=conf,
        receivers=receiver_config(conf, reuse_port=workers > 1),
        router=build_relay_router(conf),
        output=output_config(conf),
        metric_filter=metric_filter(conf),
        rewrite_rules=relay_rewrite_rules(conf),
        self_metrics=self_metrics_config(conf),
        workers=workers,
        drain_seconds=float(conf.SHUTDOWN_DRAIN_SECONDS),
    )
