"""The alerts API at ``/api/v1``: list (incremental polling), one alert, its workflow, exports.

Routes stay thin: parse the request (``web.queries``), call the store, shape
the response (``web.features``). Pages and single alerts are the store's
pre-rendered feature texts, joined into the body as they are. Polling order
is ``(updated_at, id)``; the store keeps ``updated_at`` strictly increasing
from one write to the next, so a client that resumes from the signed cursor
of the last alert it saw gets every later change exactly once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request

from geo_monitor.alerts import Status
from geo_monitor.errors import InvalidInputError, NotFoundError
from geo_monitor.exports import FORMATS, write_export
from geo_monitor.store.query import AlertQuery, FeaturePage, StoredAlert, StoredFeature
from web.auth import READ_ROLES, WORKFLOW_ROLES, actor_name, csrf_token, current_principal, require
from web.features import feature_with, history_entry
from web.params import check_known, encode_cursor, parse_format, single
from web.problems import Problem
from web.queries import EXPORT_PARAMS, LIST_PARAMS, filters_query, list_query, may_see, restrict
from web.responses import (GEOJSON, bytes_response, context, feature_page_response, json_response, link,
                           request_args, url_with)

api = Blueprint("api", __name__)

#: Longest alert id looked up (the store's column is 128).
MAX_ID = 128
#: Fields a PATCH may carry.
PATCH_FIELDS = frozenset({"status", "note", "assignee"})
#: Bytes per chunk when streaming an export file.
STREAM_CHUNK = 64 * 1024


def alert_page(query: AlertQuery) -> FeaturePage:
    """One page from the store, as stored feature texts (shared with /ogc)."""
    if query.provinces == frozenset():  # restricted to provinces the caller may not see: nothing
        return FeaturePage()
    return context().store.feature_page(query)


@api.get("/alerts")
@require(READ_ROLES, public=True)
def list_alerts() -> Response:
    args = request_args()
    check_known(args, LIST_PARAMS)
    ctx = context()
    query = restrict(list_query(args, ctx.secret_key), current_principal())
    page = alert_page(query)
    resume = page.last if page.last is not None else query.after
    # Keep this and send it as `cursor` next time: only alerts changed after it come back.
    cursor = None if resume is None else encode_cursor(resume, ctx.secret_key)
    links = [link(url_with(args), "self", GEOJSON)]
    if page.next_after is not None and cursor is not None:  # more follow: after this page's last alert
        links.append(link(url_with(args, cursor=cursor), "next", GEOJSON))
    members = {
        "type": "FeatureCollection",
        "numberMatched": page.number_matched,
        "numberReturned": len(page.features),
        "cursor": cursor,
        "links": links,
    }
    return feature_page_response(members, page)


def visible_alert(alert_id: str) -> StoredAlert:
    """The alert if it exists and the caller may see it; 404 otherwise (no hint that it exists)."""
    stored = None if len(alert_id) > MAX_ID else context().store.get_stored(alert_id)
    if stored is None or not may_see(stored.alert.context.province, current_principal()):
        raise Problem(404, f"no alert with id {alert_id[:MAX_ID]!r}")
    return stored


def visible_feature(alert_id: str) -> StoredFeature:
    """The alert's stored feature if it exists and the caller may see it; 404 otherwise (as visible_alert)."""
    found = None if len(alert_id) > MAX_ID else context().store.get_feature(alert_id)
    if found is None or not may_see(found.province, current_principal()):
        raise Problem(404, f"no alert with id {alert_id[:MAX_ID]!r}")
    return found


def _alert_with_history(alert_id: str) -> Response:
    feature = visible_feature(alert_id)
    history = [history_entry(entry) for entry in context().store.history(feature.id)]
    return bytes_response(feature_with(feature.text, history=history), mimetype=GEOJSON)


@api.get("/alerts/<alert_id>")
@require(READ_ROLES, public=True)
def get_alert(alert_id: str) -> Response:
    check_known(request_args(), ())
    return _alert_with_history(alert_id)


@api.patch("/alerts/<alert_id>")
@require(WORKFLOW_ROLES)
def patch_alert(alert_id: str) -> Response:
    check_known(request_args(), ())
    changes = _patch_body()
    stored = visible_alert(alert_id)
    store, actor = context().store, actor_name(current_principal())
    note = changes.get("note")
    if "assignee" in changes:
        store.assign(stored.alert.id, changes["assignee"], actor, note=None if "status" in changes else note)
    if "status" in changes:
        try:
            store.change_status(stored.alert.id, changes["status"], actor, note=note)
        except NotFoundError:
            raise  # 404, mapped in web.problems
        except InvalidInputError as exc:
            # The body was valid (checked above), so what is left is the workflow refusing this step.
            raise Problem(409, str(exc)) from None
    return _alert_with_history(alert_id)


def _patch_body() -> dict[str, Any]:
    """The PATCH document: ``status`` (with ``note``, needed to dismiss) and/or ``assignee``."""
    if not request.is_json:
        raise Problem(415, "send the changes as JSON (Content-Type: application/json)")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object such as {\"status\": \"under_review\"}")
    unknown = sorted(set(body) - PATCH_FIELDS)
    if unknown:
        raise Problem(422, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(PATCH_FIELDS))}")
    if not ({"status", "assignee"} & set(body)):
        raise Problem(422, "nothing to change: give status and/or assignee")
    for name in PATCH_FIELDS & set(body):
        value = body[name]
        if name != "status" and value is None:
            continue
        if not isinstance(value, str) or len(value) > 2000:
            raise Problem(422, f"{name} must be a string of at most 2000 characters", parameter=name)
    if "status" in body:
        allowed = {s.value for s in Status}
        if body["status"] not in allowed:
            raise Problem(422, f"status must be one of {', '.join(sorted(allowed))}", parameter="status")
        if body["status"] == Status.DISMISSED.value and not (body.get("note") or "").strip():
            raise Problem(422, "dismissing an alert needs a note saying why", parameter="note")
    return body


@api.get("/alerts/export")
@require(READ_ROLES, public=True)
def export_alerts() -> Response:
    args = request_args()
    check_known(args, EXPORT_PARAMS)
    fmt = parse_format(single(args, "format"), FORMATS, default="geojson")
    query = restrict(filters_query(args), current_principal())
    alerts = iter(()) if query.provinces == frozenset() else context().store.iter_alerts(query)
    folder = Path(tempfile.mkdtemp(prefix="geo-monitor-export-"))
    try:
        path = write_export(alerts, fmt, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    response = Response(_stream(path, folder), mimetype=FORMATS[fmt].media_type, direct_passthrough=True)
    response.headers["Content-Disposition"] = f'attachment; filename="alerts{FORMATS[fmt].suffix}"'
    response.headers["Content-Length"] = str(path.stat().st_size)
    return response


def _stream(path: Path, folder: Path) -> Iterator[bytes]:
    """The file in chunks; the temporary folder goes when the download ends or is cut."""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(STREAM_CHUNK):
                yield chunk
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@api.get("/me")
@require(READ_ROLES)
def me() -> Response:
    """Who the API thinks the caller is; session users also get the CSRF token their writes need."""
    check_known(request_args(), ())
    principal = current_principal()
    assert principal is not None  # require() without public lets no anonymous caller through
    body: dict[str, Any] = {
        "kind": principal.kind,
        "id": principal.id,
        "name": principal.name,
        "role": principal.role.value,
        "provinces": None if principal.provinces is None else sorted(principal.provinces),
    }
    if principal.kind == "user":
        body["csrf_token"] = csrf_token()
    response = json_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@api.get("/openapi.json")
def openapi_document() -> Response:
    from web.openapi import openapi

    check_known(request_args(), ())
    return json_response(openapi(), mimetype="application/vnd.oai.openapi+json;version=3.1")
