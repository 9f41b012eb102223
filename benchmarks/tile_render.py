"""Benchmark: map imagery tile render time (p50/p95), against the floor of only decoding the same pixels.

On the small SYNTHETIC sample area (built here with ``geo-monitor sample-data
--preset small`` unless ``--sample`` names one), for a few scenes, both
renders (truecolor, swir) and every XYZ tile over the area at zooms 11-16:

1. **floor**: for each tile, open the four COGs it needs (three bands + SCL)
   with rasterio and read, without any warping, the native window that covers
   the tile (decode only);
2. **tile route**: ``GET /tiles/{scene}/{z}/{x}/{y}.png`` through the Flask app
   (test client, no network): catalog lookup, four rio-tiler reads warped to
   WebMercator, DN -> reflectance, stretch, PNG encoding, ETag;
3. the same tiles requested 4 at a time (a browser fetches several at once),
   for latency under concurrency and tiles per second.

Every request is a first request (no ETag sent), and the app's scene index is
warmed once before timing. Target: p95 <= 200 ms. Usage::

    .venv/bin/python benchmarks/tile_render.py [--sample DIR] [--scenes 3] [--zooms 11-16] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import morecantile
import numpy as np
import rasterio
from rasterio.windows import from_bounds as window_from_bounds

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from geo_monitor.imagery import RENDERS  # noqa: E402
from geo_monitor.scene_catalog import SceneCatalog  # noqa: E402
from geo_monitor.settings import load_settings  # noqa: E402
from geo_monitor.store import AlertStore  # noqa: E402
from web import create_app  # noqa: E402

TMS = morecantile.tms.get("WebMercatorQuad")


def build_sample(work: Path) -> Path:
    out = work / "sample"
    if not (out / "catalog" / "catalog.json").is_file():
        subprocess.run([sys.executable, "-m", "geo_monitor.cli", "sample-data", "--preset", "small", "--out",
                        str(out), "--workers", "2"], check=True, cwd=REPO, capture_output=True)
    return out


def tiles_over(bbox: tuple[float, float, float, float], zooms: list[int]) -> list[morecantile.Tile]:
    return [t for z in zooms for t in TMS.tiles(*bbox, [z])]


def floor_read(scene, bands: tuple[str, ...], tile: morecantile.Tile) -> None:
    """Decode what the tile needs, natively: the window of each file covering the tile's bounds."""
    b = TMS.bounds(tile)
    for band in (*bands, "scl"):
        with rasterio.open(scene.assets[band].href) as src:
            left, bottom, right, top = rasterio.warp.transform_bounds("EPSG:4326", src.crs, b.left, b.bottom,
                                                                        b.right, b.top)
            window = window_from_bounds(left, bottom, right, top, src.transform).round_offsets().round_lengths()
            src.read(1, window=window, boundless=True, fill_value=0)


def percentiles(ms: list[float]) -> dict[str, float]:
    values = np.array(ms)
    return {"n": len(ms), "p50_ms": round(float(np.percentile(values, 50)), 1),
            "p95_ms": round(float(np.percentile(values, 95)), 1), "max_ms": round(float(values.max()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=Path, help="an existing sample area (default: build the small one)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--zooms", default="11-16")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    lo, _, hi = args.zooms.partition("-")
    zooms = list(range(int(lo), int(hi or lo) + 1))
    work = args.work or Path(tempfile.mkdtemp(prefix="gm-tile-bench-"))
    sample = args.sample or build_sample(work)
    catalog_json = str(sample / "catalog" / "catalog.json")

    settings = load_settings(data_dir=work / "var", stac_url=catalog_json, public_read=True,
                             rate_limit="1000000/minute", tile_rate_limit="1000000/minute")
    store = AlertStore.from_settings(settings)
    store.migrate()
    app = create_app(settings, store)
    client = app.test_client()

    index = SceneCatalog(catalog_json).index()
    step = max(1, len(index.ordered) // args.scenes)
    scenes = list(index.ordered[::step])[: args.scenes]
    w = max(s.bbox[0] for s in scenes)
    s_ = max(s.bbox[1] for s in scenes)
    e = min(s.bbox[2] for s in scenes)
    n = min(s.bbox[3] for s in scenes)
    tiles = tiles_over((w, s_, e, n), zooms)
    jobs = [(scene, render, tile) for scene in scenes for render in RENDERS for tile in tiles]
    client.get(f"/tiles/{scenes[0].id}/{tiles[0].z}/{tiles[0].x}/{tiles[0].y}.png")  # warm the scene index

    floor_ms, route_ms, by_zoom = [], [], {}
    for scene, render, tile in jobs:
        t0 = time.perf_counter()
        floor_read(scene, RENDERS[render].bands, tile)
        t1 = time.perf_counter()
        response = client.get(f"/tiles/{scene.id}/{tile.z}/{tile.x}/{tile.y}.png?render={render}")
        t2 = time.perf_counter()
        assert response.status_code == 200, response.get_data(as_text=True)
        floor_ms.append((t1 - t0) * 1000)
        route_ms.append((t2 - t1) * 1000)
        by_zoom.setdefault(tile.z, []).append((t2 - t1) * 1000)

    def fetch(job) -> float:
        scene, render, tile = job
        t0 = time.perf_counter()
        assert client.get(f"/tiles/{scene.id}/{tile.z}/{tile.x}/{tile.y}.png?render={render}").status_code == 200
        return (time.perf_counter() - t0) * 1000

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        concurrent_ms = list(pool.map(fetch, jobs))
    wall = time.perf_counter() - t0

    result = {
        "tiles": len(jobs), "scenes": len(scenes), "zooms": zooms,
        "floor": percentiles(floor_ms),
        "route": percentiles(route_ms),
        "route_by_zoom": {z: percentiles(v) for z, v in sorted(by_zoom.items())},
        "ratio_p50": round(float(np.percentile(route_ms, 50) / np.percentile(floor_ms, 50)), 1),
        f"concurrent_{args.concurrency}": {**percentiles(concurrent_ms), "tiles_per_s": round(len(jobs) / wall, 1)},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
