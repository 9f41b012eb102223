"""Read one grid window of one band asset with rasterio, inside a Dask task (own opener, no shared lock).

The pipeline's hot path: each chunk task reads the windows it needs itself,
so a scene is decoded once, nothing but the task's own arrays is in memory,
and no reader lock or cross-worker transfer sits between decode and compute
(see ../shared/PERFORMANCE.md: shared readers serialise, and moving arrays
between workers costs more than computing on them). Same-CRS assets are read
directly (20 m bands upsampled to the 10 m grid by nearest neighbour, which
is exact on aligned grids); assets in another CRS (the other UTM zone of
Ecuador) go through a WarpedVRT onto the window, nearest neighbour so DNs and
SCL classes stay exact. Outside an asset's footprint the result is 0 (no data).
"""

from __future__ import annotations

import math

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window


def read_window(href: str, crs: str, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Pixels of band 1 of ``href`` on the grid window ``transform``/``shape`` in ``crs``."""
    data, factor, off_r, off_c = read_window_native(href, crs, transform, shape)
    if factor > 1:
        data = np.repeat(np.repeat(data, factor, axis=0), factor, axis=1)
    return data[off_r:off_r + shape[0], off_c:off_c + shape[1]]


def read_window_native(href: str, crs: str, transform: Affine, shape: tuple[int, int]
                       ) -> tuple[np.ndarray, int, int, int]:
    """Band 1 of ``href`` over a grid window, at the asset's own resolution when it can be.

    Returns ``(data, factor, off_r, off_c)``: grid pixel ``(i, j)`` of the window is
    ``data[(i + off_r) // factor, (j + off_c) // factor]``. A coarser band on an
    aligned grid comes with ``factor`` > 1 (no upsampled copy is made); anything
    else is warped onto the window (``factor`` 1, no offsets).
    """
    with rasterio.open(href) as src:
        if src.crs == CRS.from_user_input(crs) and _aligned(src.transform, transform):
            return _read_aligned(src, transform, shape)
        with WarpedVRT(src, crs=crs, transform=transform, width=shape[1], height=shape[0],
                       resampling=Resampling.nearest, nodata=0) as vrt:
            return vrt.read(1), 1, 0, 0


def _aligned(src: Affine, dst: Affine) -> bool:
    """North-up, and the destination pixel size divides the source's, with edges on the source grid."""
    if src.b or src.d or dst.b or dst.d:
        return False
    factor = src.a / dst.a
    if factor < 1 or abs(factor - round(factor)) > 1e-9 or abs(src.e / dst.e - factor) > 1e-9:
        return False
    col = (dst.c - src.c) / dst.a
    row = (dst.f - src.f) / dst.e
    return abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6


def _read_aligned(src: rasterio.DatasetReader, transform: Affine, shape: tuple[int, int]
                  ) -> tuple[np.ndarray, int, int, int]:
    """Read the source window covering the grid window (0 outside the file), with its offsets."""
    factor = int(round(src.transform.a / transform.a))
    h, w = shape
    # grid window in source pixel coordinates (may start mid-pixel of a coarser band)
    col0 = (transform.c - src.transform.c) / src.transform.a
    row0 = (transform.f - src.transform.f) / src.transform.e
    c0, r0 = math.floor(col0), math.floor(row0)
    c1, r1 = math.ceil(col0 + w / factor), math.ceil(row0 + h / factor)
    offsets = int(round((row0 - r0) * factor)), int(round((col0 - c0) * factor))
    if r0 >= 0 and c0 >= 0 and r1 <= src.height and c1 <= src.width:  # inside the file: no copy
        return src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0)), factor, *offsets
    out = np.zeros((r1 - r0, c1 - c0), dtype=src.dtypes[0])
    # the part of that window inside the file
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r1, src.height), min(c1, src.width)
    if rr1 > rr0 and cc1 > cc0:
        out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = src.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
    return out, factor, *offsets
