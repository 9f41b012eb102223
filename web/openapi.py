"""The OpenAPI 3.1 description of every route: the source of truth for ``/api/docs`` and clients.

Built from the same constants the routes use (parameter names, enums,
limits), so a new filter or status shows up here without a second list to
keep in step. ``tests/test_api_openapi.py`` checks that every Flask rule is
documented and every documented path exists. :func:`to_oas30` gives the 3.0
dialect that OGC API - Features' ``oas30`` conformance class (and GDAL) read.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from geo_monitor import __version__
from geo_monitor.alerts import Confidence, Legality, Priority, Status
from geo_monitor.exports import FORMATS
from geo_monitor.store.outbox import EVENT_TYPES
from geo_monitor.validation import ECUADOR_BBOX
from web.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_LIST_ITEMS
from web.queries import CRS84, SUBSCRIPTION_FILTERS

REF = "#/components"
JSON = "application/json"
GEOJSON = "application/geo+json"
PROBLEM = "application/problem+json"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"{REF}/{kind}/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


def _enum(values: type) -> dict[str, Any]:
    return {"type": "string", "enum": [member.value for member in values]}


def _enum_list(name: str, values: type, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{what}: one or more of {', '.join(m.value for m in values)}, comma-separated.",
        "schema": {"type": "string", "maxLength": 2000},
        "style": "form",
        "explode": False,
        "example": list(values)[0].value,
    }


# --- schemas -------------------------------------------------------------------------

_STR = {"type": "string"}
_NUM = {"type": "number"}
_DATE = {"type": "string", "format": "date"}
_TIME = {"type": "string", "format": "date-time"}


def _schemas() -> dict[str, Any]:
    link = {
        "type": "object",
        "required": ["href", "rel"],
        "properties": {"href": _STR, "rel": _STR, "type": _STR, "title": _STR},
    }
    geometry = {
        "type": "object",
        "description": "GeoJSON Polygon or MultiPolygon in EPSG:4326 (lon, lat).",
        "required": ["type", "coordinates"],
        "properties": {"type": {"type": "string", "enum": ["Polygon", "MultiPolygon"]}, "coordinates": {"type": "array"}},
    }
    signature = {
        "type": "object",
        "description": "Evidence in the site's pixels.",
        "properties": {k: _NUM for k in ("vegetation_loss", "bare_soil", "water", "turbidity")},
    }
    context = {
        "type": "object",
        "description": "Where the site is, from the context layers (null when nothing applies).",
        "properties": {
            **{k: _nullable(_STR) for k in ("province", "concession_code", "concession_status", "protected_area",
                                            "indigenous_territory", "nearest_river")},
            "river_distance_m": _nullable(_NUM),
        },
    }
    provenance = {
        "type": "object",
        "properties": {
            "pipeline": _STR,
            "pipeline_version": _STR,
            "model_version": _nullable(_STR),
            "scene_ids": {"type": "array", "items": _STR},
            "job_id": _nullable(_STR),
        },
    }
    properties = {
        "type": "object",
        "description": "Every field of the alert (DESIGN.md), plus the workflow and the store's timestamps.",
        "required": ["id", "area_ha", "first_detected", "confidence", "score", "legality", "priority", "status",
                     "updated_at"],
        "properties": {
            "id": {"type": "string", "description": "Stable: reruns keep it."},
            "area_ha": _NUM,
            "pond_area_ha": _NUM,
            "first_detected": {**_DATE, "description": "First image showing the change (the datetime filter)."},
            "last_observed": _DATE,
            "confirmed_at": _nullable(_DATE),
            "confidence": _enum(Confidence),
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "signature": signature,
            "context": context,
            "legality": _enum(Legality),
            "priority": _enum(Priority),
            "provenance": provenance,
            "status": _enum(Status),
            "assignee": _nullable(_STR),
            "note": _nullable(_STR),
            "created_at": _TIME,
            "updated_at": {**_TIME, "description": "Last change; drives incremental polling."},
            "extra": {"type": "object"},
        },
    }
    feature = {
        "type": "object",
        "required": ["type", "id", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": _STR,
            "geometry": _ref("schemas", "Geometry"),
            "properties": _ref("schemas", "AlertProperties"),
            "links": {"type": "array", "items": _ref("schemas", "Link")},
        },
    }
    history = {
        "type": "object",
        "required": ["at", "actor", "kind"],
        "properties": {
            "id": {"type": "integer"},
            "alert_id": _STR,
            "at": _TIME,
            "actor": {"type": "string", "description": "key:<id>, user:<name> or pipeline:<name>@<version>"},
            "kind": {"type": "string", "enum": ["detection", "status", "assignment"]},
            "changes": {"type": "object", "description": "field -> [old, new]"},
            "note": _nullable(_STR),
            "run_id": _nullable(_STR),
        },
    }
    collection = {
        "type": "object",
        "required": ["type", "features", "numberReturned"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "numberMatched": {"type": "integer", "minimum": 0},
            "numberReturned": {"type": "integer", "minimum": 0},
            "timeStamp": _TIME,
            "links": {"type": "array", "items": _ref("schemas", "Link")},
            "features": {"type": "array", "items": _ref("schemas", "Alert")},
        },
    }
    page = copy.deepcopy(collection)
    page["required"] = ["type", "features", "numberMatched", "numberReturned", "cursor", "links"]
    page["properties"]["cursor"] = _nullable(
        {"type": "string", "description": "Send as `cursor` on the next poll: only later changes come back."}
    )
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details; `parameter` names the bad query parameter when there is one.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": _STR,
                "title": _STR,
                "status": {"type": "integer"},
                "detail": _STR,
                "instance": _STR,
                "parameter": _STR,
            },
        },
        "Link": link,
        "Geometry": geometry,
        "AlertProperties": properties,
        "Alert": feature,
        "AlertWithHistory": {
            "allOf": [_ref("schemas", "Alert"),
                      {"type": "object", "required": ["history"],
                       "properties": {"history": {"type": "array", "items": _ref("schemas", "HistoryEntry")}}}],
        },
        "HistoryEntry": history,
        "AlertPage": page,
        "FeatureCollection": collection,
        "AlertPatch": {
            "type": "object",
            "description": "Workflow: new -> under_review -> confirmed | dismissed | actioned; confirmed -> actioned. "
            "Dismissing needs a note.",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "status": _enum(Status),
                "note": {"type": "string", "maxLength": 2000},
                "assignee": _nullable({"type": "string", "maxLength": 2000}),
            },
        },
        "Principal": {
            "type": "object",
            "required": ["kind", "id", "name", "role"],
            "properties": {
                "kind": _STR,
                "id": _STR,
                "name": _STR,
                "role": {"type": "string", "enum": ["agent", "analyst", "admin", "partner"]},
                "provinces": _nullable({"type": "array", "items": _STR}),
                "csrf_token": {"type": "string", "description": "Session users: send as X-CSRF-Token on writes."},
            },
        },
        "LandingPage": {
            "type": "object",
            "required": ["links"],
            "properties": {"title": _STR, "description": _STR, "links": {"type": "array", "items": _ref("schemas", "Link")}},
        },
        "Conformance": {
            "type": "object",
            "required": ["conformsTo"],
            "properties": {"conformsTo": {"type": "array", "items": _STR}},
        },
        "Collection": {
            "type": "object",
            "required": ["id", "links"],
            "properties": {
                "id": _STR,
                "title": _STR,
                "description": _STR,
                "itemType": _STR,
                "crs": {"type": "array", "items": _STR},
                "storageCrs": _STR,
                "extent": {"type": "object"},
                "links": {"type": "array", "items": _ref("schemas", "Link")},
            },
        },
        "Collections": {
            "type": "object",
            "required": ["links", "collections"],
            "properties": {
                "links": {"type": "array", "items": _ref("schemas", "Link")},
                "collections": {"type": "array", "items": _ref("schemas", "Collection")},
            },
        },
        "Queryables": {"type": "object", "required": ["properties"], "properties": {"properties": {"type": "object"}}},
        "SubscriptionCreate": {
            "type": "object",
            "required": ["url"],
            "additionalProperties": False,
            "properties": {
                "url": {"type": "string", "format": "uri", "maxLength": 2000,
                        "description": "Where deliveries are POSTed (https:// in production)."},
                "filters": {
                    "type": "object",
                    "description": "As the query parameters of GET /api/v1/alerts.",
                    "additionalProperties": False,
                    "properties": {k: {"type": "string", "maxLength": 2000} for k in SUBSCRIPTION_FILTERS},
                },
                "event_types": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(EVENT_TYPES)}},
            },
        },
        "Subscription": {
            "type": "object",
            "required": ["id", "url", "active", "created_at"],
            "properties": {
                "id": _STR,
                "owner_key_id": _STR,
                "url": _STR,
                "filters": _nullable({"type": "object"}),
                "event_types": _nullable({"type": "array", "items": _STR}),
                "active": {"type": "boolean"},
                "created_at": _TIME,
                "secret": {"type": "string", "description": "whsec_...: only in the creation response."},
            },
        },
        "SubscriptionList": {
            "type": "object",
            "required": ["subscriptions"],
            "properties": {"subscriptions": {"type": "array", "items": _ref("schemas", "Subscription")}},
        },
        "ProcessSummary": {
            "type": "object",
            "required": ["id", "version", "links"],
            "properties": {"id": _STR, "title": _STR, "description": _STR, "version": _STR,
                           "jobControlOptions": {"type": "array", "items": _STR},
                           "links": {"type": "array", "items": _ref("schemas", "Link")}},
        },
        "ProcessList": {
            "type": "object",
            "required": ["processes", "links"],
            "properties": {"processes": {"type": "array", "items": _ref("schemas", "ProcessSummary")},
                           "links": {"type": "array", "items": _ref("schemas", "Link")}},
        },
        "Process": {
            "allOf": [_ref("schemas", "ProcessSummary"),
                      {"type": "object", "required": ["inputs", "outputs"],
                       "properties": {"inputs": {"type": "object", "description": "Each input: title, description, "
                                                 "minOccurs, maxOccurs and its JSON Schema."},
                                      "outputs": {"type": "object"}}}],
        },
        "Execute": {
            "type": "object",
            "required": ["inputs"],
            "additionalProperties": False,
            "properties": {"inputs": {
                "description": "The process's inputs, checked at once (a bad one is a 400): for `detect` and "
                               "`replay` those of `geo-monitor detect`, for `retrain` the training seeds and preset.",
                "anyOf": [_ref("schemas", "DetectInputs"), _ref("schemas", "RetrainInputs")],
            }},
        },
        "RetrainInputs": {
            "type": "object",
            "description": "Inputs of `retrain`: training areas built by the sample generator (limits in settings).",
            "additionalProperties": False,
            "properties": {
                "seeds": {"type": "array", "minItems": 1, "uniqueItems": True,
                          "items": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                          "description": "At most job_retrain_max_seeds; never the evaluation's (20240607, 7)."},
                "preset": {"type": "string", "description": "One of job_retrain_presets (default small)."},
            },
        },
        "DetectInputs": {
            "type": "object",
            "description": "Inputs of `detect` and `replay`: those of `geo-monitor detect`.",
            "required": ["bbox", "start", "end"],
            "additionalProperties": False,
            "properties": {
                "bbox": {"type": "array", "items": _NUM, "minItems": 4, "maxItems": 4,
                         "description": "[west, south, east, north] in degrees, inside Ecuador, at most "
                                        "job_max_area_km2."},
                "start": {**_DATE, "description": "Monitoring start."},
                "end": {**_DATE, "description": "Last day of imagery (on or after start)."},
                "baseline_start": {**_DATE, "description": "Before start; default 365 days before it."},
                "catalog": {"type": "string", "maxLength": 2000,
                            "description": "STAC catalog path or URL under the allowed roots/prefixes."},
                "context": {"type": "string", "maxLength": 2000,
                            "description": "Folder of context layers under the allowed roots."},
                "chunk_px": {"type": "integer", "minimum": 128, "maximum": 4096},
            },
        },
        "StatusInfo": {
            "type": "object",
            "description": "OGC API - Processes statusInfo, plus inputs, attempts, the summary (alert ids new / "
            "updated / unchanged) and, for one job, its log.",
            "required": ["jobID", "type", "status", "progress", "links"],
            "properties": {
                "jobID": _STR,
                "processID": _STR,
                "type": {"type": "string", "enum": ["process"]},
                "status": {"type": "string", "enum": ["accepted", "running", "successful", "failed", "dismissed"]},
                "message": _nullable(_STR),
                "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                "created": _TIME,
                "started": _nullable(_TIME),
                "finished": _nullable(_TIME),
                "updated": _TIME,
                "inputs": {"type": "object"},
                "requested_by": _STR,
                "attempts": {"type": "integer"},
                "max_attempts": {"type": "integer"},
                "next_attempt_at": _nullable(_TIME),
                "worker": _nullable(_STR),
                "cancel_requested": {"type": "boolean"},
                "error": _nullable(_STR),
                "summary": _nullable({"type": "object"}),
                "log": {"type": "array", "items": {"type": "object", "properties": {
                    "at": _TIME, "level": _STR, "message": _STR}}},
                "links": {"type": "array", "items": _ref("schemas", "Link")},
            },
        },
        "JobList": {
            "type": "object",
            "required": ["jobs", "links"],
            "properties": {"jobs": {"type": "array", "items": _ref("schemas", "StatusInfo")},
                           "links": {"type": "array", "items": _ref("schemas", "Link")}},
        },
        "DeliveryList": {
            "type": "object",
            "required": ["deliveries"],
            "properties": {"deliveries": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "integer"}, "event_type": _STR, "alert_id": _STR, "status": _STR,
                "attempts": {"type": "integer"}, "last_error": _nullable(_STR),
                "response_code": _nullable({"type": "integer"})}}}},
        },
    }


# --- parameters ----------------------------------------------------------------------


def _parameters() -> dict[str, Any]:
    w, s, e, n = ECUADOR_BBOX
    return {
        "bbox": {
            "name": "bbox",
            "in": "query",
            "description": "W,S,E,N in degrees (CRS84); alerts whose footprint intersects it. In /api/v1 it must "
            f"overlap Ecuador ({w:g},{s:g},{e:g},{n:g}).",
            "schema": {"type": "string", "maxLength": 2000},
            "example": "-77.7,-1.1,-77.5,-0.9",
        },
        "datetime": {
            "name": "datetime",
            "in": "query",
            "description": "RFC 3339 instant or interval on first_detected: `2024-02-01`, `2024-02-01/2024-03-01`, "
            "`../2024-03-01`, `2024-02-01/..`; instants count as their UTC day.",
            "schema": {"type": "string", "maxLength": 2000},
            "example": "2024-01-01/..",
        },
        "updated_since": {
            "name": "updated_since",
            "in": "query",
            "description": "Only alerts changed at or after this RFC 3339 date-time (with Z or an offset) or date.",
            "schema": {"type": "string", "maxLength": 2000},
            "example": "2024-03-01T00:00:00Z",
        },
        "status": _enum_list("status", Status, "Workflow status"),
        "confidence": _enum_list("confidence", Confidence, "Confidence"),
        "priority": _enum_list("priority", Priority, "Priority"),
        "legality": _enum_list("legality", Legality, "Legality"),
        "province": {
            "name": "province",
            "in": "query",
            "description": f"Province names (as in the alerts' context), comma-separated, at most {MAX_LIST_ITEMS}.",
            "schema": {"type": "string", "maxLength": 2000},
            "example": "Napo",
        },
        "limit": {
            "name": "limit",
            "in": "query",
            "description": f"Page size, 1..{MAX_LIMIT}.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        },
        "ogcLimit": {
            "name": "limit",
            "in": "query",
            "description": f"Page size; above {MAX_LIMIT} the maximum is used.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        },
        "offset": {
            "name": "offset",
            "in": "query",
            "description": "Skip this many matching alerts (the next/prev links carry it).",
            "schema": {"type": "integer", "minimum": 0, "default": 0},
        },
        "cursor": {
            "name": "cursor",
            "in": "query",
            "description": "Opaque, signed position from a previous response's `cursor` or `next` link.",
            "schema": {"type": "string", "maxLength": 512},
        },
        "format": {
            "name": "format",
            "in": "query",
            "description": "File format; Shapefile comes zipped with .prj (field names shortened, see docs).",
            "schema": {"type": "string", "enum": list(FORMATS), "default": "geojson"},
        },
        "f": {
            "name": "f",
            "in": "query",
            "description": "Response format; JSON only.",
            "schema": {"type": "string", "enum": ["json", "geojson"], "default": "json"},
        },
        "crs": {
            "name": "crs",
            "in": "query",
            "description": "Response CRS (OGC API - Features Part 2); only CRS84 is served.",
            "schema": {"type": "string", "enum": [CRS84]},
        },
        "bboxCrs": {
            "name": "bbox-crs",
            "in": "query",
            "description": "CRS of `bbox`; only CRS84 (lon/lat).",
            "schema": {"type": "string", "enum": [CRS84]},
        },
        "subscriptionId": {
            "name": "subscription_id",
            "in": "path",
            "required": True,
            "description": "A webhook subscription's id.",
            "schema": {"type": "string", "maxLength": 200},
        },
        "processId": {
            "name": "process_id",
            "in": "path",
            "required": True,
            "description": "A process id: `detect`, `replay` or `retrain`.",
            "schema": {"type": "string", "maxLength": 100},
        },
        "jobId": {
            "name": "job_id",
            "in": "path",
            "required": True,
            "description": "A job's id.",
            "schema": {"type": "string", "maxLength": 128},
        },
        "jobStatus": {
            "name": "status",
            "in": "query",
            "description": "Only jobs in these states: accepted, running, successful, failed, dismissed (comma-separated).",
            "schema": {"type": "string", "maxLength": 2000},
        },
        "jobLimit": {
            "name": "limit",
            "in": "query",
            "description": "How many jobs, newest first, 1..1000.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
        },
        "idempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "description": "Send the same key again (within this user's requests) and get the same job back.",
            "schema": {"type": "string", "maxLength": 255},
        },
        "alertId": {
            "name": "alert_id",
            "in": "path",
            "required": True,
            "description": "The alert's stable id.",
            "schema": {"type": "string", "maxLength": 128},
        },
    }


# --- responses -----------------------------------------------------------------------

_PROBLEMS = {
    "400": "Bad request: a parameter is malformed or unknown (`parameter` names it).",
    "401": "No credential, or the API key is unknown, revoked or expired.",
    "403": "The caller's role may not do this (or a session write without its CSRF token).",
    "404": "No such alert, job or process, or not one the caller may see.",
    "406": "Not acceptable.",
    "409": "Conflicts with the current state: a status change the alert's workflow does not allow, cancelling a "
    "finished job, an Idempotency-Key reused for other inputs.",
    "413": "The request body is too large.",
    "415": "The body is not JSON.",
    "422": "The body is JSON but its content is not acceptable.",
    "429": "Rate limit exceeded; `Retry-After` says when to try again.",
    "500": "The server failed; the error was logged.",
    "503": "Imagery is unavailable: the server cannot read its imagery catalog right now.",
}


def _responses() -> dict[str, Any]:
    out: dict[str, Any] = {
        f"Problem{code}": {"description": text, "content": {PROBLEM: {"schema": _ref("schemas", "Problem")}}}
        for code, text in _PROBLEMS.items()
    }
    out["NotModified"] = {"description": "Not modified: the `If-None-Match` ETag still matches."}
    return out


def _problems(*codes: str) -> dict[str, Any]:
    return {code: _ref("responses", f"Problem{code}") for code in ("400", "401", *codes, "429", "500")}


def _ok(schema: str, media: str = JSON, description: str = "OK", etag: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {media: {"schema": _ref("schemas", schema)}}}
    if etag:
        response["headers"] = {"ETag": {"description": "Strong ETag of the body.", "schema": _STR}}
    return response


def _params(*names: str) -> list[dict[str, str]]:
    return [_ref("parameters", name) for name in names]


def _file_schema(media_type: str) -> dict[str, Any]:
    """GeoJSON is a JSON document to clients (and schema checkers); the other formats are bytes."""
    if media_type.endswith("json"):
        return {"type": "object", "description": "GeoJSON FeatureCollection, columns flattened as in the other formats"}
    return {"type": "string", "format": "binary"}


_FILTERS = ("bbox", "datetime", "updated_since", "status", "confidence", "priority", "legality", "province")
_READ = [{"ApiKey": []}, {"Session": []}]


def _paths() -> dict[str, Any]:
    conditional = {"304": _ref("responses", "NotModified")}
    alerts_tag, ogc_tag, auth_tag, jobs_tag = ["alerts"], ["OGC API - Features"], ["login"], ["jobs"]
    return {
        "/api/v1/alerts": {
            "get": {
                "tags": alerts_tag,
                "operationId": "listAlerts",
                "summary": "Alerts, in polling order (updated_at, id), filtered and paged by cursor.",
                "parameters": _params(*_FILTERS, "limit", "cursor"),
                "responses": {"200": _ok("AlertPage", GEOJSON), **conditional, **_problems()},
            }
        },
        "/api/v1/alerts/{alert_id}": {
            "parameters": _params("alertId"),
            "get": {
                "tags": alerts_tag,
                "operationId": "getAlert",
                "summary": "One alert with its full history.",
                "responses": {"200": _ok("AlertWithHistory", GEOJSON), **conditional, **_problems("404")},
            },
            "patch": {
                "tags": alerts_tag,
                "operationId": "changeAlert",
                "summary": "Move an alert along the workflow and/or assign it (agent, analyst, admin).",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("schemas", "AlertPatch")}}},
                "responses": {
                    "200": _ok("AlertWithHistory", GEOJSON),
                    **_problems("403", "404", "409", "413", "415", "422"),
                },
            },
        },
        "/api/v1/alerts/export": {
            "get": {
                "tags": alerts_tag,
                "operationId": "exportAlerts",
                "summary": "Every alert matching the filters as one file.",
                "parameters": _params(*_FILTERS, "format"),
                "responses": {
                    "200": {
                        "description": "The file (attachment).",
                        "content": {spec.media_type: {"schema": _file_schema(spec.media_type)}
                                    for spec in FORMATS.values()},
                    },
                    **_problems(),
                },
            }
        },
        "/api/v1/webhooks": {
            "get": {
                "tags": ["webhooks"],
                "operationId": "listSubscriptions",
                "summary": "The caller's webhook subscriptions (an admin's: all), without secrets.",
                "responses": {"200": _ok("SubscriptionList"), **conditional, **_problems("403")},
            },
            "post": {
                "tags": ["webhooks"],
                "operationId": "createSubscription",
                "summary": "Subscribe a URL to alert events (partner or admin key); the secret is shown once.",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("schemas", "SubscriptionCreate")}}},
                "responses": {"201": _ok("Subscription", etag=False), **_problems("403", "413", "415", "422")},
            },
        },
        "/api/v1/webhooks/{subscription_id}": {
            "parameters": _params("subscriptionId"),
            "delete": {
                "tags": ["webhooks"],
                "operationId": "deleteSubscription",
                "summary": "Delete a subscription and its delivery log.",
                "responses": {"204": {"description": "Deleted."}, **_problems("403", "404")},
            },
        },
        "/api/v1/webhooks/{subscription_id}/deliveries": {
            "parameters": _params("subscriptionId"),
            "get": {
                "tags": ["webhooks"],
                "operationId": "listDeliveries",
                "summary": "The subscription's delivery log, newest first.",
                "responses": {"200": _ok("DeliveryList"), **conditional, **_problems("403", "404")},
            },
        },
        "/api/v1/processes": {
            "get": {
                "tags": jobs_tag,
                "operationId": "listProcesses",
                "summary": "The processes a job can run (analysts, admins).",
                "responses": {"200": _ok("ProcessList"), **conditional, **_problems("403")},
            }
        },
        "/api/v1/processes/{process_id}": {
            "parameters": _params("processId"),
            "get": {
                "tags": jobs_tag,
                "operationId": "describeProcess",
                "summary": "A process with its inputs described.",
                "responses": {"200": _ok("Process"), **conditional, **_problems("403", "404")},
            },
        },
        "/api/v1/processes/{process_id}/execution": {
            "parameters": _params("processId"),
            "post": {
                "tags": jobs_tag,
                "operationId": "execute",
                "summary": "Queue a job (always asynchronous); inputs are checked now. 201 with the job and Location.",
                "parameters": _params("idempotencyKey"),
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("schemas", "Execute")}}},
                "responses": {
                    "201": {**_ok("StatusInfo", etag=False), "description": "Queued (or, for a repeated "
                            "Idempotency-Key, the job queued the first time).",
                            "headers": {"Location": {"description": "The job's URL.", "schema": _STR}}},
                    **_problems("403", "404", "409", "413", "415", "422"),
                },
            },
        },
        "/api/v1/jobs": {
            "get": {
                "tags": jobs_tag,
                "operationId": "listJobs",
                "summary": "Jobs, newest first: status, progress, message.",
                "parameters": _params("jobStatus", "jobLimit"),
                "responses": {"200": _ok("JobList"), **conditional, **_problems("403")},
            }
        },
        "/api/v1/jobs/{job_id}": {
            "parameters": _params("jobId"),
            "get": {
                "tags": jobs_tag,
                "operationId": "getJob",
                "summary": "One job: status, progress, summary, links to the alerts it made or changed, log.",
                "responses": {"200": _ok("StatusInfo"), **conditional, **_problems("403", "404")},
            },
            "delete": {
                "tags": jobs_tag,
                "operationId": "dismissJob",
                "summary": "Cancel: a queued job is dismissed now, a running one stops within seconds.",
                "responses": {"200": _ok("StatusInfo"), **_problems("403", "404", "409")},
            },
        },
        "/jobs": {
            "get": {
                "tags": jobs_tag,
                "operationId": "jobsPage",
                "summary": "The analyst's page: reprocessing form, jobs with live progress, cancel (session login).",
                "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": _STR}}},
                              "303": {"description": "Not logged in: to /login."}, **_problems("403")},
            },
            "post": {
                "tags": jobs_tag,
                "operationId": "jobsPageSubmit",
                "summary": "The page's form: queue a detect job, back to the page.",
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                    "type": "object",
                    "required": ["west", "south", "east", "north", "start", "end"],
                    "properties": {**{k: _STR for k in ("west", "south", "east", "north", "start", "end",
                                                        "baseline_start", "idempotency_key", "csrf_token")}},
                }}}},
                "responses": {"303": {"description": "Queued: back to /jobs (or to /login)."},
                              "400": {"description": "The page again, saying which input is wrong.",
                                      "content": {"text/html": {"schema": _STR}}},
                              **{k: v for k, v in _problems("403", "413").items() if k != "400"}},
            },
        },
        "/jobs/{job_id}/cancel": {
            "parameters": _params("jobId"),
            "post": {
                "tags": jobs_tag,
                "operationId": "jobsPageCancel",
                "summary": "The page's cancel button.",
                "requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "properties": {"csrf_token": _STR}}}}},
                "responses": {"303": {"description": "Cancelled: back to /jobs (or to /login)."},
                              "404": {"description": "No such job (the page again).",
                                      "content": {"text/html": {"schema": _STR}}},
                              "409": {"description": "The job already finished (the page again).",
                                      "content": {"text/html": {"schema": _STR}}},
                              **_problems("403")},
            },
        },
        "/api/v1/me": {
            "get": {
                "tags": auth_tag,
                "operationId": "whoAmI",
                "summary": "The caller's identity and role (session users also get their CSRF token).",
                "responses": {"200": _ok("Principal", etag=False), **_problems()},
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "tags": ["docs"],
                "operationId": "openapi",
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {"application/vnd.oai.openapi+json;version=3.1":
                                                                      {"schema": {"type": "object"}}}},
                    **conditional,
                    **_problems(),
                },
            }
        },
        "/api/docs": {
            "get": {
                "tags": ["docs"],
                "operationId": "docsPage",
                "summary": "This document as an HTML page.",
                "security": [],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": _STR}}},
                              **_problems()},
            }
        },
        "/login": {
            "get": {
                "tags": auth_tag,
                "operationId": "loginForm",
                "summary": "Login form (carries the CSRF token).",
                "security": [],
                "parameters": [{"name": "next", "in": "query", "schema": _STR}],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": _STR}}},
                              **_problems()},
            },
            "post": {
                "tags": auth_tag,
                "operationId": "login",
                "summary": "Start a web session.",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["username", "password", "csrf_token"],
                                "properties": {"username": _STR, "password": _STR, "csrf_token": _STR, "next": _STR},
                            }
                        }
                    },
                },
                "responses": {"303": {"description": "Logged in; redirect to `next`."},
                              **_problems("403", "413")},
            },
        },
        "/logout": {
            "post": {
                "tags": auth_tag,
                "operationId": "logout",
                "summary": "End the web session (needs the CSRF token).",
                "security": [],
                "responses": {"204": {"description": "Logged out."}, **_problems("403")},
            }
        },
        "/ogc": {
            "get": {
                "tags": ogc_tag,
                "operationId": "ogcLanding",
                "summary": "Landing page.",
                "parameters": _params("f"),
                "responses": {"200": _ok("LandingPage"), **conditional, **_problems()},
            }
        },
        "/ogc/conformance": {
            "get": {
                "tags": ogc_tag,
                "operationId": "ogcConformance",
                "summary": "Conformance classes.",
                "parameters": _params("f"),
                "responses": {"200": _ok("Conformance"), **conditional, **_problems()},
            }
        },
        "/ogc/api": {
            "get": {
                "tags": ogc_tag,
                "operationId": "ogcServiceDesc",
                "summary": "This document in the OpenAPI 3.0 dialect.",
                "security": [],
                "parameters": _params("f"),
                "responses": {
                    "200": {"description": "OpenAPI 3.0", "content": {"application/vnd.oai.openapi+json;version=3.0":
                                                                      {"schema": {"type": "object"}}}},
                    **conditional,
                    **_problems(),
                },
            }
        },
        "/ogc/collections": {
            "get": {
                "tags": ogc_tag,
                "operationId": "ogcCollections",
                "summary": "The one collection: alerts.",
                "parameters": _params("f"),
                "responses": {"200": _ok("Collections"), **conditional, **_problems()},
            }
        },
        "/ogc/collections/alerts": {
            "get": {
                "tags": ogc_tag,
                "operationId": "ogcCollection",
                "summary": "The alerts collection: extent, CRS, links.",
                "parameters": _params("f"),
                "responses": {"200": _ok("Collection"), **conditional, **_problems()},
            }
        },
        "/ogc/collections/alerts/items": {
            "get": {
                "tags": ogc_tag,
                "operationId": "ogcItems",
                "summary": "Alerts as GeoJSON features, paged by offset with next/prev links.",
                "parameters": _params(*_FILTERS, "ogcLimit", "offset", "f", "crs", "bboxCrs"),
                "responses": {"200": _ok("FeatureCollection", GEOJSON), **conditional, **_problems()},
            }
        },
        "/ogc/collections/alerts/items/{alert_id}": {
            "get": {
                "tags": ogc_tag,
                "operationId": "ogcItem",
                "summary": "One alert.",
                "parameters": _params("alertId", "f"),
                "responses": {"200": _ok("Alert", GEOJSON), **conditional, **_problems("404")},
            }
        },
        "/ogc/collections/alerts/queryables": {
            "get": {
                "tags": ogc_tag,
                "operationId": "ogcQueryables",
                "summary": "Properties that can filter items (JSON Schema).",
                "parameters": _params("f"),
                "responses": {"200": _ok("Queryables", "application/schema+json"), **conditional, **_problems()},
            }
        },
    }


@cache
def _document() -> dict[str, Any]:
    from web.openapi_imagery import imagery_parameters, imagery_paths, imagery_schemas

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "geo-monitor alerts and jobs API",
            "version": __version__,
            "summary": "Candidate illegal gold-mining sites in Ecuador from Sentinel-2, for enforcement and partners.",
            "description": "Poll incrementally with `updated_since` once, then the `cursor` of each response; "
            "every error is RFC 9457 problem+json. See docs/partners.md.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "security": _READ,
        "tags": [{"name": "alerts"}, {"name": "webhooks"}, {"name": "jobs"}, {"name": "OGC API - Features"}, {"name": "login"},
                 {"name": "docs"}, {"name": "imagery"}],
        "paths": {**_paths(), **imagery_paths()},
        "components": {
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                           "description": "A key from `geo-monitor apikeys create`; only its hash is stored."},
                "Session": {"type": "apiKey", "in": "cookie", "name": "geo_monitor_session",
                            "description": "Web session from POST /login; writes also need X-CSRF-Token."},
            },
            "schemas": {**_schemas(), **imagery_schemas()},
            "parameters": {**_parameters(), **imagery_parameters()},
            "responses": _responses(),
        },
    }


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_document())


def to_oas30(document: dict[str, Any]) -> dict[str, Any]:
    """The same document in OpenAPI 3.0: ``type: [X, "null"]`` -> ``nullable``; 3.1-only keys dropped."""
    out = _downgrade(copy.deepcopy(document))
    out["openapi"] = "3.0.3"
    out["info"].pop("summary", None)
    out["info"]["license"].pop("identifier", None)
    return out


def _downgrade(node: Any) -> Any:
    if isinstance(node, list):
        return [_downgrade(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _downgrade(value) for key, value in node.items()}
    kind = out.get("type")
    if isinstance(kind, list):
        rest = [t for t in kind if t != "null"]
        out["type"] = rest[0]
        if "null" in kind:
            out["nullable"] = True
    if "$ref" in out and len(out) > 1:  # 3.0 ignores siblings of $ref
        out = {"$ref": out["$ref"]}
    return out
