"""Lazy loading of scenes onto one 10 m grid (odc-stac → dask-backed xarray), and DN → reflectance.

:func:`load_dn` builds the Dask graph only: no pixel is read until the
result is computed. :func:`to_reflectance` is pure array arithmetic, kept
apart so that it can be tested on hand-made numbers and reused on any
Dataset laid out like :func:`load_dn`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import odc.stac
import pystac
import xarray as xr

from geo_monitor.bands import ALL_BANDS, NODATA_DN, REFLECTANCE_BANDS, SCL_BAND
from geo_monitor.errors import InvalidInputError
from geo_monitor.scenes import Scene
from geo_monitor.types import BBox

__all__ = ["load_dn", "to_reflectance", "utm_epsg_for", "scale_coord", "offset_coord"]

#: Resampling of class codes: anything but nearest invents classes.
_SCL_RESAMPLING: Final[str] = "nearest"
#: odc-stac band metadata forced for every item, whatever its raster:bands say:
#: L2A DNs are uint16 and SCL codes uint8, and 0 marks missing pixels in every
#: band (Planetary Computer items carry no raster:bands at all).
_STAC_CFG: Final[dict] = {
    "assets": {
        band: {"data_type": "uint8" if band == SCL_BAND else "uint16", "nodata": NODATA_DN, "unit": "1"}
        for band in ALL_BANDS
    }
}


def scale_coord(band: str) -> str:
    """Name of the per-scene scale coordinate of ``band`` (along ``time``)."""
    return f"scale_{band}"


def offset_coord(band: str) -> str:
    """Name of the per-scene offset coordinate of ``band`` (along ``time``)."""
    return f"offset_{band}"


def load_dn(
    scenes: Sequence[Scene],
    *,
    crs: str,
    bbox: BBox,
    resolution: float = 10,
    chunk_px: int = 2048,
    bands: Sequence[str] = ALL_BANDS,
    resampling: str = "nearest",
    fail_on_error: bool = True,
    time_chunk: int = 1,
) -> xr.Dataset:
    """Lazily load scenes' digital numbers on one grid.

    The grid is in ``crs`` (e.g. ``"EPSG:32718"``) with square pixels of
    ``resolution`` CRS units (metres for UTM), pixel edges on multiples of
    ``resolution``, covering ``bbox`` (lon/lat, EPSG:4326). 20 m bands are
    resampled with ``resampling`` ("nearest" keeps DNs exact; "bilinear" etc.
    are allowed for reflectance), ``scl`` always with nearest.

    Returns a Dataset with dims (time, y, x): reflectance bands as uint16,
    ``scl`` as uint8, 0 (L2A nodata) outside footprints; one time slice per
    scene in the order of :attr:`Scene.sort_key` (never merged, even for two
    scenes with the same timestamp), with coordinates along ``time``:
    ``scene_id`` and, per reflectance band, ``scale_<band>`` and
    ``offset_<band>`` for :func:`to_reflectance`. ``time`` is naive UTC.
    Arrays are Dask arrays in chunks of (``time_chunk``, ``chunk_px``, ``chunk_px``);
    ``time_chunk=-1`` reads every scene of a spatial chunk in one task (a time
    series per chunk without moving slices between workers).
    Unreadable files raise at compute time unless ``fail_on_error=False``
    (then their pixels stay nodata).
    """
    ordered = sorted(scenes, key=lambda s: s.sort_key)
    if not ordered:
        raise InvalidInputError("no scenes to load")
    unknown = [b for b in bands if b not in ALL_BANDS]
    if unknown:
        raise InvalidInputError(f"unknown band(s) {', '.join(unknown)}; expected some of {', '.join(ALL_BANDS)}")
    names = list(bands)
    items = [pystac.Item.from_dict(scene.item_json) for scene in ordered]
    ds = odc.stac.load(
        items,
        bands=names,
        # "id" puts every item in its own time slice, in the order given; the
        # default "time" would silently mosaic two scenes with one timestamp.
        groupby="id",
        crs=crs,
        resolution=resolution,
        bbox=tuple(bbox),
        chunks={"time": time_chunk, "x": chunk_px, "y": chunk_px},
        # Not dtype={band: ...}: odc-loader 0.6 passes that dict to Dask's
        # normalize_chunks and fails; per-band types go through stac_cfg.
        stac_cfg=_STAC_CFG,
        nodata=NODATA_DN,
        resampling={b: (_SCL_RESAMPLING if b == SCL_BAND else resampling) for b in names},
        fail_on_error=fail_on_error,
    )
    if ds.sizes["time"] != len(ordered):  # odc-stac grouping changed under us: refuse to mislabel scenes
        raise RuntimeError(f"odc-stac returned {ds.sizes['time']} time slices for {len(ordered)} scenes")
    return ds.assign_coords(_scene_coords(ordered, names))


def _scene_coords(scenes: Sequence[Scene], names: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
    coords: dict[str, tuple[str, np.ndarray]] = {"scene_id": ("time", np.array([s.id for s in scenes], dtype=object))}
    for band in names:
        if band == SCL_BAND:
            continue
        coords[scale_coord(band)] = ("time", np.array([s.assets[band].scale for s in scenes], dtype="float64"))
        coords[offset_coord(band)] = ("time", np.array([s.assets[band].offset for s in scenes], dtype="float64"))
    return coords


def to_reflectance(ds: xr.Dataset) -> xr.Dataset:
    """Convert a :func:`load_dn`-style Dataset to surface reflectance.

    Each reflectance band becomes float32 ``DN * scale_<band> + offset_<band>``
    (dimensionless) with each time slice's own scale and offset, and NaN where
    DN equals the band's ``nodata`` attribute (default 0). ``scl`` stays uint8.
    Other variables pass through. The scale/offset coordinates are dropped, so
    converting twice fails instead of applying the offset twice. Lazy in, lazy out.
    """
    out: dict[str, xr.DataArray] = {}
    used: list[str] = []
    for name, da in ds.data_vars.items():
        name = str(name)
        if name == SCL_BAND:
            out[name] = da.astype(np.uint8)
        elif name in REFLECTANCE_BANDS:
            out[name] = _band_reflectance(ds, name)
            used += [scale_coord(name), offset_coord(name)]
        else:
            out[name] = da
    return xr.Dataset(out, attrs=dict(ds.attrs)).drop_vars(used, errors="ignore")


def _band_reflectance(ds: xr.Dataset, name: str) -> xr.DataArray:
    da = ds[name]
    missing = [c for c in (scale_coord(name), offset_coord(name)) if c not in ds.coords]
    if missing:
        raise InvalidInputError(
            f"band {name} has no {' / '.join(missing)} coordinate: not raw DNs from load_dn (already reflectance?)"
        )
    nodata = da.attrs.get("nodata", NODATA_DN)
    scale = ds.coords[scale_coord(name)].astype(np.float32)
    offset = ds.coords[offset_coord(name)].astype(np.float32)
    values = da.astype(np.float32) * scale + offset
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        values = values.where(da != nodata)
    attrs = {k: v for k, v in da.attrs.items() if k != "nodata"}
    attrs["units"] = "1"
    result = values.astype(np.float32)
    result.attrs = attrs  # replace, not merge: the DN nodata no longer applies
    return result


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone containing (lon, lat) degrees: 326zz north, 327zz south.

    The equator itself counts as north, as in the UTM definition.
    """
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise InvalidInputError(f"({lon}, {lat}) is not a longitude/latitude pair")
    zone = min(int(math.floor((lon + 180.0) / 6.0)) + 1, 60)
    return (32700 if lat < 0 else 32600) + zone

