"""Helpers of the imagery tests: decode PNGs, read the sample area's truth and context, measure pixels independently.

The independent measures use rasterio directly (reproject onto the same grid
with nearest neighbour), not rio-tiler, so a test compares the renderer with a
second reading of the same COGs rather than with itself.
"""

from __future__ import annotations

import json
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.warp import Resampling, reproject
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo_monitor.bands import SCL_NEVER_EVIDENCE
from geo_monitor.scenes import Scene


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> (bands, h, w) uint8; fails unless it really is a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG has no geotransform, rightly
        with MemoryFile(data) as memory, memory.open() as src:
            assert src.driver == "PNG"
            return src.read()


def catalog_path(sample: Path) -> str:
    return str(sample / "catalog" / "catalog.json")


def truth_site(sample: Path, name: str) -> tuple[BaseGeometry, date]:
    """(geometry lon/lat, start date) of one ground-truth feature of the sample area."""
    truth = json.loads((sample / "truth.geojson").read_text())
    feature = next(f for f in truth["features"] if f["properties"]["name"] == name)
    return shape(feature["geometry"]), date.fromisoformat(feature["properties"]["start_date"])


def scl_on_grid(scene: Scene, crs: str, transform: Affine, shape_hw: tuple[int, int]) -> np.ndarray:
    """The scene's SCL codes warped (nearest) onto a grid; 0 outside the scene."""
    out = np.zeros(shape_hw, np.uint8)
    with rasterio.open(scene.assets["scl"].href) as src:
        reproject(rasterio.band(src, 1), out, dst_transform=transform, dst_crs=crs, dst_nodata=0,
                  resampling=Resampling.nearest)
    return out


def clear_on_grid(scene: Scene, crs: str, transform: Affine, shape_hw: tuple[int, int]) -> np.ndarray:
    return ~np.isin(scl_on_grid(scene, crs, transform, shape_hw), list(SCL_NEVER_EVIDENCE))
