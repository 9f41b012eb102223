"""Map imagery rendering on the real COGs of the small sample area: tiles, chips, the clearest-scene choice,
the score layer and the scene index (geo_monitor.imagery, .chips, .scene_catalog; no web layer)."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import geopandas as gpd
import morecantile
import numpy as np
import pytest
from imagery_support import catalog_path, clear_on_grid, decode_png, scl_on_grid, truth_site
from pyproj import Transformer
from stac_fixtures import ITEMS, NODATA_ROWS_10M, SIZE_10M, FixtureCatalog, _origin, static_catalog  # noqa: F401
from rasterio.features import rasterize
from rasterio.transform import from_bounds
from shapely.geometry import box

from geo_monitor.chips import CLEAR_STEPS, candidates, choose_chip_scenes, clearest
from geo_monitor.coordinates import notations, to_dms, to_utm
from geo_monitor.errors import ImageryUnavailableError, InvalidInputError, UnknownSceneError
from geo_monitor.imagery import (
    OUTLINE_RGB,
    RENDERS,
    SCORE_ALPHA,
    TileAddress,
    chip_area,
    chip_rgba,
    clear_fraction,
    parse_rescale,
    render_chip,
    render_score_tile,
    render_tile,
    score_color,
    transparent_png,
)
from geo_monitor.scene_catalog import SceneCatalog

TMS = morecantile.tms.get("WebMercatorQuad")
CENTRE = (-77.5, -0.985)  # the sample area's centre (docs/sample-area.md)


@pytest.fixture(scope="module")
def catalog(sample_area: Path) -> SceneCatalog:
    return SceneCatalog(catalog_path(sample_area))


def _tile_at(lon: float, lat: float, z: int) -> TileAddress:
    t = TMS.tile(lon, lat, z)
    return TileAddress(t.z, t.x, t.y)


def _tile_grid(tile: TileAddress, size: int) -> tuple[str, object]:
    b = TMS.xy_bounds(morecantile.Tile(tile.x, tile.y, tile.z))
    return "EPSG:3857", from_bounds(b.left, b.bottom, b.right, b.top, size, size)


def _swath_cut_scene(catalog: SceneCatalog):
    """A scene cut by the swath edge: part of its footprint box is SCL 0 (no data)."""
    for scene in catalog.index().ordered:
        codes = scl_on_grid(scene, "EPSG:32718", from_bounds(219180, 9888460, 224300, 9893580, 256, 256), (256, 256))
        if 0.15 < float((codes == 0).mean()) < 0.85:
            return scene
    pytest.fail("the sample area has no scene cut by the swath edge (docs/sample-area.md promises ~1 in 8)")


# --------------------------------------------------------------------------- tiles


@pytest.mark.parametrize("item_id", [
    "S2A_18MTV_20240105_0_L2A",  # raster:bands scale/offset -0.1
    "S2A_18MTV_20240105_1_L2A",  # raster:bands offset 0 (wins over the baseline)
    "S2B_MSIL2A_20240110T153619_R068_T18MTV_20240110T201500",  # Planetary Computer keys, offset from the baseline
    "S2A_18MTV_20240120_0_L2A",  # baseline 04.00, offset already applied by the provider
    "S2A_17MPS_20240125_0_L2A",  # the other UTM zone of Ecuador
])
def test_pixels_are_the_stretched_reflectance_of_each_items_own_dn_conversion(
        static_catalog: FixtureCatalog, item_id: str) -> None:
    """The fixture's DNs are known per column (stac_fixtures): every visible chip pixel is exactly the
    stretch of DN x scale + offset of the source pixel under it, 10 m pixels repeated, never interpolated."""
    spec = ITEMS[item_id]
    scene = SceneCatalog(str(static_catalog.catalog_json)).get(item_id)
    x0, y0 = _origin(spec)
    to_ll = Transformer.from_crs(spec.epsg, 4326, always_xy=True)
    site = box(*to_ll.transform(x0 + 250, y0 - 450), *to_ll.transform(x0 + 390, y0 - 310))
    area = chip_area(site, min_side_m=500)
    assert area.epsg == spec.epsg
    rgba = chip_rgba(scene, area, "truecolor")
    render = RENDERS["truecolor"]
    rows, cols = np.mgrid[0:area.size_px, 0:area.size_px]
    xs, ys = area.transform * (cols + 0.5, rows + 0.5)
    src_col, src_row = np.floor((xs - x0) / 10).astype(int), np.floor((y0 - ys) / 10).astype(int)
    inside = (src_col >= 0) & (src_col < SIZE_10M) & (src_row >= 0) & (src_row < SIZE_10M)
    valid = inside & (src_row >= NODATA_ROWS_10M)
    outline = np.all(rgba[:3] == np.array(OUTLINE_RGB)[:, None, None], axis=0)
    assert (rgba[3][~inside] == 0).all() and (rgba[3][inside & ~valid & ~outline] == 0).all()
    check = valid & ~outline
    # pixels whose centre is within 2 cm of a source pixel edge could go either way: leave them out
    edge = (np.abs((xs - x0) / 10 - np.rint((xs - x0) / 10)) < 0.002) | (np.abs((y0 - ys) / 10 - np.rint((y0 - ys) / 10)) < 0.002)
    check &= ~edge
    assert check.sum() > 20_000
    for channel, band in enumerate(render.bands):
        lo, hi = render.rescale[channel]
        refl = np.array([spec.reflectance(band, int(c)) for c in range(SIZE_10M)])[src_col[check]]
        expected = np.rint(np.clip((refl - lo) / (hi - lo), 0, 1) ** (1 / render.gamma) * 255)
        assert np.abs(rgba[channel][check].astype(int) - expected).max() <= 1, (band, spec.expected_offset)
    assert (rgba[3][check] == 255).all()



def test_tile_is_an_rgba_png_of_the_asked_size_and_no_data_is_transparent(catalog: SceneCatalog) -> None:
    scene = _swath_cut_scene(catalog)
    tile = _tile_at(*CENTRE, 12)  # 9.8 km: the whole 5 km scene and ground around it
    for size in (256, 512):
        rgba = decode_png(render_tile(scene, "truecolor", tile, tilesize=size))
        assert rgba.shape == (4, size, size) and rgba.dtype == np.uint8
    alpha = rgba[3]
    assert set(np.unique(alpha)) == {0, 255}
    crs, transform = _tile_grid(tile, 512)
    expected_nodata = scl_on_grid(scene, crs, transform, (512, 512)) == 0  # outside the footprint or cut off
    assert 0.3 < expected_nodata.mean() < 0.97
    agreement = float(((alpha == 0) == expected_nodata).mean())
    assert agreement > 0.98, agreement
    assert not rgba[:3, alpha == 0].any()  # transparent pixels carry no colour


def test_reflectance_uses_each_assets_scale_and_offset(catalog: SceneCatalog) -> None:
    """Rendering the same files with an offset 0.05 lower, and a rescale 0.05 lower, gives the same pixels."""
    scene = catalog.get(catalog.index().ordered[-1].id)
    shifted = replace(scene, assets={name: replace(a, offset=a.offset - 0.05) for name, a in scene.assets.items()})
    tile = _tile_at(*CENTRE, 14)
    plain = decode_png(render_tile(scene, "truecolor", tile, rescale=parse_rescale(["0,0.2"])))
    moved = decode_png(render_tile(shifted, "truecolor", tile, rescale=parse_rescale(["-0.05,0.15"])))
    unmoved = decode_png(render_tile(shifted, "truecolor", tile, rescale=parse_rescale(["0,0.2"])))
    visible = plain[3] == 255
    assert visible.sum() > 10_000
    diff = np.abs(plain[:3].astype(int) - moved[:3].astype(int))[:, visible]
    assert diff.max() <= 1 and diff.mean() < 0.05  # float32 rounding only
    assert (plain[:3].astype(int) - unmoved[:3].astype(int))[:, visible].mean() > 10  # the offset does darken


def test_tile_outside_the_scene_is_transparent_and_bad_arguments_are_refused(catalog: SceneCatalog) -> None:
    scene = catalog.index().ordered[0]
    far = _tile_at(-79.9, -2.2, 14)  # Guayaquil: nowhere near the sample
    assert render_tile(scene, "swir", far) == transparent_png(256)
    assert decode_png(transparent_png(512)).shape == (4, 512, 512)
    with pytest.raises(InvalidInputError, match="render must be one of"):
        render_tile(scene, "ndvi", far)
    with pytest.raises(InvalidInputError, match="tilesize"):
        render_tile(scene, "swir", far, tilesize=300)
    for z, x, y in ((25, 0, 0), (3, 8, 0), (3, 0, 8), (-1, 0, 0)):
        with pytest.raises(InvalidInputError):
            TileAddress(z, x, y)
    for bad in (["1,0"], ["0,nan"], ["0,1", "0,1"], ["0"], ["0,5"], ["a,b"]):
        with pytest.raises(InvalidInputError, match="rescale"):
            parse_rescale(bad)
    assert parse_rescale(["0,0.3"]) == ((0.0, 0.3),) * 3
    assert parse_rescale([]) is None


# --------------------------------------------------------------------------- true colour vs SWIR


@pytest.mark.parametrize("site", ["new-mine-1-protected", "new-mine-2-open"])
def test_swir_separates_mining_soil_from_turbid_river_where_true_colour_does_not(
        catalog: SceneCatalog, sample_area: Path, site: str) -> None:
    geometry, start = truth_site(sample_area, site)
    choice = choose_chip_scenes(catalog.index().ordered, geometry, start)
    area, scene = choice.area, choice.after.scene
    crs, grid = f"EPSG:{area.epsg}", (area.size_px, area.size_px)
    clear = clear_on_grid(scene, crs, area.transform, grid)
    rivers = gpd.read_file(sample_area / "context" / "rivers.geojson").to_crs(area.epsg).geometry

    def mask(shapes) -> np.ndarray:
        return rasterize([(g, 1) for g in shapes], out_shape=grid, transform=area.transform, dtype="uint8").astype(bool)

    mine = mask([area.outline.buffer(-15)]) & clear  # inside the pits, off the outline
    river = mask([g.buffer(8) for g in rivers]) & clear  # the river's middle: water whatever its width
    forest = ~mask([area.outline.buffer(150), *[g.buffer(120) for g in rivers]]) & clear
    assert mine.sum() > 300 and river.sum() > 300 and forest.sum() > 5000
    true_colour = chip_rgba(scene, area, "truecolor").astype(float)
    swir = chip_rgba(scene, area, "swir").astype(float)

    def mean(image: np.ndarray, where: np.ndarray) -> np.ndarray:
        return image[:3, where].mean(axis=1)

    # True colour: sediment-laden river and bare soil are both light and alike; forest is dark.
    assert mean(true_colour, mine).mean() > mean(true_colour, forest).mean() + 50
    assert mean(true_colour, river).mean() > mean(true_colour, forest).mean() + 30
    assert abs(mean(true_colour, mine) - mean(true_colour, river)).max() < 60
    # SWIR false colour (R=SWIR 1.6, G=NIR, B=red): water is dark blue, soil is bright in SWIR, forest green.
    r_mine, r_river, r_forest = mean(swir, mine), mean(swir, river), mean(swir, forest)
    assert r_river[2] > r_river[0] + 50 and r_river[2] > r_river[1] + 50 and r_river[0] < 70
    assert r_mine[0] > r_river[0] + 50  # soil vs water: what true colour could not tell apart
    assert r_mine[2] > r_forest[2] + 60 and r_mine[1] < r_forest[1] - 20
    assert r_forest[1] > r_forest[0] + 30 and r_forest[1] > r_forest[2] + 50
    assert np.abs(true_colour[:3, mine] - swir[:3, mine]).mean() > 30


# --------------------------------------------------------------------------- chips


@pytest.mark.parametrize("site", ["new-mine-1-protected", "new-mine-2-open", "legal-mine"])
def test_chips_come_from_the_clearest_scene_before_and_after_first_detection(
        catalog: SceneCatalog, sample_area: Path, site: str) -> None:
    geometry, first_detected = truth_site(sample_area, site)
    scenes = catalog.index().ordered
    choice = choose_chip_scenes(scenes, geometry, first_detected)
    area = choice.area
    assert choice.before is not None and choice.after is not None
    before_day, after_day = choice.before.scene.datetime.date(), choice.after.scene.datetime.date()
    assert before_day < first_detected < after_day
    # An independent measure of every candidate: SCL warped onto a 20 m grid of the chip by rasterio.
    side_px = int(round((area.bounds[2] - area.bounds[0]) / 20))
    transform = from_bounds(*area.bounds, side_px, side_px)
    for side, chosen in (("before", choice.before), ("after", choice.after)):
        pool = candidates(scenes, area, first_detected, side)
        assert chosen.scene in pool
        shares = {s.id: float(clear_on_grid(s, f"EPSG:{area.epsg}", transform, (side_px, side_px)).mean())
                  for s in pool}
        best = max(shares.values())
        assert abs(chosen.clear_fraction - shares[chosen.scene.id]) < 0.03
        assert shares[chosen.scene.id] >= best - 0.03, (side, chosen.scene.id, shares[chosen.scene.id], best)
        day = chosen.scene.datetime.date()
        # a scene closer in time is less clear (ties go to the closer scene)
        closer = [s for s in pool if abs((s.datetime.date() - first_detected).days) < abs((day - first_detected).days)]
        assert all(shares[s.id] < shares[chosen.scene.id] + 0.03 for s in closer)
        # and by the renderer's own measure the choice is the arg-max, in whole percent
        own = {s.id: math.floor(clear_fraction(s, area) * CLEAR_STEPS) for s in pool}
        assert math.floor(chosen.clear_fraction * CLEAR_STEPS) == max(own.values())


def test_clearest_prefers_clear_then_close_and_stops_at_a_fully_clear_scene(catalog: SceneCatalog) -> None:
    scenes = list(catalog.index().ordered[:6])
    area = chip_area(box(-77.50, -0.99, -77.499, -0.989))
    shares = dict(zip([s.id for s in scenes], [0.40, 0.904, 0.909, 1.0, 1.0, 0.2]))
    asked: list[str] = []

    def measure(scene, _area) -> float:
        asked.append(scene.id)
        return shares[scene.id]

    # 0.904 and 0.909 are the same 90 %: the first (closer) one wins over the second
    chosen = clearest(scenes[:3], area, measure)
    assert chosen.scene.id == scenes[1].id and chosen.clear_fraction == 0.904
    asked.clear()
    chosen = clearest(scenes, area, measure)
    assert chosen.scene.id == scenes[3].id
    assert asked == [s.id for s in scenes[:4]]  # stopped at the first fully clear one
    assert clearest(scenes[:1], area, lambda s, a: 0.0) is None  # nothing of the ground visible


def test_chip_png_has_the_outline_and_the_area_covers_the_site(catalog: SceneCatalog, sample_area: Path) -> None:
    geometry, first_detected = truth_site(sample_area, "new-mine-2-open")
    choice = choose_chip_scenes(catalog.index().ordered, geometry, first_detected)
    rgba = decode_png(render_chip(choice.after.scene, choice.area))
    assert rgba.shape == (4, 320, 320)
    w, s, e, n = choice.area.lonlat_bounds
    gw, gs, ge, gn = geometry.bounds
    assert w < gw and s < gs and e > ge and n > gn
    yellow = np.all(rgba[:3] == np.array(OUTLINE_RGB)[:, None, None], axis=0) & (rgba[3] == 255)
    near = choice.area.outline.boundary.buffer(2.5 * choice.area.resolution)  # the 2 px line, all pixels touched
    boundary = rasterize([(near, 1)], out_shape=(320, 320),
                         transform=choice.area.transform, dtype="uint8").astype(bool)
    assert yellow.sum() > 200
    assert (yellow & boundary).sum() / yellow.sum() > 0.95  # the yellow is the outline, not the imagery
    clear = clear_fraction(choice.after.scene, choice.area)
    assert clear == choice.after.clear_fraction


def test_chip_area_is_square_around_the_site_in_its_utm_zone() -> None:
    small = chip_area(box(-77.5, -0.99, -77.4995, -0.9895))
    assert small.epsg == 32718
    w, s, e, n = small.bounds
    assert e - w == pytest.approx(800) and n - s == pytest.approx(800)
    large = chip_area(box(-79.5, -2.0, -79.48, -1.99))  # 17S, 2.2 km wide
    assert large.epsg == 32717 and large.bounds[2] - large.bounds[0] > 2.5 * 2000
    with pytest.raises(InvalidInputError):
        chip_area(box(0, 0, 1, 1).buffer(-1))


# --------------------------------------------------------------------------- score layer


def test_score_tile_fills_alerts_by_score_and_higher_scores_win() -> None:
    tile = _tile_at(*CENTRE, 14)
    tw, ts, te, tn = (lambda b: (b.left, b.bottom, b.right, b.top))(TMS.bounds(morecantile.Tile(tile.x, tile.y, tile.z)))
    cx, cy = (tw + te) / 2, (ts + tn) / 2
    low = box(cx - 0.004, cy - 0.004, cx + 0.002, cy + 0.002)
    high = box(cx - 0.001, cy - 0.001, cx + 0.004, cy + 0.004)  # overlaps low
    rgba = decode_png(render_score_tile([(high, 0.95), (low, 0.3)], tile))
    assert rgba.shape == (4, 256, 256)
    crs, transform = _tile_grid(tile, 256)

    def pixel(lon: float, lat: float) -> tuple[int, ...]:
        x, y = TMS.xy(lon, lat)
        col, row = ~transform * (x, y)
        return tuple(int(v) for v in rgba[:, int(row), int(col)])

    def near(found: tuple[int, ...], score: float) -> bool:  # scores are drawn in 1/254 steps
        return found[3] == SCORE_ALPHA and max(abs(a - b) for a, b in zip(found, score_color(score))) <= 2

    assert near(pixel(cx - 0.003, cy - 0.003), 0.3)
    assert near(pixel(cx + 0.003, cy + 0.003), 0.95)
    assert near(pixel(cx, cy), 0.95)  # the overlap shows the higher score
    assert not near(pixel(cx, cy), 0.3)
    assert pixel(tw + 0.0005, tn - 0.0005)[3] == 0
    assert score_color(0.0) == (255, 255, 178) and score_color(1.0) == (189, 0, 38)
    # a 30 m site at zoom 8 is far below a pixel, and still drawn
    dot = decode_png(render_score_tile([(box(cx, cy, cx + 0.0003, cy + 0.0003), 0.8)], _tile_at(cx, cy, 8)))
    assert (dot[3] > 0).sum() >= 1
    assert render_score_tile([], tile) == transparent_png(256)


# --------------------------------------------------------------------------- scene index


def test_scene_index_is_the_allow_list_and_sees_new_scenes_after_its_ttl(sample_area: Path, tmp_path: Path) -> None:
    copy = tmp_path / "catalog"
    shutil.copytree(sample_area / "catalog", copy)
    now = [0.0]
    catalog = SceneCatalog(str(copy / "catalog.json"), ttl_s=60, clock=lambda: now[0])
    index = catalog.index()
    assert len(index.scenes) == len([p for p in (copy / "sentinel-2-l2a").iterdir() if p.is_dir()]) > 100
    first = index.ordered[0]
    assert catalog.get(first.id) is first
    for bad in ("nope", "", first.assets["red"].href, "../" + first.id, "x" * 500):
        with pytest.raises(UnknownSceneError):
            catalog.get(bad)
    # remove one item from the collection's links: still served until the TTL runs out
    collection = copy / "sentinel-2-l2a" / "collection.json"
    doc = json.loads(collection.read_text())
    doc["links"] = [link for link in doc["links"] if first.id not in link.get("href", "")]
    collection.write_text(json.dumps(doc))
    now[0] = 59.0
    assert catalog.get(first.id) is first
    now[0] = 61.0
    with pytest.raises(UnknownSceneError):
        catalog.get(first.id)
    assert catalog.index().fingerprint != index.fingerprint
    # the catalog disappears: the last good index stays in use
    shutil.rmtree(copy)
    now[0] = 200.0
    assert len(catalog.index().scenes) == len(index.scenes) - 1


def test_scene_index_search_and_an_unreadable_catalog(catalog: SceneCatalog, tmp_path: Path) -> None:
    index = catalog.index()
    june = index.search(start=date(2024, 6, 1), end=date(2024, 6, 30))
    assert june and all(s.datetime.date().month == 6 for s in june)
    assert index.search(bbox=(-79.0, -2.0, -78.9, -1.9)) == []
    cloudy_ok = index.search(max_cloud_cover=30)
    assert cloudy_ok and all(s.cloud_cover <= 30 for s in cloudy_ok)
    with pytest.raises(ImageryUnavailableError, match="cannot be read"):
        SceneCatalog(str(tmp_path / "missing" / "catalog.json")).index()


# --------------------------------------------------------------------------- coordinates


def test_coordinates_for_the_evidence_sheet_in_gps_forms() -> None:
    c = notations(-77.49395, -0.98765)
    assert c.decimal == "-0.987650, -77.493950"
    assert c.dms == "0°59'15.5\"S 77°29'38.2\"W"
    assert c.utm.text.startswith("18M ") and c.utm.epsg == 32718
    easting, northing = (int(v) for v in c.utm.text.split()[1:])
    assert 166_000 < easting < 834_000 and 9_000_000 < northing < 10_000_000  # south of the equator: false northing
    assert c.geo_uri == "geo:-0.987650,-77.493950"
    north = notations(-78.5, 0.2)
    assert north.utm.text.startswith("17N ") and north.dms.startswith("0°12'00.0\"N")
    assert to_dms(-0.99999999, is_lat=True) == "1°00'00.0\"S"  # rounding never shows 60 seconds
    assert to_utm(-78.0, -0.1).band == "M" and to_utm(-78.0, 0.0).band == "N" and to_utm(-78.0, 84.0).band == "X"
    with pytest.raises(InvalidInputError):
        notations(200, 0)
    # DMS reads back to the point within 0.05"
    deg, rest = c.dms.split()[0].split("°")
    minutes, seconds = rest.split("'")
    back = -(int(deg) + int(minutes) / 60 + float(seconds.rstrip('"S')) / 3600)
    assert abs(back - (-0.98765)) < 0.05 / 3600 + 1e-9
