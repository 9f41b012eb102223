"""Sentinel-2 L2A scenes as small, picklable values: what travels through Dask graphs.

A :class:`Scene` is built from one STAC item of either asset convention
(Earth Search v1 ``blue … scl`` or Planetary Computer ``B02 … SCL``). It knows
its seven band assets under canonical names, with absolute hrefs and the
scale/offset that turn digital numbers into reflectance. No I/O happens here:
resolving hrefs is string work against the item's own self href.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlparse

import pystac
import pystac.utils

from geo_monitor import bands
from geo_monitor.errors import SceneError
from geo_monitor.types import BBox

__all__ = ["BandAsset", "Scene", "SkippedItem", "scene_or_skip", "item_datetime", "item_bbox"]


@dataclass(frozen=True)
class BandAsset:
    """One band's COG and how to read it.

    ``reflectance = DN * scale + offset`` (dimensionless, 0–1 for surface
    reflectance); ``nodata`` is the DN that marks missing pixels, ``None`` when
    the item does not say (L2A uses 0). ``resolution_m`` is the native ground
    sample distance in metres.
    """

    href: str
    scale: float
    offset: float
    nodata: int | None
    resolution_m: int


@dataclass(frozen=True)
class SkippedItem:
    """A STAC item that matched a search but cannot be used, and why."""

    id: str
    reason: str


@dataclass(frozen=True)
class Scene:
    """One Sentinel-2 L2A acquisition (one STAC item) with its seven band assets.

    ``datetime`` is timezone-aware UTC; ``bbox`` is lon/lat (EPSG:4326);
    ``epsg`` is the native UTM CRS of the COGs (e.g. 32718), when the item says.
    ``assets`` is keyed by canonical band name (:data:`geo_monitor.bands.ALL_BANDS`).
    ``item_json`` is the STAC item with only those seven assets, renamed to
    canonical keys and with absolute hrefs, so that odc-stac sees one
    convention whatever the source.
    """

    id: str
    datetime: datetime
    platform: str | None
    cloud_cover: float | None
    epsg: int | None
    bbox: BBox
    processing_baseline: str | None
    assets: Mapping[str, BandAsset] = field(hash=False)
    properties: Mapping[str, Any] = field(compare=False, hash=False, repr=False)
    item_json: dict[str, Any] = field(compare=False, hash=False, repr=False)

    @property
    def sort_key(self) -> tuple[datetime, str]:
        """Scenes are ordered by acquisition time, then id (deterministic for same-time scenes)."""
        return (self.datetime, self.id)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        # Identity for Dask: same item, same files, same DN conversion → same token,
        # whatever the process; the dict fields are derived from these.
        return (
            "geo_monitor.Scene",
            self.id,
            self.datetime.isoformat(),
            tuple((name, a.href, a.scale, a.offset, a.nodata) for name, a in sorted(self.assets.items())),
        )

    @classmethod
    def from_item(cls, item: pystac.Item | Mapping[str, Any], self_href: str | None = None) -> Scene:
        """Build a scene from a STAC item (object or dict).

        ``self_href`` is where the item JSON lives (path or URL); relative asset
        hrefs are resolved against it. When omitted, the item's own ``self``
        link is used. Raises :class:`SceneError` when a required band asset is
        missing or an href cannot be made absolute; use :func:`scene_or_skip`
        to get a :class:`SkippedItem` instead.
        """
        if isinstance(item, pystac.Item):
            self_href = self_href or item.get_self_href()
            data = item.to_dict(include_self_link=True, transform_hrefs=False)
        else:
            data = copy.deepcopy(dict(item))
        item_id = str(data.get("id") or "?")
        self_href = _local_or_url(self_href or _self_link(data))
        props: dict[str, Any] = copy.deepcopy(dict(data.get("properties") or {}))

        assets = _band_assets(item_id, data.get("assets") or {}, props, self_href)
        item_json = data
        item_json["assets"] = {name: _asset_json(data["assets"], name, href=a.href) for name, a in assets.items()}

        cloud = props.get("eo:cloud_cover")
        baseline = props.get("s2:processing_baseline")
        return cls(
            id=item_id,
            datetime=item_datetime(data),
            platform=props.get("platform"),
            cloud_cover=None if cloud is None else float(cloud),
            epsg=_epsg(data),
            bbox=item_bbox(data),
            processing_baseline=None if baseline is None else str(baseline),
            assets=assets,
            properties=props,
            item_json=item_json,
        )


def scene_or_skip(item: pystac.Item | Mapping[str, Any], self_href: str | None = None) -> Scene | SkippedItem:
    """Like :meth:`Scene.from_item`, but return a :class:`SkippedItem` (id, reason) instead of raising."""
    try:
        return Scene.from_item(item, self_href)
    except SceneError as exc:
        item_id = item.id if isinstance(item, pystac.Item) else str(item.get("id") or "?")
        return SkippedItem(item_id, str(exc))


def item_datetime(item: Mapping[str, Any]) -> datetime:
    """Acquisition time of a STAC item dict as aware UTC (``datetime``, else ``start_datetime``)."""
    props = item.get("properties") or {}
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        raise SceneError(f"scene {item.get('id')}: item has no datetime")
    try:
        value = pystac.utils.str_to_datetime(str(text))
    except (ValueError, OverflowError):
        raise SceneError(f"scene {item.get('id')}: unreadable datetime {text!r}") from None
    # A naive STAC datetime is a provider bug; UTC is the only sensible reading.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def item_bbox(item: Mapping[str, Any]) -> BBox:
    """Lon/lat bbox of a STAC item dict: its ``bbox``, else the bounds of its geometry."""
    raw = item.get("bbox")
    if raw is not None and len(raw) in (4, 6):
        values = [float(v) for v in raw]
        if len(values) == 6:  # 3-D bbox: w, s, zmin, e, n, zmax
            values = [values[0], values[1], values[3], values[4]]
        return (values[0], values[1], values[2], values[3])
    points = list(_coordinates((item.get("geometry") or {}).get("coordinates")))
    if not points:
        raise SceneError(f"scene {item.get('id')}: item has neither bbox nor geometry")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def _coordinates(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (int, float)):
        yield (float(value[0]), float(value[1]))
    elif isinstance(value, (list, tuple)):
        for part in value:
            yield from _coordinates(part)


def _self_link(data: Mapping[str, Any]) -> str | None:
    for link in data.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return None


def _local_or_url(href: str | None) -> str | None:
    """file:// URLs become plain paths: GDAL and open() both want those."""
    if href and href.startswith("file://"):
        return unquote(urlparse(href).path)
    return href


def _absolute_href(item_id: str, href: str, self_href: str | None) -> str:
    href = _local_or_url(href) or ""
    if "://" in href or os.path.isabs(href):
        return href
    if not self_href:
        raise SceneError(f"scene {item_id}: asset href {href!r} is relative and the item has no self href")
    return pystac.utils.make_absolute_href(href, self_href)


def _band_assets(
    item_id: str, raw_assets: Mapping[str, Any], props: Mapping[str, Any], self_href: str | None
) -> dict[str, BandAsset]:
    keys: dict[str, str] = {}
    for key in raw_assets:
        name = bands.canonical_band_name(key)
        # An item carrying both conventions keeps the canonical key's asset.
        if name is not None and (name not in keys or key == name):
            keys[name] = key
    missing = [b for b in bands.ALL_BANDS if b not in keys]
    if missing:
        raise SceneError(f"scene {item_id}: missing asset(s) {', '.join(missing)}")
    result = {}
    for name in bands.ALL_BANDS:
        asset = raw_assets[keys[name]]
        result[name] = _band_asset(item_id, name, asset, props, self_href)
    return result


def _band_asset(
    item_id: str, name: str, asset: Mapping[str, Any], props: Mapping[str, Any], self_href: str | None
) -> BandAsset:
    if not isinstance(asset, Mapping) or not asset.get("href"):
        raise SceneError(f"scene {item_id}: asset {name} has no href")
    raster = (asset.get("raster:bands") or [{}])[0] or {}
    if name == bands.SCL_BAND:
        scale, offset = 1.0, 0.0  # class codes, not reflectance
    else:
        # Field by field: a raster:bands entry with only nodata/data_type
        # (Planetary Computer) must still get the baseline's offset.
        scale = float(raster["scale"]) if raster.get("scale") is not None else bands.DEFAULT_SCALE
        if raster.get("offset") is not None:
            offset = float(raster["offset"])
        else:
            applied = props.get("earthsearch:boa_offset_applied") is True
            offset = bands.default_offset(props.get("s2:processing_baseline"), applied)
    nodata = raster.get("nodata")
    nodata_dn = int(nodata) if isinstance(nodata, (int, float)) and math.isfinite(nodata) else None
    resolution = raster.get("spatial_resolution") or asset.get("gsd") or bands.NATIVE_RESOLUTION_M[name]
    return BandAsset(
        href=_absolute_href(item_id, str(asset["href"]), self_href),
        scale=scale,
        offset=offset,
        nodata=nodata_dn,
        resolution_m=int(round(float(resolution))),
    )


def _asset_json(raw_assets: Mapping[str, Any], name: str, *, href: str) -> dict[str, Any]:
    key = name if name in raw_assets else bands.CANONICAL_TO_PLANETARY_COMPUTER[name]
    asset = dict(raw_assets[key])
    asset["href"] = href
    return asset


def _epsg(data: Mapping[str, Any]) -> int | None:
    props = data.get("properties") or {}
    found = _epsg_of(props)
    if found is not None:
        return found
    for asset in (data.get("assets") or {}).values():
        if isinstance(asset, Mapping) and (found := _epsg_of(asset)) is not None:
            return found
    return None


def _epsg_of(fields: Mapping[str, Any]) -> int | None:
    epsg = fields.get("proj:epsg")
    if isinstance(epsg, (int, float)) and not isinstance(epsg, bool):
        return int(epsg)
    code = fields.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        try:
            return int(code.split(":", 1)[1])
        except ValueError:
            return None
    return None
