"""Target evaluation over the store and the render output formats (json, csv, raw, pickle)."""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo

from cadent.api import expr
from cadent.api.finders.glob import WILDCARDS
from cadent.api.finders.whisper import WhisperFinder
from cadent.api.functions import Context, RenderError, evaluate
from cadent.api.readers import overlay_cache, read_files
from cadent.api.series import TimeSeries


# Below this many files a read is a few page-cache hits, cheaper than the hop to a thread
# (the directory listings of a pattern without wildcards run on the loop the same way).
INLINE_READS = 8


def run_blocking(func, *args):
    """``func(*args)`` in gevent's thread pool when the process is monkey-patched, else inline."""
    try:
        from gevent import get_hub, monkey
    except ImportError:
        return func(*args)
    if not monkey.is_module_patched("socket"):
        return func(*args)
    return get_hub().threadpool.apply(func, args)


def find_nodes(finder: WhisperFinder, pattern: str, leaves_only: bool = False,
               deadline: float | None = None) -> list:
    """``finder.find(...)``; a pattern with wildcards, whose cost grows with the tree, walks
    it in the thread pool so the loop keeps serving other requests."""
    if WILDCARDS.isdisjoint(pattern):
        return finder.find(pattern, leaves_only, deadline)
    return run_blocking(finder.find, pattern, leaves_only, deadline)


class Fetcher:
    """``fetch(pattern, start, end) -> [TimeSeries]`` over whisper files (cache merged).

    The files of one request are read in one thread-pool call (disk reads and decoding off
    the gevent loop; a handful of files inline); CarbonLink queries then run on the loop.
    """

    def __init__(self, finder: WhisperFinder, now: int, cache_query: Callable | None,
                 deadline: float | None = None) -> None:
        self.finder = finder
        self.now = now
        self.cache_query = cache_query
        self.deadline = deadline  # time.monotonic() past which a glob search gives up

    def __call__(self, pattern: str, start: int, end: int) -> list[TimeSeries]:
        found = find_nodes(self.finder, pattern, True, self.deadline)
        nodes = sorted(found, key=lambda n: n.path)
        return self._read(nodes, pattern, start, end)

    def exact(self, names: Sequence[str], path_expression: str, start: int,
              end: int) -> list[TimeSeries]:
        """The series named exactly ``names`` (those with a file), looked up and read together."""
        def find() -> list:
            return [node for node in map(self.finder.find_exact, names) if node is not None]

        nodes = find() if len(names) <= INLINE_READS else run_blocking(find)
        return self._read(nodes, path_expression, start, end)

    def _read(self, nodes: list, path_expression: str, start: int, end: int) -> list[TimeSeries]:
        paths = [n.fs_path for n in nodes]
        if len(paths) <= INLINE_READS:
            found = read_files(paths, start, end, self.now)
        else:
            found = run_blocking(read_files, paths, start, end, self.now)
        out = []
        for node, item in zip(nodes, found):
            if item is None:
                continue
            (s, e, step), values = overlay_cache(item[0], item[1], node.path, self.cache_query)
            out.append(TimeSeries(node.path, s, e, step, values, path_expression=path_expression))
        return out


def evaluate_targets(targets: Sequence[str], start: int, end: int, now: int, fetch) -> list[TimeSeries]:
    """Evaluate every target; RenderError/ExprError for bad ones."""
    ctx = Context(start, end, now, fetch)
    out: list[TimeSeries] = []
    for target in targets:
        try:
            node = expr.parse(target)
        except expr.ExprError as exc:
            raise RenderError(f"bad target: {exc}") from None
        result = evaluate(node, ctx)
        if not isinstance(result, list):
            raise RenderError(f"target {target!r} is not a series expression")
        out.extend(result)
    return out


def apply_max_data_points(series: list[TimeSeries], max_points: int) -> list[tuple[TimeSeries, list, int]]:
    """(series, values, seconds per point) after graphite's maxDataPoints consolidation."""
    if not series:
        return []
    out = []
    time_range = max(s.end for s in series) - min(s.start for s in series)
    for s in series:
        points = time_range / s.step
        if max_points and max_points < points:
            vpp = math.ceil(points / max_points)
            spp = int(vpp * s.step)
            nudge = spp + (s.start % s.step) - (s.start % spp)
            lose = int(nudge / s.step)
            cut = s.copy(start=s.start + nudge, values=s.values[max(0, lose - 1):], values_per_point=vpp)
            out.append((cut, cut.consolidated(), spp))
        else:
            out.append((s, s.values, s.step))
    return out


def _json_number(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "null"
    if v == math.inf:
        return "1e9999"
    if v == -math.inf:
        return "-1e9999"
    return repr(float(v))


def to_json(series: list[TimeSeries], max_points: int = 0, no_null_points: bool = False, pretty: bool = False) -> str:
    """graphite's ``format=json`` body."""
    items = []
    for s, values, spp in apply_max_data_points(series, max_points):
        stamps = range(s.start, s.end + 1, spp)  # a point stamped after ``end`` is dropped
        if no_null_points:
            pairs = [(v, t) for v, t in zip(values, stamps) if v is not None]
            if not pairs:
                continue
        else:
            pairs = list(zip(values, stamps))
        points = "" if pretty else json.dumps(pairs)[1:-1]
        if pretty or "Infinity" in points or "NaN" in points:
            sep = ",\n    " if pretty else ", "
            points = sep.join(f"[{_json_number(v)}, {t}]" for v, t in pairs)
        items.append(
            '{"target": %s, "tags": %s, "datapoints": [%s]}'
            % (json.dumps(s.name), json.dumps(s.tags, sort_keys=True), points)
        )
    return "[" + (",\n " if pretty else ", ").join(items) + "]"


def to_csv(series: list[TimeSeries], tz: tzinfo) -> str:
    lines = []
    for s in series:
        for i, v in enumerate(s.values):
            stamp = datetime.fromtimestamp(s.start + i * s.step, tz).strftime("%Y-%m-%d %H:%M:%S")
            lines.append(f"{s.name},{stamp},{'' if v is None else v!r}")
    return "\r\n".join(lines) + ("\r\n" if lines else "")


def to_raw(series: list[TimeSeries]) -> str:
    return "".join(
        "%s,%d,%d,%d|%s\n" % (s.name, s.start, s.end, s.step, ",".join(repr(v) for v in s.values)) for s in series
    )


def to_pickle(series: list[TimeSeries]) -> bytes:
    """Federation reply: builtins only, ``pathExpression`` echoed exactly."""
    return pickle.dumps(
        [
            {
                "name": s.name,
                "pathExpression": s.path_expression,
                "start": int(s.start),
                "end": int(s.end),
                "step": int(s.step),
                "values": list(s.values),
                "valuesPerPoint": s.values_per_point,
                "consolidationFunc": s.consolidation_func,
                "xFilesFactor": s.x_files_factor,
            }
            for s in series
        ],
        protocol=2,
    )


__all__ = ["apply_max_data_points", "evaluate_targets", "Fetcher", "find_nodes", "run_blocking", "to_csv", "to_json", "to_pickle", "to_raw"]
