"""The map viewer for enforcement agents: the page, its data routes, the alert panel and its workflow form.

Routes stay thin. The page (``/``) is server-rendered in the reader's
language and carries its configuration as a JSON data block (never inline
code: the CSP forbids it). Data for the map comes from:

- ``/map/points.bin`` (what the page reads: typed-array columns,
  ``web.point_binary``) and ``/map/points.json`` (the same as JSON): every
  alert matching the filters as compact points
  (``geo_monitor.store.map_points``), the same filter parameters as
  ``/api/v1/alerts``, cached per store version and gzipped
  (``web.point_sets``; the page's own request starts building it);
- ``/map/context/<layer>.geojson``: the context layers settings name;
- ``/map/alerts/<id>/panel``: the alert panel as an HTML fragment, and
  ``POST /map/alerts/<id>/status``: the workflow form (CSRF, role-checked,
  recorded in the alert's history by the store). The form works without
  the script too; with it, the script posts it and swaps the fragment.

Polygons at close zoom come from the partner API itself (``/api/v1/alerts``
with a bbox), with the session. MapLibre is served from the npm install
(``/vendor/maplibre-gl/...``), nothing from a CDN.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, url_for
from flask_babel import format_date, format_datetime, format_decimal, format_percent, get_locale
from flask_babel import gettext as _
from markupsafe import Markup

from geo_monitor.alerts import STATUS_TRANSITIONS, Status
from geo_monitor.coordinates import notations
from geo_monitor.errors import InvalidInputError
from geo_monitor.store.map_points import CODES, MapPoints
from geo_monitor.store.query import AlertQuery, StoredAlert
from web.api import visible_alert
from web.auth import (
    CSRF_FIELD,
    READ_ROLES,
    WORKFLOW_ROLES,
    actor_name,
    check_access,
    csrf_token,
    current_principal,
    require,
)
from web.compress import bytes_response
from web.context_layers import available_layers, layer_geojson
from web.csp import viewer_csp
from web.features import alert_feature
from web.i18n import LANG_COOKIE, LANGUAGE_NAMES, LANGUAGES
from web.params import check_known
from web.point_binary import encode_points
from web.point_sets import EncodedPoints, PointSetCache
from web.problems import Problem
from web.queries import FILTER_PARAMS, filters_query, restrict
from web.responses import context, request_args
from web.viewer_text import enum_labels, history_labels, layer_labels, script_strings

viewer = Blueprint("viewer", __name__, static_folder="static", static_url_path="/static",
                   template_folder="templates")

#: MapLibre files the page loads (its CSP build: no blob: workers, no eval).
VENDOR_FILES: dict[str, str] = {
    "maplibre-gl-csp.js": "text/javascript",
    "maplibre-gl-csp-worker.js": "text/javascript",
    "maplibre-gl.css": "text/css",
}
#: Longest note accepted with a status change (as the API).
MAX_NOTE = 2000
LANG_COOKIE_AGE = timedelta(days=365)


@viewer.after_request
def _viewer_headers(response: Response) -> Response:
    """The viewer's own CSP on every response of this blueprint (pages, fragments, data, static files)."""
    response.headers["Content-Security-Policy"] = viewer_csp(context().settings)
    return response


def init_viewer(app: Flask) -> None:
    """Register the viewer and its per-app cache of point sets."""
    app.extensions["geo_monitor_points"] = PointSetCache()
    app.jinja_env.globals.update(format_date=format_date, format_datetime=format_datetime,
                                 format_decimal=format_decimal, format_percent=format_percent)
    app.register_blueprint(viewer)


# --- the page -----------------------------------------------------------------------


def _login_redirect() -> Response:
    target = request.full_path.rstrip("?")
    return redirect(url_for("login.login_form", next=target), code=303)


@viewer.get("/")
def map_page() -> Response | str:
    try:
        principal = check_access(READ_ROLES, public=True)
    except Problem as problem:
        if problem.status == 401:
            return _login_redirect()
        raise
    _prepare_points(principal)
    settings = context().settings
    lang = str(get_locale() or "es")
    config = {
        "lang": lang,
        "csrfToken": csrf_token() if principal is not None and principal.kind == "user" else None,
        "canEdit": principal is not None and principal.role in WORKFLOW_ROLES,
        "contextLayers": available_layers(settings),
        "basemap": None if not settings.basemap_url else
        {"url": settings.basemap_url, "attribution": settings.basemap_attribution},
        "codes": CODES,
        "labels": enum_labels(),
        "layerLabels": layer_labels(),
        "strings": script_strings(),
        "filterParams": list(FILTER_PARAMS),
    }
    return render_template(
        "map.html",
        lang=lang,
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        labels=enum_labels(),
        layer_labels=layer_labels(),
        principal=principal,
        csrf_field=CSRF_FIELD,
        csrf=csrf_token(),
        config_json=Markup(_json_for_html(config)),
        next_path=request.full_path.rstrip("?"),
    )


def _json_for_html(value: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` block (no ``</script>`` breakout)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@viewer.get("/lang/<code>")
def set_language(code: str) -> Response:
    """Switch the language (a cookie) and go back to where the reader was."""
    if code not in LANGUAGES:
        raise Problem(404, f"no language {code[:10]!r}; available: {', '.join(LANGUAGES)}")
    target = request.args.get("next") or "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = "/"
    response = redirect(target, code=303)
    response.set_cookie(LANG_COOKIE, code, max_age=int(LANG_COOKIE_AGE.total_seconds()), httponly=True,
                        samesite="Lax", secure=context().settings.session_cookie_secure)
    return response


@viewer.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for it on every page (the login form too); a 404 there is a console error."""
    path = viewer.root_path + "/static/favicon.svg"
    with open(path, "rb") as handle:
        return bytes_response(handle.read(), "image/svg+xml", cache_control="public, max-age=86400")


# --- data for the map ------------------------------------------------------------------


#: The point set's encodings: typed-array columns (what the page reads) and JSON (for people and scripts).
POINT_FORMATS: dict[str, tuple[str, Callable[[MapPoints], bytes]]] = {
    "bin": ("application/octet-stream", encode_points),
    "json": ("application/json", lambda points: json.dumps(points.to_json(), separators=(",", ":"),
                                                            ensure_ascii=False).encode()),
}


@viewer.get("/map/points.bin")
@require(READ_ROLES, public=True)
def points_binary() -> Response:
    """Every alert matching the filters as typed-array columns (see ``web.point_binary``): the page's."""
    return _points_response("bin")


@viewer.get("/map/points.json")
@require(READ_ROLES, public=True)
def points() -> Response:
    """Every alert matching the filters as compact JSON columns (see ``geo_monitor.store.map_points``)."""
    return _points_response("json")


def _points_response(form: str) -> Response:
    args = request_args()
    check_known(args, FILTER_PARAMS)
    query = restrict(filters_query(args), current_principal())
    encoded = _points_payload(query, form)
    return bytes_response(encoded.payload, POINT_FORMATS[form][0], etag=encoded.etag, gzipped=encoded.gzipped)


def _points_job(query: AlertQuery, form: str) -> tuple[Hashable, Callable[[], bytes]]:
    """The cache key of ``query``'s point set (filters, store version, encoding) and how to build it."""
    store = context().store
    encode = POINT_FORMATS[form][1]
    return (query, store.version(), form), lambda: encode(store.map_points(query))


def _points_payload(query: AlertQuery, form: str) -> EncodedPoints:
    """The encoded point set for ``query``, reused while the store has not changed."""
    cache: PointSetCache = current_app.extensions["geo_monitor_points"]
    return cache.get(*_points_job(query, form))


def _prepare_points(principal: Any) -> None:
    """Start building the point set the page's script is about to ask for (see ``web.point_sets``)."""
    args = {name: values for name, values in request_args().items() if name in FILTER_PARAMS}
    try:
        query = restrict(filters_query(args), principal)
    except (Problem, ValueError):
        return  # the script's own request answers the bad filter with a problem
    cache: PointSetCache = current_app.extensions["geo_monitor_points"]
    cache.prepare(*_points_job(query, "bin"))


@viewer.get("/map/context/<layer>.geojson")
@require(READ_ROLES, public=True)
def context_layer(layer: str) -> Response:
    check_known(request_args(), ())
    payload = layer_geojson(context().settings, layer)
    if payload is None:
        raise Problem(404, f"no context layer {layer[:40]!r} is configured")
    return bytes_response(payload, "application/geo+json")


@viewer.get("/vendor/maplibre-gl/<name>")
def vendor(name: str) -> Response:
    """MapLibre from ``node_modules`` (installed from npm by ``make install``)."""
    if name not in VENDOR_FILES:
        raise Problem(404, f"no vendor file {name[:60]!r}")
    path = context().settings.frontend_dir / "maplibre-gl" / "dist" / name
    if not path.is_file():
        raise Problem(503, "the viewer's front-end libraries are not installed: run `make install` (npm ci)")
    return bytes_response(path.read_bytes(), VENDOR_FILES[name], cache_control="public, max-age=3600")


# --- the alert panel and its workflow ---------------------------------------------------


def _point_of(stored: StoredAlert) -> tuple[float, float]:
    """Where to send a patrol: the centroid when it lies on the site, else a point surely inside it."""
    geometry = stored.alert.geometry
    point = geometry.centroid if geometry.contains(geometry.centroid) else geometry.representative_point()
    return (point.x, point.y)


def render_panel(stored: StoredAlert, *, message: str | None = None, error: str | None = None,
                 status: int = 200) -> Response:
    principal = current_principal()
    store = context().store
    lon, lat = _point_of(stored)
    feature = alert_feature(stored)
    html = render_template(
        "panel.html",
        alert=stored.alert,
        props=feature["properties"],
        stored=stored,
        place=notations(lon, lat),
        history=store.history(stored.alert.id),
        history_labels=history_labels(),
        labels=enum_labels(),
        transitions=sorted(STATUS_TRANSITIONS[stored.status], key=list(Status).index),
        can_edit=principal is not None and principal.role in WORKFLOW_ROLES,
        csrf_field=CSRF_FIELD,
        csrf=csrf_token() if principal is not None and principal.kind == "user" else "",
        message=message,
        error=error,
    )
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@viewer.get("/map/alerts/<alert_id>/panel")
@require(READ_ROLES, public=True)
def panel(alert_id: str) -> Response:
    check_known(request_args(), ())
    return render_panel(visible_alert(alert_id))


@viewer.post("/map/alerts/<alert_id>/status")
@require(WORKFLOW_ROLES)
def change_status(alert_id: str) -> Response:
    """The workflow form: a new status with a note; recorded with who and when by the store."""
    stored = visible_alert(alert_id)
    new_status = request.form.get("status", "")
    note = (request.form.get("note") or "").strip() or None
    error = _status_form_error(new_status, note)
    status = 422
    if error is None:
        try:
            context().store.change_status(stored.alert.id, new_status, actor_name(current_principal()), note=note)
        except InvalidInputError:
            error = _("This status cannot follow the current one.")
            status = 409
    if request.headers.get("X-Fragment") != "1":  # a plain form post (no script): back to the map
        if error is not None:
            raise Problem(status, error)
        return redirect(url_for("viewer.map_page", alert=stored.alert.id), code=303)
    fresh = visible_alert(alert_id)
    if error is not None:
        return render_panel(fresh, error=error, status=status)
    return render_panel(fresh, message=_("Status saved."))


def _status_form_error(new_status: str, note: str | None) -> str | None:
    if new_status not in {s.value for s in Status}:
        return _("Choose a status.")
    if note is not None and len(note) > MAX_NOTE:
        return _("The note is too long (at most %(n)d characters).", n=MAX_NOTE)
    if new_status == Status.DISMISSED.value and note is None:
        return _("Dismissing an alert needs a note saying why.")
    return None
