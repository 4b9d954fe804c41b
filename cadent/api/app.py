"""The graphite HTTP API as a Flask application: ``create_app(settings)``."""

from __future__ import annotations

import functools
import html
import json
import logging
import re
import time
from collections.abc import Callable

from flask import Flask, Response, current_app, request

from cadent.api import render as rendering
from cadent.api.carbonlink import CarbonLinkPool
from cadent.api.finders.whisper import FindTimeout, PatternError, WhisperFinder
from cadent.api.functions import RenderError, function_names, with_series_by_tag
from cadent.api.settings import ApiSettings
from cadent.api.tagdb import TagDB
from cadent.api.timeparse import TimeParseError, parse_range, parse_time, timezone_named

log = logging.getLogger(__name__)

VERSION = "1.1.8"
_TRUE = ("1", "true", "yes", "on")
_ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_JSONP_CALLBACK = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*", re.ASCII)
_FORMATS = ("json", "csv", "raw", "pickle")


def _bad_request(reason: str, targets=None) -> Response:
    """graphite-web's 400, counted in ``badRequests``. The body is graphite-web's text/html
    with ``&``, ``<`` and ``>`` escaped, so no request can put markup into it."""
    current_app.extensions["cadent"]["counters"]["badRequests"] += 1
    log.info("400 for %s: %s", request.path, reason[:300])
    body = f"Invalid parameters ({reason})"
    if targets:
        body += "; targets: " + ", ".join(f'"{t}"' for t in targets)
    return Response(html.escape(body, quote=False), status=400, mimetype="text/html")


def _flag(name: str) -> bool:
    return request.values.get(name, "").lower() in _TRUE


def _max_data_points(value: str | None) -> int:
    """graphite-web's rule: only an all-digit ``maxDataPoints`` counts (0: no limit); anything
    else is ignored. ValueError for a number too long to convert."""
    if not value or not (value.isascii() and value.isdigit()):
        return 0
    try:
        return int(value)
    except ValueError:
        raise ValueError("maxDataPoints is too large") from None


def _refused_pattern(exc: PatternError, targets=None) -> Response:
    """The 400 for a glob beyond the limits or past the time limit, counted and logged."""
    counters = current_app.extensions["cadent"]["counters"]
    counters["findTimeouts" if isinstance(exc, FindTimeout) else "patternsRefused"] += 1
    log.warning("%s refused: %s", request.path, exc)
    return _bad_request(str(exc), targets)


def _json_response(body: str) -> Response:
    jsonp = request.values.get("jsonp")
    if jsonp:
        return Response(f"{jsonp}({body})", mimetype="text/javascript")
    return Response(body, mimetype="application/json")


def _last(name: str, source=None) -> str | None:
    """The last value of a request parameter (in ``source``, default query string then form),
    as Django's QueryDict gives it."""
    values = (request.values if source is None else source).getlist(name)
    return values[-1] if values else None


def _repeated(name: str) -> list[str]:
    """``name`` given once or more, else jQuery's ``name[]``."""
    return request.values.getlist(name) or request.values.getlist(name + "[]")


def _required(value, what: str):
    """``value``, or graphite-web's 400 when the request lacks it."""
    if not value:
        raise ValueError(f"no {what} specified")
    return value


def _tag_view(*methods: str) -> Callable:
    """graphite-web's JSON tag views: another method is an empty 405; the result is JSON
    (``pretty`` indents and sorts keys); ValueError is a 400 and anything else a 500, both
    ``{"error": message}``."""

    def deco(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if request.method not in methods:
                return Response(status=405)
            status = 200
            try:
                result = view(*args, **kwargs)
            except ValueError as exc:
                result, status = {"error": str(exc)}, 400
            except Exception as exc:  # the database failed: say so, as graphite-web does
                log.exception("tag request %s failed", request.path)
                result, status = {"error": str(exc)}, 500
            pretty = bool(_last("pretty"))
            body = json.dumps(result, indent=2 if pretty else None, sort_keys=pretty)
            return Response(body, status=status, mimetype="application/json")

        return wrapped

    return deco


def create_app(settings: ApiSettings) -> Flask:
    """A ready Flask app serving ``settings.whisper_dirs`` (+ CarbonLink merge)."""
    app = Flask("cadent.api")
    finder, fetcher_class = WhisperFinder(settings.whisper_dirs), rendering.Fetcher
    if settings.database == "cassandra":
        from cadent.api.finders.cassandra import cassandra_reading

        finder, fetcher_class = cassandra_reading(settings.cassandra)
    pool = CarbonLinkPool(
        settings.carbonlink_hosts,
        timeout_s=settings.carbonlink_timeout_s,
        retry_delay_s=settings.carbonlink_retry_delay_s,
        replication_factor=settings.replication_factor,
        hash_type=settings.carbonlink_hashing_type,
        carbon_prefix=settings.carbon_metric_prefix,
    )
    tagdb = TagDB(settings.tagdb_path)
    counters = {"badRequests": 0, "patternsRefused": 0, "findTimeouts": 0}
    app.extensions["cadent"] = {"settings": settings, "finder": finder, "carbonlink": pool,
                                "tagdb": tagdb, "counters": counters}
    cache_query = pool.query if pool.enabled else None

    def tag_call(method: Callable, *args):
        """A tag database call, off the gevent loop."""
        return rendering.run_blocking(method, *args)

    def find_series(exprs: list[str]) -> list[str]:
        return tag_call(tagdb.find_series, exprs)

    @app.before_request
    def check_jsonp():
        """A ``jsonp`` callback is echoed into the body: only a JavaScript name path is taken."""
        jsonp = request.values.get("jsonp")
        if jsonp and not request.path.startswith("/tags") and not _JSONP_CALLBACK.fullmatch(jsonp):
            return _bad_request("jsonp must be a JavaScript identifier path such as cb or a.b_1")
        return None

    def deadline() -> float:
        return time.monotonic() + settings.request_time_limit_s

    def find(pattern: str, leaves_only: bool = False) -> list:
        return rendering.find_nodes(finder, pattern, leaves_only, deadline())

    def request_now() -> int:
        value = request.values.get("now")
        if value:
            return parse_time(value, time.time(), timezone_named(request.values.get("tz") or settings.time_zone))
        return int(time.time())

    @app.route("/render", methods=["GET", "POST"])
    @app.route("/render/", methods=["GET", "POST"])
    def render_view():
        targets = request.values.getlist("target") + request.values.getlist("target[]")
        fmt = request.values.get("format", "json")
        if fmt not in _FORMATS:
            return _bad_request(f"Unsupported format {fmt[:100]!r}; this API serves json, csv, raw and pickle")
        try:
            tz = timezone_named(request.values.get("tz") or settings.time_zone)
            now = request_now()
            start, end = parse_range(request.values.get("from"), request.values.get("until"), now, tz)
            max_points = _max_data_points(request.values.get("maxDataPoints"))
        except (TimeParseError, ValueError) as exc:
            return _bad_request(str(exc))
        fetcher = fetcher_class(finder, now, cache_query, deadline())
        fetch = with_series_by_tag(fetcher, find_series)
        try:
            series = rendering.evaluate_targets(targets, start, end, now, fetch)
        except PatternError as exc:
            return _refused_pattern(exc, targets)
        except (RenderError, TimeParseError) as exc:
            return _bad_request(str(exc), targets)
        if fmt == "pickle":
            return Response(rendering.to_pickle(series), mimetype="application/pickle")
        if fmt == "raw":
            return Response(rendering.to_raw(series), mimetype="text/plain")
        if fmt == "csv":
            return Response(rendering.to_csv(series, tz), mimetype="text/csv")
        return _json_response(
            rendering.to_json(series, max_points, _flag("noNullPoints"), _flag("pretty"))
        )

    @app.route("/metrics/find", methods=["GET", "POST"])
    @app.route("/metrics/find/", methods=["GET", "POST"])
    def find_view():
        query = request.values.get("query")
        if not query:
            return _bad_request("Missing required parameter 'query'")
        fmt = request.values.get("format", "treejson")
        leaves_only = _flag("leavesOnly")
        wildcards = _flag("wildcards")
        base_path = query.rsplit(".", 1)[0] + "." if "." in query else ""
        if fmt == "completer":
            query = query.replace("..", "*.")
            if not query.endswith("*"):
                query += "*"
        # graphite-web orders matches by node name (stable), json by path
        try:
            nodes = sorted(find(query, leaves_only), key=lambda n: n.name)
        except PatternError as exc:
            return _refused_pattern(exc)
        if fmt == "pickle":
            import pickle

            body = []
            for node in nodes:
                item = {"path": node.path, "is_leaf": node.is_leaf}
                if node.is_leaf:
                    item["intervals"] = finder.intervals(node)
                body.append(item)
            return Response(pickle.dumps(body, protocol=2), mimetype="application/pickle")
        if fmt == "json":
            items = []
            for node in sorted(nodes, key=lambda n: n.path):
                item = {"path": node.path, "is_leaf": node.is_leaf}
                if node.is_leaf:
                    item["intervals"] = [{"start": s, "end": e} for s, e in finder.intervals(node)]
                items.append(item)
            return _json_response(json.dumps(items))
        if fmt == "completer":
            metrics = [
                {"path": n.path + ("" if n.is_leaf else "."), "name": n.name, "is_leaf": "1" if n.is_leaf else "0"}
                for n in nodes
            ]
            if wildcards and len(metrics) > 1:
                metrics.append({"name": "*"})
            return _json_response(json.dumps({"metrics": metrics}))
        if fmt == "nodelist":
            try:
                position = int(request.values.get("position", -1))
            except ValueError:
                return _bad_request("position must be an integer")
            names = set()
            for n in nodes:
                parts = n.path.split(".")
                if -len(parts) <= position < len(parts):
                    names.add(parts[position])
            return _json_response(json.dumps({"nodes": sorted(names)}))
        if fmt != "treejson":
            return _bad_request(f"Invalid value for 'format': {fmt}")
        return _json_response(json.dumps(tree_json(nodes, base_path, wildcards)))

    @app.route("/metrics/expand", methods=["GET", "POST"])
    @app.route("/metrics/expand/", methods=["GET", "POST"])
    def expand_view():
        queries = request.values.getlist("query")
        if not queries:
            return _bad_request("Missing required parameter 'query'")
        leaves_only = _flag("leavesOnly")
        try:
            per_query = {q: sorted({n.path for n in find(q, leaves_only)}) for q in queries}
        except PatternError as exc:
            return _refused_pattern(exc)
        if _flag("groupByExpr"):
            return _json_response(json.dumps({"results": per_query}))
        return _json_response(json.dumps({"results": sorted({p for ps in per_query.values() for p in ps})}))

    @app.route("/metrics/index.json", methods=["GET", "POST"])
    @app.route("/metrics/index.json/", methods=["GET", "POST"])
    def index_view():
        return _json_response(json.dumps(finder.all_leaves()))

    @app.route("/version", methods=["GET"])
    @app.route("/version/", methods=["GET"])
    def version_view():
        return Response(VERSION + "\n", mimetype="text/html")

    @app.route("/functions", methods=["GET"])
    @app.route("/functions/", methods=["GET"])
    def functions_view():
        return _json_response(json.dumps({name: {"name": name} for name in function_names()}))

    @app.route("/events/get_data", methods=["GET"])
    def events_view():
        return _json_response("[]")

    @app.route("/tags/tagSeries", methods=_ANY_METHOD)
    @_tag_view("POST")
    def tag_series_view():
        return tag_call(tagdb.tag_series, _required(_last("path"), "path"))

    @app.route("/tags/tagMultiSeries", methods=_ANY_METHOD)
    @_tag_view("POST")
    def tag_multi_series_view():
        return tag_call(tagdb.tag_multi_series, _required(_repeated("path"), "paths"))

    @app.route("/tags/delSeries", methods=_ANY_METHOD)
    @_tag_view("POST")
    def del_series_view():
        return tag_call(tagdb.del_series, _required(_repeated("path"), "path"))

    @app.route("/tags/findSeries", methods=_ANY_METHOD)
    @_tag_view("GET", "POST")
    def find_series_view():
        return find_series(_required(_repeated("expr"), "tag expressions"))

    @app.route("/tags", methods=_ANY_METHOD)
    @app.route("/tags/", methods=_ANY_METHOD)
    @_tag_view("GET")
    def tag_list_view():
        return tag_call(tagdb.list_tags, _last("filter", request.args), _last("limit", request.args))

    @app.route("/tags/<path:tag>", methods=_ANY_METHOD)
    @_tag_view("GET")
    def tag_details_view(tag: str):
        return tag_call(tagdb.get_tag, tag, _last("filter"), _last("limit"))

    @app.route("/tags/autoComplete/tags", methods=_ANY_METHOD)
    @_tag_view("GET", "POST")
    def auto_complete_tags_view():
        return tag_call(tagdb.auto_complete_tags, _repeated("expr"), _last("tagPrefix"), _last("limit"))

    @app.route("/tags/autoComplete/values", methods=_ANY_METHOD)
    @_tag_view("GET", "POST")
    def auto_complete_values_view():
        return tag_call(tagdb.auto_complete_values, _repeated("expr"), _required(_last("tag"), "tag"),
                        _last("valuePrefix"), _last("limit"))

    return app


def _flags(is_leaf: bool) -> dict:
    flag = 0 if is_leaf else 1
    return {"allowChildren": flag, "expandable": flag, "leaf": 1 - flag}


def tree_json(nodes, base_path: str, wildcards: bool = False) -> list[dict]:
    """graphite's treejson: ids are ``base_path`` (the query minus its last node) + name,
    one entry per name (first wins), branches before leaves, a leading ``*`` on request."""
    items: list[dict] = []
    if wildcards and len(nodes) > 1:
        items.append({"text": "*", "id": base_path + "*", **_flags(all(n.is_leaf for n in nodes))})
    seen: set[str] = set()
    branches, leaves = [], []
    for node in nodes:
        if node.name in seen:
            continue
        seen.add(node.name)
        item = {"text": node.name, "id": base_path + node.name, **_flags(node.is_leaf)}
        (leaves if node.is_leaf else branches).append(item)
    return items + branches + leaves


__all__ = ["VERSION", "create_app", "tree_json"]
