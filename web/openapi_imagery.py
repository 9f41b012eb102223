"""The OpenAPI description of the imagery routes (web/imagery.py), merged into ``web.openapi``'s document.

Kept beside the main document so that the imagery contract reads in one
place; built from the same constants as the routes (render names, tile sizes,
limits), so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from geo_monitor.chips import CHIP_WINDOW_DAYS
from geo_monitor.imagery import MAX_ZOOM, RENDERS, RESCALE_LIMITS, TILE_SIZES
from web.evidence_sheet import LANGUAGES
from web.imagery import CHANGE_MIN_ZOOM, MAX_SITES_PER_TILE, SCENES_DEFAULT_LIMIT, SCENES_MAX_LIMIT
from web.openapi import JSON, _ok, _params, _problems, _ref

PNG = "image/png"
_STR = {"type": "string"}
_NUM = {"type": "number"}
_RENDER_TEXT = "; ".join(f"`{name}`: {spec.title}" for name, spec in RENDERS.items())


def imagery_schemas() -> dict[str, Any]:
    scene = {
        "type": "object",
        "required": ["id", "datetime", "date", "bbox", "tiles"],
        "properties": {
            "id": {"type": "string", "description": "Scene (STAC item) id: the `scene_id` of the tile URLs."},
            "datetime": {"type": "string", "format": "date-time"},
            "date": {"type": "string", "format": "date"},
            "cloud_cover": {"type": ["number", "null"], "description": "The item's eo:cloud_cover (whole tile), %."},
            "platform": {"type": ["string", "null"]},
            "bbox": {"type": "array", "items": _NUM, "minItems": 4, "maxItems": 4},
            "tiles": {"type": "object", "description": "XYZ URL template per render ({z}/{x}/{y} to fill in).",
                      "additionalProperties": _STR},
        },
    }
    side = {
        "type": ["object", "null"],
        "description": "The chosen scene, or null when no scene within the window shows the chip's ground.",
        "required": ["scene_id", "date", "clear_fraction", "href"],
        "properties": {
            "scene_id": _STR,
            "datetime": {"type": "string", "format": "date-time"},
            "date": {"type": "string", "format": "date"},
            "cloud_cover": {"type": ["number", "null"]},
            "clear_fraction": {"type": "number", "minimum": 0, "maximum": 1,
                               "description": "Share of the chip's ground SCL calls clear (no cloud, shadow, "
                               "cirrus, saturation or no-data)."},
            "href": {"type": "string", "description": "The chip image (PNG)."},
        },
    }
    return {
        "Scene": scene,
        "SceneList": {
            "type": "object",
            "required": ["numberMatched", "numberReturned", "scenes", "renders"],
            "properties": {
                "numberMatched": {"type": "integer", "minimum": 0},
                "numberReturned": {"type": "integer", "minimum": 0},
                "renders": {"type": "object", "additionalProperties": _STR},
                "scenes": {"type": "array", "items": _ref("schemas", "Scene")},
            },
        },
        "ChipSide": side,
        "AlertChips": {
            "type": "object",
            "required": ["alert_id", "first_detected", "bbox", "before", "after"],
            "properties": {
                "alert_id": _STR,
                "first_detected": {"type": "string", "format": "date"},
                "bbox": {"type": "array", "items": _NUM, "minItems": 4, "maxItems": 4,
                         "description": "Ground the chips cover, W,S,E,N degrees."},
                "window_days": {"type": "integer"},
                "before": _ref("schemas", "ChipSide"),
                "after": _ref("schemas", "ChipSide"),
            },
        },
    }


def _path_int(name: str, what: str, maximum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": 0}
    if maximum is not None:
        schema["maximum"] = maximum
    return {"name": name, "in": "path", "required": True, "description": what, "schema": schema}


def imagery_parameters() -> dict[str, Any]:
    return {
        "sceneId": {"name": "scene_id", "in": "path", "required": True,
                    "description": "A scene id as GET /api/v1/scenes lists it (only scenes of the configured "
                    "catalog are served).", "schema": {"type": "string", "maxLength": 200}},
        "tileZ": _path_int("z", f"Zoom 0..{MAX_ZOOM} (WebMercatorQuad).", MAX_ZOOM),
        "tileX": _path_int("x", "Column, 0..2^z-1."),
        "tileY": _path_int("y", "Row from the north, 0..2^z-1."),
        "render": {"name": "render", "in": "query", "description": f"Band combination: {_RENDER_TEXT}.",
                   "schema": {"type": "string", "enum": list(RENDERS), "default": "truecolor"}},
        "rescale": {"name": "rescale", "in": "query", "style": "form", "explode": True,
                    "description": "titiler's rescale in reflectance: `min,max` once for every channel or once "
                    f"per channel (R, G, B), within {RESCALE_LIMITS[0]}..{RESCALE_LIMITS[1]}. Default per render.",
                    "schema": {"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 60}},
                    "example": ["0,0.25"]},
        "tilesize": {"name": "tilesize", "in": "query", "description": "Tile side in pixels (titiler's name).",
                     "schema": {"type": "integer", "enum": list(TILE_SIZES), "default": TILE_SIZES[0]}},
        "sceneBbox": {"name": "bbox", "in": "query",
                      "description": "W,S,E,N degrees; scenes whose footprint box intersects it (must overlap "
                      "Ecuador).", "schema": {"type": "string", "maxLength": 2000}, "example": "-77.6,-1.1,-77.4,-0.9"},
        "sceneDatetime": {"name": "datetime", "in": "query",
                          "description": "Acquisition day or interval (RFC 3339, e.g. `2024-01-01/2024-06-30`, "
                          "open ends `..`).", "schema": {"type": "string", "maxLength": 2000}},
        "maxCloudCover": {"name": "max_cloud_cover", "in": "query",
                          "description": "Only scenes with eo:cloud_cover at most this (percent).",
                          "schema": {"type": "number", "minimum": 0, "maximum": 100}},
        "scenesLimit": {"name": "limit", "in": "query", "description": "Most scenes returned, newest first.",
                        "schema": {"type": "integer", "minimum": 1, "maximum": SCENES_MAX_LIMIT,
                                   "default": SCENES_DEFAULT_LIMIT}},
        "lang": {"name": "lang", "in": "query", "description": "Language of the sheet.",
                 "schema": {"type": "string", "enum": list(LANGUAGES), "default": LANGUAGES[0]}},
    }


def _png(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "ETag": {"description": "Revalidate with If-None-Match (304 without rendering).", "schema": _STR},
            "Cache-Control": {"description": "How long the browser may keep it.", "schema": _STR},
        },
        "content": {PNG: {"schema": {"type": "string", "format": "binary"}}},
    }


def imagery_paths() -> dict[str, Any]:
    tag = ["imagery"]
    conditional = {"304": _ref("responses", "NotModified")}
    return {
        "/tiles/{scene_id}/{z}/{x}/{y}.png": {
            "get": {
                "tags": tag,
                "operationId": "sceneTile",
                "summary": "An XYZ tile of one scene, true colour or SWIR false colour (transparent where there "
                "is no data).",
                "parameters": _params("sceneId", "tileZ", "tileX", "tileY", "render", "rescale", "tilesize"),
                "responses": {"200": _png("PNG with alpha; fully transparent outside the scene."), **conditional,
                              **_problems("404", "503")},
            }
        },
        "/tiles/change/{z}/{x}/{y}.png": {
            "get": {
                "tags": tag,
                "operationId": "changeTile",
                "summary": "The alert-score layer: the alert polygons in the store filled by score (yellow "
                f"to dark red), with the alert list's filters; empty below zoom {CHANGE_MIN_ZOOM}, at most "
                f"{MAX_SITES_PER_TILE} alerts per tile. A partner key limited to provinces sees only those.",
                "parameters": _params("tileZ", "tileX", "tileY", "datetime", "status", "confidence", "priority",
                                      "legality", "province", "tilesize"),
                "responses": {"200": _png("PNG with alpha."), **conditional, **_problems()},
            }
        },
        "/api/v1/scenes": {
            "get": {
                "tags": tag,
                "operationId": "listScenes",
                "summary": "Scenes of the imagery catalog over an area and dates, newest first (for a date "
                "picker), with their tile URL templates.",
                "parameters": _params("sceneBbox", "sceneDatetime", "maxCloudCover", "scenesLimit"),
                "responses": {"200": _ok("SceneList"), **conditional, **_problems("503")},
            }
        },
        "/api/v1/alerts/{alert_id}/chips": {
            "parameters": _params("alertId"),
            "get": {
                "tags": tag,
                "operationId": "alertChips",
                "summary": "Which scenes the alert's before/after chips show: the clearest over the chip (by "
                f"SCL) before and after first_detected, within {CHIP_WINDOW_DAYS} days.",
                "responses": {"200": _ok("AlertChips", JSON), **conditional, **_problems("404", "503")},
            },
        },
        "/api/v1/alerts/{alert_id}/chips/before.png": {
            "parameters": _params("alertId"),
            "get": {
                "tags": tag,
                "operationId": "alertChipBefore",
                "summary": "The chip from the clearest scene before first_detected, with the alert outlined.",
                "parameters": _params("render"),
                "responses": {"200": _png("PNG, 320 px square."), **conditional, **_problems("404", "503")},
            },
        },
        "/api/v1/alerts/{alert_id}/chips/after.png": {
            "parameters": _params("alertId"),
            "get": {
                "tags": tag,
                "operationId": "alertChipAfter",
                "summary": "The chip from the clearest scene after first_detected, with the alert outlined.",
                "parameters": _params("render"),
                "responses": {"200": _png("PNG, 320 px square."), **conditional, **_problems("404", "503")},
            },
        },
        "/alerts/{alert_id}/sheet": {
            "parameters": _params("alertId"),
            "get": {
                "tags": tag,
                "operationId": "evidenceSheet",
                "summary": "A printable one-page evidence sheet: overview and before/after images, fields, "
                "coordinates (decimal, DMS, UTM, geo: link) and history; self-contained HTML.",
                "parameters": _params("lang"),
                "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": _STR}}},
                              **_problems("404", "503")},
            },
        },
    }
