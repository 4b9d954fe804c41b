"""Render functions and the evaluator of parsed targets.

The set covers what Grafana's graphite datasource sends on typical panels:
alias, aliasByMetric, aliasByNode, aliasSub, absolute, averageSeries (avg), constantLine,
consolidateBy, derivative, group, integral, keepLastValue, limit, maxSeries, minSeries,
movingAverage, nonNegativeDerivative, offset, perSecond, scale, seriesByTag, sortByName,
sumSeries (sum), summarize, timeShift, transformNull. Anything else is a 400 "Received request
for unknown function: <name>".

``seriesByTag('tag=spec', ...)`` is fetched as graphite-web fetches it: the whole call, as
written, is one path expression, which ``with_series_by_tag`` resolves through the tag
database (``cadent.api.tagdb``) into series whose pathExpression is that call. A federating
graphite-web sends such calls verbatim (``format=pickle&local=1``) and gets the same answer.

Naming, tags and numbers follow graphite-web 1.1 (e.g. ``sumSeries(a.*)`` with
``aggregatedBy``, ``scale(a.b,2)``, ``summarize(a.b, "1h", "sum")``).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from cadent.api.expr import Call, ExprError, Path, parse
from cadent.api.series import TimeSeries, consolidator
from cadent.api.timeparse import TimeParseError, parse_offset


class RenderError(ValueError):
    """A bad target or argument; shown to the client as a 400."""


@dataclass
class Context:
    """What a function needs besides its arguments."""

    start: int
    end: int
    now: int
    fetch: Callable[[str, int, int], list]  # (pattern, start, end) -> [TimeSeries]


_FUNCS: dict[str, Callable] = {}
_RAW: set[str] = set()  # functions that get their first argument unevaluated
_WHOLE: set[str] = set()  # functions that get their call unevaluated


def _register(*names: str, raw: bool = False, whole: bool = False):
    def deco(fn):
        for name in names:
            _FUNCS[name] = fn
            if raw:
                _RAW.add(name)
            if whole:
                _WHOLE.add(name)
        return fn

    return deco


def function_names() -> list[str]:
    """Names of the implemented functions."""
    return sorted(_FUNCS)


def evaluate(node, ctx: Context):
    """Evaluate a parsed target: a list of TimeSeries for series expressions."""
    if isinstance(node, Path):
        return ctx.fetch(node.pattern, ctx.start, ctx.end)
    if isinstance(node, Call):
        fn = _FUNCS.get(node.name)
        if fn is None:
            raise RenderError(f"Received request for unknown function: {node.name}")
        if node.name in _WHOLE:
            args, kwargs = [node], {}
        else:
            kept = list(node.args[:1]) if node.name in _RAW else []
            args = kept + [evaluate(a, ctx) for a in node.args[len(kept):]]
            kwargs = {k: evaluate(v, ctx) for k, v in node.kwargs}
        try:
            return fn(ctx, *args, **kwargs)
        except (RenderError, TimeParseError):
            raise
        except (TypeError, ValueError, ZeroDivisionError, re.error) as exc:
            raise RenderError(f"{node.name}: {exc}") from None
    return node


def _series_list(value) -> list:
    if not isinstance(value, list):
        raise RenderError(f"expected a series list, got {value!r}")
    return value


def _fmt_num(value) -> str:
    return "%g" % value if isinstance(value, float) else str(value)


def _path_exprs(series: list) -> str:
    """The series' path expressions, each once, in order of first appearance (as graphite-web)."""
    return ",".join(dict.fromkeys(s.path_expression for s in series))


def _tag(series: list, **tags) -> list:
    """Add graphite-web's function tags (values as strings) to every series; returns the list."""
    text = {key: str(value) for key, value in tags.items()}
    for s in series:
        s.tags.update(text)
    return series


def _interval_seconds(text: str) -> int:
    seconds = int(abs(parse_offset(text if text[0] in "+-" else "-" + text).total_seconds()))
    if seconds <= 0:
        raise RenderError(f"Invalid interval {text!r}")
    return seconds


# -- naming ---------------------------------------------------------------------------------


@_register("alias")
def alias(ctx, series, newName, *_):
    return [s.copy(name=str(newName)) for s in _series_list(series)]


@_register("aliasSub")
def alias_sub(ctx, series, search, replace):
    regex = re.compile(search)
    return [s.copy(name=regex.sub(replace, s.name)) for s in _series_list(series)]


def _base_path(name: str) -> str:
    inner = name.rsplit("(", 1)[-1]
    inner = re.split(r"[,)]", inner, maxsplit=1)[0]
    return inner.split(";", 1)[0]


@_register("aliasByNode")
def alias_by_node(ctx, series, *nodes):
    out = []
    for s in _series_list(series):
        parts = _base_path(s.name).split(".")
        try:
            out.append(s.copy(name=".".join(parts[int(n)] for n in nodes)))
        except (IndexError, ValueError):
            raise RenderError(f"aliasByNode: node out of range for {s.name!r}") from None
    return out


@_register("aliasByMetric")
def alias_by_metric(ctx, series):
    return [s.copy(name=_base_path(s.name).split(".")[-1]) for s in _series_list(series)]


# -- aggregation across series --------------------------------------------------------------


def _normalize(series: list) -> tuple[list[list], int, int, int]:
    """Bring series to a common step (lcm) and range; returns (value lists, start, end, step)."""
    step = 1
    for s in series:
        step = step * s.step // math.gcd(step, s.step)
    start = min(s.start for s in series)
    end = max(s.end for s in series)
    end -= (end - start) % step
    length = (end - start) // step
    lists = []
    for s in series:
        if s.step != step:
            s = s.copy(values_per_point=step // s.step)
            values = s.consolidated()
        else:
            values = s.values
        offset = (s.start - start) // step
        row = [None] * length
        for i, v in enumerate(values):
            j = i + offset
            if 0 <= j < length:
                row[j] = v
        lists.append(row)
    return lists, start, end, step


def _aggregate(label: str, func: str):
    def aggregate(ctx, *series_lists):
        series = [s for sl in series_lists for s in _series_list(sl)]
        if not series:
            return []
        lists, start, end, step = _normalize(series)
        agg = consolidator(func)
        values = []
        for column in zip(*lists):
            usable = [v for v in column if v is not None]
            values.append(agg(usable) if usable else None)
        name = f"{label}({_path_exprs(series)})"
        # graphite-web keeps the tags every input shares (a common name included)
        tags = dict(series[0].tags)
        for s in series[1:]:
            tags = {key: value for key, value in tags.items() if s.tags.get(key) == value}
        tags.setdefault("name", name)
        tags["aggregatedBy"] = func
        return [TimeSeries(name, start, end, step, values, path_expression=name, tags=tags)]

    return aggregate


_register("sumSeries", "sum")(_aggregate("sumSeries", "sum"))
_register("averageSeries", "avg")(_aggregate("averageSeries", "average"))
_register("maxSeries")(_aggregate("maxSeries", "max"))
_register("minSeries")(_aggregate("minSeries", "min"))


@_register("group")
def group(ctx, *series_lists):
    return [s for sl in series_lists for s in _series_list(sl)]


# -- per-series transforms ------------------------------------------------------------------


@_register("scale")
def scale(ctx, series, factor):
    return _tag([s.copy(name=f"scale({s.name},{_fmt_num(factor)})",
                        values=[None if v is None else v * factor for v in s.values])
                 for s in _series_list(series)], scale=float(factor))


@_register("offset")
def offset(ctx, series, factor):
    return _tag([s.copy(name=f"offset({s.name},{_fmt_num(factor)})",
                        values=[None if v is None else v + factor for v in s.values])
                 for s in _series_list(series)], offset=float(factor))


@_register("absolute")
def absolute(ctx, series):
    return _tag([s.copy(name=f"absolute({s.name})", values=[None if v is None else abs(v) for v in s.values])
                 for s in _series_list(series)], absolute=1)


@_register("transformNull")
def transform_null(ctx, series, default=0, *_):
    return _tag([s.copy(name=f"transformNull({s.name},{_fmt_num(default)})",
                        values=[default if v is None else v for v in s.values])
                 for s in _series_list(series)], transformNull=float(default))


@_register("consolidateBy")
def consolidate_by(ctx, series, func):
    consolidator(func)  # validates the name
    return _tag([s.copy(name=f'consolidateBy({s.name},"{func}")', consolidation_func=func)
                 for s in _series_list(series)], consolidateBy=func)


def _deltas(values: list, max_value=None, min_value=None) -> list:
    out, prev = [], None
    for v in values:
        if v is None or (max_value is not None and v > max_value) or (min_value is not None and v < min_value):
            out.append(None)
            prev = None if v is None or max_value is not None and v > max_value else v
            continue
        if prev is None:
            out.append(None)
        elif v >= prev:
            out.append(v - prev)
        elif max_value is not None and max_value >= v:
            out.append(max_value - prev + v + 1)
        elif min_value is not None and min_value <= v:
            out.append(v - min_value + 1)  # counter wrapped below
        else:
            out.append(None)
        prev = v
    return out


@_register("nonNegativeDerivative")
def non_negative_derivative(ctx, series, maxValue=None, minValue=None):
    return _tag([s.copy(name=f"nonNegativeDerivative({s.name})", values=_deltas(s.values, maxValue, minValue))
                 for s in _series_list(series)], nonNegativeDerivative=1)


@_register("perSecond")
def per_second(ctx, series, maxValue=None, minValue=None):
    out = []
    for s in _series_list(series):
        deltas = _deltas(s.values, maxValue, minValue)
        out.append(s.copy(name=f"perSecond({s.name})",
                          values=[None if d is None else d / s.step for d in deltas]))
    return _tag(out, perSecond=1)


@_register("derivative")
def derivative(ctx, series):
    out = []
    for s in _series_list(series):
        values, prev = [], None
        for v in s.values:
            values.append(None if v is None or prev is None else v - prev)
            prev = v
        out.append(s.copy(name=f"derivative({s.name})", values=values))
    return _tag(out, derivative=1)


@_register("integral")
def integral(ctx, series):
    out = []
    for s in _series_list(series):
        total, values = 0.0, []
        for v in s.values:
            if v is None:
                values.append(None)
            else:
                total += v
                values.append(total)
        out.append(s.copy(name=f"integral({s.name})", values=values))
    return _tag(out, integral=1)


@_register("keepLastValue")
def keep_last_value(ctx, series, limit=math.inf):
    out = []
    for s in _series_list(series):
        values = list(s.values)
        last, run_start = None, None
        for i, v in enumerate(values + [0.0]):
            if i < len(values) and v is None:
                if run_start is None:
                    run_start = i
                continue
            if run_start is not None and last is not None and i - run_start <= limit:
                for j in range(run_start, i):
                    values[j] = last
            run_start = None
            if i < len(values):
                last = v
        out.append(s.copy(name=f"keepLastValue({s.name})", values=values))
    return out


@_register("summarize")
def summarize(ctx, series, intervalString, func="sum", alignToFrom=False):
    interval = _interval_seconds(intervalString)
    agg = consolidator(func)
    out = []
    for s in _series_list(series):
        if alignToFrom:
            new_start, new_end = s.start, s.end
        else:
            new_start = s.start - s.start % interval
            new_end = s.end - s.end % interval + interval
        buckets: dict[int, list] = {}
        for i, v in enumerate(s.values):
            if v is None:
                continue
            ts = s.start + i * s.step
            key = new_start + (ts - new_start) // interval * interval
            buckets.setdefault(key, []).append(v)
        values = []
        for ts in range(new_start, new_end, interval):
            vals = buckets.get(ts)
            values.append(agg(vals) if vals else None)
        suffix = ", true" if alignToFrom else ""
        name = f'summarize({s.name}, "{intervalString}", "{func}"{suffix})'
        out.append(s.copy(name=name, values=values, start=new_start,
                          end=new_start + len(values) * interval, step=interval, values_per_point=1))
    return _tag(out, summarize=intervalString, summarizeFunction=func)


@_register("movingAverage", raw=True)
def moving_average(ctx, node, windowSize, xFilesFactor=None):
    if isinstance(windowSize, str):
        bootstrap = _interval_seconds(windowSize)
        label = f'"{windowSize}"'
    else:
        bootstrap = None
        label = _fmt_num(windowSize)
    first = evaluate(node, ctx)
    if not first:
        return []
    if bootstrap is None:
        bootstrap = int(windowSize) * max(s.step for s in first)
    starts = {s.name: s.start for s in first}
    series = evaluate(node, Context(ctx.start - bootstrap, ctx.end, ctx.now, ctx.fetch))
    out = []
    for s in series:
        points = bootstrap // s.step if isinstance(windowSize, str) else int(windowSize)
        xff = s.x_files_factor if xFilesFactor is None else float(xFilesFactor)
        wanted = starts.get(s.name, ctx.start - ctx.start % s.step + s.step)
        skip = max(0, (wanted - s.start) // s.step)
        values = []
        for i in range(skip, len(s.values)):
            window = s.values[max(0, i - points):i] if points else []
            usable = [v for v in window if v is not None]
            if usable and window and len(usable) / len(window) >= xff:
                values.append(sum(usable) / len(usable))
            else:
                values.append(None)
        out.append(s.copy(name=f"movingAverage({s.name},{label})", values=values,
                          start=s.start + skip * s.step))
    return _tag(out, movingAverage=windowSize)


@_register("timeShift", raw=True)
def time_shift(ctx, node, timeShift, resetEnd=True, alignDST=False):
    if timeShift[:1].isdigit():
        timeShift = "-" + timeShift
    delta = int(parse_offset(timeShift) / timedelta(seconds=1))
    start, end = ctx.start + delta, ctx.end + delta
    if alignDST:
        start, end = (t + _dst_offset(ctx.start, ctx.end, start, end) for t in (start, end))
    # graphite stamps the shifted series with the unshifted one's range; the renderer then
    # drops whatever values fall after that range's end
    original = evaluate(node, ctx)
    if not original:
        return []
    first = original[0]
    out = []
    for s in evaluate(node, Context(start, end, ctx.now, ctx.fetch)):
        shifted_end = first.end if resetEnd else s.end - s.start + first.start
        out.append(s.copy(name=f'timeShift({s.name}, "{timeShift}")', start=first.start, end=shifted_end))
    return _tag(out, timeShift=timeShift)


def _dst_offset(req_start: int, req_end: int, start: int, end: int) -> int:
    """alignDST: one hour either way when exactly one of the two ranges lies wholly in DST."""
    def dst(t: int) -> bool:
        return time.localtime(t).tm_isdst > 0
    if dst(req_start) and dst(req_end) and not dst(start) and not dst(end):
        return 3600
    if not dst(req_start) and not dst(req_end) and dst(start) and dst(end):
        return -3600
    return 0


@_register("constantLine")
def constant_line(ctx, value):
    value = float(value)
    step = max(1, (ctx.end - ctx.start) // 2)
    name = str(value)
    return [TimeSeries(name, ctx.start, ctx.end, step, [value, value, value], path_expression=name)]


@_register("sortByName")
def sort_by_name(ctx, series, natural=False, reverse=False):
    return sorted(_series_list(series), key=lambda s: s.name, reverse=bool(reverse))


@_register("limit")
def limit(ctx, series, n):
    return _series_list(series)[: int(n)]


@_register("seriesByTag", whole=True)
def series_by_tag(ctx, call):
    return ctx.fetch(call.text, ctx.start, ctx.end)


SERIES_BY_TAG = "seriesByTag("


def with_series_by_tag(fetch, find_series: Callable[[list[str]], list[str]]):
    """``fetch`` (a ``render.Fetcher``) that also takes ``seriesByTag(...)`` calls as path
    expressions, as graphite-web's store does: the quoted arguments are the tag expressions, the
    series ``find_series`` names are read together by exact name, and every one carries the call
    as its pathExpression. A bad expression is a RenderError."""

    def fetch_tagged(pattern: str, start: int, end: int) -> list:
        if not pattern.startswith(SERIES_BY_TAG):
            return fetch(pattern, start, end)
        try:
            call = parse(pattern)
        except ExprError as exc:
            raise RenderError(f"bad target: {exc}") from None
        exprs = [arg for arg in call.args if isinstance(arg, str)]
        try:
            paths = find_series(exprs)
        except ValueError as exc:
            raise RenderError(f"seriesByTag: {exc}") from None
        return sorted(fetch.exact(paths, pattern, start, end), key=lambda s: s.name)

    return fetch_tagged


__all__ = ["Context", "RenderError", "evaluate", "function_names", "with_series_by_tag"]
