"""A minimal, real STAC API over loopback HTTP, for tests only.

Serves the items of a static catalog folder with STAC API 1.0 core,
collections/features and item search: ``/``, ``/conformance``,
``/collections``, ``/collections/<id>``, ``/collections/<id>/items``,
``/collections/<id>/items/<item>``, ``/search`` (GET and POST) with ``bbox``,
``datetime``, ``collections``, ``ids``, ``limit``, pagination through ``next``
links, and optionally the ``query`` extension. Pages are small on purpose
(``page_cap``) so that clients must follow ``next`` links. Items are served
in the order they were found, not by date. Every request is logged in
``server.requests`` so tests can check what a client sent.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pystac.utils
from flask import Flask, Response, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

CORE = "https://api.stacspec.org/v1.0.0/core"
ITEM_SEARCH = "https://api.stacspec.org/v1.0.0/item-search"
COLLECTIONS = "https://api.stacspec.org/v1.0.0/collections"
FEATURES = "https://api.stacspec.org/v1.0.0/ogcapi-features"
QUERY = "https://api.stacspec.org/v1.0.0/item-search#query"
_GEOJSON = "application/geo+json"


def load_folder(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Collections and items found in a static catalog folder, asset hrefs made absolute local paths."""
    collections, items = [], []
    for path in sorted(folder.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("type") == "Collection":
            collections.append(doc)
        elif doc.get("type") == "Feature":
            for asset in doc.get("assets", {}).values():
                asset["href"] = pystac.utils.make_absolute_href(asset["href"], str(path))
            items.append(doc)
    return collections, items


def _parse_time(text: str | None) -> datetime | None:
    if text in (None, "", ".."):
        return None
    value = pystac.utils.str_to_datetime(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _interval(value: str | None) -> tuple[datetime | None, datetime | None]:
    if not value:
        return None, None
    if "/" in value:
        lo, hi = value.split("/", 1)
        return _parse_time(lo), _parse_time(hi)
    t = _parse_time(value)
    return t, t


_OPS = {
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


class SearchParams:
    """Item-search parameters parsed once from GET args or a POST body."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        bbox = raw.get("bbox")
        if isinstance(bbox, str):
            bbox = [float(v) for v in bbox.split(",")]
        self.bbox = [float(v) for v in bbox] if bbox else None
        collections = raw.get("collections")
        self.collections = collections.split(",") if isinstance(collections, str) else collections
        ids = raw.get("ids")
        self.ids = ids.split(",") if isinstance(ids, str) else ids
        self.start, self.end = _interval(raw.get("datetime"))
        query = raw.get("query")
        self.query = json.loads(query) if isinstance(query, str) else query
        self.limit = int(raw.get("limit") or 10)
        self.token = int(raw.get("token") or 0)

    def matches(self, item: Mapping[str, Any], use_query: bool) -> bool:
        props = item["properties"]
        if self.collections and item.get("collection") not in self.collections:
            return False
        if self.ids and item["id"] not in self.ids:
            return False
        if self.bbox:
            w, s, e, n = item["bbox"]
            qw, qs, qe, qn = self.bbox
            if w > qe or e < qw or s > qn or n < qs:
                return False
        when = _parse_time(props.get("datetime"))
        if self.start and when < self.start or self.end and when > self.end:
            return False
        if use_query and self.query:
            for key, ops in self.query.items():
                value = props.get(key)
                if value is None or not all(_OPS[op](value, arg) for op, arg in ops.items()):
                    return False
        return True


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # test output stays readable
        return None


class StacApiServer:
    """The app plus its werkzeug server thread; use as a context manager."""

    def __init__(
                self,
        collections: list[dict[str, Any]],
        items: list[dict[str, Any]],
        *,
        page_cap: int = 2,
        query: bool = False,
        core_only: bool = False,
    ) -> None:
        self.collections = {c["id"]: c for c in collections}
        self.items = items
        self.page_cap = page_cap
        self.query = query
        self.core_only = core_only  # STAC API core only: no item search, browse by links
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="stac-api", daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    @classmethod
    def from_folder(cls, folder: Path, **kw: Any) -> StacApiServer:
        collections, items = load_folder(folder)
        return cls(collections, items, **kw)

    def __enter__(self) -> StacApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- responses ---------------------------------------------------------------------

    def conformance(self) -> list[str]:
        if self.core_only:
            return [CORE]
        return [CORE, ITEM_SEARCH, COLLECTIONS, FEATURES] + ([QUERY] if self.query else [])

    def _search_links(self) -> list[dict[str, Any]]:
        if self.core_only:
            return []
        return [
            {"rel": "search", "href": f"{self.url}/search", "type": _GEOJSON, "method": "GET"},
            {"rel": "search", "href": f"{self.url}/search", "type": _GEOJSON, "method": "POST"},
        ]

    def _item_out(self, item: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(item)
        cid = out.get("collection")
        out["links"] = [
            {"rel": "self", "href": f"{self.url}/collections/{cid}/items/{out['id']}", "type": _GEOJSON},
            {"rel": "collection", "href": f"{self.url}/collections/{cid}", "type": "application/json"},
            {"rel": "root", "href": f"{self.url}/", "type": "application/json"},
        ]
        return out

    def _collection_out(self, coll: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(coll)
        out["links"] = [
            {"rel": "self", "href": f"{self.url}/collections/{coll['id']}", "type": "application/json"},
            {"rel": "items", "href": f"{self.url}/collections/{coll['id']}/items", "type": _GEOJSON},
            {"rel": "root", "href": f"{self.url}/", "type": "application/json"},
            *[
                {"rel": "item", "href": f"{self.url}/collections/{coll['id']}/items/{i['id']}", "type": _GEOJSON}
                for i in self.items
                if i.get("collection") == coll["id"]
            ],
        ]
        return out

    def _page(self, params: SearchParams, base: str, method: str, body: dict[str, Any] | None) -> dict[str, Any]:
        found = [i for i in self.items if params.matches(i, self.query)]
        size = max(1, min(params.limit, self.page_cap))
        page = found[params.token : params.token + size]
        links = [{"rel": "root", "href": f"{self.url}/", "type": "application/json"}]
        nxt = params.token + size
        if nxt < len(found):
            if method == "POST":
                links.append({"rel": "next", "href": base, "method": "POST", "body": {**(body or {}), "token": nxt}, "merge": False})
            else:
                args = {k: v for k, v in request.args.items() if k != "token"}
                links.append({"rel": "next", "href": f"{base}?{urlencode({**args, 'token': nxt})}", "type": _GEOJSON})
        return {
            "type": "FeatureCollection",
            "features": [self._item_out(i) for i in page],
            "links": links,
            "numberMatched": len(found),
            "numberReturned": len(page),
        }

    def _app(self) -> Flask:
        app = Flask("test-stac-api")

        @app.before_request
        def _log() -> None:
            body = request.get_json(silent=True) if request.method == "POST" else None
            self.requests.append((request.method, request.path, dict(body or request.args)))

        @app.get("/")
        def landing() -> Response:
            return jsonify(
                {
                    "type": "Catalog",
                    "stac_version": "1.0.0",
                    "id": "test-stac-api",
                    "description": "geo-monitor test STAC API",
                    "conformsTo": self.conformance(),
                    "links": [
                        {"rel": "self", "href": f"{self.url}/", "type": "application/json"},
                        {"rel": "root", "href": f"{self.url}/", "type": "application/json"},
                        {"rel": "conformance", "href": f"{self.url}/conformance", "type": "application/json"},
                        {"rel": "data", "href": f"{self.url}/collections", "type": "application/json"},
                        *self._search_links(),
                        *[
                            {"rel": "child", "href": f"{self.url}/collections/{cid}", "type": "application/json"}
                            for cid in self.collections
                        ],
                    ],
                }
            )

        @app.get("/conformance")
        def conformance() -> Response:
            return jsonify({"conformsTo": self.conformance()})

        @app.get("/collections")
        def collections() -> Response:
            return jsonify({"collections": [self._collection_out(c) for c in self.collections.values()], "links": []})

        @app.get("/collections/<cid>")
        def collection(cid: str) -> Response | tuple[Response, int]:
            if cid not in self.collections:
                return jsonify({"code": "NotFound", "description": f"no collection {cid}"}), 404
            return jsonify(self._collection_out(self.collections[cid]))

        @app.get("/collections/<cid>/items")
        def collection_items(cid: str) -> Response | tuple[Response, int]:
            if cid not in self.collections:
                return jsonify({"code": "NotFound", "description": f"no collection {cid}"}), 404
            params = SearchParams({**request.args, "collections": cid})
            return jsonify(self._page(params, f"{self.url}/collections/{cid}/items", "GET", None))

        @app.get("/collections/<cid>/items/<item_id>")
        def item(cid: str, item_id: str) -> Response | tuple[Response, int]:
            for it in self.items:
                if it["id"] == item_id and it.get("collection") == cid:
                    return jsonify(self._item_out(it))
            return jsonify({"code": "NotFound", "description": f"no item {item_id}"}), 404

        @app.route("/search", methods=["GET", "POST"])
        def search() -> Response | tuple[Response, int]:
            if self.core_only:
                return jsonify({"code": "NotFound", "description": "no item search here"}), 404
            body = request.get_json(silent=True) if request.method == "POST" else None
            try:
                params = SearchParams(body if body is not None else request.args)
            except (ValueError, TypeError) as exc:
                return jsonify({"code": "BadRequest", "description": str(exc)}), 400
            return jsonify(self._page(params, f"{self.url}/search", request.method, body))

        return app
