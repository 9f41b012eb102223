"""Site context, legality and priority: each rule of docs/legality.md pinned on hand-made layers,
then the SYNTHETIC sample area's truth and real INEC provinces."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import CRS
from shapely.geometry import LineString, Point, Polygon, box

from geo_monitor.alerts import Confidence, Context, Legality, Priority
from geo_monitor.context import ContextLayers
from geo_monitor.errors import InvalidInputError
from geo_monitor.legality import (
    CONCESSION_MIN_SHARE,
    LARGE_SITE_HA,
    LEGALITY_RULES,
    RIVER_NEAR_M,
    concession_in_force,
    explain_legality,
    legality,
    priority,
    site_context,
)

UTM18S = "EPSG:32718"
WGS84 = "EPSG:4326"
X0, Y0 = 200_000.0, 9_890_000.0  # near Río Punino, UTM 18S

REAL_DATA = Path("/work/shared/data/ecuador")
REAL_PROVINCES = REAL_DATA / "ecuador_provincias_inec2012_simpl20m.geojson"


def _box(x: float, y: float, w: float, h: float | None = None) -> Polygon:
    """A w × h m rectangle whose lower-left corner is (x, y) m from the local origin."""
    return box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + (w if h is None else h))


def _frame(rows: list[dict[str, object]], geoms: list[object], crs: str = UTM18S) -> gpd.GeoDataFrame:
    """A layer drawn in UTM 18S metres, then stored in ``crs`` as a publisher might."""
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=UTM18S).to_crs(crs)


def _sites(*geoms: object, crs: str = UTM18S) -> gpd.GeoSeries:
    return gpd.GeoSeries(list(geoms), crs=UTM18S).to_crs(crs)


def _concessions(*items: tuple[str, str, Polygon], crs: str = UTM18S) -> gpd.GeoDataFrame:
    rows = [{"code": code, "holder": "H", "status": status, "mineral": "oro"} for code, status, _ in items]
    return _frame(rows, [geom for *_, geom in items], crs)


def _named(*items: tuple[str, object], crs: str = WGS84, **extra: str) -> gpd.GeoDataFrame:
    return _frame([{"name": name, **extra} for name, _ in items], [geom for _, geom in items], crs)


def _protected(*items: tuple[str, object], crs: str = WGS84) -> gpd.GeoDataFrame:
    return _named(*items, crs=crs, category="Parque Nacional")


# --------------------------------------------------------------------------- site context


def test_province_is_the_one_with_the_largest_overlap() -> None:
    layers = ContextLayers(provinces=_named(("Napo", _box(-5000, -5000, 5000, 10000)),
                                            ("Orellana", _box(0, -5000, 5000, 10000))))
    straddling = _box(-30, 0, 100)  # 30 % Napo, 70 % Orellana
    ctx = site_context(_sites(_box(-500, 0, 100), straddling, _box(9000, 0, 100)), layers)
    assert [c.province for c in ctx] == ["Napo", "Orellana", None]


@pytest.mark.parametrize(("inside_m", "expected"), [(60, "C-1"), (50, "C-1"), (40, None), (0, None)])
def test_concession_must_cover_half_the_site(inside_m: float, expected: str | None) -> None:
    assert CONCESSION_MIN_SHARE == 0.5
    layers = ContextLayers(concessions=_concessions(("C-1", "otorgada", _box(0, -1000, 1000, 2000))))
    site = _box(-100 + inside_m, 0, 100)  # ``inside_m`` of its 100 m width inside the concession
    (ctx,) = site_context(_sites(site), layers)
    assert ctx.concession_code == expected
    assert ctx.concession_status == ("otorgada" if expected else None)


def test_the_concession_covering_most_of_the_site_is_named() -> None:
    layers = ContextLayers(concessions=_concessions(("WEST", "en trámite", _box(-1000, -500, 1000, 1000)),
                                                    ("EAST", "otorgada", _box(0, -500, 1000, 1000))))
    (west, east) = site_context(_sites(_box(-60, 0, 100), _box(-40, 0, 100)), layers)
    assert (west.concession_code, west.concession_status) == ("WEST", "en trámite")
    assert (east.concession_code, east.concession_status) == ("EAST", "otorgada")


@pytest.mark.parametrize("crs", [UTM18S, WGS84])
def test_any_overlap_with_a_protected_area_or_territory_counts_but_touching_does_not(crs: str) -> None:
    layers = ContextLayers(
        protected_areas=_protected(("Parque", _box(95, -500, 1000, 1000)), crs=crs),
        indigenous_territories=_named(("Territorio", _box(-1000, -500, 1005, 1000)), crs=crs),
    )
    overlapping = _box(0, 0, 100)  # 5 % in each
    touching = _box(5, 200, 90)  # shares an edge with each, no area
    ctx_over, ctx_touch = site_context(_sites(overlapping, touching), layers)
    assert (ctx_over.protected_area, ctx_over.indigenous_territory) == ("Parque", "Territorio")
    assert (ctx_touch.protected_area, ctx_touch.indigenous_territory) == (None, None)


def test_nearest_river_and_distance_from_the_site_outline() -> None:
    layers = ContextLayers(rivers=_named(("Río Punino", LineString([(X0, Y0 - 5000), (X0, Y0 + 5000)])),
                                         ("Estero", LineString([(X0 + 1000, Y0 - 5000), (X0 + 1000, Y0 + 5000)]))))
    near_punino, crossing, near_estero = site_context(
        _sites(_box(120, 0, 100), _box(-50, 0, 100), _box(700, 0, 100)), layers)
    assert near_punino.nearest_river == "Río Punino"
    assert near_punino.river_distance_m == pytest.approx(120, abs=0.01)  # from the edge, not the centre
    assert (crossing.nearest_river, crossing.river_distance_m) == ("Río Punino", 0.0)
    assert near_estero.nearest_river == "Estero"
    assert near_estero.river_distance_m == pytest.approx(200, abs=0.01)


def test_layers_in_mixed_crss_give_the_same_context_in_both_utm_zones() -> None:
    layers = ContextLayers(
        concessions=_concessions(("C-1", "otorgada", _box(0, 0, 1000))),  # UTM 18S like ARCOM's
        protected_areas=_protected(("Parque", _box(2000, 0, 1000))),  # lon/lat
        rivers=_named(("Río", LineString([(X0 - 500, Y0 - 300), (X0 + 5000, Y0 - 300)])), crs="EPSG:32717"),
        provinces=_named(("Napo", _box(-5000, -5000, 10000))),
    )
    sites = _sites(_box(100, 100, 80), _box(2100, 100, 80))
    in_18s = site_context(sites, layers)
    in_17s = site_context(sites.to_crs("EPSG:32717"), layers)  # a chunk processed in the other zone
    assert in_18s[0].concession_code == in_17s[0].concession_code == "C-1"
    assert in_18s[1].protected_area == in_17s[1].protected_area == "Parque"
    assert [c.province for c in in_18s] == [c.province for c in in_17s] == ["Napo", "Napo"]
    assert in_18s[0].river_distance_m == pytest.approx(400, abs=0.5)
    assert in_17s[0].river_distance_m == pytest.approx(400, rel=0.01)  # off-zone scale error only
    assert layers.to_crs(UTM18S) is layers.to_crs(32718)  # reprojected once, reused


def test_missing_layers_leave_their_fields_empty() -> None:
    (ctx,) = site_context(_sites(_box(0, 0, 100)), ContextLayers())
    assert ctx == Context()


def test_empty_site_geometries_get_an_empty_context() -> None:
    layers = ContextLayers(provinces=_named(("Napo", _box(-5000, -5000, 10000))),
                           rivers=_named(("Río", LineString([(X0, Y0), (X0 + 10, Y0)]))))
    assert site_context(_sites(crs=UTM18S), layers) == []
    empty, real = site_context(gpd.GeoSeries([Polygon(), _box(0, 0, 10)], crs=UTM18S), layers)
    assert empty == Context()
    assert real.province == "Napo" and real.nearest_river == "Río"


@pytest.mark.parametrize("crs", [WGS84, None])
def test_sites_must_be_in_metres(crs: str | None) -> None:
    sites = gpd.GeoSeries([Point(-77.5, -1.0).buffer(0.001)], crs=crs)
    with pytest.raises(InvalidInputError, match="projected CRS in metres"):
        site_context(sites, ContextLayers())


# --------------------------------------------------------------------------- legality


@pytest.mark.parametrize("status", ["otorgada", "OTORGADA", " Otorgada ", "Inscrita", "vigente", "VIGENTE",
                                    "granted", "Otorgado", "ínscrita"])
def test_statuses_in_force(status: str) -> None:
    assert concession_in_force(status)


@pytest.mark.parametrize("status", ["en trámite", "EN TRAMITE", "En  Trámite", "caducada", "archivada",
                                    "suspendida", "no vigente", "", None])
def test_statuses_not_in_force(status: str | None) -> None:
    assert not concession_in_force(status)


ALL_LAYERS = ContextLayers(concessions=_concessions(), protected_areas=_protected())
NO_CADASTRE = ContextLayers(protected_areas=_protected())
PARK = "Parque"

#: (context, layers, expected verdict, rule that gives it): one row per legality rule at least.
LEGALITY_CASES = [
    (Context(concession_code="C", concession_status="otorgada", protected_area=PARK), ALL_LAYERS,
     Legality.PROBABLY_ILLEGAL, "in_protected_area"),
    (Context(protected_area=PARK), NO_CADASTRE, Legality.PROBABLY_ILLEGAL, "in_protected_area"),
    (Context(), NO_CADASTRE, Legality.UNKNOWN, "no_concessions_layer"),
    (Context(indigenous_territory="T"), NO_CADASTRE, Legality.UNKNOWN, "no_concessions_layer"),
    (Context(concession_code="C", concession_status="Otorgada"), ALL_LAYERS,
     Legality.INSIDE_CONCESSION, "in_concession_in_force"),
    (Context(concession_code="C", concession_status="inscrita", indigenous_territory="T"), ALL_LAYERS,
     Legality.INSIDE_CONCESSION, "in_concession_in_force"),
    (Context(concession_code="C", concession_status="en trámite"), ALL_LAYERS,
     Legality.PROBABLY_ILLEGAL, "in_concession_not_in_force"),
    (Context(concession_code="C", concession_status="caducada"), ALL_LAYERS,
     Legality.PROBABLY_ILLEGAL, "in_concession_not_in_force"),
    (Context(concession_code="C", concession_status=None), ALL_LAYERS,
     Legality.PROBABLY_ILLEGAL, "in_concession_not_in_force"),
    (Context(), ALL_LAYERS, Legality.PROBABLY_ILLEGAL, "outside_concessions"),
    (Context(), ContextLayers(concessions=_concessions()), Legality.PROBABLY_ILLEGAL, "outside_concessions"),
]


@pytest.mark.parametrize(("ctx", "layers", "verdict", "rule"), LEGALITY_CASES)
def test_legality_rules(ctx: Context, layers: ContextLayers, verdict: Legality, rule: str) -> None:
    assert explain_legality(ctx, layers) == (verdict, rule)
    assert legality(ctx, layers) is verdict


def test_every_legality_rule_is_pinned() -> None:
    assert {rule.name for rule in LEGALITY_RULES} == {case[3] for case in LEGALITY_CASES}


def test_protected_area_wins_over_a_granted_concession_end_to_end() -> None:
    layers = ContextLayers(
        concessions=_concessions(("C-1", "otorgada", _box(0, 0, 1000))),
        protected_areas=_protected(("Parque", _box(950, 0, 1000))),
    )
    in_park_edge, clear_of_park = site_context(_sites(_box(860, 100, 100), _box(100, 100, 100)), layers)
    assert in_park_edge.concession_code == "C-1" and in_park_edge.protected_area == "Parque"
    assert legality(in_park_edge, layers) is Legality.PROBABLY_ILLEGAL
    assert legality(clear_of_park, layers) is Legality.INSIDE_CONCESSION


# --------------------------------------------------------------------------- priority

C, H, M, L = Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM, Priority.LOW
HIGH, NOMINAL, LOW = Confidence.HIGH, Confidence.NOMINAL, Confidence.LOW
PI, IN, UNK = Legality.PROBABLY_ILLEGAL, Legality.INSIDE_CONCESSION, Legality.UNKNOWN
IN_PARK = Context(protected_area="P", river_distance_m=10)
IN_TERRITORY = Context(indigenous_territory="T", river_distance_m=3000)
BY_RIVER = Context(river_distance_m=RIVER_NEAR_M)
FAR = Context(river_distance_m=RIVER_NEAR_M + 1)
NO_RIVERS = Context()
BIG = LARGE_SITE_HA


@pytest.mark.parametrize(("legal", "ctx", "confidence", "score", "area_ha", "expected"), [
    # probably illegal: where it is decides
    (PI, IN_PARK, NOMINAL, 0.9, 1.0, C),
    (PI, IN_TERRITORY, HIGH, 0.9, 1.0, C),
    (PI, BY_RIVER, NOMINAL, 0.9, 1.0, H),
    (PI, FAR, NOMINAL, 0.9, 1.0, M),
    (PI, NO_RIVERS, HIGH, 0.9, 1.0, M),
    # large illegal sites go up one level, never into critical by size alone
    (PI, FAR, NOMINAL, 0.9, BIG, H),
    (PI, BY_RIVER, NOMINAL, 0.9, BIG, H),
    (PI, IN_PARK, NOMINAL, 0.9, BIG, C),
    # doubt (low confidence or low score) takes one level off, never below low
    (PI, IN_PARK, LOW, 0.9, 1.0, H),
    (PI, IN_PARK, NOMINAL, 0.3, 1.0, H),
    (PI, IN_PARK, LOW, 0.3, 1.0, H),  # one level for doubt, however many reasons
    (PI, BY_RIVER, LOW, 0.9, 1.0, M),
    (PI, FAR, LOW, 0.9, BIG, M),
    # inside a concession: low everywhere
    (IN, IN_TERRITORY, HIGH, 0.9, BIG, L),
    (IN, BY_RIVER, HIGH, 0.9, 1.0, L),
    (IN, FAR, LOW, 0.2, 1.0, L),
    # unknown: medium only when the detection is sure
    (UNK, BY_RIVER, HIGH, 0.9, 1.0, M),
    (UNK, IN_TERRITORY, HIGH, 0.9, BIG, M),
    (UNK, FAR, NOMINAL, 0.9, 1.0, L),
    (UNK, FAR, LOW, 0.9, 1.0, L),
    (UNK, FAR, HIGH, 0.2, 1.0, L),
])
def test_priority_table(legal: Legality, ctx: Context, confidence: Confidence, score: float, area_ha: float,
                        expected: Priority) -> None:
    assert priority(legal, ctx, confidence, score, area_ha) is expected


# --------------------------------------------------------------------------- sample area (SYNTHETIC)


def test_sample_area_mining_sites_get_their_expected_legality(sample_area: Path) -> None:
    layers = ContextLayers.from_dir(sample_area / "context")
    assert layers.concessions is not None and layers.concessions.crs == CRS(UTM18S)
    assert layers.protected_areas is not None and layers.protected_areas.crs == CRS(WGS84)
    truth = gpd.read_file(sample_area / "truth.geojson")
    mines = truth[truth["kind"] == "mining"]
    assert len(mines) >= 3 and mines["expected_legality"].notna().all()
    mines = mines.to_crs(mines.estimate_utm_crs())
    contexts = site_context(mines.geometry, layers)
    got = {name: legality(ctx, layers).value for name, ctx in zip(mines["name"], contexts)}
    assert got == dict(zip(mines["name"], mines["expected_legality"]))
    by_name = dict(zip(mines["name"], contexts))
    assert by_name["legal-mine"].concession_code is not None
    assert all(ctx.province for ctx in contexts)
    assert all(ctx.nearest_river and ctx.river_distance_m is not None and ctx.river_distance_m < RIVER_NEAR_M
               for ctx in contexts)  # the sample's mines are dug along the bank
    assert any(ctx.protected_area for name, ctx in by_name.items() if "protected" in name)
    in_territory = [ctx for name, ctx in by_name.items() if "indigenous" in name]
    assert all(ctx.indigenous_territory for ctx in in_territory)  # the layout decides whether there is one


# --------------------------------------------------------------------------- real provinces (INEC 2012)


@pytest.fixture(scope="module")
def real_provinces(tmp_path_factory: pytest.TempPathFactory) -> ContextLayers:
    """INEC's provinces as the provinces layer (renamed to the contract's ``name``), in a temporary folder."""
    if not REAL_PROVINCES.is_file():
        pytest.skip(f"real reference data not available: {REAL_PROVINCES} is absent")
    folder = tmp_path_factory.mktemp("real_context")
    provinces = gpd.read_file(REAL_PROVINCES)
    provinces = provinces.rename(columns={"DPA_DESPRO": "name"})[["name", "geometry"]]
    provinces.to_file(folder / "provinces.geojson")
    layers = ContextLayers.from_dir(folder)
    assert layers.provinces is not None and layers.provinces.is_valid.all()  # the source has invalid rings
    return layers


#: Towns and the province they are in: (lon, lat), province, UTM zone of the place.
TOWNS = [
    ("Tena", (-77.81, -0.99), "NAPO", "EPSG:32718"),
    ("Puerto Francisco de Orellana", (-76.99, -0.46), "ORELLANA", "EPSG:32718"),
    ("Nueva Loja", (-76.88, 0.085), "SUCUMBIOS", "EPSG:32718"),
    ("Zamora", (-78.95, -4.07), "ZAMORA CHINCHIPE", "EPSG:32717"),
    ("Macas", (-78.12, -2.31), "MORONA SANTIAGO", "EPSG:32717"),
    ("Machala", (-79.96, -3.26), "EL ORO", "EPSG:32717"),
]


@pytest.mark.parametrize(("town", "lonlat", "province", "utm"), TOWNS, ids=[t[0] for t in TOWNS])
def test_real_provinces_at_known_towns(real_provinces: ContextLayers, town: str, lonlat: tuple[float, float],
                                       province: str, utm: str) -> None:
    site = gpd.GeoSeries([Point(lonlat)], crs=WGS84).to_crs(utm).buffer(60)  # a ~1 ha pit
    (ctx,) = site_context(site, real_provinces)
    assert ctx.province == province
    assert legality(ctx, real_provinces) is Legality.UNKNOWN  # no cadastre loaded: cannot say


def test_real_provinces_match_a_brute_force_overlay(real_provinces: ContextLayers) -> None:
    """Index + prepared shortcuts give exactly what intersecting every province with every site gives."""
    layers = real_provinces.to_crs("EPSG:32717")
    assert layers.provinces is not None
    rng = np.random.default_rng(3)
    west, south, east, north = layers.provinces.total_bounds
    centres = shapely.points(rng.uniform(west, east, 400), rng.uniform(south, north, 400))
    sites = gpd.GeoSeries(shapely.buffer(centres, rng.uniform(30, 3000, 400)), crs="EPSG:32717")
    got = [ctx.province for ctx in site_context(sites, layers)]
    polys, names = layers.provinces.geometry.to_numpy(), layers.provinces["name"].to_numpy()
    expected = []
    for site in sites:
        shared = shapely.area(shapely.intersection(polys, site))
        expected.append(names[int(np.argmax(shared))] if shared.max() > 0 else None)
    assert got == expected
    assert any(p is None for p in got) and len({p for p in got if p}) > 10
