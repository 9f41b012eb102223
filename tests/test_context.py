"""Context layers: reading GeoPackage/GeoJSON in any CRS, checking the contract's fields, repairing
geometries, reprojecting once per CRS, and one-line errors for files that cannot be used."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import CRS
from shapely.geometry import LineString, MultiLineString, Point, Polygon, box

from geo_monitor.context import LAYER_SPECS, LINE_PIECE_SEGMENTS, ContextLayers, LineIndex, read_layer
from geo_monitor.errors import InvalidInputError
from geo_monitor.settings import CONTEXT_LAYERS, ENV_PREFIX, load_settings

UTM18S = "EPSG:32718"
X0, Y0 = 200_000.0, 9_890_000.0  # near Río Punino, UTM 18S


def _frame(rows: list[dict[str, object]], geoms: list[object], crs: str = UTM18S) -> gpd.GeoDataFrame:
    """Geometries are given in UTM 18S metres and then put in ``crs``."""
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=UTM18S).to_crs(crs)


def _square(x: float, y: float, size: float) -> Polygon:
    return box(X0 + x, Y0 + y, X0 + x + size, Y0 + y + size)


#: One valid feature per layer, with every contract field (and one extra field the loader drops).
LAYER_ROWS: dict[str, tuple[dict[str, object], object]] = {
    "concessions": ({"code": "C-1", "holder": "H", "status": "otorgada", "mineral": "oro", "extra": 1},
                    _square(0, 0, 1000)),
    "protected_areas": ({"name": "Parque", "category": "Parque Nacional"}, _square(2000, 0, 1000)),
    "indigenous_territories": ({"name": "Territorio"}, _square(-2000, 0, 1000)),
    "rivers": ({"name": "Río"}, LineString([(X0 - 5000, Y0 - 100), (X0 + 5000, Y0 - 100)])),
    "provinces": ({"name": "Napo"}, _square(-5000, -5000, 10000)),
}


def write_layer(folder: Path, layer: str, frame: gpd.GeoDataFrame, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{layer}{suffix}"
    frame.to_file(path, layer=layer if suffix == ".gpkg" else None)
    return path


@pytest.fixture
def context_dir(tmp_path: Path) -> Path:
    """All five layers, formats and CRSs mixed the way agencies publish them."""
    folder = tmp_path / "context"
    formats = {"concessions": (".gpkg", UTM18S), "protected_areas": (".geojson", "EPSG:4326"),
               "indigenous_territories": (".gpkg", "EPSG:4326"), "rivers": (".geojson", "EPSG:4326"),
               "provinces": (".gpkg", "EPSG:32717")}
    for layer, (suffix, crs) in formats.items():
        row, geom = LAYER_ROWS[layer]
        write_layer(folder, layer, _frame([row], [geom], crs), suffix)
    return folder


# --------------------------------------------------------------------------- reading


def test_reads_every_layer_in_its_own_crs(context_dir: Path) -> None:
    layers = ContextLayers.from_dir(context_dir)
    assert set(layers.sources) == set(CONTEXT_LAYERS)
    assert layers.sources["protected_areas"].endswith("protected_areas.geojson")
    assert layers.concessions is not None and layers.concessions.crs == CRS(UTM18S)
    assert layers.provinces is not None and layers.provinces.crs == CRS("EPSG:32717")
    assert layers.crs is None  # mixed until reprojected
    for layer, frame in layers.layers().items():
        assert frame is not None and len(frame) == 1
        assert list(frame.columns) == [*LAYER_SPECS[layer].fields, "geometry"], layer
    assert layers.concessions.iloc[0]["code"] == "C-1"


def test_to_crs_reprojects_all_layers_once_per_crs(context_dir: Path) -> None:
    layers = ContextLayers.from_dir(context_dir)
    utm = layers.to_crs(32718)
    assert utm.crs == CRS(UTM18S)
    assert layers.to_crs("EPSG:32718") is utm  # cached, whatever spelling of the CRS
    assert utm.to_crs(UTM18S) is utm
    assert utm.concessions is layers.concessions  # already in that CRS: not copied
    assert utm.protected_areas is not None
    assert utm.protected_areas.geometry.iloc[0].area == pytest.approx(1_000_000, rel=1e-4)
    other = layers.to_crs(32717)
    assert other is not utm and other.crs == CRS("EPSG:32717")


def test_pickles_without_its_cache(context_dir: Path) -> None:
    layers = ContextLayers.from_dir(context_dir)
    layers.to_crs(32718)
    copy = pickle.loads(pickle.dumps(layers))
    assert copy._by_crs == {}
    assert copy.sources == layers.sources
    assert copy.to_crs(32718).crs == CRS(UTM18S)


def test_missing_layer_is_none_and_logged(context_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    (context_dir / "rivers.geojson").unlink()
    with caplog.at_level(logging.WARNING, logger="geo_monitor.context"):
        layers = ContextLayers.from_dir(context_dir)
    assert layers.rivers is None and "rivers" not in layers.sources
    missing = [r for r in caplog.records if r.getMessage() == "context layer missing"]
    assert [getattr(r, "layer", None) for r in missing] == ["rivers"]


def test_empty_folder_gives_no_layers(tmp_path: Path) -> None:
    layers = ContextLayers.from_dir(tmp_path)
    assert all(frame is None for frame in layers.layers().values())
    assert layers.crs is None and layers.to_crs(32718).concessions is None


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        ContextLayers.from_dir(tmp_path / "nowhere")


def test_empty_feature_collection_is_an_empty_layer(tmp_path: Path) -> None:
    (tmp_path / "protected_areas.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    frame = ContextLayers.from_dir(tmp_path).protected_areas
    assert frame is not None and len(frame) == 0
    assert list(frame.columns) == ["name", "category", "geometry"]


def test_field_names_match_without_case_and_values_become_text(tmp_path: Path) -> None:
    frame = _frame([{"CODE": 790123, "Holder": "H", "STATUS": "OTORGADA", "mineral": None}], [_square(0, 0, 100)])
    write_layer(tmp_path, "concessions", frame, ".gpkg")
    loaded = ContextLayers.from_dir(tmp_path).concessions
    assert loaded is not None
    row = loaded.iloc[0]
    assert (row["code"], row["holder"], row["status"], row["mineral"]) == ("790123", "H", "OTORGADA", None)


def test_picks_the_layer_named_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "provinces.gpkg"
    _frame([{"name": "wrong"}], [_square(0, 0, 10)]).to_file(path, layer="draft")
    _frame([{"name": "Napo"}], [_square(0, 0, 10)]).to_file(path, layer="provinces")
    assert read_layer(path, "provinces").iloc[0]["name"] == "Napo"
    other = tmp_path / "ambiguous.gpkg"
    _frame([{"name": "a"}], [_square(0, 0, 10)]).to_file(other, layer="one")
    _frame([{"name": "b"}], [_square(0, 0, 10)]).to_file(other, layer="two")
    with pytest.raises(InvalidInputError, match="2 layers"):
        read_layer(other, "provinces")


# --------------------------------------------------------------------------- geometry repair


def test_invalid_geometries_are_repaired_and_empty_ones_dropped(tmp_path: Path) -> None:
    bowtie = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)])
    assert not bowtie.is_valid
    rows = [{"name": n} for n in ("bowtie", "empty", "null", "fine")]
    frame = gpd.GeoDataFrame(rows, geometry=[bowtie, Polygon(), None, _square(500, 0, 50)], crs=UTM18S)
    write_layer(tmp_path, "protected_areas", frame.assign(category="x"), ".gpkg")
    loaded = ContextLayers.from_dir(tmp_path).protected_areas
    assert loaded is not None
    assert list(loaded["name"]) == ["bowtie", "fine"]
    assert list(loaded.index) == [0, 1]
    assert loaded.is_valid.all()
    assert set(loaded.geom_type) <= {"Polygon", "MultiPolygon"}
    assert loaded.geometry.iloc[0].area == pytest.approx(5000)  # two triangles of the bow-tie


# --------------------------------------------------------------------------- errors


def _one_line_error(path: Path, layer: str) -> str:
    with pytest.raises(InvalidInputError) as caught:
        read_layer(path, layer)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_corrupt_files_are_invalid_input(tmp_path: Path) -> None:
    garbage = tmp_path / "concessions.gpkg"
    garbage.write_bytes(b"not a geopackage" * 64)
    _one_line_error(garbage, "concessions")
    truncated = tmp_path / "rivers.geojson"
    truncated.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "geom')
    _one_line_error(truncated, "rivers")
    with pytest.raises(InvalidInputError, match="concessions.gpkg"):
        ContextLayers.from_dir(tmp_path)


def test_missing_field_names_file_and_field(tmp_path: Path) -> None:
    frame = _frame([{"code": "C-1", "holder": "H", "mineral": "oro"}], [_square(0, 0, 100)])
    path = write_layer(tmp_path, "concessions", frame, ".geojson")
    message = _one_line_error(path, "concessions")
    assert "'status'" in message


def test_file_without_crs_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "provinces.gpkg"
    with pytest.warns(UserWarning):  # pyogrio warns that it writes no CRS
        gpd.GeoDataFrame({"name": ["Napo"]}, geometry=[_square(0, 0, 10)], crs=None).to_file(path)
    assert "coordinate reference system" in _one_line_error(path, "provinces")


def test_wrong_geometry_kind_is_rejected(tmp_path: Path) -> None:
    points = _frame([{"name": "Parque", "category": "x"}], [Point(X0, Y0)])
    path = write_layer(tmp_path, "protected_areas", points, ".gpkg")
    assert "must be polygons; found Point" in _one_line_error(path, "protected_areas")


# --------------------------------------------------------------------------- settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("clean_env")
def test_from_settings_uses_folder_and_explicit_paths(context_dir: Path, tmp_path: Path) -> None:
    row, geom = LAYER_ROWS["rivers"]
    elsewhere = write_layer(tmp_path / "hydro", "rios", _frame([{**row, "name": "Otro"}], [geom]), ".gpkg")
    layers = ContextLayers.from_settings(load_settings(context_dir=context_dir, rivers_path=elsewhere))
    assert layers.sources["rivers"] == str(elsewhere.resolve())
    assert layers.rivers is not None and layers.rivers.iloc[0]["name"] == "Otro"
    assert layers.sources["concessions"] == str(context_dir / "concessions.gpkg")


@pytest.mark.usefixtures("clean_env")
def test_from_settings_errors(context_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        ContextLayers.from_settings(load_settings(context_dir=context_dir, rivers_path=tmp_path / "no.gpkg"))
    with pytest.raises(InvalidInputError, match="context folder"):
        ContextLayers.from_settings(load_settings(context_dir=tmp_path / "absent"))


# --------------------------------------------------------------------------- nearest-river index


def test_line_index_gives_the_exact_nearest_line_and_distance() -> None:
    """Cutting rivers into pieces must not change the answer, for any line length or river polygons."""
    rng = np.random.default_rng(7)
    lines = [LineString(np.c_[X0 + np.cumsum(rng.normal(0, 200, n)), Y0 + np.cumsum(rng.normal(0, 200, n))])
             for n in (2, 3, LINE_PIECE_SEGMENTS, LINE_PIECE_SEGMENTS + 1, LINE_PIECE_SEGMENTS + 2, 200)]
    rivers = np.array([*lines, MultiLineString(lines[:2]), _square(3000, 3000, 400)], dtype=object)
    sites = shapely.buffer(shapely.points(rng.uniform(X0 - 4000, X0 + 4000, (300, 2))), 50)
    index = LineIndex.build(rivers)
    row, distance = index.nearest(sites)
    brute = shapely.distance(sites[:, None], rivers[None, :])
    np.testing.assert_allclose(distance, brute.min(axis=1))
    assert (brute[np.arange(len(sites)), row] == brute.min(axis=1)).all()
    assert len(index.owner) > len(rivers)  # long lines were cut


def test_river_index_is_built_once_and_not_pickled(context_dir: Path) -> None:
    layers = ContextLayers.from_dir(context_dir).to_crs(32718)
    assert layers.rivers_index() is layers.rivers_index()
    copy = pickle.loads(pickle.dumps(layers))
    assert copy._rivers_index is None and copy.rivers_index() is not None
    assert ContextLayers().rivers_index() is None
