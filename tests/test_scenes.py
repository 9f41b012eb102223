"""Scene/BandAsset: parsing both asset conventions, offset rules, hrefs, pickling and Dask tokens."""

from __future__ import annotations

import copy
import pickle
from datetime import datetime, timezone
from typing import Any

import dask.base
import pystac
import pytest

from geo_monitor.bands import ALL_BANDS
from geo_monitor.errors import SceneError
from geo_monitor.scenes import BandAsset, Scene, SkippedItem, scene_or_skip

from stac_fixtures import ITEMS, static_catalog  # noqa: F401  (pytest fixture)

ES_KEYS = ["blue", "green", "red", "nir", "swir16", "swir22", "scl"]
PC_KEYS = ["B02", "B03", "B04", "B08", "B11", "B12", "SCL"]


def make_item(
    keys: list[str] = ES_KEYS,
    *,
    item_id: str = "S2A_TEST",
    props: dict[str, Any] | None = None,
    raster: dict[str, Any] | None = None,
    href_prefix: str = "./",
    self_href: str | None = None,
) -> dict[str, Any]:
    """A minimal STAC item dict; ``raster`` becomes every asset's raster:bands[0]."""
    assets = {}
    for key in keys:
        asset: dict[str, Any] = {"href": f"{href_prefix}{key}.tif", "type": "image/tiff", "roles": ["data"]}
        if raster is not None:
            asset["raster:bands"] = [dict(raster)]
        assets[key] = asset
    assets["thumbnail"] = {"href": "./thumb.jpg", "roles": ["thumbnail"]}
    assets["visual"] = {"href": "./TCI.tif", "roles": ["visual"]}
    links = [{"rel": "self", "href": self_href}] if self_href else []
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "geometry": {"type": "Polygon", "coordinates": [[[-77.5, -1.0], [-77.3, -1.0], [-77.3, -0.8], [-77.5, -0.8], [-77.5, -1.0]]]},
        "bbox": [-77.5, -1.0, -77.3, -0.8],
        "properties": {"datetime": "2024-03-01T15:30:00Z", "platform": "sentinel-2b", **(props or {})},
        "assets": assets,
        "links": links,
    }


def test_earth_search_item_uses_raster_bands() -> None:
    item = make_item(
        props={"eo:cloud_cover": 7.25, "s2:processing_baseline": "05.10", "proj:code": "EPSG:32718"},
        raster={"scale": 0.0002, "offset": -0.05, "nodata": 0},
    )
    scene = Scene.from_item(item, "/data/items/S2A_TEST.json")
    assert list(scene.assets) == list(ALL_BANDS)
    assert scene.assets["red"] == BandAsset("/data/items/red.tif", 0.0002, -0.05, 0, 10)
    assert scene.assets["swir22"].resolution_m == 20
    # SCL holds class codes: never scaled, whatever raster:bands says.
    assert (scene.assets["scl"].scale, scene.assets["scl"].offset) == (1.0, 0.0)
    assert scene.cloud_cover == 7.25
    assert scene.epsg == 32718
    assert scene.platform == "sentinel-2b"
    assert scene.processing_baseline == "05.10"
    assert scene.datetime == datetime(2024, 3, 1, 15, 30, tzinfo=timezone.utc)
    assert scene.bbox == (-77.5, -1.0, -77.3, -0.8)


@pytest.mark.parametrize(
    ("props", "expected_offset"),
    [
        ({"s2:processing_baseline": "05.10"}, -0.1),
        ({"s2:processing_baseline": "04.00"}, -0.1),
        ({"s2:processing_baseline": "03.01"}, 0.0),
        ({"s2:processing_baseline": "05.10", "earthsearch:boa_offset_applied": True}, 0.0),
        # Only a real JSON true counts as "already applied".
        ({"s2:processing_baseline": "05.10", "earthsearch:boa_offset_applied": "true"}, -0.1),
        ({}, -0.1),  # unknown baseline: treated as a current one
    ],
)
def test_planetary_computer_item_offset_from_baseline(props: dict[str, Any], expected_offset: float) -> None:
    scene = Scene.from_item(make_item(PC_KEYS, props=props), "/data/x/item.json")
    assert sorted(scene.assets) == sorted(ALL_BANDS)
    assert scene.assets["blue"].href == "/data/x/B02.tif"
    assert scene.assets["scl"].href == "/data/x/SCL.tif"
    for band in ("blue", "nir", "swir16"):
        assert scene.assets[band].scale == 0.0001
        assert scene.assets[band].offset == expected_offset
    assert scene.assets["scl"].offset == 0.0


def test_raster_bands_without_scale_offset_fall_back_field_by_field() -> None:
    item = make_item(PC_KEYS, props={"s2:processing_baseline": "05.11"}, raster={"nodata": 0, "data_type": "uint16"})
    scene = Scene.from_item(item, "/d/i.json")
    assert (scene.assets["green"].scale, scene.assets["green"].offset, scene.assets["green"].nodata) == (0.0001, -0.1, 0)


def test_item_json_has_only_canonical_assets_with_absolute_hrefs() -> None:
    item = make_item(PC_KEYS, props={"proj:epsg": 32717})
    scene = Scene.from_item(item, "https://example.test/stac/items/S2A_TEST.json")
    assert set(scene.item_json["assets"]) == set(ALL_BANDS)
    assert scene.item_json["assets"]["swir16"]["href"] == "https://example.test/stac/items/B11.tif"
    assert scene.epsg == 32717
    # The caller's dict is not modified.
    assert set(item["assets"]) == set(PC_KEYS) | {"thumbnail", "visual"}
    assert item["assets"]["B11"]["href"] == "./B11.tif"


@pytest.mark.parametrize(
    ("self_href", "asset_prefix", "expected"),
    [
        ("/data/cat/a/item.json", "../cogs/", "/data/cat/cogs/blue.tif"),
        ("file:///data/cat/a/item.json", "./", "/data/cat/a/blue.tif"),
        ("http://127.0.0.1:8000/cat/a/item.json", "../b/", "http://127.0.0.1:8000/cat/b/blue.tif"),
        ("http://127.0.0.1:8000/cat/a/item.json", "https://bucket.example/x/", "https://bucket.example/x/blue.tif"),
        ("/ignored/item.json", "/abs/path/", "/abs/path/blue.tif"),
        (None, "/abs/path/", "/abs/path/blue.tif"),
    ],
)
def test_hrefs_made_absolute(self_href: str | None, asset_prefix: str, expected: str) -> None:
    scene = Scene.from_item(make_item(href_prefix=asset_prefix), self_href)
    assert scene.assets["blue"].href == expected
    assert scene.item_json["assets"]["blue"]["href"] == expected


def test_self_link_used_when_no_self_href_given() -> None:
    scene = Scene.from_item(make_item(self_href="http://127.0.0.1:9/items/S2A_TEST.json"))
    assert scene.assets["nir"].href == "http://127.0.0.1:9/items/nir.tif"


def test_relative_href_without_self_href_is_a_scene_error() -> None:
    with pytest.raises(SceneError, match="relative"):
        Scene.from_item(make_item())


def test_missing_asset_raises_and_scene_or_skip_records_reason() -> None:
    item = make_item([k for k in ES_KEYS if k not in ("swir22", "scl")], item_id="S2B_BROKEN")
    with pytest.raises(SceneError) as info:
        Scene.from_item(item, "/d/i.json")
    assert str(info.value) == "scene S2B_BROKEN: missing asset(s) swir22, scl"
    skipped = scene_or_skip(item, "/d/i.json")
    assert skipped == SkippedItem("S2B_BROKEN", "scene S2B_BROKEN: missing asset(s) swir22, scl")
    assert isinstance(scene_or_skip(make_item(), "/d/i.json"), Scene)


def test_datetime_variants_become_aware_utc() -> None:
    naive = make_item(props={"datetime": "2024-03-01T15:30:00"})
    assert Scene.from_item(naive, "/d/i.json").datetime == datetime(2024, 3, 1, 15, 30, tzinfo=timezone.utc)
    offset = make_item(props={"datetime": "2024-03-01T10:30:00-05:00"})
    assert Scene.from_item(offset, "/d/i.json").datetime == datetime(2024, 3, 1, 15, 30, tzinfo=timezone.utc)
    ranged = make_item(props={"datetime": None, "start_datetime": "2024-03-02T00:00:00Z", "end_datetime": "2024-03-02T01:00:00Z"})
    assert Scene.from_item(ranged, "/d/i.json").datetime == datetime(2024, 3, 2, tzinfo=timezone.utc)
    with pytest.raises(SceneError, match="no datetime"):
        Scene.from_item(make_item(props={"datetime": None}), "/d/i.json")


def test_bbox_from_geometry_when_item_has_none() -> None:
    item = make_item()
    del item["bbox"]
    assert Scene.from_item(item, "/d/i.json").bbox == (-77.5, -1.0, -77.3, -0.8)


def test_pickles_hashes_and_sorts() -> None:
    a = Scene.from_item(make_item(item_id="B", props={"datetime": "2024-03-01T15:30:00Z"}), "/d/i.json")
    b = Scene.from_item(make_item(item_id="A", props={"datetime": "2024-03-01T15:30:00Z"}), "/d/i.json")
    c = Scene.from_item(make_item(item_id="0", props={"datetime": "2024-02-01T15:30:00Z"}), "/d/i.json")
    clone = pickle.loads(pickle.dumps(a))
    assert clone == a and clone.item_json == a.item_json and clone.properties == a.properties
    assert len({a, clone, b}) == 2
    assert [s.id for s in sorted([a, b, c], key=lambda s: s.sort_key)] == ["0", "A", "B"]


def test_dask_token_is_deterministic_and_tracks_assets() -> None:
    item = make_item(props={"s2:processing_baseline": "05.10"})
    a = Scene.from_item(item, "/d/i.json")
    same = Scene.from_item(copy.deepcopy(item), "/d/i.json")
    moved = Scene.from_item(item, "/elsewhere/i.json")
    assert dask.base.tokenize(a) == dask.base.tokenize(same) == dask.base.tokenize(pickle.loads(pickle.dumps(a)))
    assert dask.base.tokenize(a) != dask.base.tokenize(moved)
    assert a.__dask_tokenize__()[1:3] == ("S2A_TEST", "2024-03-01T15:30:00+00:00")


def test_from_pystac_item_read_from_fixture_file(static_catalog) -> None:  # noqa: F811
    item_id = "S2B_MSIL2A_20240110T153619_R068_T18MTV_20240110T201500"
    path = static_catalog.item_json(item_id)
    item = pystac.Item.from_file(str(path))
    scene = Scene.from_item(item)
    assert scene.assets["blue"].href == str(path.parent / "B02.tif")
    assert scene.assets["blue"].offset == ITEMS[item_id].expected_offset == -0.1
    assert scene.epsg == 32718
    assert scene.cloud_cover == 30.0
