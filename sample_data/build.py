"""Build and verify the synthetic sample area on disk (SYNTHETIC data).

This is the I/O half of the generator: it renders every acquisition in a
process pool, writes one COG per band, the STAC catalog, the context layers,
the ground truth and a manifest of sha256 sums, and checks a built area
against its manifest.

Layout of a built area::

    <out>/catalog/catalog.json
    <out>/catalog/sentinel-2-l2a/collection.json
    <out>/catalog/sentinel-2-l2a/<item id>/<item id>.json, <band>.tif ...
    <out>/context/{concessions.gpkg, protected_areas.geojson, ...}
    <out>/truth.geojson
    <out>/README.txt
    <out>/manifest.json

Building is crash-safe and resumable: everything is written under
``<out>.partial/`` (each finished scene leaves a small ``.done`` record, so a
rerun skips it) and only a complete area is moved into place. The same spec
always gives byte-identical files: no timestamps, seeded randomness per scene,
fixed JSON key order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import rasterio
from tqdm import tqdm

from geo_monitor.bands import ALL_BANDS, DEFAULT_SCALE, NATIVE_RESOLUTION_M, NODATA_DN, REFLECTANCE_BANDS
from geo_monitor.errors import SampleDataError
from sample_data import atmosphere, context, stac
from sample_data.areas import AreaSpec
from sample_data.fields import block_mean
from sample_data.render import ground_reflectance, sun_position
from sample_data.scenario import PlacementError, Scenario, acquisition_dates, build_scenario

log = logging.getLogger(__name__)

#: Bump when the generator's output changes for the same spec.
GENERATOR_VERSION = "2"
MANIFEST = "manifest.json"
_DONE_DIR = ".done"
_COG_OPTIONS = {
    "driver": "COG",
    "compress": "DEFLATE",
    "predictor": 2,
    "blocksize": 512,
    "level": 6,
}
_PINNED_DATE = "2024-01-01T00:00:00.000Z"
_TAGS = {"SYNTHETIC": "true", "GENERATOR": "geo-monitor sample_data", "DESCRIPTION": stac.SYNTHETIC_NOTE}


@dataclass(frozen=True)
class BuildReport:
    out_dir: Path
    catalog_path: Path
    truth_path: Path
    context_dir: Path
    n_items: int
    n_files: int
    seconds: float
    reused: bool = False


# --------------------------------------------------------------------------- one scene (worker side)

_worker_scenario: Scenario | None = None


def _init_worker(spec: AreaSpec) -> None:
    global _worker_scenario
    _worker_scenario = build_scenario(spec)


def scene_rng(spec: AreaSpec, index: int) -> np.random.Generator:
    """Each acquisition draws from its own stream: scenes can be rendered in any order."""
    return np.random.default_rng(np.random.SeedSequence([spec.seed, 2, index]))


def to_dn(refl: np.ndarray, convention: stac.Convention) -> np.ndarray:
    """uint16 digital numbers: reflectance / scale + offset DN, 0 kept for no data."""
    dn = np.round(refl / DEFAULT_SCALE) + convention.dn_offset
    dn = np.where(np.isnan(refl), NODATA_DN, np.clip(dn, 1, 65535))
    return dn.astype(np.uint16)


def _write_cog(path: Path, array: np.ndarray, spec: AreaSpec, res_m: int, categorical: bool) -> None:
    x0, y0 = spec.origin()
    profile = {
        **_COG_OPTIONS,
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": f"EPSG:{spec.epsg}",
        "transform": rasterio.transform.from_origin(x0, y0, res_m, res_m),
        "nodata": NODATA_DN,
        "overview_resampling": "nearest" if categorical else "average",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
        dst.update_tags(**_TAGS)


def render_scene(spec: AreaSpec, index: int, day: date, item_dir: Path) -> dict[str, Any]:
    """Render, classify and write one acquisition; return what its STAC item needs."""
    scenario = _worker_scenario if _worker_scenario is not None else build_scenario(spec)
    rng = scene_rng(spec, index)
    convention = stac.draw_convention(rng)
    platform = "sentinel-2a" if rng.random() < 0.5 else "sentinel-2b"
    sun = sun_position(day, spec.region_info.center_lat)
    sky = atmosphere.draw_sky(rng, day, sun, scenario.shape, spec.resolution_m)
    refl = atmosphere.observe(ground_reflectance(scenario, day), sky)
    scl = atmosphere.scene_classification(refl, sky, rng)

    item_id = stac.item_id(spec, day, platform)
    item_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for b, band in enumerate(REFLECTANCE_BANDS):
        res = NATIVE_RESOLUTION_M[band]
        band_refl = refl[b] if res == spec.resolution_m else block_mean(refl[b], res // spec.resolution_m)
        name = f"{item_id}_{band}.tif"
        _write_cog(item_dir / name, to_dn(band_refl, convention), spec, res, categorical=False)
        files[band] = f"./{name}"
    name = f"{item_id}_scl.tif"
    _write_cog(item_dir / name, scl, spec, NATIVE_RESOLUTION_M["scl"], categorical=True)
    files["scl"] = f"./{name}"
    assert set(files) == set(ALL_BANDS)
    nodata_pct = round(float((scl == 0).mean() * 100.0), 2)
    return {
        "index": index,
        "day": day.isoformat(),
        "platform": platform,
        "convention": asdict(convention),
        "cloud_cover": atmosphere.cloud_cover_percent(scl),
        "nodata_percent": nodata_pct,
        "sun_elevation": sun.elevation_deg,
        "sun_azimuth": sun.azimuth_deg,
        "item_id": item_id,
        "files": files,
    }


# --------------------------------------------------------------------------- the whole area


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _spec_record(spec: AreaSpec) -> dict[str, Any]:
    record = asdict(spec)
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in record.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _item_dir(stage: Path, item_id: str) -> Path:
    return stage / "catalog" / stac.COLLECTION_ID / item_id


def _render_all(spec: AreaSpec, stage: Path, workers: int, progress: bool) -> list[dict[str, Any]]:
    """Render every acquisition not already done in ``stage``; return all scene records in date order."""
    done_dir = stage / _DONE_DIR
    done_dir.mkdir(parents=True, exist_ok=True)
    dates = acquisition_dates(spec)
    records: dict[int, dict[str, Any]] = {}
    for path in done_dir.glob("*.json"):
        rec = json.loads(path.read_text())
        records[rec["index"]] = rec
    todo = [(i, d) for i, d in enumerate(dates) if i not in records]
    if records:
        log.info("resuming sample build", extra={"done": len(records), "remaining": len(todo)})

    def finished(rec: dict[str, Any]) -> None:
        records[rec["index"]] = rec
        _write_json(done_dir / f"{rec['index']:05d}.json", rec)  # only after its COGs are complete

    bar = tqdm(total=len(dates), initial=len(records), desc="sample scenes", unit="scene", disable=not progress)
    # Item folders are named by item id, which depends on the platform drawn in the
    # worker; write into a per-index scratch folder and move it once named.
    with bar:
        if workers <= 1 or len(todo) <= 1:
            _init_worker(spec)
            for i, d in todo:
                finished(_finish(stage, render_scene(spec, i, d, stage / "scratch" / f"{i:05d}")))
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")  # no forked GDAL/threads state
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(spec,)) as pool:
                futures = [pool.submit(render_scene, spec, i, d, stage / "scratch" / f"{i:05d}") for i, d in todo]
                for fut in as_completed(futures):
                    finished(_finish(stage, fut.result()))
                    bar.update()
    shutil.rmtree(stage / "scratch", ignore_errors=True)
    return [records[i] for i in range(len(dates))]


def _finish(stage: Path, rec: dict[str, Any]) -> dict[str, Any]:
    scratch = stage / "scratch" / f"{rec['index']:05d}"
    target = _item_dir(stage, rec["item_id"])
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(scratch, target)
    return rec


def _write_catalog(spec: AreaSpec, stage: Path, records: list[dict[str, Any]]) -> int:
    dates = [date.fromisoformat(r["day"]) for r in records]
    for rec in records:
        convention = stac.Convention(**rec["convention"])
        doc = stac.item_document(spec, date.fromisoformat(rec["day"]), rec["platform"], convention,
                                 rec["cloud_cover"], rec["nodata_percent"], rec["sun_elevation"],
                                 rec["sun_azimuth"], rec["files"])
        _write_json(_item_dir(stage, rec["item_id"]) / f"{rec['item_id']}.json", doc)
    # items come in no particular order in real catalogs: shuffle the links (seeded)
    hrefs = [f"./{r['item_id']}/{r['item_id']}.json" for r in records]
    order = np.random.default_rng(np.random.SeedSequence([spec.seed, 3])).permutation(len(hrefs))
    _write_json(stage / "catalog" / stac.COLLECTION_ID / "collection.json",
                stac.collection_document(spec, [hrefs[i] for i in order], min(dates), max(dates)))
    _write_json(stage / "catalog" / "catalog.json", stac.catalog_document(spec))
    return len(records)


def _write_vectors(scenario: Scenario, stage: Path) -> None:
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _PINNED_DATE})
    ctx_dir = stage / "context"
    ctx_dir.mkdir(parents=True, exist_ok=True)
    for layer, frame in context.context_layers(scenario).items():
        path = ctx_dir / context.LAYERS[layer]
        _write_vector(frame, path, layer)
    _write_vector(context.ground_truth(scenario), stage / "truth.geojson", "truth")


def _write_vector(frame: Any, path: Path, layer: str) -> None:
    if path.exists():
        path.unlink()
    if path.suffix == ".gpkg":
        # GeoPackage stores a last-change time; it is pinned (OGR_CURRENT_DATE) so the bytes are reproducible.
        frame.to_file(path, layer=layer, driver="GPKG", engine="pyogrio",
                      layer_options={"DESCRIPTION": stac.SYNTHETIC_NOTE})
    else:
        frame.to_file(path, driver="GeoJSON", engine="pyogrio", layer_options={"RFC7946": "YES"})


_README = """SYNTHETIC SAMPLE AREA - NOT REAL SATELLITE DATA

Built by geo-monitor's sample_data generator (version {version}) for area
'{name}' ({region}), seed {seed}. Imagery, land cover, mining sites, clouds,
scene classification, context layers and ground truth are all simulated.
Only the place (its UTM zone and coordinates) and four anchor spectra are
taken from real data. See sample_data/README.md and docs/sample-area.md.
"""


def _write_manifest(spec: AreaSpec, stage: Path) -> int:
    files = sorted(p for p in stage.rglob("*") if p.is_file() and p.name != MANIFEST
                   and _DONE_DIR not in p.relative_to(stage).parts)
    doc = {
        "synthetic": True,
        "generator_version": GENERATOR_VERSION,
        "spec": _spec_record(spec),
        "files": {p.relative_to(stage).as_posix(): _sha256(p) for p in files},
    }
    _write_json(stage / MANIFEST, doc)
    return len(files)


def _existing_matches(out_dir: Path, spec: AreaSpec) -> bool:
    manifest = out_dir / MANIFEST
    if not manifest.is_file():
        return False
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    return doc.get("spec") == _spec_record(spec) and doc.get("generator_version") == GENERATOR_VERSION


def build_sample_area(spec: AreaSpec, out_dir: Path, *, workers: int = 2, progress: bool = True,
                      force: bool = False) -> BuildReport:
    """Build the area for ``spec`` into ``out_dir`` (replacing what is there once complete).

    An area already built from the same spec and generator version, whose files
    all match its manifest, is kept as is unless ``force``.
    """
    t0 = time.monotonic()
    out_dir = Path(out_dir).expanduser().resolve()
    if not force and _existing_matches(out_dir, spec) and not verify_sample_area(out_dir):
        log.info("sample area already built and verified", extra={"out_dir": str(out_dir)})
        n = len(json.loads((out_dir / MANIFEST).read_text())["files"])
        return _report(out_dir, len(acquisition_dates(spec)), n, time.monotonic() - t0, reused=True)
    stage = out_dir.with_name(out_dir.name + ".partial")
    stage_spec = stage / "spec.json"
    if stage.exists() and (not stage_spec.is_file() or json.loads(stage_spec.read_text()) != _spec_record(spec)):
        shutil.rmtree(stage)  # left over from a different spec: nothing to resume
    stage.mkdir(parents=True, exist_ok=True)
    _write_json(stage_spec, _spec_record(spec))
    try:
        scenario = build_scenario(spec)
    except PlacementError as exc:
        raise SampleDataError(str(exc)) from None
    try:
        records = _render_all(spec, stage, workers, progress)
    except (OSError, rasterio.errors.RasterioError) as exc:
        raise SampleDataError(f"could not write the sample area under {stage}: {exc}") from None
    n_items = _write_catalog(spec, stage, records)
    _write_vectors(scenario, stage)
    (stage / "README.txt").write_text(_README.format(version=GENERATOR_VERSION, name=spec.name, seed=spec.seed,
                                                      region=spec.region_info.title), encoding="utf-8")
    stage_spec.unlink()
    shutil.rmtree(stage / _DONE_DIR)
    n_files = _write_manifest(spec, stage)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(stage, out_dir)
    log.info("sample area built", extra={"out_dir": str(out_dir), "items": n_items, "files": n_files})
    return _report(out_dir, n_items, n_files, time.monotonic() - t0)


def _report(out_dir: Path, n_items: int, n_files: int, seconds: float, reused: bool = False) -> BuildReport:
    return BuildReport(out_dir, out_dir / "catalog" / "catalog.json", out_dir / "truth.geojson",
                       out_dir / "context", n_items, n_files, round(seconds, 1), reused)


def verify_sample_area(out_dir: Path) -> list[str]:
    """Problems found comparing ``out_dir`` with its manifest; empty when every file matches."""
    out_dir = Path(out_dir).expanduser()
    manifest = out_dir / MANIFEST
    if not manifest.is_file():
        raise SampleDataError(f"{out_dir} holds no sample area (no {MANIFEST}); build it with `geo-monitor sample-data`")
    try:
        files: dict[str, str] = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SampleDataError(f"{manifest} is not a valid manifest: {exc}") from None
    problems = []
    for rel, digest in files.items():
        path = out_dir / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif _sha256(path) != digest:
            problems.append(f"changed: {rel}")
    return problems
