"""Lazy loading onto the 10 m grid, DN → reflectance, UTM zones and GDAL settings."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr

from geo_monitor.errors import InvalidInputError
from geo_monitor.gdal_env import GDAL_DEFAULTS, configure_gdal
from geo_monitor.loading import load_dn, to_reflectance, utm_epsg_for
from geo_monitor.scenes import Scene
from geo_monitor.sources import StaticCatalogSource, open_source

from stac_fixtures import (  # noqa: F401  (pytest fixtures)
    AOI_BBOX,
    ITEMS,
    NODATA_ROWS_10M,
    ORIGIN_18S,
    SCL_CLOUD_COLS_20M,
    FixtureCatalog,
    catalog_http_url,
    copy_catalog,
    static_catalog,
)

#: Whole 18S footprint plus a margin: includes nodata rows and pixels outside every scene.
WIDE_BBOX = (-77.4035, -0.9032, -77.3968, -0.8966)
JAN = (date(2024, 1, 1), date(2024, 1, 31))
REFLECTANCE = ("blue", "green", "red", "nir", "swir16", "swir22")


def _scenes(source_href: str | Path, collection: str | None = None) -> list[Scene]:
    result = StaticCatalogSource(source_href, collection).search(WIDE_BBOX, *JAN, None)
    return result.scenes


@pytest.fixture(scope="module")
def all_scenes(static_catalog: FixtureCatalog) -> list[Scene]:
    """Every usable 18S scene of January, all collections, any cloud: five offset conventions."""
    scenes = _scenes(static_catalog.catalog_json)
    assert [s.id for s in scenes] == [
        "S2A_18MTV_20240105_0_L2A",
        "S2A_18MTV_20240105_1_L2A",
        "S2B_MSIL2A_20240110T153619_R068_T18MTV_20240110T201500",
        "OTHER_18MTV_20240112_0_L2A",
        "S2A_18MTV_20240120_0_L2A",
    ]
    return scenes


# --- to_reflectance on hand-made numbers ------------------------------------------------


def _hand_made(chunked: bool = False) -> xr.Dataset:
    blue = np.array([[[0, 1000, 2000], [3000, 0, 10000]], [[500, 0, 1500], [0, 2500, 65535]]], dtype="uint16")
    scl = np.array([[[0, 4, 9], [3, 4, 8]], [[4, 4, 4], [10, 6, 5]]], dtype="uint8")
    ds = xr.Dataset(
        {"blue": (("time", "y", "x"), blue, {"nodata": 0}), "scl": (("time", "y", "x"), scl), "note": ((), 1)},
        coords={
            "time": [datetime(2024, 1, 1), datetime(2024, 1, 2)],
            "scene_id": ("time", ["a", "b"]),
            "scale_blue": ("time", [0.0001, 0.0002]),
            "offset_blue": ("time", [-0.1, 0.0]),
        },
    )
    return ds.chunk({"time": 1}) if chunked else ds


def test_to_reflectance_known_numbers() -> None:
    out = to_reflectance(_hand_made())
    nan = np.nan
    expected = np.array(
        [[[nan, 0.0, 0.1], [0.2, nan, 0.9]], [[0.1, nan, 0.3], [nan, 0.5, 13.107]]], dtype="float32"
    )
    assert out.blue.dtype == np.float32
    np.testing.assert_allclose(out.blue.values, expected, rtol=0, atol=1e-6)
    assert out.scl.dtype == np.uint8
    np.testing.assert_array_equal(out.scl.values, _hand_made().scl.values)
    assert out.blue.attrs == {"units": "1"}
    assert list(out.scene_id.values) == ["a", "b"]
    assert "scale_blue" not in out.coords and "offset_blue" not in out.coords
    assert int(out.note) == 1


def test_to_reflectance_is_lazy_and_refuses_double_application() -> None:
    out = to_reflectance(_hand_made(chunked=True))
    assert isinstance(out.blue.data, da.Array)
    np.testing.assert_allclose(out.blue.values, to_reflectance(_hand_made()).blue.values, equal_nan=True)
    with pytest.raises(InvalidInputError, match="scale_blue"):
        to_reflectance(out)


# --- load_dn on the fixture COGs ------------------------------------------------------


def test_load_dn_grid_dtype_and_laziness(all_scenes: list[Scene], monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open = rasterio.open

    def counting_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", counting_open)
    ds = load_dn(all_scenes, crs="EPSG:32718", bbox=WIDE_BBOX, chunk_px=32)
    assert opened == []  # building the graph reads no pixels

    assert dict(ds.sizes) == {"time": 5, "y": ds.sizes["y"], "x": ds.sizes["x"]}
    for name in REFLECTANCE:
        assert ds[name].dims == ("time", "y", "x") and ds[name].dtype == np.uint16
    assert ds.scl.dtype == np.uint8
    assert all(isinstance(ds[v].data, da.Array) for v in ds.data_vars)
    assert max(ds.blue.data.chunks[1]) <= 32 and set(ds.blue.data.chunks[0]) == {1}

    gbox = ds.odc.geobox
    assert gbox.crs.epsg == 32718
    t = gbox.transform
    assert (t.a, t.b, t.d, t.e) == (10.0, 0.0, 0.0, -10.0)
    assert t.c % 10 == 0 and t.f % 10 == 0  # edges on the 10 m (and hence S2) grid
    # The grid covers the bbox: ~0.0067° ≈ 745 m → 75 ± 1 pixels.
    assert 74 <= ds.sizes["x"] <= 76 and 73 <= ds.sizes["y"] <= 76

    # Two scenes with one timestamp stay two slices, labelled in (datetime, id) order.
    assert list(ds.scene_id.values) == [s.id for s in all_scenes]
    assert ds.time.values[0] == ds.time.values[1]
    assert list(ds.offset_blue.values) == pytest.approx([-0.1, 0.0, -0.1, 0.0, 0.0])
    assert list(ds.scale_red.values) == pytest.approx([0.0001] * 5)
    assert "scale_scl" not in ds.coords

    ds.blue.isel(time=0).compute()
    assert opened  # pixels are read at compute time


def test_load_dn_reflectance_values_all_conventions(all_scenes: list[Scene]) -> None:
    ds = load_dn(all_scenes, crs="EPSG:32718", bbox=WIDE_BBOX, chunk_px=32)
    refl = to_reflectance(ds).compute()
    x0, y0 = ORIGIN_18S
    cols = np.round((refl.x.values - 5 - x0) / 10).astype(int)  # fixture column of each output pixel
    rows = np.round((y0 - refl.y.values - 5) / 10).astype(int)
    inside_x = (cols >= 0) & (cols < 64)
    valid_row = int(np.nonzero(rows == NODATA_ROWS_10M + 3)[0][0])
    nodata_row = int(np.nonzero(rows == 1)[0][0])
    outside_row = int(np.nonzero(rows < 0)[0][0])

    for t, scene_id in enumerate(refl.scene_id.values):
        spec = ITEMS[str(scene_id)]
        for band in REFLECTANCE:
            got = refl[band].values[t, valid_row]
            want = np.array([spec.reflectance(band, c) if ok else np.nan for c, ok in zip(cols, inside_x)])
            np.testing.assert_allclose(got, want, atol=1e-6, err_msg=f"{scene_id} {band}")
            assert np.isnan(refl[band].values[t, nodata_row]).all()
            assert np.isnan(refl[band].values[t, outside_row]).all()
        scl = refl.scl.values[t, valid_row]
        want_scl = np.where(~inside_x, 0, np.where(cols // 2 < SCL_CLOUD_COLS_20M, 9, 4))
        np.testing.assert_array_equal(scl, want_scl)
    # One concrete number per convention, to read at a glance (column 20, 20 m column 10):
    c20 = int(np.nonzero(cols == 20)[0][0])
    assert refl.blue.values[:, valid_row, c20] == pytest.approx([0.102, 0.122, 0.152, 0.092, 0.152], abs=1e-6)
    assert refl.swir16.values[:, valid_row, c20] == pytest.approx([0.141, 0.161, 0.191, 0.131, 0.191], abs=1e-6)


def test_load_dn_bilinear_for_reflectance_keeps_scl_nearest(all_scenes: list[Scene]) -> None:
    # 10 m pixel centres sit between 20 m centres, so bilinear interpolates every swir16 sample.
    ds = load_dn(all_scenes[:1], crs="EPSG:32718", bbox=AOI_BBOX, resolution=10, resampling="bilinear", bands=["swir16", "scl"])
    assert set(ds.data_vars) == {"swir16", "scl"}
    values = ds.compute()
    assert set(np.unique(values.scl.values)) <= {0, 4, 9}


def test_load_dn_fails_at_compute_when_a_file_is_gone(static_catalog: FixtureCatalog, tmp_path: Path) -> None:
    copy = copy_catalog(static_catalog, tmp_path / "cat")
    scenes = _scenes(copy.catalog_json, "sentinel-2-l2a")[:1]
    ds = load_dn(scenes, crs="EPSG:32718", bbox=AOI_BBOX, bands=["blue"])
    os.remove(scenes[0].assets["blue"].href)
    with pytest.raises(Exception, match="blue.tif"):
        ds.compute()
    tolerant = load_dn(scenes, crs="EPSG:32718", bbox=AOI_BBOX, bands=["blue"], fail_on_error=False).compute()
    assert int(tolerant.blue.max()) == 0  # nodata where the file was


def test_load_dn_over_http_matches_local(all_scenes: list[Scene], catalog_http_url: str) -> None:
    remote = open_source(catalog_http_url, "sentinel-2-l2a").search(WIDE_BBOX, *JAN, 50.0).scenes
    assert remote[0].assets["blue"].href.startswith("http://127.0.0.1:")
    local = [s for s in all_scenes if s.id in {r.id for r in remote}]
    with dask.config.set(scheduler="threads"):
        a = load_dn(remote, crs="EPSG:32718", bbox=AOI_BBOX, bands=["blue", "swir22", "scl"]).compute()
        b = load_dn(local, crs="EPSG:32718", bbox=AOI_BBOX, bands=["blue", "swir22", "scl"]).compute()
    xr.testing.assert_identical(a, b)


def test_load_dn_rejects_bad_input(all_scenes: list[Scene]) -> None:
    with pytest.raises(InvalidInputError, match="no scenes"):
        load_dn([], crs="EPSG:32718", bbox=AOI_BBOX)
    with pytest.raises(InvalidInputError, match="unknown band"):
        load_dn(all_scenes, crs="EPSG:32718", bbox=AOI_BBOX, bands=["B04"])


# --- UTM zones and GDAL -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (-77.4, -0.9, 32718),  # Río Punino
        (-78.66, -4.25, 32717),  # Nangaritza
        (-79.8, 1.2, 32617),  # Esmeraldas, north of the equator
        (-78.0, -1.0, 32718),  # zone edge belongs to the eastern zone
        (-78.0001, -1.0, 32717),
        (-77.0, 0.0, 32618),  # the equator is north
        (180.0, 10.0, 32660),
        (-180.0, -10.0, 32701),
    ],
)
def test_utm_epsg_for(lon: float, lat: float, epsg: int) -> None:
    assert utm_epsg_for(lon, lat) == epsg


def test_utm_epsg_for_rejects_non_degrees() -> None:
    with pytest.raises(InvalidInputError):
        utm_epsg_for(232894.0, 9900434.0)


def test_configure_gdal_sets_defaults_without_overriding(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in GDAL_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GDAL_NUM_THREADS", "1")
    applied = configure_gdal(VSI_CACHE_SIZE="1000")
    assert applied["GDAL_NUM_THREADS"] == "1"  # the user's value wins
    assert applied["GDAL_DISABLE_READDIR_ON_OPEN"] == os.environ["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert applied["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"] == "YES"
    assert applied["GDAL_HTTP_MULTIPLEX"] == "YES"
    assert applied["VSI_CACHE"] == "TRUE"
    assert applied["VSI_CACHE_SIZE"] == "1000"
    assert configure_gdal() == applied  # idempotent
