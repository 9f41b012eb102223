"""Laying the state grid's chunks on the imagery's own tiles (pure: no I/O).

A Cloud-Optimized GeoTIFF is stored as square tiles (blocks), each compressed
on its own: reading any pixel of a tile decodes the whole tile. The scene
update reads the scenes chunk by chunk, so where a chunk edge cuts through a
row of tiles, both chunks decode that row. The grid odc-stac lays over a
bounding box starts wherever the box starts, so without care every chunk edge
cuts tiles: a 2048 px chunk then decodes 5 × 5 tiles of 512 px instead of
4 × 4 at 10 m, and 3 × 3 instead of 2 × 2 at 20 m (measured: 1.55 × the
decoding of the same pixels read on tile edges; docs/performance.md).

:func:`snap_to_tiling` moves the grid's north-west corner out to the nearest
tile corner of the scenes that cover most of the grid, so every chunk edge
(chunks are multiples of the tile from the grid's corner) falls on a tile
edge. The grid keeps its pixel lattice (whole pixels are added on its north
and west sides, so no pixel moves and alert anchors stay where they were),
and grows only when that adds little (:data:`MAX_GROWTH`): a small area's
few chunks are cheaper read across tile edges than padded out to them.
Pixels added this way are real imagery read like the rest; the pipeline
reports only sites that touch the grid it was asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from geo_monitor.state_store import GridSpec

#: At most this share of pixels may be added to a grid to put its chunk edges on tile edges.
MAX_GROWTH: Final = 0.10


@dataclass(frozen=True)
class BandLayout:
    """What a band's header says about how its pixels are stored."""

    epsg: int | None
    x0: float  # west edge of the raster, metres
    y0: float  # north edge
    resolution: float  # pixel size, metres (north-up rasters only)
    width: int
    height: int
    block_px: int | None  # side of its square tiles; None when stored as strips or as one tile


@dataclass(frozen=True)
class Tiling:
    """The lattice of tile corners every band of a scene shares: corners at (x0 + i·step, y0 − j·step)."""

    epsg: int
    x0: float
    y0: float
    step_m: float
    extent: tuple[float, float, float, float]  # west, south, east, north of the raster


def scene_tiling(bands: Sequence[BandLayout]) -> Tiling | None:
    """The tile lattice shared by the tiled ``bands`` of one scene, or None when they share none.

    The lattice's period is the least common multiple of the bands' tile sides in
    metres (Sentinel-2 COGs: 512 px tiles are 5,120 m at 10 m and 10,240 m at 20 m,
    so corners of both fall every 10,240 m), anchored at the first tiled band's
    corner. A band stored as one tile or as strips sets no constraint.
    """
    if not bands or any(b.epsg is None or b.epsg != bands[0].epsg for b in bands):
        return None
    tiled = [b for b in bands if b.block_px is not None]
    if not tiled:
        return None
    sides_dm = [round(b.block_px * b.resolution * 10) for b in tiled]  # decimetres: integers for the lcm
    first = tiled[0]
    for band, side_dm in zip(tiled, sides_dm):
        # each band's own tile corners must fall on the lattice's (same origin, modulo its tile side)
        if not (_on_lattice(band.x0 - first.x0, side_dm) and _on_lattice(first.y0 - band.y0, side_dm)):
            return None
    extent = (first.x0, first.y0 - first.height * first.resolution, first.x0 + first.width * first.resolution,
              first.y0)
    return Tiling(first.epsg, first.x0, first.y0, math.lcm(*sides_dm) / 10, extent)


def dominant_tiling(tilings: Iterable[Tiling | None], grid: GridSpec) -> Tiling | None:
    """The tiling of the scenes whose rasters cover most of ``grid`` (ties: the westernmost, then northernmost).

    Every scene of one Sentinel-2 tile has the same raster extent, so the choice
    depends on which tiles cover the area, not on how many scenes each has.
    """
    best: tuple[float, float, float] | None = None
    chosen = None
    for tiling in {t for t in tilings if t is not None and t.epsg == grid.epsg}:
        key = (_overlap(tiling.extent, grid.bounds), -tiling.x0, tiling.y0)
        if best is None or key > best:
            best, chosen = key, tiling
    return chosen if best is not None and best[0] > 0 else None


def snap_to_tiling(grid: GridSpec, tiling: Tiling | None, chunk_px: int, max_growth: float = MAX_GROWTH
                   ) -> GridSpec:
    """``grid`` grown north and west so that chunks of ``chunk_px`` start on ``tiling``'s tile corners.

    Unchanged when there is no tiling, when the grid's pixels are not on the
    tiling's pixel lattice (nothing to gain: every read is resampled), or when
    the growth would add more than ``max_growth`` of the grid's pixels.
    """
    if tiling is None or tiling.epsg != grid.epsg:
        return grid
    res = grid.resolution
    unit = math.gcd(round(tiling.step_m / res), chunk_px)  # corners every `unit` px fall on chunk edges
    col = (grid.x0 - tiling.x0) / res
    row = (tiling.y0 - grid.y0) / res
    if unit <= 1 or abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return grid
    pad_cols, pad_rows = round(col) % unit, round(row) % unit
    width, height = grid.width + pad_cols, grid.height + pad_rows
    if width * height > (1 + max_growth) * grid.width * grid.height:
        return grid
    return replace(grid, x0=grid.x0 - pad_cols * res, y0=grid.y0 + pad_rows * res, width=width, height=height)


def _on_lattice(offset_m: float, side_dm: int) -> bool:
    steps = offset_m * 10 / side_dm
    return abs(steps - round(steps)) < 1e-6


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    w, s = max(a[0], b[0]), max(a[1], b[1])
    e, n = min(a[2], b[2]), min(a[3], b[3])
    return max(0.0, e - w) * max(0.0, n - s)
