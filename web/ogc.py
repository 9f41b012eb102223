"""OGC API - Features (Part 1 core + GeoJSON + OAS 3.0) at ``/ogc``, one collection: ``alerts``.

What QGIS, ArcGIS and GDAL's OAPIF driver need to load the alerts as a layer
with no plug-in: landing page, conformance, collection metadata, items with
``bbox``/``datetime``/``limit``/``offset`` and ``next``/``prev`` links, single
items and queryables. ``datetime`` filters ``first_detected``. The alert
filters of ``/api/v1`` (``status``, ``priority``, ...) work here too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, url_for

from geo_monitor.alerts import Confidence, Legality, Priority, Status
from geo_monitor.validation import ECUADOR_BBOX
from web.api import alert_page, visible_feature
from web.auth import READ_ROLES, current_principal, require
from web.features import feature_with, iso
from web.params import check_known, parse_format, single
from web.queries import CRS84, OGC_ITEMS_PARAMS, ogc_query, restrict
from web.responses import (GEOJSON, bytes_response, feature_page_response, json_response, link, request_args,
                           url_with)

ogc = Blueprint("ogc", __name__)

COLLECTION = "alerts"
TRS = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
OAS30 = "application/vnd.oai.openapi+json;version=3.0"
#: Page size when a client gives no ``limit`` (OGC's example default is 10; GIS clients page anyway).
DEFAULT_LIMIT = 100
CONFORMANCE: tuple[str, ...] = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
)
#: Every OGC response may be asked for as JSON with ``f``; there is no HTML view (yet).
FORMATS = ("json", "geojson")


def _meta_args() -> None:
    """Metadata routes take only ``f``."""
    args = request_args()
    check_known(args, ("f",))
    parse_format(single(args, "f"), FORMATS, default="json", name="f")


def _url(endpoint: str, **values: Any) -> str:
    return url_for(endpoint, _external=True, **values)


@ogc.get("", strict_slashes=False)
@require(READ_ROLES, public=True)
def landing() -> Response:
    _meta_args()
    body = {
        "title": "geo-monitor: illegal mining alerts in Ecuador",
        "description": "Candidate illegal gold-mining sites detected in Sentinel-2 imagery, as OGC API - Features.",
        "links": [
            link(_url("ogc.landing"), "self"),
            link(_url("ogc.conformance"), "conformance"),
            link(_url("ogc.collections"), "data"),
            link(_url("ogc.service_desc"), "service-desc", OAS30),
            link(_url("docs.docs_page"), "service-doc", "text/html"),
        ],
    }
    return json_response(body)


@ogc.get("/conformance")
@require(READ_ROLES, public=True)
def conformance() -> Response:
    _meta_args()
    return json_response({"conformsTo": list(CONFORMANCE)})


@ogc.get("/api")
def service_desc() -> Response:
    """The OpenAPI document in the 3.0 dialect that the oas30 conformance class names (public, no data)."""
    from web.openapi import openapi, to_oas30

    _meta_args()
    return json_response(to_oas30(openapi()), mimetype=OAS30)


def _collection() -> dict[str, Any]:
    return {
        "id": COLLECTION,
        "title": "Mining alerts",
        "description": "One feature per candidate mining site; ranked by priority; datetime filters first_detected.",
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "extent": {
            "spatial": {"bbox": [list(ECUADOR_BBOX)], "crs": CRS84},
            # Sentinel-2's first images: no alert can be older.
            "temporal": {"interval": [["2015-06-23T00:00:00Z", None]], "trs": TRS},
        },
        "links": [
            link(_url("ogc.collection"), "self"),
            link(_url("ogc.items"), "items", GEOJSON),
            link(_url("ogc.queryables"), QUERYABLES_REL, "application/schema+json"),
        ],
    }


@ogc.get("/collections")
@require(READ_ROLES, public=True)
def collections() -> Response:
    _meta_args()
    return json_response({"links": [link(_url("ogc.collections"), "self")], "collections": [_collection()]})


@ogc.get(f"/collections/{COLLECTION}")
@require(READ_ROLES, public=True)
def collection() -> Response:
    _meta_args()
    return json_response(_collection())


@ogc.get(f"/collections/{COLLECTION}/items")
@require(READ_ROLES, public=True)
def items() -> Response:
    args = request_args()
    check_known(args, OGC_ITEMS_PARAMS)
    parse_format(single(args, "f"), FORMATS, default="json", name="f")
    query = restrict(ogc_query(args, DEFAULT_LIMIT), current_principal())
    page = alert_page(query)
    offset = query.offset or 0
    links = [link(url_with(args), "self", GEOJSON), link(_url("ogc.collection"), "collection")]
    if offset + len(page.features) < page.number_matched:
        links.append(link(url_with(args, offset=offset + query.limit), "next", GEOJSON))
    if offset > 0:
        links.append(link(url_with(args, offset=max(0, offset - query.limit)), "prev", GEOJSON))
    members = {
        "type": "FeatureCollection",
        "timeStamp": iso(datetime.now(timezone.utc).replace(microsecond=0)),
        "numberMatched": page.number_matched,
        "numberReturned": len(page.features),
        "links": links,
    }
    response = feature_page_response(members, page)
    response.headers["Content-Crs"] = f"<{CRS84}>"
    return response


@ogc.get(f"/collections/{COLLECTION}/items/<alert_id>")
@require(READ_ROLES, public=True)
def item(alert_id: str) -> Response:
    _meta_args()
    links = [link(_url("ogc.item", alert_id=alert_id), "self", GEOJSON), link(_url("ogc.collection"), "collection")]
    return bytes_response(feature_with(visible_feature(alert_id).text, links=links), mimetype=GEOJSON)


def _enum(values: type) -> dict[str, Any]:
    return {"type": "string", "enum": [member.value for member in values]}


@ogc.get(f"/collections/{COLLECTION}/queryables")
@require(READ_ROLES, public=True)
def queryables() -> Response:
    _meta_args()
    body = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _url("ogc.queryables"),
        "type": "object",
        "title": "Mining alerts",
        "properties": {
            "geometry": {"format": "geometry-any", "description": "bbox filter: W,S,E,N in CRS84"},
            "first_detected": {"type": "string", "format": "date", "description": "datetime filter"},
            "status": _enum(Status),
            "confidence": _enum(Confidence),
            "priority": _enum(Priority),
            "legality": _enum(Legality),
            "province": {"type": "string"},
        },
        "additionalProperties": False,
    }
    return json_response(body, mimetype="application/schema+json")

