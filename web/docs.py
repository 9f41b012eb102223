"""``/api/docs``: the OpenAPI document rendered as one self-contained HTML page (no scripts, no CDN).

Server-rendered from :func:`web.openapi.openapi`, so the page can never
disagree with the machine-readable document; it loads on a weak connection
and works without JavaScript.
"""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Blueprint, Response

from web.openapi import openapi
from web.params import check_known
from web.responses import request_args

docs = Blueprint("docs", __name__)

_STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem;line-height:1.4}
code,pre{background:#f3f3f3;padding:0 .2rem}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:.25rem .4rem;text-align:left;vertical-align:top}
h3{margin-top:2rem}.m{font-weight:bold;text-transform:uppercase}"""


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target  # type: ignore[no-any-return]


def _parameters_table(document: dict[str, Any], parameters: list[dict[str, Any]]) -> str:
    if not parameters:
        return ""
    rows = []
    for raw in parameters:
        p = _resolve(document, raw)
        schema = p.get("schema", {})
        kind = schema.get("type", "")
        if "enum" in schema:
            kind = " | ".join(str(v) for v in schema["enum"])
        rows.append(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
            f"<td>{escape(str(kind))}</td><td>{escape(p.get('description', ''))}</td></tr>"
        )
    return "<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>" + "".join(rows) + "</table>"


def _responses_list(document: dict[str, Any], responses: dict[str, Any]) -> str:
    items = []
    for code, raw in responses.items():
        response = _resolve(document, raw)
        items.append(f"<li><code>{escape(code)}</code> {escape(response.get('description', ''))}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def render(document: dict[str, Any]) -> str:
    """The whole page for ``document``."""
    info = document["info"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{escape(info['title'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(info['title'])} <small>{escape(info['version'])}</small></h1>",
        f"<p>{escape(info.get('description', ''))}</p>",
        "<p>Machine-readable: <a href='/api/v1/openapi.json'>/api/v1/openapi.json</a> (OpenAPI 3.1). "
        "Authentication: send your key in the <code>X-API-Key</code> header.</p>",
    ]
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            parts.append(f"<h3 id='{escape(operation.get('operationId', ''))}'><span class='m'>{escape(method)}</span> "
                         f"<code>{escape(path)}</code></h3><p>{escape(operation.get('summary', ''))}</p>")
            parts.append(_parameters_table(document, shared + operation.get("parameters", [])))
            parts.append(_responses_list(document, operation.get("responses", {})))
    parts.append("<h2 id='problems'>Errors</h2><p>Every error is <code>application/problem+json</code> "
                 "(RFC 9457): <code>type</code>, <code>title</code>, <code>status</code>, <code>detail</code>, "
                 "<code>instance</code>, and <code>parameter</code> when a query parameter is at fault.</p>")
    for code, raw in document["components"]["responses"].items():
        if code.startswith("Problem"):
            slug = _resolve(document, raw)
            parts.append(f"<p id='problem-{escape(code[7:])}'><code>{escape(code[7:])}</code> "
                         f"{escape(slug['description'])}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


@docs.get("/api/docs")
def docs_page() -> Response:
    check_known(request_args(), ())
    return Response(render(openapi()), mimetype="text/html")
