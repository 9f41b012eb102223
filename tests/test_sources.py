"""Imagery sources: static catalogs (local, file://, loopback HTTP) and a loopback STAC API give the same answers."""

from __future__ import annotations

import json
import pickle
from datetime import date
from pathlib import Path

import pytest

from geo_monitor.errors import CatalogError
from geo_monitor.sources import (
    ImagerySource,
    SearchResult,
    SkippedItem,
    StacApiSource,
    StaticCatalogSource,
    open_source,
)
from geo_monitor.sources._static import assemble

from stac_api_server import StacApiServer
from stac_fixtures import (  # noqa: F401  (pytest fixtures)
    AOI_BBOX,
    COLLECTION,
    FixtureCatalog,
    catalog_http_url,
    closed_port_url,
    copy_catalog,
    serve_folder,
    stac_api,
    static_catalog,
)

A0 = "S2A_18MTV_20240105_0_L2A"
A1 = "S2A_18MTV_20240105_1_L2A"
PC = "S2B_MSIL2A_20240110T153619_R068_T18MTV_20240110T201500"
BROKEN = "S2B_18MTV_20240115_0_L2A"
CLOUDY = "S2A_18MTV_20240120_0_L2A"
ZONE17 = "S2A_17MPS_20240125_0_L2A"
OTHER = "OTHER_18MTV_20240112_0_L2A"
ZONE17_BBOX = (-79.01, -3.01, -78.99, -2.99)
JAN = (date(2024, 1, 1), date(2024, 1, 31))

#: (bbox, start, end, max cloud, collection) -> expected scene ids (in order) and skipped ids.
CASES = [
    pytest.param(AOI_BBOX, *JAN, 50.0, COLLECTION, [A0, A1, PC], [BROKEN], id="aoi-cloud50"),
    pytest.param(AOI_BBOX, *JAN, None, COLLECTION, [A0, A1, PC, CLOUDY], [BROKEN], id="aoi-any-cloud"),
    pytest.param(AOI_BBOX, *JAN, 10.0, COLLECTION, [A1], [BROKEN], id="aoi-cloud10-keeps-unknown-cloud"),
    pytest.param(AOI_BBOX, *JAN, 50.0, None, [A0, A1, PC, OTHER], [BROKEN], id="all-collections"),
    pytest.param(AOI_BBOX, date(2024, 1, 10), date(2024, 1, 10), None, COLLECTION, [PC], [], id="one-inclusive-day"),
    pytest.param(AOI_BBOX, date(2024, 1, 6), date(2024, 1, 15), None, COLLECTION, [PC], [BROKEN], id="days-6-15"),
    pytest.param(ZONE17_BBOX, *JAN, 50.0, COLLECTION, [ZONE17], [], id="zone17"),
    pytest.param((-76.0, 0.5, -75.5, 1.0), *JAN, None, None, [], [], id="nothing-there"),
]


def _ids(result: SearchResult) -> tuple[list[str], list[str]]:
    return [s.id for s in result.scenes], [s.id for s in result.skipped]


@pytest.mark.parametrize(("bbox", "start", "end", "cloud", "collection", "scenes", "skipped"), CASES)
def test_static_local_search(static_catalog: FixtureCatalog, bbox, start, end, cloud, collection, scenes, skipped) -> None:
    source = StaticCatalogSource(str(static_catalog.catalog_json), collection)
    assert _ids(source.search(bbox, start, end, cloud)) == (scenes, skipped)


@pytest.mark.parametrize(("bbox", "start", "end", "cloud", "collection", "scenes", "skipped"), CASES)
def test_static_http_search(catalog_http_url: str, bbox, start, end, cloud, collection, scenes, skipped) -> None:
    source = open_source(catalog_http_url, collection)
    assert isinstance(source, StaticCatalogSource)
    assert _ids(source.search(bbox, start, end, cloud)) == (scenes, skipped)


@pytest.mark.parametrize(("bbox", "start", "end", "cloud", "collection", "scenes", "skipped"), CASES)
def test_stac_api_search(stac_api: StacApiServer, bbox, start, end, cloud, collection, scenes, skipped) -> None:
    source = open_source(stac_api.url + "/", collection)
    assert isinstance(source, StacApiSource)
    assert _ids(source.search(bbox, start, end, cloud)) == (scenes, skipped)


def test_scene_details_from_each_source_agree(static_catalog: FixtureCatalog, catalog_http_url: str, stac_api) -> None:
    results = {
        "local": StaticCatalogSource(static_catalog.root, COLLECTION).search(AOI_BBOX, *JAN, 50.0),
        "http": open_source(catalog_http_url, COLLECTION).search(AOI_BBOX, *JAN, 50.0),
        "api": open_source(stac_api.url, COLLECTION).search(AOI_BBOX, *JAN, 50.0),
    }
    local_pc = results["local"].scenes[2]
    assert local_pc.id == PC
    assert local_pc.assets["blue"].href == str(static_catalog.root / COLLECTION / PC / "B02.tif")
    assert results["http"].scenes[2].assets["blue"].href == catalog_http_url.replace("catalog.json", f"{COLLECTION}/{PC}/B02.tif")
    for result in results.values():
        pc = result.scenes[2]
        assert (pc.assets["blue"].scale, pc.assets["blue"].offset) == (0.0001, -0.1)
        assert (result.scenes[1].assets["red"].offset, result.scenes[0].assets["red"].offset) == (0.0, -0.1)
        assert [s.epsg for s in result.scenes] == [32718] * 3
        assert result.skipped[0].reason == f"scene {BROKEN}: missing asset(s) swir22"


def test_api_paginates_and_sends_no_query_it_does_not_support(static_catalog: FixtureCatalog) -> None:
    with StacApiServer.from_folder(static_catalog.root, page_cap=1) as server:
        result = StacApiSource(server.url, COLLECTION).search(AOI_BBOX, *JAN, 50.0)
        searches = [r for r in server.requests if r[1] == "/search"]
    assert _ids(result) == ([A0, A1, PC], [BROKEN])
    # 5 items of the collection match bbox+dates server side (cloud is filtered here): 5 pages.
    assert len(searches) == 5
    assert all("query" not in params for _, _, params in searches)
    assert searches[0][2]["collections"] == [COLLECTION]
    assert searches[0][2]["datetime"] == "2024-01-01T00:00:00Z/2024-01-31T23:59:59.999999Z"


def test_api_with_query_extension_filters_cloud_server_side(static_catalog: FixtureCatalog) -> None:
    with StacApiServer.from_folder(static_catalog.root, query=True) as server:
        result = StacApiSource(server.url, COLLECTION).search(AOI_BBOX, *JAN, 50.0)
        searches = [r for r in server.requests if r[1] == "/search"]
    assert searches[0][2]["query"] == {"eo:cloud_cover": {"lte": 50.0}}
    # Server-side query drops the item without eo:cloud_cover (documented caveat).
    assert _ids(result) == ([A0, PC], [BROKEN])


def test_core_only_api_is_walked_by_links(static_catalog: FixtureCatalog) -> None:
    with StacApiServer.from_folder(static_catalog.root, core_only=True) as server:
        source = open_source(server.url)
        assert isinstance(source, StacApiSource)
        result = source.search(AOI_BBOX, *JAN, 50.0)
    assert _ids(result) == ([A0, A1, PC, OTHER], [BROKEN])


def test_open_source_accepts_folder_file_and_file_url(static_catalog: FixtureCatalog) -> None:
    expected = ([A0, A1, PC], [BROKEN])
    for given in (static_catalog.root, static_catalog.catalog_json, static_catalog.catalog_json.as_uri()):
        source = open_source(str(given), COLLECTION)
        assert isinstance(source, StaticCatalogSource)
        assert isinstance(source, ImagerySource)
        assert _ids(source.search(AOI_BBOX, *JAN, 50.0)) == expected
    # A collection.json is a valid root too.
    collection_json = static_catalog.root / COLLECTION / "collection.json"
    assert _ids(open_source(str(collection_json)).search(AOI_BBOX, *JAN, 50.0)) == expected


def test_sources_pickle(static_catalog: FixtureCatalog, stac_api) -> None:
    api = StacApiSource(stac_api.url, COLLECTION)
    api.search(AOI_BBOX, *JAN, 50.0)  # opens its client
    for source in (StaticCatalogSource(static_catalog.root, COLLECTION), api):
        clone = pickle.loads(pickle.dumps(source))
        assert _ids(clone.search(AOI_BBOX, *JAN, 50.0)) == ([A0, A1, PC], [BROKEN])


def test_unreadable_item_link_is_skipped_not_fatal(static_catalog: FixtureCatalog, tmp_path: Path) -> None:
    copy = copy_catalog(static_catalog, tmp_path / "cat")
    copy.item_json(A1).unlink()
    bad = copy.item_json(PC)
    bad.write_text("{ not json", encoding="utf-8")
    result = open_source(str(copy.catalog_json), COLLECTION).search(AOI_BBOX, *JAN, 50.0)
    assert [s.id for s in result.scenes] == [A0]
    reasons = {s.id: s.reason for s in result.skipped}
    assert reasons[BROKEN] == f"scene {BROKEN}: missing asset(s) swir22"
    assert reasons[str(copy.item_json(A1))].startswith("linked item unreadable:")
    assert "no such file" in reasons[str(copy.item_json(A1))]
    assert "invalid JSON" in reasons[str(bad)]


def test_duplicates_are_kept_once_and_sorted() -> None:
    base = {
        "type": "Feature", "stac_version": "1.0.0", "bbox": [-77.5, -1, -77.3, -0.8],
        "geometry": None, "links": [],
        "assets": {k: {"href": f"/x/{k}.tif"} for k in ("blue", "green", "red", "nir", "swir16", "swir22", "scl")},
    }
    late = {**base, "id": "b", "properties": {"datetime": "2024-01-02T00:00:00Z"}}
    early = {**base, "id": "a", "properties": {"datetime": "2024-01-01T00:00:00Z"}}
    broken = {**base, "id": "c", "assets": {}, "properties": {"datetime": "2024-01-01T00:00:00Z"}}
    result = assemble([(late, None), (early, None), (late, None), (broken, None), (broken, None)])
    assert [s.id for s in result.scenes] == ["a", "b"]
    assert [s.id for s in result.skipped] == ["c"]


# --- errors: one line, naming the path or URL -----------------------------------------------


def _one_line_catalog_error(target: str) -> str:
    with pytest.raises(CatalogError) as info:
        open_source(target)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "catalog.json"
    message = _one_line_catalog_error(str(missing))
    assert message == f"{missing}: no such file"
    with pytest.raises(CatalogError, match="no such file"):
        StaticCatalogSource(str(missing)).search(AOI_BBOX, *JAN)


def test_folder_without_catalog(tmp_path: Path) -> None:
    assert "folder without catalog.json" in _one_line_catalog_error(str(tmp_path))


def test_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text('{"type": "Catalog", "links": [', encoding="utf-8")
    message = _one_line_catalog_error(str(path))
    assert message.startswith(f"{path}: invalid JSON (")


@pytest.mark.parametrize(
    ("doc", "phrase"),
    [
        ({"hello": "world"}, "a JSON object, not a STAC catalog"),
        ([1, 2, 3], "a JSON array, not a STAC catalog"),
        ({"type": "FeatureCollection", "features": []}, "not a STAC catalog"),
        ({"type": "Feature", "stac_version": "1.0.0", "id": "x"}, "is a single STAC Item"),
    ],
)
def test_json_that_is_not_a_catalog(tmp_path: Path, doc, phrase: str) -> None:
    path = tmp_path / "thing.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    message = _one_line_catalog_error(str(path))
    assert message.startswith(str(path)) and phrase in message


def test_unreachable_url() -> None:
    url = closed_port_url()
    message = _one_line_catalog_error(url)
    assert message.startswith(f"{url}: cannot connect")


def test_unreachable_api_at_search_time() -> None:
    url = closed_port_url().replace("/catalog.json", "/")
    with pytest.raises(CatalogError, match="cannot connect") as info:
        StacApiSource(url, COLLECTION).search(AOI_BBOX, *JAN)
    assert url in str(info.value)


def test_http_errors_and_non_stac_json_over_http(static_catalog: FixtureCatalog, tmp_path: Path) -> None:
    (tmp_path / "plain.json").write_text('{"conformsTo": ["http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"]}')
    (tmp_path / "bad.json").write_text("<html>not json</html>")
    with serve_folder(tmp_path) as server:
        assert _one_line_catalog_error(f"{server.url}/absent.json") == f"{server.url}/absent.json: HTTP 404 File not found"
        assert "not a STAC catalog" in _one_line_catalog_error(f"{server.url}/plain.json")
        assert "invalid JSON" in _one_line_catalog_error(f"{server.url}/bad.json")


def test_unsupported_scheme_and_empty() -> None:
    assert "unsupported URL scheme" in _one_line_catalog_error("s3://bucket/catalog.json")
    assert "no STAC catalog" in _one_line_catalog_error("  ")


def test_skipped_item_type_is_shared() -> None:
    from geo_monitor.scenes import SkippedItem as FromScenes

    assert SkippedItem is FromScenes
