"""Map imagery rendered from a scene's COGs: XYZ tiles, alert chips and the alert-score layer, as PNG bytes.

Pure rendering (no Flask, no store): a :class:`~geo_monitor.scenes.Scene`
(whose hrefs come from the configured catalog, never from a request) and
validated parameters in, PNG bytes out. Pixels are read with rio-tiler, one
reader per band file (20 m bands are warped onto the output grid like the
10 m ones), turned into reflectance with each asset's own scale and offset
(DESIGN.md, "Imagery in"), stretched to 8 bits and made transparent where the
data say "no data": DN 0 in any band drawn, or SCL class 0. Clouds stay
visible on purpose: an agent judging evidence must see that a scene is cloudy.

Tiles follow the XYZ / WebMercatorQuad scheme MapLibre and Leaflet use; the
query parameter names are titiler's where one applies (``rescale``,
``tilesize``).
"""

from __future__ import annotations

import math
import struct
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Final

import morecantile
import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from shapely import transform as shapely_transform
from shapely.geometry.base import BaseGeometry

from geo_monitor.bands import NODATA_DN, SCL, SCL_BAND, SCL_NEVER_EVIDENCE
from geo_monitor.errors import InvalidInputError
from geo_monitor.scenes import Scene
from geo_monitor.types import BBox

__all__ = [
    "RENDERS",
    "Render",
    "TileAddress",
    "ChipArea",
    "TILE_SIZES",
    "MAX_ZOOM",
    "RENDERER_VERSION",
    "chip_area",
    "chip_rgba",
    "clear_fraction",
    "encode_jpeg",
    "encode_png",
    "parse_rescale",
    "render_chip",
    "render_score_tile",
    "render_tile",
    "score_color",
    "tile_lonlat_bounds",
    "transparent_png",
]

#: Bumped whenever the same request would give other pixels (it is part of every imagery ETag).
RENDERER_VERSION: Final[str] = "1"
#: Deepest zoom served: 0.04 m pixels, far past Sentinel-2's 10 m; anything deeper is a client bug.
MAX_ZOOM: Final[int] = 24
#: Tile sizes served (titiler's ``tilesize``): 256 is the XYZ default, 512 for high-DPI screens.
TILE_SIZES: Final[tuple[int, ...]] = (256, 512)
PNG_SIGNATURE: Final[bytes] = b"\x89PNG\r\n\x1a\n"
#: Sentinel-2's finest pixel (m): output pixels smaller than this are filled by nearest neighbour, never interpolated.
NATIVE_PIXEL_M: Final[float] = 10.0
#: Reflectance limits a ``rescale`` may use: surface reflectance is 0..1, with some room for bright cloud.
RESCALE_LIMITS: Final[tuple[float, float]] = (-0.2, 2.0)

_TMS = morecantile.tms.get("WebMercatorQuad")
#: Band files of one image are read at once: GDAL releases the GIL while it decodes.
_READERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="geo-monitor-imagery")


@dataclass(frozen=True)
class Render:
    """A band combination: which bands go to red, green and blue, and how reflectance becomes 0..255.

    ``rescale`` is (min, max) reflectance per output channel; ``gamma`` > 1
    brightens the dark end (forest is 0.02-0.05 in the visible bands).
    """

    bands: tuple[str, str, str]
    rescale: tuple[tuple[float, float], ...]
    gamma: float
    title: str


#: The render names a request may ask for (the allow-list).
RENDERS: Final[dict[str, Render]] = {
    # What the eye would see; bare soil is light brown, turbid ponds brown-grey.
    "truecolor": Render(("red", "green", "blue"), ((0.0, 0.2),) * 3, 1.7, "true colour (B4, B3, B2)"),
    # SWIR 1.6 µm, NIR, red: forest green, bare soil pink to mauve, water dark blue to black.
    "swir": Render(("swir16", "nir", "red"), ((0.0, 0.4), (0.0, 0.45), (0.0, 0.2)), 1.3,
                   "SWIR false colour (B11, B8, B4)"),
}


@dataclass(frozen=True)
class TileAddress:
    """One XYZ tile of the WebMercatorQuad grid, checked on construction."""

    z: int
    x: int
    y: int

    def __post_init__(self) -> None:
        if not (0 <= self.z <= MAX_ZOOM):
            raise InvalidInputError(f"zoom {self.z} is out of range 0..{MAX_ZOOM}")
        side = 2 ** self.z
        if not (0 <= self.x < side and 0 <= self.y < side):
            raise InvalidInputError(f"tile {self.x}/{self.y} does not exist at zoom {self.z} (0..{side - 1})")


def tile_lonlat_bounds(tile: TileAddress) -> BBox:
    """(west, south, east, north) of a tile in degrees."""
    b = _TMS.bounds(morecantile.Tile(tile.x, tile.y, tile.z))
    return (b.left, b.bottom, b.right, b.top)


def parse_rescale(values: Sequence[str], channels: int = 3) -> tuple[tuple[float, float], ...] | None:
    """titiler's ``rescale``: ``min,max`` once (every channel) or once per channel, in reflectance (0..1)."""
    if not values:
        return None
    if len(values) not in (1, channels):
        raise InvalidInputError(f"rescale: give min,max once or {channels} times, not {len(values)} times")
    pairs = []
    for text in values:
        parts = text.split(",")
        try:
            lo, hi = (float(p) for p in parts)
        except ValueError:
            raise InvalidInputError(f"rescale: {text[:40]!r} is not min,max (two numbers)") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise InvalidInputError(f"rescale: {text[:40]!r} needs finite min < max")
        if lo < RESCALE_LIMITS[0] or hi > RESCALE_LIMITS[1]:
            raise InvalidInputError(f"rescale: {text[:40]!r} is outside reflectance {RESCALE_LIMITS[0]}..{RESCALE_LIMITS[1]}")
        pairs.append((lo, hi))
    return tuple(pairs * channels) if len(pairs) == 1 else tuple(pairs)


# --------------------------------------------------------------------------- reading


_Read = Callable[[Reader, str], ImageData]


def _read_reflectance(scene: Scene, bands: Sequence[str], read: _Read) -> tuple[np.ndarray, np.ndarray]:
    """(reflectance float32 (bands, h, w), valid bool (h, w)) of ``bands`` through ``read``.

    ``read(reader, resampling)`` gives one band's pixels on the output grid;
    ``resampling`` is bilinear for reflectance and nearest for SCL classes, and
    the readers use it only when the output pixels are larger than the
    source's (zoomed out: averaging); zoomed in, and for reprojection, it is
    always nearest, so each 10 m (or 20 m) pixel stays a visible square, as
    titiler does by default, instead of inventing detail. Valid means: read, not DN 0 in any band, and SCL is not "no data".
    """
    names = [*bands, SCL_BAND]

    def one(band: str) -> ImageData:
        with Reader(scene.assets[band].href, options={"nodata": NODATA_DN}) as src:
            return read(src, "nearest" if band == SCL_BAND else "bilinear")

    images = list(_READERS.map(one, names))
    valid = np.ones((images[0].height, images[0].width), bool)
    refl = np.empty((len(bands), valid.shape[0], valid.shape[1]), np.float32)
    for i, (band, image) in enumerate(zip(names, images)):
        data = image.array  # masked: True where the file has no data
        valid &= ~np.ma.getmaskarray(data[0])
        if band == SCL_BAND:
            valid &= np.asarray(data[0]) != SCL.NO_DATA
            continue
        dn = np.asarray(data[0])
        valid &= dn != NODATA_DN
        asset = scene.assets[band]
        refl[i] = dn.astype(np.float32) * np.float32(asset.scale) + np.float32(asset.offset)
    return refl, valid


def _to_rgba(refl: np.ndarray, valid: np.ndarray, rescale: Sequence[tuple[float, float]], gamma: float) -> np.ndarray:
    """Stretch reflectance to uint8 RGB (linear between rescale's min and max, then gamma) plus alpha."""
    out = np.zeros((4, *valid.shape), np.uint8)
    for i, (lo, hi) in enumerate(rescale):
        scaled = np.clip((refl[i] - lo) / (hi - lo), 0.0, 1.0)
        if gamma != 1.0:
            scaled **= 1.0 / gamma
        out[i] = np.where(valid, np.rint(scaled * 255.0), 0).astype(np.uint8)
    out[3] = np.where(valid, 255, 0)
    return out


def encode_png(rgba: np.ndarray, level: int = 6) -> bytes:
    """(4, h, w) uint8 -> an 8-bit RGBA PNG, written directly (zlib, no row filter).

    Not through GDAL: its PNG driver warns that the image has no georeference,
    and silencing that per call (``warnings.catch_warnings``) is not thread-safe
    under a threaded server. Sizes and times match GDAL's for imagery tiles
    (measured: within 1-15 %, smaller for zoomed-in tiles of repeated pixels).
    """
    bands, height, width = rgba.shape
    if bands != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected (4, h, w) uint8, got {rgba.shape} {rgba.dtype}")
    rows = np.moveaxis(rgba, 0, -1).reshape(height, width * 4)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA, deflate, no filter set, no interlace
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, level)) + chunk(b"IEND", b"")


def encode_jpeg(rgba: np.ndarray, quality: int = 82, background: int = 255) -> bytes:
    """(4, h, w) uint8 -> JPEG bytes, transparent pixels on ``background`` grey: for pages where size
    matters more than alpha (a zoomed-out image is 5-8x smaller than as PNG). Through GDAL's JPEG
    driver; its "no georeference" warning is silenced here, which under many concurrent calls can
    let one through to the log (harmless)."""
    alpha = rgba[3:4].astype(np.float32) / 255.0
    rgb = np.rint(rgba[:3] * alpha + background * (1.0 - alpha)).astype(np.uint8)
    _, height, width = rgb.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as memory:
            with memory.open(driver="JPEG", width=width, height=height, count=3, dtype="uint8",
                             QUALITY=quality) as dst:
                dst.write(rgb)
            return bytes(memory.read())


@cache
def transparent_png(size: int) -> bytes:
    """A fully transparent tile: the answer for a tile with nothing to draw (not a 404, which maps log)."""
    return encode_png(np.zeros((4, size, size), np.uint8))


# --------------------------------------------------------------------------- tiles


def render_tile(scene: Scene, render: str, tile: TileAddress, *, tilesize: int = 256,
                rescale: Sequence[tuple[float, float]] | None = None) -> bytes:
    """One XYZ tile of ``scene`` drawn as ``render`` (a :data:`RENDERS` name); PNG with alpha.

    A tile outside the scene's footprint is fully transparent.
    """
    spec = _render(render)
    if tilesize not in TILE_SIZES:
        raise InvalidInputError(f"tilesize must be one of {', '.join(map(str, TILE_SIZES))}; got {tilesize}")
    if not _intersects(tile_lonlat_bounds(tile), scene.bbox):
        return transparent_png(tilesize)

    zoomed_in = _tile_pixel_m(tile, tilesize) < NATIVE_PIXEL_M

    def read(src: Reader, resampling: str) -> ImageData:
        return src.tile(tile.x, tile.y, tile.z, tilesize=tilesize,
                        resampling_method="nearest" if zoomed_in else resampling, reproject_method="nearest")

    try:
        refl, valid = _read_reflectance(scene, spec.bands, read)
    except TileOutsideBounds:
        return transparent_png(tilesize)
    if not valid.any():
        return transparent_png(tilesize)
    return encode_png(_to_rgba(refl, valid, rescale or spec.rescale, spec.gamma))


def _tile_pixel_m(tile: TileAddress, tilesize: int) -> float:
    """Ground size of a tile's pixel at the equator (Ecuador is within 5° of it: cos(5°) = 0.996)."""
    return 2 * math.pi * 6378137.0 / (tilesize * 2 ** tile.z)


def _render(name: str) -> Render:
    try:
        return RENDERS[name]
    except KeyError:
        raise InvalidInputError(f"render must be one of {', '.join(RENDERS)}; got {str(name)[:40]!r}") from None


def _intersects(a: BBox, b: BBox) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


# --------------------------------------------------------------------------- chips


#: Chips show at least this much ground (metres), so a small site keeps its surroundings.
CHIP_MIN_SIDE_M: Final[float] = 800.0
#: ... and the site's own extent this many times over.
CHIP_SITE_FACTOR: Final[float] = 2.5
#: Chips are this many pixels square whatever the ground they cover: a 10 m pixel shows as a block of a few
#: screen pixels (nothing is invented between them) and the outline stays thin and sharp.
CHIP_PX: Final[int] = 320
#: Outline of the alert on a chip: yellow, opaque, this many pixels wide.
OUTLINE_RGB: Final[tuple[int, int, int]] = (255, 221, 0)
OUTLINE_PX: Final[float] = 2.0


@dataclass(frozen=True)
class ChipArea:
    """A square of ground around an alert, in the local UTM zone, and its pixel grid."""

    epsg: int
    bounds: tuple[float, float, float, float]  # west, south, east, north in metres
    size_px: int
    outline: BaseGeometry  # the alert, in ``epsg``

    @property
    def resolution(self) -> float:
        return (self.bounds[2] - self.bounds[0]) / self.size_px

    @property
    def transform(self) -> Affine:
        return Affine(self.resolution, 0, self.bounds[0], 0, -self.resolution, self.bounds[3])

    @property
    def lonlat_bounds(self) -> BBox:
        to_wgs84 = Transformer.from_crs(self.epsg, 4326, always_xy=True)
        w, s, e, n = to_wgs84.transform_bounds(*self.bounds)
        return (w, s, e, n)


def chip_area(geometry: BaseGeometry, *, min_side_m: float = CHIP_MIN_SIDE_M, factor: float = CHIP_SITE_FACTOR,
              ) -> ChipArea:
    """The chip around ``geometry`` (lon/lat, EPSG:4326): square, centred on the site's bounds,
    ``factor`` times its larger side or ``min_side_m``, whichever is more, in the site's UTM zone."""
    from geo_monitor.loading import utm_epsg_for

    if geometry.is_empty:
        raise InvalidInputError("the alert has an empty geometry")
    centre = geometry.centroid
    epsg = utm_epsg_for(centre.x, centre.y)
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
    local = shapely_transform(geometry, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1])))
    w, s, e, n = local.bounds
    side = max(min_side_m, factor * max(e - w, n - s))
    cx, cy = (w + e) / 2, (s + n) / 2
    half = side / 2
    return ChipArea(epsg, (cx - half, cy - half, cx + half, cy + half), CHIP_PX, local)


def _read_chip(src: Reader, area: ChipArea, resampling: str, size_px: int) -> ImageData:
    crs = CRS.from_epsg(area.epsg)
    return src.part(area.bounds, dst_crs=crs, bounds_crs=crs, width=size_px, height=size_px, max_size=None,
                    resampling_method=resampling, reproject_method="nearest")


def clear_fraction(scene: Scene, area: ChipArea) -> float:
    """Share (0..1) of the chip's ground that SCL calls usable: not no-data, cloud, shadow, cirrus or
    saturated (:data:`~geo_monitor.bands.SCL_NEVER_EVIDENCE`). Ground outside the scene counts as not clear."""
    size = max(1, int(round(area.size_px * area.resolution / 20.0)))  # SCL's own 20 m
    with Reader(scene.assets[SCL_BAND].href, options={"nodata": NODATA_DN}) as src:
        try:
            image = _read_chip(src, area, "nearest", size)
        except TileOutsideBounds:
            return 0.0
    codes = image.array[0]
    seen = ~np.ma.getmaskarray(codes)
    clear = seen & ~np.isin(np.asarray(codes), list(SCL_NEVER_EVIDENCE))
    return float(clear.mean())


def render_chip(scene: Scene, area: ChipArea, render: str = "truecolor") -> bytes:
    """``scene`` over ``area`` as ``render``, with the alert's outline drawn on it; PNG with alpha."""
    return encode_png(chip_rgba(scene, area, render))


def chip_rgba(scene: Scene, area: ChipArea, render: str = "truecolor") -> np.ndarray:
    """The chip's pixels, (4, h, w) uint8 RGBA (see :func:`render_chip`)."""
    spec = _render(render)

    zoomed_in = area.resolution < NATIVE_PIXEL_M

    def read(src: Reader, resampling: str) -> ImageData:
        return _read_chip(src, area, "nearest" if zoomed_in else resampling, area.size_px)

    try:
        refl, valid = _read_reflectance(scene, spec.bands, read)
        rgba = _to_rgba(refl, valid, spec.rescale, spec.gamma)
    except TileOutsideBounds:
        rgba = np.zeros((4, area.size_px, area.size_px), np.uint8)
    line = area.outline.boundary.buffer(OUTLINE_PX * area.resolution / 2)
    ink = rasterize([(line, 1)], out_shape=(area.size_px, area.size_px), transform=area.transform,
                    fill=0, dtype="uint8", all_touched=True).astype(bool)
    for channel, value in enumerate((*OUTLINE_RGB, 255)):
        rgba[channel][ink] = value
    return rgba


# --------------------------------------------------------------------------- alert score layer


#: Score -> colour stops (ColorBrewer YlOrRd): pale yellow for weak evidence, dark red for strong.
SCORE_STOPS: Final[tuple[tuple[float, tuple[int, int, int]], ...]] = (
    (0.0, (255, 255, 178)),
    (0.25, (254, 204, 92)),
    (0.5, (253, 141, 60)),
    (0.75, (240, 59, 32)),
    (1.0, (189, 0, 38)),
)
SCORE_ALPHA: Final[int] = 200


def score_color(score: float) -> tuple[int, int, int]:
    """The layer's colour for a score 0..1 (linear between :data:`SCORE_STOPS`)."""
    s = min(1.0, max(0.0, float(score)))
    for (s0, c0), (s1, c1) in zip(SCORE_STOPS, SCORE_STOPS[1:]):
        if s <= s1:
            t = 0.0 if s1 == s0 else (s - s0) / (s1 - s0)
            return tuple(int(round(a + (b - a) * t)) for a, b in zip(c0, c1))  # type: ignore[return-value]
    return SCORE_STOPS[-1][1]


@cache
def _score_lut() -> np.ndarray:
    """Pixel value 1..255 (score 0..1) -> RGBA; 0 is transparent."""
    lut = np.zeros((256, 4), np.uint8)
    for value in range(1, 256):
        lut[value] = (*score_color((value - 1) / 254), SCORE_ALPHA)
    return lut


def render_score_tile(sites: Iterable[tuple[BaseGeometry, float]], tile: TileAddress, *,
                      tilesize: int = 256) -> bytes:
    """Alert footprints (lon/lat geometry, score 0..1) filled by score on one XYZ tile; PNG with alpha.

    Higher scores are drawn over lower ones; every touched pixel is drawn, so
    a site smaller than a pixel at low zoom still shows as a dot.
    """
    if tilesize not in TILE_SIZES:
        raise InvalidInputError(f"tilesize must be one of {', '.join(map(str, TILE_SIZES))}; got {tilesize}")
    to_mercator = Transformer.from_crs(4326, 3857, always_xy=True)
    shapes = []
    for geometry, score in sites:
        if geometry.is_empty:
            continue
        value = 1 + int(round(min(1.0, max(0.0, score)) * 254))
        shapes.append((value, shapely_transform(geometry, lambda xy: np.column_stack(
            to_mercator.transform(xy[:, 0], xy[:, 1])))))
    if not shapes:
        return transparent_png(tilesize)
    shapes.sort(key=lambda item: item[0])  # later shapes paint over earlier ones
    b = _TMS.xy_bounds(morecantile.Tile(tile.x, tile.y, tile.z))
    transform = from_bounds(b.left, b.bottom, b.right, b.top, tilesize, tilesize)
    values = rasterize([(g, v) for v, g in shapes], out_shape=(tilesize, tilesize), transform=transform, fill=0,
                       dtype="uint8", all_touched=True)
    if not values.any():
        return transparent_png(tilesize)
    return encode_png(np.moveaxis(_score_lut()[values], -1, 0))
