"""STORAGE_FINDERS plugin for graphite-web 1.1 / graphite-api: cadent's whisper + CarbonLink reads.

graphite-web: ``STORAGE_FINDERS = ('cadent.compat.graphite_finder.CadentFinder',)`` with
settings ``CADENT_WHISPER_DIRS`` (else ``WHISPER_DIR``), ``CARBONLINK_HOSTS``,
``CARBONLINK_TIMEOUT``, ``CARBONLINK_RETRY_DELAY``, ``CARBONLINK_HASHING_TYPE``,
``REPLICATION_FACTOR``, ``CARBON_METRIC_PREFIX``.
graphite-api: ``finders: [cadent.compat.graphite_finder.CadentFinder]`` and a ``cadent:``
section with keys ``whisper_dirs`` and ``carbonlink_hosts`` (same meaning).
Node classes come from whichever of ``graphite`` / ``graphite_api`` is importable.
"""

from __future__ import annotations

from cadent.api.carbonlink import CarbonLinkPool
from cadent.api.finders.whisper import WhisperFinder
from cadent.api.readers import file_interval, read_series


def _node_classes():
    try:
        from graphite.node import BranchNode, LeafNode  # graphite-web
        from graphite.intervals import Interval, IntervalSet
    except ImportError:
        from graphite_api.node import BranchNode, LeafNode  # graphite-api
        from graphite_api.intervals import Interval, IntervalSet
    return BranchNode, LeafNode, Interval, IntervalSet


class CadentReader:
    """Reader for one whisper file: ``fetch(start, end)`` and ``get_intervals()``."""

    __slots__ = ("fs_path", "real_metric_path", "pool")

    def __init__(self, fs_path: str, metric_path: str, pool: CarbonLinkPool | None) -> None:
        self.fs_path = fs_path
        self.real_metric_path = metric_path
        self.pool = pool

    def fetch(self, startTime, endTime, now=None, requestContext=None):
        query = self.pool.query if self.pool is not None and self.pool.enabled else None
        return read_series(self.fs_path, self.real_metric_path, int(startTime), int(endTime),
                           int(now) if now else None, query)

    def get_intervals(self):
        _, _, Interval, IntervalSet = _node_classes()
        return IntervalSet([Interval(*file_interval(self.fs_path))])


class CadentFinder:
    """Finder yielding graphite BranchNode / LeafNode objects for glob patterns."""

    local = True
    disabled = False
    tags = False

    def __init__(self, config=None) -> None:
        if config is None:
            from django.conf import settings as dj  # graphite-web

            dirs = getattr(dj, "CADENT_WHISPER_DIRS", None) or [dj.WHISPER_DIR]
            hosts = list(getattr(dj, "CARBONLINK_HOSTS", []))
            pool = CarbonLinkPool(
                hosts, dj.CARBONLINK_TIMEOUT, getattr(dj, "CARBONLINK_RETRY_DELAY", 15),
                getattr(dj, "REPLICATION_FACTOR", 1), getattr(dj, "CARBONLINK_HASHING_TYPE", "carbon_ch"),
                getattr(dj, "CARBON_METRIC_PREFIX", "carbon"),
            )
        else:
            section = config.get("cadent", {})
            dirs = section.get("whisper_dirs") or config.get("whisper", {}).get("directories", [])
            pool = CarbonLinkPool(section.get("carbonlink_hosts", []))
        self.finder = WhisperFinder(dirs)
        self.pool = pool if pool.enabled else None

    def find_nodes(self, query):
        BranchNode, LeafNode, _, _ = _node_classes()
        for node in self.finder.find(query.pattern):
            if node.is_leaf:
                yield LeafNode(node.path, CadentReader(node.fs_path, node.path, self.pool))
            else:
                yield BranchNode(node.path)


__all__ = ["CadentFinder", "CadentReader"]
