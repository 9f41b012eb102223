"""The mining-change pipeline end to end on the small SYNTHETIC sample area.

Real files throughout: the sample's COGs read through GDAL, a Zarr state on
disk, a SQLite alert store; bad scenes are made by really truncating,
deleting, reprojecting and resizing files in a copy of the catalog.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from conftest import cli
from geo_monitor import change
from geo_monitor.context import ContextLayers
from geo_monitor.state_store import StateStore
from pipelines.mining_change import DetectionRequest, MiningChangePipeline

MONITOR_START = date(2024, 1, 1)


def _request(catalog: Path, sample: Path) -> DetectionRequest:
    coll = json.loads((sample / "catalog" / "sentinel-2-l2a" / "collection.json").read_text())
    w, s, e, n = coll["extent"]["spatial"]["bbox"][0]
    return DetectionRequest(stac_url=str(catalog), bbox=(w + 1e-4, s + 1e-4, e - 1e-4, n - 1e-4),
                            start=MONITOR_START, end=date(2024, 12, 31), baseline_start=date(2023, 1, 1),
                            chunk_px=256)


def _pipeline(state: Path, sample: Path, **kw) -> MiningChangePipeline:
    return MiningChangePipeline(state, ContextLayers.from_dir(sample / "context"), **kw)


def _state_arrays(state_root: Path) -> dict[str, np.ndarray]:
    (key,) = [p.name for p in state_root.iterdir()]
    store = StateStore(state_root, key)
    return store.read_all(store.current())


def _items(catalog_dir: Path) -> list[Path]:
    return sorted((catalog_dir / "sentinel-2-l2a").glob("*/*.json"))


def _copy_catalog(sample: Path, dest: Path, keep=lambda item_id: True) -> Path:
    """A copy of the sample's catalog whose COGs are links (cheap); listed items filtered by ``keep``."""
    src = sample / "catalog"
    shutil.copytree(src, dest, copy_function=os.symlink)
    for link in dest.rglob("*.json"):  # JSON documents are real copies, so they can be edited
        target = link.resolve()
        link.unlink()
        shutil.copyfile(target, link)
    coll_path = dest / "sentinel-2-l2a" / "collection.json"
    coll = json.loads(coll_path.read_text())
    coll["links"] = [ln for ln in coll["links"] if ln["rel"] != "item" or keep(Path(ln["href"]).stem)]
    coll_path.write_text(json.dumps(coll))
    return dest / "catalog.json"


def _add_item(catalog_dir: Path, item_id: str) -> None:
    """Link one more item from the collection, as a catalog does when a new scene arrives."""
    coll_path = catalog_dir / "sentinel-2-l2a" / "collection.json"
    coll = json.loads(coll_path.read_text())
    coll["links"].append({"rel": "item", "href": f"./{item_id}/{item_id}.json", "type": "application/geo+json"})
    coll_path.write_text(json.dumps(coll))


def _materialise(path: Path) -> Path:
    """Replace a linked COG by a real copy before changing it (the sample itself must stay intact)."""
    target = path.resolve()
    path.unlink()
    shutil.copyfile(target, path)
    return path


@pytest.fixture(scope="module")
def full_run(sample_area: Path, tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("state")
    result = _pipeline(state, sample_area).run(_request(sample_area / "catalog" / "catalog.json", sample_area))
    return state, result


def test_finds_the_new_mines_and_only_them(full_run, sample_area: Path) -> None:
    from geo_monitor.alerts import feature_collection
    from geo_monitor.evaluation import evaluate, load_truth, prepare_alerts

    import geopandas as gpd

    _, result = full_run
    assert result.alerts and not result.skipped
    frame = gpd.GeoDataFrame.from_features(feature_collection(result.alerts)["features"], crs="EPSG:4326")
    report = evaluate(prepare_alerts(frame), load_truth(sample_area / "truth.geojson"), MONITOR_START)
    assert report.recall == 1.0 and report.precision == 1.0, report.format_text()
    assert report.alerts_on_old_mining == 0
    assert report.legality_correct == report.legality_checked
    for alert in result.alerts:
        assert alert.first_detected >= MONITOR_START and alert.last_observed >= alert.first_detected
        assert alert.area_ha >= 0.3 and 0.5 <= alert.score <= 1
        assert alert.provenance.scene_ids and alert.context.province


def test_rerun_changes_nothing_and_reads_no_scene(full_run, sample_area: Path) -> None:
    state, first = full_run
    again = _pipeline(state, sample_area).run(_request(sample_area / "catalog" / "catalog.json", sample_area))
    assert again.scenes_applied == [] and again.scenes_already_applied == len(first.scenes_applied)
    assert [a.id for a in again.alerts] == [a.id for a in first.alerts]
    assert [a.to_feature() for a in again.alerts] == [a.to_feature() for a in first.alerts]


def test_the_stored_chunk_record_matches_what_is_stored(full_run) -> None:
    """The record each version keeps of the chunks it stored (which later updates and the site
    search trust, reading nothing else) agrees with the arrays: unrecorded chunks are all zero."""
    import zarr

    from pipelines.mining_change import _stored_chunks

    state, _ = full_run
    (key,) = [p.name for p in state.iterdir()]
    store = StateStore(state, key)
    path = store.version_path(store.current().version)
    record = zarr.open_group(str(path), mode="r").attrs["stored_chunks"]
    flags, step = _stored_chunks(str(path)), record["chunk_px"]
    arrays = _state_arrays(state)
    for k, name in enumerate(change.STATE_VARS):
        for by in range(flags.shape[0]):
            for bx in range(flags.shape[1]):
                block = arrays[name][by * step:(by + 1) * step, bx * step:(bx + 1) * step]
                assert bool(block.any()) == bool(flags[by, bx, k]), (name, by, bx)
    # the sample has change somewhere, and some variables are left unstored in some chunks
    n_anom = flags[..., list(change.STATE_VARS).index("n_anom")]
    assert n_anom.any() and not flags.all()


def test_the_clear_looks_come_back_from_the_stored_counters(full_run) -> None:
    """A version records the days it applied; with them the unclear counters give every pixel's clear looks."""
    import zarr

    from pipelines.mining_change import applied_days_of

    state, result = full_run
    (key,) = [p.name for p in state.iterdir()]
    store = StateStore(state, key)
    path = str(store.version_path(store.current().version))
    days = applied_days_of(path)
    assert len(days) == len(result.scenes_applied) and days == sorted(days)
    group = zarr.open_group(path, mode="r")
    n_clear, last_clear = change.clear_looks({name: group[name][:] for name in ("n_unclear", "unclear_run")}, days)
    assert 0 < n_clear.max() <= len(days) and n_clear.min() < n_clear.max()
    assert set(np.unique(last_clear)) <= {0, *days}
    assert ((last_clear == 0) == (n_clear == 0)).all()


def test_adding_the_next_scene_processes_only_that_scene(full_run, sample_area: Path, tmp_path: Path) -> None:
    _, full = full_run
    last = full.scenes_applied[-1]
    partial = _copy_catalog(sample_area, tmp_path / "cat", keep=lambda item_id: item_id != last)
    state = tmp_path / "state"
    before = _pipeline(state, sample_area).run(_request(partial, sample_area))
    assert last not in before.scenes_applied
    _add_item(tmp_path / "cat", last)
    after = _pipeline(state, sample_area).run(_request(partial, sample_area))
    assert after.scenes_applied == [last] and not after.replayed
    incremental, whole = _state_arrays(state), _state_arrays(full_run[0])
    for name in change.STATE_VARS:
        np.testing.assert_array_equal(incremental[name], whole[name], err_msg=name)
    assert [a.id for a in after.alerts] == [a.id for a in full.alerts]


def test_a_late_scene_dated_before_the_last_one_replays(full_run, sample_area: Path, tmp_path: Path) -> None:
    _, full = full_run
    late = full.scenes_applied[len(full.scenes_applied) // 2]
    catalog = _copy_catalog(sample_area, tmp_path / "cat", keep=lambda item_id: item_id != late)
    state = tmp_path / "state"
    _pipeline(state, sample_area).run(_request(catalog, sample_area))
    _add_item(tmp_path / "cat", late)
    result = _pipeline(state, sample_area).run(_request(catalog, sample_area))
    assert result.replayed
    replayed, whole = _state_arrays(state), _state_arrays(full_run[0])
    for name in change.STATE_VARS:
        np.testing.assert_array_equal(replayed[name], whole[name], err_msg=name)


def test_bad_scenes_cost_one_scene_each(full_run, sample_area: Path, tmp_path: Path) -> None:
    _, full = full_run
    catalog = _copy_catalog(sample_area, tmp_path / "cat")
    items = {p.stem: p for p in _items(tmp_path / "cat")}
    monitoring = [i for i in full.scenes_applied]
    truncated, missing_asset, missing_file, wrong_size, all_cloud, other_zone = monitoring[1:7]

    def item_doc(item_id: str) -> tuple[Path, dict]:
        return items[item_id], json.loads(items[item_id].read_text())

    def asset_path(item_id: str, key_options: tuple[str, ...]) -> Path:
        path, doc = item_doc(item_id)
        key = next(k for k in key_options if k in doc["assets"])
        return path.parent / doc["assets"][key]["href"]

    tif = _materialise(asset_path(truncated, ("nir", "B08")))
    tif.write_bytes(tif.read_bytes()[: tif.stat().st_size // 2])
    path, doc = item_doc(missing_asset)
    doc["assets"].pop(next(k for k in ("red", "B04") if k in doc["assets"]))
    path.write_text(json.dumps(doc))
    asset_path(missing_file, ("swir22", "B12")).unlink()
    small = _materialise(asset_path(wrong_size, ("swir16", "B11")))
    with rasterio.open(small) as ds:
        profile, data = ds.profile, ds.read(1)[:100, :100]
    profile.update(width=100, height=100, driver="GTiff")
    small.unlink()
    with rasterio.open(small, "w", **profile) as dst:
        dst.write(data, 1)
    scl = _materialise(asset_path(all_cloud, ("scl", "SCL")))
    with rasterio.open(scl) as ds:
        profile = {**ds.profile, "driver": "GTiff"}
    with rasterio.open(scl, "w", **profile) as dst:  # every pixel cloud, high probability
        dst.write(np.full((profile["height"], profile["width"]), 9, np.uint8), 1)
    _to_utm17(item_doc(other_zone))

    result = _pipeline(tmp_path / "state", sample_area).run(_request(catalog, sample_area))
    reasons = {s.id: s.reason for s in result.skipped}
    assert set(reasons) == {truncated, missing_asset, missing_file, wrong_size}, reasons
    assert "red" in reasons[missing_asset] and "swir22" in reasons[missing_file]
    assert "100x100" in reasons[wrong_size] and "nir" in reasons[truncated]
    assert all_cloud in result.scenes_applied and other_zone in result.scenes_applied
    assert len(result.scenes_applied) == len(full.scenes_applied) - 4
    assert {a.id for a in result.alerts} == {a.id for a in full.alerts}


def _to_utm17(item: tuple[Path, dict]) -> None:
    """Rewrite one item's COGs in UTM 17S (as the neighbouring zone's products are)."""
    path, doc = item
    for asset in doc["assets"].values():
        tif = _materialise(path.parent / asset["href"])
        with rasterio.open(tif) as src:
            transform, width, height = calculate_default_transform(src.crs, "EPSG:32717", src.width, src.height,
                                                                   *src.bounds, resolution=src.res[0])
            profile = {**src.profile, "driver": "GTiff", "crs": "EPSG:32717", "transform": transform,
                       "width": width, "height": height, "tiled": True, "blockxsize": 256, "blockysize": 256}
            data = src.read(1)
        tif.unlink()
        with rasterio.open(tif, "w", **profile) as dst:
            out = np.zeros((height, width), data.dtype)
            reproject(data, out, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                      dst_crs="EPSG:32717", resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
            dst.write(out, 1)
        asset["proj:shape"] = [height, width]
        asset["proj:transform"] = list(transform)[:6]
    doc["properties"]["proj:epsg"] = 32717
    path.write_text(json.dumps(doc))


def test_a_crash_while_writing_state_leaves_the_previous_state(full_run, sample_area: Path, tmp_path: Path) -> None:
    _, full = full_run
    last = full.scenes_applied[-1]
    catalog = _copy_catalog(sample_area, tmp_path / "cat", keep=lambda item_id: item_id != last)
    state = tmp_path / "state"
    first = _pipeline(state, sample_area).run(_request(catalog, sample_area))
    _add_item(tmp_path / "cat", last)

    def crash(delayed):
        raise KeyboardInterrupt("power cut while writing")

    with pytest.raises(KeyboardInterrupt):
        _pipeline(state, sample_area, compute=crash).run(_request(catalog, sample_area))
    (key,) = [p.name for p in state.iterdir()]
    assert StateStore(state, key).current().version == first.state_version
    resumed = _pipeline(state, sample_area).run(_request(catalog, sample_area))
    assert resumed.scenes_applied == [last]


def test_distributed_cluster_gives_the_same_result(full_run, sample_area: Path, tmp_path: Path) -> None:
    from geo_monitor.dask_cluster import dask_client
    from geo_monitor.settings import load_settings

    _, threaded = full_run
    settings = load_settings(dask_workers=2, data_dir=tmp_path)
    with dask_client(settings) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        result = _pipeline(tmp_path / "state", sample_area,
                           compute=lambda d: client.compute(d).result()).run(
            _request(sample_area / "catalog" / "catalog.json", sample_area))
    assert [a.to_feature() for a in result.alerts] == [a.to_feature() for a in threaded.alerts]
    distributed, local = _state_arrays(tmp_path / "state"), _state_arrays(full_run[0])
    for name in local:
        np.testing.assert_array_equal(distributed[name], local[name], err_msg=name)


def _retile(catalog_dir: Path, block_px: int) -> None:
    """Rewrite every COG of a copied catalog with ``block_px`` tiles (same pixels, same georeferencing)."""
    from rasterio.shutil import copy as raster_copy

    for path in sorted(catalog_dir.rglob("*.tif")):
        source = path.resolve()
        path.unlink()
        raster_copy(source, path, driver="COG", BLOCKSIZE=block_px, COMPRESS="DEFLATE")


def test_chunks_follow_the_tiles_without_changing_a_pixel(full_run, sample_area: Path, tmp_path: Path) -> None:
    """COGs in 128 px tiles and a box starting ~13 px inside them: the state's grid grows north and
    west to the tiles' corners (so no chunk edge cuts a tile), every pixel ends in the state the
    whole sample gives it, and the alerts are those of the whole sample that touch the box."""
    from shapely.geometry import box

    from geo_monitor.grid_alignment import scene_tiling
    from geo_monitor.sources import open_source
    from pipelines.mining_change import read_scene_headers

    state, full = full_run
    catalog = _copy_catalog(sample_area, tmp_path / "cat")
    _retile(tmp_path / "cat", 128)
    inset = 0.0012  # degrees, ~13 px
    w, s, e, n = _request(catalog, sample_area).bbox
    request = replace(_request(catalog, sample_area), bbox=(w + inset, s + inset, e - inset, n - inset))
    tiled = _pipeline(tmp_path / "state", sample_area).run(request)

    scene = open_source(str(catalog)).search(request.bbox, request.baseline_start, request.end).scenes[0]
    lattice = scene_tiling(read_scene_headers(scene)[1])
    assert lattice.step_m == 2560  # 128 px tiles: 1,280 m at 10 m, 2,560 m at 20 m
    # the box starts inside the first tile; the grid starts on its corner, which is the sample's
    assert (tiled.grid.x0, tiled.grid.y0) == (lattice.x0, lattice.y0) == (full.grid.x0, full.grid.y0)
    assert request.bbox[0] > w and tiled.grid.width < full.grid.width
    grown, whole = _state_arrays(tmp_path / "state"), _state_arrays(state)
    for name in change.STATE_VARS:
        np.testing.assert_array_equal(grown[name], whole[name][:tiled.grid.height, :tiled.grid.width],
                                      err_msg=name)
    asked = box(*request.bbox)
    inside = [a.to_feature() for a in full.alerts if a.geometry.within(asked)]
    assert inside and all(f in [a.to_feature() for a in tiled.alerts] for f in inside)
    assert all(a.geometry.intersects(asked) for a in tiled.alerts)


def test_cli_detect_then_evaluate(sample_area: Path, tmp_path: Path) -> None:
    env = {"GEO_MONITOR_DATA_DIR": str(tmp_path / "data"), "GEO_MONITOR_SAMPLE_DIR": str(sample_area),
           "GEO_MONITOR_DASK_WORKERS": "2"}
    out = tmp_path / "alerts.geojson"
    run = cli("detect", "--out", str(out), "--chunk-px", "256", "--json", env=env)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["alerts"] == summary["alerts_new"] > 0 and summary["skipped"] == []
    again = json.loads(cli("detect", "--chunk-px", "256", "--json", env=env).stdout)
    assert again["alerts_new"] == again["alerts_updated"] == 0 and again["scenes_applied"] == 0
    report = cli("evaluate", "--alerts", str(out), "--truth", str(sample_area / "truth.geojson"),
                 "--monitor-start", "2024-01-01", "--catalog", str(sample_area / "catalog" / "catalog.json"),
                 "--json", env=env)
    assert report.returncode == 0, report.stderr
    scores = json.loads(report.stdout)
    assert scores["recall"] == 1.0
    assert all(site["lag_clear_looks"] is not None for site in scores["sites"])
    assert scores["median_lag_clear_looks"] <= 2
    bad = cli("detect", "--bbox", "-70,-1,-69.9,-0.9", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
