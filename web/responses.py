"""Response helpers shared by the blueprints: JSON with a strong ETag, links, the request's arguments.

Feature pages arrive as bytes already (stored texts, joined by
:func:`feature_page_response`) and go through :func:`bytes_response`
without being parsed or encoded again; other bodies use Flask's JSON
provider (its handling of dates and the like is what clients know).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import Response, current_app, g, json, request

from geo_monitor.store.query import FeaturePage
from web import WebContext
from web.features import feature_collection

GEOJSON = "application/geo+json"


def context() -> WebContext:
    return current_app.extensions["geo_monitor"]  # type: ignore[no-any-return]


def request_args() -> dict[str, list[str]]:
    return request.args.to_dict(flat=False)


def json_response(body: Any, *, mimetype: str = "application/json", status: int = 200) -> Response:
    """``body`` as JSON with a strong ETag of its bytes; ``If-None-Match`` that matches -> 304, no body."""
    return bytes_response(json.dumps(body).encode(), mimetype=mimetype, status=status)


def bytes_response(payload: bytes, *, mimetype: str = "application/json", status: int = 200,
                   fingerprint: bytes | None = None) -> Response:
    """Encoded JSON ``payload`` with a strong ETag; ``If-None-Match`` that matches -> 304, no body.

    The ETag hashes ``fingerprint`` when given (bytes that change whenever
    the payload does, and are much shorter: see :func:`feature_page_response`),
    else the payload itself (SHA-256 of a 220 kB page costs ~0.15 ms).
    """
    etag = hashlib.sha256(payload if fingerprint is None else fingerprint).hexdigest()[:32]
    if status == 200 and request.if_none_match.contains(etag):
        response = Response(status=304)
        response.set_etag(etag)
        return response
    response = Response(payload, status=status, mimetype=mimetype)
    response.set_etag(etag)
    return response


def feature_page_response(members: dict[str, Any], page: FeaturePage) -> Response:
    """A page of stored features as a GeoJSON FeatureCollection with ``members`` (numberMatched, links, ...).

    Its ETag hashes the members and the features' digests
    (``geo_monitor.store.features.feature_digest``, one hash of each text),
    which change whenever the body does, instead of the ~220 kB body itself.
    """
    head = orjson.dumps(members)
    fingerprint = b"%d:%b%b" % (len(head), head, page.digests)
    return bytes_response(feature_collection(head, page.features), mimetype=GEOJSON, fingerprint=fingerprint)


def url_with(args: dict[str, list[str]], drop: Iterable[str] = (), **replace: str | int) -> str:
    """This request's URL with some parameters dropped or replaced (for self/next/prev links)."""
    pairs = [(k, v) for k, values in args.items() if k not in replace and k not in drop for v in values]
    pairs += [(k, str(v)) for k, v in replace.items()]
    query = urlencode(pairs, safe=",:/")
    return _base_url() + (f"?{query}" if query else "")


def _base_url() -> str:
    """``request.base_url``, worked out once per request (werkzeug rebuilds it on every access)."""
    base = g.get("base_url")
    if base is None:
        base = g.base_url = request.base_url
    return base  # type: ignore[no-any-return]


def link(href: str, rel: str, type_: str = "application/json", title: str | None = None) -> dict[str, str]:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out
