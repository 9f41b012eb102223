"""Spectral indices: pure functions of surface reflectance (numpy or dask arrays, any shape).

Each takes reflectance (0..1) bands and returns a float32 array; a zero
denominator gives NaN rather than a warning-laden inf. References are the
usual ones: NDVI (Rouse 1974), NBR (Key & Benson 2006), MNDWI (Xu 2006),
BSI (Rikimaru 2002), NDTI (Lacaux 2007, turbidity of water).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

Array = TypeVar("Array")


def normalized_difference(a: Array, b: Array) -> Array:
    """(a - b) / (a + b), NaN where a + b == 0."""
    total = a + b
    safe = total != 0
    return np.where(safe, (a - b) / np.where(safe, total, 1), np.nan).astype(np.float32)


def ndvi(nir: Array, red: Array) -> Array:
    """Greenness: dense forest ~0.8, pasture ~0.5, bare soil ~0.1, water < 0."""
    return normalized_difference(nir, red)


def nbr(nir: Array, swir22: Array) -> Array:
    """Normalised burn ratio: drops sharply on char, less on bare soil."""
    return normalized_difference(nir, swir22)


def mndwi(green: Array, swir16: Array) -> Array:
    """Open water > 0 (also turbid water: SWIR is absorbed by any water)."""
    return normalized_difference(green, swir16)


def bsi(blue: Array, red: Array, nir: Array, swir16: Array) -> Array:
    """Bare-soil index: > 0 on exposed soil, < 0 on vegetation and water."""
    return normalized_difference(swir16 + red, nir + blue)


def ndti(red: Array, green: Array) -> Array:
    """Water turbidity: suspended sediment raises red relative to green (> ~0 turbid, < 0 clear)."""
    return normalized_difference(red, green)


def visible_brightness(blue: Array, green: Array, red: Array) -> Array:
    """Mean visible reflectance: separates bright soils (~0.13) from char and shadow (< 0.06)."""
    return ((blue + green + red) / 3).astype(np.float32)
