"""Spectral indices on known surface reflectances (the anchored medians of real Sentinel-2 chips)."""

from __future__ import annotations

import numpy as np
import pytest

from geo_monitor import indices

# blue, green, red, nir, swir16, swir22 — medians over Ecuadorian mining areas
FOREST = dict(zip(("blue", "green", "red", "nir", "swir16", "swir22"), (0.025, 0.042, 0.023, 0.284, 0.147, 0.062)))
SOIL = dict(zip(FOREST, (0.098, 0.137, 0.166, 0.215, 0.234, 0.154)))
POND = dict(zip(FOREST, (0.078, 0.102, 0.107, 0.072, 0.057, 0.042)))
PASTURE = dict(zip(FOREST, (0.071, 0.093, 0.085, 0.264, 0.193, 0.122)))


def _all(name: str, fn) -> dict[str, float]:
    return {label: float(fn(s)) for label, s in (("forest", FOREST), ("soil", SOIL), ("pond", POND), ("pasture", PASTURE))}


def test_ndvi_orders_forest_pasture_soil_water() -> None:
    v = _all("ndvi", lambda s: indices.ndvi(np.float32(s["nir"]), np.float32(s["red"])))
    assert v["forest"] == pytest.approx((0.284 - 0.023) / (0.284 + 0.023), rel=1e-5)
    assert v["forest"] > 0.8 > v["pasture"] > 0.45 > v["soil"] > 0 > v["pond"]


def test_bare_soil_index_is_positive_only_on_soil() -> None:
    v = _all("bsi", lambda s: indices.bsi(np.float32(s["blue"]), np.float32(s["red"]), np.float32(s["nir"]), np.float32(s["swir16"])))
    assert v["soil"] > 0.1
    assert v["forest"] < -0.2 and v["pasture"] < -0.05 and v["pond"] < v["soil"]


def test_mndwi_finds_turbid_water_and_ndti_its_sediment() -> None:
    w = _all("mndwi", lambda s: indices.mndwi(np.float32(s["green"]), np.float32(s["swir16"])))
    assert w["pond"] > 0.2 and all(w[k] < 0 for k in ("forest", "soil", "pasture"))
    t = indices.ndti(np.float32(POND["red"]), np.float32(POND["green"]))
    assert t > 0  # sediment: red above green


def test_nbr_drops_more_on_char_than_on_soil() -> None:
    char = indices.nbr(np.float32(0.11), np.float32(0.15))
    soil = indices.nbr(np.float32(SOIL["nir"]), np.float32(SOIL["swir22"]))
    forest = indices.nbr(np.float32(FOREST["nir"]), np.float32(FOREST["swir22"]))
    assert forest > soil > 0 > char


def test_zero_denominator_is_nan_and_arrays_keep_shape() -> None:
    a = np.array([[0.0, 0.2], [0.1, np.nan]], np.float32)
    b = np.array([[0.0, 0.1], [0.1, 0.1]], np.float32)
    out = indices.normalized_difference(a, b)
    assert out.shape == (2, 2) and out.dtype == np.float32
    assert np.isnan(out[0, 0]) and np.isnan(out[1, 1]) and out[1, 0] == 0
    assert out[0, 1] == pytest.approx(1 / 3)


def test_visible_brightness_separates_soil_from_char() -> None:
    soil = indices.visible_brightness(np.float32(SOIL["blue"]), np.float32(SOIL["green"]), np.float32(SOIL["red"]))
    char = indices.visible_brightness(np.float32(0.035), np.float32(0.045), np.float32(0.055))
    assert soil > 0.12 > 0.06 > char
