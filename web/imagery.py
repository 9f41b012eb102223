"""Map imagery over HTTP: scene tiles, the alert-score tiles, alert chips, the scene list and the evidence sheet.

Routes stay thin: parse and check the request, look the scene up in the
catalog index (the allow-list: a request names a scene id, never a path or
URL), call :mod:`geo_monitor.imagery` / :mod:`geo_monitor.chips`, shape the
response. Imagery of a scene never changes, so tiles and chips carry an ETag
computed before any pixel is read (a revalidation costs no rendering) and may
be cached by the browser; the score layer changes with the store, so its
ETag is the hash of its bytes and it is cached briefly.

The score layer (``/tiles/change``) is drawn from the **alert polygons'
scores in the store**, not from the per-pixel change state: the store is what
every other view shows (the same alerts, statuses and filters), it applies a
partner's province limits, and it is the same on SQLite and PostGIS, while the
Zarr state exists per processing grid only on the machine that ran the
pipeline and holds unscored candidates.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timezone
from itertools import islice
from typing import Any, Final
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, render_template, request
from flask.blueprints import BlueprintSetupState

from geo_monitor.chips import CHIP_WINDOW_DAYS, ChipChoice, ChipScene, Side, choose_chip_scenes
from geo_monitor.errors import NotFoundError
from geo_monitor.gdal_env import configure_gdal
from geo_monitor.imagery import (
    MAX_ZOOM,
    RENDERER_VERSION,
    RENDERS,
    TILE_SIZES,
    ChipArea,
    TileAddress,
    chip_rgba,
    encode_jpeg,
    parse_rescale,
    render_chip,
    render_score_tile,
    render_tile,
    tile_lonlat_bounds,
    transparent_png,
)
from geo_monitor.scene_catalog import SceneCatalog
from geo_monitor.scenes import Scene
from geo_monitor.store.query import StoredAlert
from web.api import visible_alert
from web.auth import READ_ROLES, current_principal, require
from web.evidence_sheet import (
    CSP,
    LABELS,
    LANGUAGES,
    SheetImage,
    image_caption,
    jpeg_data_uri,
    overview_area,
    sheet_context,
)
from web.params import ParameterError, check_known, parse_bbox_param, parse_datetime_interval, parse_format, single
from web.queries import filters_query, restrict
from web.responses import context, json_response, request_args

imagery = Blueprint("imagery", __name__)

EXTENSION: Final = "geo_monitor_imagery"
PNG: Final = "image/png"
#: Scene imagery never changes: browsers may keep tiles and chips a day (private: the caller authenticated).
IMAGERY_CACHE: Final = "private, max-age=86400"
#: The score layer follows the store: a minute is short enough for a status change to show.
CHANGE_CACHE: Final = "private, max-age=60"
#: Below this zoom a site is far smaller than a pixel and a tile could cover thousands: the layer is empty
#: there (the map shows alerts as points or clusters at those zooms).
CHANGE_MIN_ZOOM: Final = 8
#: Most sites drawn on one score tile (a bound on the work one request can cause).
MAX_SITES_PER_TILE: Final = 20_000
#: Scenes listed by /api/v1/scenes: newest first, this many unless ``limit`` says otherwise.
SCENES_DEFAULT_LIMIT: Final = 100
SCENES_MAX_LIMIT: Final = 1000
#: Chip choices kept in memory (each is a few small values; choosing reads SCL of up to a year of scenes).
CHIP_CACHE_SIZE: Final = 2048
#: Longest tile coordinate accepted as text (2**24 has 8 digits).
_MAX_COORD_DIGITS: Final = 9

TILE_PARAMS: Final = ("render", "rescale", "tilesize")
CHANGE_PARAMS: Final = ("datetime", "status", "confidence", "priority", "legality", "province", "tilesize")
SCENES_PARAMS: Final = ("bbox", "datetime", "max_cloud_cover", "limit")
CHIP_PARAMS: Final = ("render",)
SHEET_PARAMS: Final = ("lang",)


@dataclass
class ImageryState:
    """Per-app imagery state: the catalog index and the chip choices already made."""

    catalog: SceneCatalog
    chips: OrderedDict[tuple[Any, ...], ChipChoice]
    lock: threading.Lock


@imagery.record_once
def _setup(state: BlueprintSetupState) -> None:
    app: Flask = state.app
    settings = app.extensions["geo_monitor"].settings
    configure_gdal()  # before the first read: GDAL reads its options once per process
    app.extensions[EXTENSION] = ImageryState(
        catalog=SceneCatalog(settings.resolved_stac_url, settings.stac_collection,
                             ttl_s=settings.imagery_catalog_ttl_s),
        chips=OrderedDict(),
        lock=threading.Lock(),
    )


def _state() -> ImageryState:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- request parsing


def _tile(z: str, x: str, y: str) -> TileAddress:
    """z/x/y path segments as a checked tile address (any problem is a 400 naming the segment)."""
    values = {}
    for name, text in (("z", z), ("x", x), ("y", y)):
        if not text.isascii() or not text.isdigit() or len(text) > _MAX_COORD_DIGITS:
            raise ParameterError(name, f"must be a non-negative integer; got {text[:20]!r}")
        values[name] = int(text)
    if values["z"] > MAX_ZOOM:
        raise ParameterError("z", f"zoom {values['z']} is out of range 0..{MAX_ZOOM}")
    for name in ("x", "y"):
        if values[name] >= 2 ** values["z"]:
            raise ParameterError(name, f"{values[name]} is out of range 0..{2 ** values['z'] - 1} at zoom {values['z']}")
    return TileAddress(**values)


def _tilesize(args: Mapping[str, list[str]]) -> int:
    text = single(args, "tilesize")
    if text is None:
        return TILE_SIZES[0]
    return int(parse_format(text, [str(s) for s in TILE_SIZES], name="tilesize"))


def _render_name(args: Mapping[str, list[str]]) -> str:
    return parse_format(single(args, "render"), list(RENDERS), default="truecolor", name="render")


def _rescale(args: Mapping[str, list[str]]) -> tuple[tuple[float, float], ...] | None:
    values = args.get("rescale") or []
    if sum(len(v) for v in values) > 200:
        raise ParameterError("rescale", "is too long")
    try:
        return parse_rescale(values)
    except ValueError as exc:
        raise ParameterError("rescale", str(exc).removeprefix("rescale: ")) from None


def _scene(scene_id: str) -> Scene:
    return _state().catalog.get(scene_id)


# --------------------------------------------------------------------------- responses


def _etag(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _not_modified(etag: str, cache_control: str) -> Response | None:
    if request.if_none_match.contains(etag):
        response = Response(status=304)
        response.set_etag(etag)
        response.headers["Cache-Control"] = cache_control
        return response
    return None


def _png(data: bytes, etag: str, cache_control: str) -> Response:
    response = Response(data, mimetype=PNG)
    response.set_etag(etag)
    response.headers["Cache-Control"] = cache_control
    return response


def _scene_token(scene: Scene) -> tuple[Any, ...]:
    """What identifies a scene's pixels: its id and files (the same tuple Dask tokenises)."""
    return scene.__dask_tokenize__()


# --------------------------------------------------------------------------- tiles


@imagery.get("/tiles/<scene_id>/<z>/<x>/<y>.png")
@require(READ_ROLES, public=True)
def scene_tile(scene_id: str, z: str, x: str, y: str) -> Response:
    """An XYZ tile of one scene: ``render`` truecolor|swir, ``rescale`` min,max reflectance, ``tilesize``."""
    args = request_args()
    check_known(args, TILE_PARAMS)
    tile, render, size, rescale = _tile(z, x, y), _render_name(args), _tilesize(args), _rescale(args)
    scene = _scene(scene_id)
    etag = _etag(RENDERER_VERSION, _scene_token(scene), render, tile, size, rescale)
    cached = _not_modified(etag, IMAGERY_CACHE)
    if cached is not None:
        return cached
    return _png(render_tile(scene, render, tile, tilesize=size, rescale=rescale), etag, IMAGERY_CACHE)


@imagery.get("/tiles/change/<z>/<x>/<y>.png")
@require(READ_ROLES, public=True)
def change_tile(z: str, x: str, y: str) -> Response:
    """The alert-score layer: alert footprints filled by score, with the alert list's filters."""
    args = request_args()
    check_known(args, CHANGE_PARAMS)
    tile, size = _tile(z, x, y), _tilesize(args)
    query = restrict(filters_query(args), current_principal())
    if tile.z < CHANGE_MIN_ZOOM or query.provinces == frozenset():
        data = transparent_png(size)
    else:
        query = replace(query, bbox=tile_lonlat_bounds(tile))
        sites = ((stored.alert.geometry, stored.alert.score)
                 for stored in islice(context().store.iter_alerts(query), MAX_SITES_PER_TILE))
        data = render_score_tile(sites, tile, tilesize=size)
    etag = hashlib.sha256(data).hexdigest()[:32]
    return _not_modified(etag, CHANGE_CACHE) or _png(data, etag, CHANGE_CACHE)


# --------------------------------------------------------------------------- scenes


@imagery.get("/api/v1/scenes")
@require(READ_ROLES, public=True)
def list_scenes() -> Response:
    """Scenes of the catalog over ``bbox`` and ``datetime`` (newest first), for a date picker."""
    args = request_args()
    check_known(args, SCENES_PARAMS)
    bbox_text, when_text = single(args, "bbox"), single(args, "datetime")
    bbox = None if bbox_text is None else parse_bbox_param(bbox_text)
    when = None if when_text is None else parse_datetime_interval(when_text)
    max_cloud = _number(single(args, "max_cloud_cover"), "max_cloud_cover", 0.0, 100.0)
    limit = _limit(single(args, "limit"))
    found = _state().catalog.index().search(bbox, when and when.start, when and when.end, max_cloud)
    newest = sorted(found, key=lambda s: s.sort_key, reverse=True)[:limit]
    body = {
        "numberMatched": len(found),
        "numberReturned": len(newest),
        "renders": {name: spec.title for name, spec in RENDERS.items()},
        "scenes": [scene_summary(scene) for scene in newest],
    }
    return json_response(body)


def _number(text: str | None, name: str, lo: float, hi: float) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(name, f"must be a number; got {text[:40]!r}") from None
    if not lo <= value <= hi:  # also refuses NaN
        raise ParameterError(name, f"must be between {lo:g} and {hi:g}; got {text[:40]!r}")
    return value


def _limit(text: str | None) -> int:
    if text is None:
        return SCENES_DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= SCENES_MAX_LIMIT:
        raise ParameterError("limit", f"must be an integer 1..{SCENES_MAX_LIMIT}; got {text[:40]!r}")
    return int(text)


def _root() -> str:
    return request.host_url.rstrip("/")


def scene_summary(scene: Scene) -> dict[str, Any]:
    """A scene as the API lists it: id, time, cloud cover, footprint box and its tile URL templates."""
    quoted = quote(scene.id, safe="")
    return {
        "id": scene.id,
        "datetime": scene.datetime.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        "date": scene.datetime.astimezone(timezone.utc).date().isoformat(),
        "cloud_cover": scene.cloud_cover,
        "platform": scene.platform,
        "bbox": list(scene.bbox),
        "tiles": {name: f"{_root()}/tiles/{quoted}/{{z}}/{{x}}/{{y}}.png?render={name}" for name in RENDERS},
    }


# --------------------------------------------------------------------------- chips


def chip_choice(stored: StoredAlert) -> ChipChoice:
    """The clearest scenes before/after the alert's first detection, remembered per alert and catalog state."""
    state = _state()
    index = state.catalog.index()
    alert = stored.alert
    key = (alert.id, alert.geometry.wkb, alert.first_detected, index.fingerprint)
    with state.lock:
        if key in state.chips:
            state.chips.move_to_end(key)
            return state.chips[key]
    choice = choose_chip_scenes(index.ordered, alert.geometry, alert.first_detected)
    with state.lock:
        state.chips[key] = choice
        while len(state.chips) > CHIP_CACHE_SIZE:
            state.chips.popitem(last=False)
    return choice


def _side_summary(alert_id: str, side: Side, chosen: ChipScene | None) -> dict[str, Any] | None:
    if chosen is None:
        return None
    return {
        **{k: v for k, v in scene_summary(chosen.scene).items() if k in ("datetime", "date", "cloud_cover")},
        "scene_id": chosen.scene.id,
        "clear_fraction": round(chosen.clear_fraction, 3),
        "href": f"{_root()}/api/v1/alerts/{quote(alert_id, safe='')}/chips/{side}.png",
    }


def chips_document(stored: StoredAlert) -> dict[str, Any]:
    choice = chip_choice(stored)
    alert_id = stored.alert.id
    return {
        "alert_id": alert_id,
        "first_detected": stored.alert.first_detected.isoformat(),
        "bbox": [round(v, 7) for v in choice.area.lonlat_bounds],
        "window_days": CHIP_WINDOW_DAYS,
        "before": _side_summary(alert_id, "before", choice.before),
        "after": _side_summary(alert_id, "after", choice.after),
    }


@imagery.get("/api/v1/alerts/<alert_id>/chips")
@require(READ_ROLES, public=True)
def alert_chips(alert_id: str) -> Response:
    """Which scenes the before/after chips show, their dates and clear shares, and the chip URLs."""
    check_known(request_args(), ())
    return json_response(chips_document(visible_alert(alert_id)))


def _chip(alert_id: str, side: Side) -> Response:
    args = request_args()
    check_known(args, CHIP_PARAMS)
    render = _render_name(args)
    stored = visible_alert(alert_id)
    choice = chip_choice(stored)
    chosen = choice.side(side)
    if chosen is None:
        raise NotFoundError(f"no scene shows this alert's ground {side} {stored.alert.first_detected} "
                            f"(within {CHIP_WINDOW_DAYS} days)")
    etag = _etag(RENDERER_VERSION, alert_id, stored.alert.geometry.wkb, _scene_token(chosen.scene), render)
    cached = _not_modified(etag, IMAGERY_CACHE)
    if cached is not None:
        return cached
    return _png(render_chip(chosen.scene, choice.area, render), etag, IMAGERY_CACHE)


@imagery.get("/api/v1/alerts/<alert_id>/chips/before.png")
@require(READ_ROLES, public=True)
def chip_before(alert_id: str) -> Response:
    return _chip(alert_id, "before")


@imagery.get("/api/v1/alerts/<alert_id>/chips/after.png")
@require(READ_ROLES, public=True)
def chip_after(alert_id: str) -> Response:
    return _chip(alert_id, "after")


# --------------------------------------------------------------------------- evidence sheet


@imagery.get("/alerts/<alert_id>/sheet")
@require(READ_ROLES, public=True)
def evidence_sheet(alert_id: str) -> Response:
    """A printable one-page evidence sheet (self-contained HTML): images, fields, coordinates, history."""
    args = request_args()
    check_known(args, SHEET_PARAMS)
    lang = parse_format(single(args, "lang"), LANGUAGES, default="es", name="lang")
    stored = visible_alert(alert_id)
    choice = chip_choice(stored)
    html = render_template("evidence_sheet.html", **sheet_context(
        stored, context().store.history(stored.alert.id), choice, _sheet_images(stored, choice, lang), lang))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _sheet_images(stored: StoredAlert, choice: ChipChoice, lang: str) -> list[SheetImage]:
    """The wide view (from the after scene, else the before one), then the before and after chips, as JPEG:
    a third of the bytes of PNG for the same imagery, which matters on a field connection."""
    t = LABELS[lang]
    wide = choice.after or choice.before
    shots: list[tuple[str, ChipScene | None, ChipArea]] = [
        (t["overview"], wide, overview_area(stored)),
        (t["before"], choice.before, choice.area),
        (t["after"], choice.after, choice.area),
    ]
    return [SheetImage(title, image_caption(chosen, lang),
                       None if chosen is None else jpeg_data_uri(encode_jpeg(chip_rgba(chosen.scene, area))))
            for title, chosen, area in shots]
