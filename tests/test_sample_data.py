"""The SYNTHETIC sample area: what it contains, that it is reproducible, and that readers can use it.

Most tests read the small preset built once per session by the CLI
(``sample_area`` in conftest.py); the reproducibility tests build a short
variant of the same generator twice.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
from rio_cogeo import cog_validate

from conftest import cli
from geo_monitor.bands import PLANETARY_COMPUTER_KEYS, REFLECTANCE_BANDS, SCL
from geo_monitor.loading import load_dn, to_reflectance
from geo_monitor.sources import open_source
from geo_monitor.validation import ECUADOR_BBOX
from sample_data import SMALL, build_sample_area, verify_sample_area
from sample_data import build as build_module
from sample_data.atmosphere import Sky, scene_classification
from sample_data.spectra import SPECTRA, Cover
from stac_api_server import StacApiServer
from stac_fixtures import serve_folder

ES_KEYS = set(REFLECTANCE_BANDS) | {"scl"}
PC_KEYS = set(PLANETARY_COMPUTER_KEYS)


def _items(sample: Path) -> list[pystac.Item]:
    return list(pystac.Catalog.from_file(str(sample / "catalog" / "catalog.json")).get_items(recursive=True))


def _short_spec(scenes: int = 6) -> object:
    return dataclasses.replace(SMALL, name="punino-short", max_scenes=scenes)


# --------------------------------------------------------------------------- catalog and imagery


def test_catalog_is_stac_and_labelled_synthetic(sample_area: Path) -> None:
    catalog = pystac.Catalog.from_file(str(sample_area / "catalog" / "catalog.json"))
    collection = next(iter(catalog.get_children()))
    assert isinstance(collection, pystac.Collection)
    assert "SYNTHETIC" in collection.description
    items = list(collection.get_items())
    assert items and all(item.properties.get("synthetic") is True for item in items)
    assert "SYNTHETIC" in (sample_area / "README.txt").read_text()
    with rasterio.open(next(iter(items[0].assets.values())).get_absolute_href()) as ds:
        assert ds.tags()["SYNTHETIC"] == "true"


def test_catalog_spans_18_months_at_5_day_revisit(sample_area: Path) -> None:
    days = sorted({item.datetime.date() for item in _items(sample_area)})
    assert (days[-1] - days[0]).days >= 548
    assert {(b - a).days for a, b in zip(days, days[1:])} == {5}


def test_asset_conventions_are_mixed_as_design_allows(sample_area: Path) -> None:
    items = _items(sample_area)
    key_sets = {frozenset(item.assets) for item in items}
    assert key_sets == {frozenset(ES_KEYS), frozenset(PC_KEYS)}
    with_scale = [i for i in items if "raster:bands" in i.assets.get("nir", i.assets.get("B08")).extra_fields]
    baseline_only = [i for i in items if i not in with_scale]
    assert with_scale and baseline_only
    assert all("s2:processing_baseline" in i.properties for i in items)
    assert any(i.properties.get("earthsearch:boa_offset_applied") is True for i in baseline_only)
    for item in items[:10]:
        for key, asset in item.assets.items():
            band = PLANETARY_COMPUTER_KEYS.get(key, key)
            expected = 20 if band in ("swir16", "swir22", "scl") else 10
            assert asset.extra_fields["proj:transform"][0] == expected, (item.id, key)
            with rasterio.open(asset.get_absolute_href()) as ds:
                assert ds.res == (expected, expected) and ds.crs.to_epsg() == 32718
                assert ds.dtypes[0] == ("uint8" if band == "scl" else "uint16")


def test_every_cog_is_valid(sample_area: Path) -> None:
    tifs = sorted((sample_area / "catalog").rglob("*.tif"))
    assert len(tifs) == 7 * len(_items(sample_area))
    invalid = [p.name for p in tifs if not cog_validate(str(p), quiet=True)[0]]
    assert invalid == []


def test_amazon_cloudiness(sample_area: Path) -> None:
    cover = np.array([item.properties["eo:cloud_cover"] for item in _items(sample_area)])
    assert np.median(cover) > 60
    assert (cover < 30).sum() >= 3, "some near-clear scenes must exist or nothing could be seen"


def test_dn_conventions_decode_to_the_same_forest(sample_area: Path) -> None:
    """Whatever the item's convention, DN -> reflectance must give forest its anchored spectrum."""
    result = open_source(str(sample_area / "catalog" / "catalog.json")).search(
        _bbox(sample_area), SMALL.start, SMALL.end, max_cloud_cover=50)
    by_kind: dict[tuple[str, float], object] = {}
    for scene in result.scenes:
        keys = "earth-search" if "earthsearch:boa_offset_applied" in scene.properties else "planetary-computer"
        by_kind.setdefault((keys, scene.assets["nir"].offset), scene)
    assert len(by_kind) == 3, by_kind.keys()  # ES with offset -0.1, ES already applied (0), PC
    ds = to_reflectance(load_dn(list(by_kind.values()), crs="EPSG:32718", bbox=_bbox(sample_area))).compute()
    for t in range(ds.sizes["time"]):
        veg = ds["scl"][t].values == SCL.VEGETATION
        nir = np.nanmedian(ds["nir"][t].values[veg])
        red = np.nanmedian(ds["red"][t].values[veg])
        # a wrong DN convention is off by 0.1 everywhere; haze and thin cloud move medians far less
        assert 0.18 < nir < 0.40 and 0.0 < red < 0.08, (str(ds["scene_id"][t].values), nir, red)


def test_sample_loads_lazily_with_odc_stac(sample_area: Path) -> None:
    import odc.stac

    items = _items(sample_area)[:4]
    for item in items:  # odc-stac reads Earth Search keys; PC items are renamed by geo_monitor.scenes
        assert item.assets
    es_items = [i for i in _items(sample_area) if "nir" in i.assets][:3]
    ds = odc.stac.load(es_items, bands=["red", "nir", "swir16", "scl"], crs="EPSG:32718", resolution=10,
                       chunks={"x": 256, "y": 256}, bbox=_bbox(sample_area))
    assert ds["nir"].chunks is not None  # dask-backed, nothing read yet
    assert ds.odc.geobox.crs.epsg == 32718
    assert ds.odc.geobox.resolution.x == 10 and ds.odc.geobox.resolution.y == -10
    assert ds["swir16"].shape[-2:] == ds["nir"].shape[-2:]  # 20 m resampled onto the 10 m grid
    assert int(ds["nir"][0].max().compute()) > 1000


def test_sample_loads_lazily_with_geo_monitor_loader(sample_area: Path) -> None:
    result = open_source(str(sample_area / "catalog" / "catalog.json")).search(_bbox(sample_area), SMALL.start, SMALL.end)
    assert len(result.scenes) == len(_items(sample_area)) and not result.skipped
    ds = load_dn(result.scenes, crs="EPSG:32718", bbox=_bbox(sample_area))
    assert hasattr(ds["nir"].data, "dask")
    assert ds.sizes["x"] >= 480 and ds.sizes["y"] >= 480  # 512 px minus the test bbox margin
    assert float(ds.x[1] - ds.x[0]) == 10.0


def test_sample_catalog_over_loopback_http(sample_area: Path) -> None:
    local = open_source(str(sample_area / "catalog" / "catalog.json")).search(
        _bbox(sample_area), date(2024, 1, 1), date(2024, 3, 31), 80)
    with serve_folder(sample_area / "catalog") as server:
        source = open_source(f"{server.url}/catalog.json")
        remote = source.search(_bbox(sample_area), date(2024, 1, 1), date(2024, 3, 31), 80)
        assert [s.id for s in remote.scenes] == [s.id for s in local.scenes] and remote.scenes
        first = remote.scenes[0]
        over_http = load_dn([first], crs="EPSG:32718", bbox=_bbox(sample_area), bands=["nir"]).compute()
    on_disk = load_dn([local.scenes[0]], crs="EPSG:32718", bbox=_bbox(sample_area), bands=["nir"]).compute()
    np.testing.assert_array_equal(over_http["nir"].values, on_disk["nir"].values)


def test_sample_through_a_stac_api_on_loopback(sample_area: Path) -> None:
    window = (date(2024, 5, 1), date(2024, 8, 31))
    static = open_source(str(sample_area / "catalog" / "catalog.json")).search(_bbox(sample_area), *window, 70)
    with StacApiServer.from_folder(sample_area / "catalog") as server:
        api = open_source(server.url, "sentinel-2-l2a").search(_bbox(sample_area), *window, 70)
    assert sorted(s.id for s in api.scenes) == sorted(s.id for s in static.scenes)
    assert all(s.cloud_cover <= 70 for s in api.scenes)


def _bbox(sample: Path) -> tuple[float, float, float, float]:
    coll = json.loads((sample / "catalog" / "sentinel-2-l2a" / "collection.json").read_text())
    w, s, e, n = coll["extent"]["spatial"]["bbox"][0]
    assert ECUADOR_BBOX[0] < w < e < ECUADOR_BBOX[2] and ECUADOR_BBOX[1] < s < n < ECUADOR_BBOX[3]
    return (w + 0.001, s + 0.001, e - 0.001, n - 0.001)


# --------------------------------------------------------------------------- context and ground truth

CONTEXT_FIELDS = {
    "concessions": {"code", "holder", "status", "mineral"},
    "protected_areas": {"name", "category"},
    "indigenous_territories": {"name"},
    "rivers": {"name"},
    "provinces": {"name"},
}


@pytest.fixture(scope="module")
def context(sample_area: Path) -> dict[str, gpd.GeoDataFrame]:
    found = {}
    for path in (sample_area / "context").iterdir():
        found[path.stem] = gpd.read_file(path).to_crs("EPSG:32718")
    return found


@pytest.fixture(scope="module")
def truth(sample_area: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(sample_area / "truth.geojson").to_crs("EPSG:32718")


def test_context_layers_have_design_fields(context: dict[str, gpd.GeoDataFrame]) -> None:
    assert set(context) == set(CONTEXT_FIELDS)
    for layer, fields in CONTEXT_FIELDS.items():
        frame = context[layer]
        assert fields <= set(frame.columns), layer
        assert (frame["source"] == "synthetic").all()
        assert frame.geometry.is_valid.all() and not frame.geometry.is_empty.any()


def test_ground_truth_has_mines_and_every_decoy(sample_area: Path) -> None:
    doc = json.loads((sample_area / "truth.geojson").read_text())
    props = [f["properties"] for f in doc["features"]]
    assert {"mining", "old_mining", "agriculture", "crop_cycle", "burn", "road", "landslide",
            "river_change", "flood"} <= {p["kind"] for p in props}
    assert all(p["synthetic"] is True for p in props)
    starts = {p["name"]: date.fromisoformat(p["start_date"]) for p in props}  # ISO dates, as DESIGN fixes
    new_mines = [p["name"] for p in props if p["kind"] == "mining"]
    assert len(new_mines) >= 3 and all(starts[m] >= SMALL.monitor_start for m in new_mines)


def test_mines_sit_where_legality_says(truth: gpd.GeoDataFrame, context: dict[str, gpd.GeoDataFrame]) -> None:
    concessions = context["concessions"].union_all()
    river = context["rivers"].union_all()
    mines = truth[truth["kind"] == "mining"]
    assert (mines["expected_legality"] == "inside_concession").sum() == 1
    for _, mine in mines.iterrows():
        inside = concessions.intersection(mine.geometry).area / mine.geometry.area
        if mine["expected_legality"] == "inside_concession":
            assert inside > 0.99, mine["name"]
            for layer in ("protected_areas", "indigenous_territories"):  # a title does not cover a park
                assert not context[layer].union_all().intersects(mine.geometry), (mine["name"], layer)
        else:
            assert inside == 0, mine["name"]
        assert mine.geometry.distance(river) < 300, f"{mine['name']} is not near the river"
    protected = context["protected_areas"].union_all()
    in_park = mines[mines["name"].str.contains("protected")]
    assert len(in_park) and all(protected.contains(g.centroid) for g in in_park.geometry)


def test_spectra_are_anchored_on_the_measured_medians() -> None:
    anchors = {
        Cover.FOREST: [0.025, 0.042, 0.023, 0.284, 0.147, 0.062],
        Cover.MINING_SOIL: [0.098, 0.137, 0.166, 0.215, 0.234, 0.154],
        Cover.POND: [0.078, 0.102, 0.107, 0.072, 0.057, 0.042],
        Cover.PASTURE: [0.071, 0.093, 0.085, 0.264, 0.193, 0.122],
    }
    for cover, spectrum in anchors.items():
        np.testing.assert_allclose(SPECTRA[cover], spectrum, atol=1e-6)


# --------------------------------------------------------------------------- SCL errors (pure)


def _sky(cloud: np.ndarray, confusion: bool) -> Sky:
    zeros = np.zeros_like(cloud)
    return Sky(cloud=cloud, shadow=zeros, haze=zeros, cirrus=zeros, valid=np.ones(cloud.shape, bool),
               cloud_brightness=1.0, gain=1.0, bright_soil_confusion=confusion, noise_seed=0)


def test_scl_misses_thin_cloud_edges_and_calls_bright_soil_cloud() -> None:
    shape = (64, 64)
    refl = np.broadcast_to(SPECTRA[Cover.FOREST][:, None, None], (6, *shape)).copy()
    refl[:, :, 32:] = SPECTRA[Cover.MINING_SOIL][:, None, None]  # right half: bare mining soil
    cloud = np.zeros(shape, np.float32)
    cloud[:16, :] = 0.1  # thin edge of a cloud over the top rows
    rng = np.random.default_rng(0)
    plain = scene_classification(refl, _sky(cloud, confusion=False), rng)
    assert set(np.unique(plain[:8, :16])) == {SCL.VEGETATION}, "thin edge must be missed"
    assert not np.isin(plain[8:, 16:], (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY)).any()
    confused = scene_classification(refl, _sky(cloud, confusion=True), rng)
    soil = confused[8:, 16:]
    assert np.isin(soil, (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY)).mean() > 0.3
    assert (confused[8:, :16] == SCL.VEGETATION).all(), "forest is never called cloud"


# --------------------------------------------------------------------------- reproducibility and safety


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    spec = _short_spec()
    a = build_sample_area(spec, tmp_path / "a", workers=2, progress=False)
    b = build_sample_area(spec, tmp_path / "b", workers=1, progress=False)
    files_a, files_b = _all_bytes(a.out_dir), _all_bytes(b.out_dir)
    assert files_a.keys() == files_b.keys() and len(files_a) > 30
    assert [k for k in files_a if files_a[k] != files_b[k]] == []
    other = build_sample_area(spec.with_seed(spec.seed + 1), tmp_path / "c", workers=2, progress=False)
    tif = next(k for k in files_a if k.endswith("_nir.tif"))
    assert _all_bytes(other.out_dir).get(tif) != files_a[tif]


def test_verify_finds_changed_and_missing_files(tmp_path: Path) -> None:
    report = build_sample_area(_short_spec(3), tmp_path / "area", workers=1, progress=False)
    assert verify_sample_area(report.out_dir) == []
    tifs = sorted(report.out_dir.rglob("*.tif"))
    tifs[0].write_bytes(tifs[0].read_bytes()[:-10])
    tifs[1].unlink()
    problems = verify_sample_area(report.out_dir)
    assert len(problems) == 2 and any(p.startswith("changed") for p in problems)
    result = cli("sample-data", "--verify", "--out", str(report.out_dir))
    assert result.returncode != 0 and "changed" in result.stdout + result.stderr


def test_a_crashed_build_resumes_and_ends_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _short_spec(6)
    clean = build_sample_area(spec, tmp_path / "clean", workers=1, progress=False)
    real_render = build_module.render_scene

    def crash_on_fourth(spec_, index, day, item_dir):
        if index == 3:
            raise KeyboardInterrupt("simulated crash")
        return real_render(spec_, index, day, item_dir)

    monkeypatch.setattr(build_module, "render_scene", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        build_sample_area(spec, tmp_path / "resumed", workers=1, progress=False)
    assert not (tmp_path / "resumed").exists(), "nothing half-built may appear at the output path"
    assert len(list((tmp_path / "resumed.partial" / ".done").glob("*.json"))) == 3
    monkeypatch.setattr(build_module, "render_scene", real_render)
    resumed = build_sample_area(spec, tmp_path / "resumed", workers=1, progress=False)
    assert _all_bytes(resumed.out_dir) == _all_bytes(clean.out_dir)
    assert not (tmp_path / "resumed.partial").exists()


def test_rebuilding_a_verified_area_reuses_it(tmp_path: Path) -> None:
    spec = _short_spec(3)
    first = build_sample_area(spec, tmp_path / "area", workers=1, progress=False)
    again = build_sample_area(spec, tmp_path / "area", workers=1, progress=False)
    assert again.reused and not first.reused
    (tmp_path / "area" / "truth.geojson").write_text("{}")
    repaired = build_sample_area(spec, tmp_path / "area", workers=1, progress=False)
    assert not repaired.reused and verify_sample_area(repaired.out_dir) == []


def test_cli_verify_of_the_built_sample(sample_area: Path) -> None:
    result = cli("sample-data", "--verify", "--out", str(sample_area))
    assert result.returncode == 0, result.stderr
    missing = cli("sample-data", "--verify", "--out", str(sample_area.parent / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and missing.stderr.startswith("error:")
    assert "Traceback" not in missing.stderr
