"""The OpenAPI document is complete and true: every route documented, every documented path served."""

from __future__ import annotations

import re

from api_support import Api, api, problem  # noqa: F401  (fixture)

from web.openapi import openapi, to_oas30

#: Routes that are not part of the API (Flask's static files).
UNDOCUMENTED = {"/static/<path:filename>"}
#: The map viewer's own routes (web/viewer.py): the browser UI and the data only it reads, not a partner
#: contract (documented in docs/viewer.md; tested by tests/test_viewer.py and the browser tests).
UNDOCUMENTED |= {"/", "/favicon.ico", "/lang/<code>", "/vendor/maplibre-gl/<name>", "/map/points.json",
                 "/map/points.bin", "/map/context/<layer>.geojson", "/map/alerts/<alert_id>/panel",
                 "/map/alerts/<alert_id>/status"}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _walk(node, found: list) -> None:
    if isinstance(node, dict):
        if "$ref" in node:
            found.append(node["$ref"])
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def test_every_route_is_documented_and_every_documented_path_exists(api: Api) -> None:
    document = api.get("/api/v1/openapi.json", key=None).get_json()
    assert document["openapi"] == "3.1.0"
    routes: dict[str, set[str]] = {}
    for rule in api.app.url_map.iter_rules():
        if rule.rule in UNDOCUMENTED:
            continue
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        routes.setdefault(_openapi_path(rule.rule).rstrip("/") or "/", set()).update(methods)
    documented = {path: {m for m in item if m != "parameters"} for path, item in document["paths"].items()}
    assert routes == documented
    assert any(path.startswith("/api/v1/") for path in documented)


def test_every_reference_resolves_and_every_parameter_is_used() -> None:
    document = openapi()
    refs: list[str] = []
    _walk(document["paths"], refs)
    _walk(document["components"], refs)
    for ref in refs:
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    used = {ref.rsplit("/", 1)[1] for ref in refs if "/parameters/" in ref}
    assert used == set(document["components"]["parameters"])


def test_documented_query_parameters_are_the_accepted_ones(api: Api) -> None:
    """Each operation's query parameters are exactly what the route accepts: others get a 400."""
    document = openapi()
    params = document["components"]["parameters"]
    listed = {params[ref["$ref"].rsplit("/", 1)[1]]["name"]
              for ref in document["paths"]["/api/v1/alerts"]["get"]["parameters"]}
    assert listed == {"bbox", "datetime", "updated_since", "status", "confidence", "priority", "legality",
                      "province", "limit", "cursor"}
    for name in listed:
        response = api.get(f"/api/v1/alerts?{name}=%20%20bad%20%20")
        assert response.status_code in (200, 400)
        if response.status_code == 400:
            assert response.get_json()["parameter"] == name


def test_oas30_dialect_for_ogc_clients(api: Api) -> None:
    old = api.get("/ogc/api", key=None).get_json()
    assert old["openapi"] == "3.0.3"
    text = str(old)
    assert "'null'" not in text
    assert old["components"]["schemas"]["AlertProperties"]["properties"]["note"] == {"type": "string",
                                                                                     "nullable": True}
    assert to_oas30(openapi()) == old


def test_docs_page_renders_every_operation(api: Api) -> None:
    page = api.get("/api/docs", key=None)
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    # self-contained: no scripts, stylesheets, images or frames loaded from anywhere
    for tag in ("<script", "<link", "<img", "<iframe", "src="):
        assert tag not in html
    for path, item in openapi()["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                assert f"id='{operation['operationId']}'" in html, (method, path)
    assert "updated_since" in html and "problem+json" in html
    problem(api.get("/api/docs?x=1", key=None), 400)
