"""Context layers and ground truth of the synthetic sample area (SYNTHETIC), as GeoDataFrames.

Formats and fields follow DESIGN.md: concessions (``code``, ``holder``,
``status``, ``mineral``), protected areas (``name``, ``category``),
indigenous territories (``name``), rivers (``name``), provinces (``name``);
ground truth features carry ``kind`` and ``start_date``. Every layer also
has ``source = "synthetic"``. The files are written in different CRSs and
formats on purpose: readers must not assume one.
"""

from __future__ import annotations

import numpy as np
import geopandas as gpd
from rasterio import features
from rasterio.transform import Affine, from_origin
from shapely.geometry import LineString, MultiPolygon, Polygon, shape
from shapely.ops import unary_union

from sample_data.areas import AreaSpec
from sample_data.scenario import River, Scenario

SOURCE = "synthetic"
MINERAL = "oro"


def grid_transform(spec: AreaSpec) -> Affine:
    x0, y0 = spec.origin()
    return from_origin(x0, y0, spec.resolution_m, spec.resolution_m)


def mask_to_geometry(mask: np.ndarray, transform: Affine, simplify_m: float = 5.0) -> Polygon | MultiPolygon | None:
    """Outline of the True pixels as a (multi)polygon in the grid's CRS."""
    if not mask.any():
        return None
    polys = [shape(geom) for geom, value in features.shapes(mask.astype(np.uint8), mask=mask, transform=transform)
             if value == 1]
    merged = unary_union(polys)
    return merged.simplify(simplify_m, preserve_topology=True) if simplify_m > 0 else merged


def _frame(records: list[dict], geometries: list, crs: str) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(records, geometry=geometries, crs=crs)


#: Concession regions of the scenario -> (code, holder, status).
_CONCESSIONS = {
    "concession_granted": ("SYN-0790123", "Minera Sintética Río Claro S.A. (synthetic)", "otorgada"),
    "concession_old": ("SYN-0790045", "Cooperativa Minera Sintética (synthetic)", "otorgada"),
    "concession_unworked_1": ("SYN-0790311", "Titular Sintético (synthetic)", "en trámite"),
    "concession_unworked_2": ("SYN-0790402", "Titular Sintético (synthetic)", "otorgada"),
}


def concessions(s: Scenario) -> gpd.GeoDataFrame:
    """The legal mine's, the old scar's and unworked concessions, as cadastre rectangles."""
    t = grid_transform(s.spec)
    records, geoms = [], []
    for region, (code, holder, status) in _CONCESSIONS.items():
        if region in s.regions:
            geoms.append(mask_to_geometry(s.regions[region], t, 0))
            records.append({"code": code, "holder": holder, "status": status, "mineral": MINERAL, "source": SOURCE})
    return _frame(records, geoms, f"EPSG:{s.spec.epsg}")


def protected_areas(s: Scenario) -> gpd.GeoDataFrame:
    geom = mask_to_geometry(s.regions["protected"], grid_transform(s.spec), 20.0)
    river = s.spec.region_info.river_name
    records = [{"name": f"Área Protegida Sintética, {river} (synthetic)", "category": "Parque Nacional", "source": SOURCE}]
    return _frame(records, [geom], f"EPSG:{s.spec.epsg}").to_crs("EPSG:4326")


def indigenous_territories(s: Scenario) -> gpd.GeoDataFrame:
    geom = mask_to_geometry(s.regions["indigenous"], grid_transform(s.spec), 20.0)
    people = s.spec.region_info.indigenous_people
    records = [{"name": f"Territorio {people} Sintético (synthetic)", "source": SOURCE}]
    return _frame(records, [geom], f"EPSG:{s.spec.epsg}").to_crs("EPSG:4326")


def _river_line(river: River, spec: AreaSpec) -> LineString:
    t = grid_transform(spec)
    pts = river.centerline[::4]
    inside = (pts >= 0).all(axis=1) & (pts < spec.size_px).all(axis=1)
    pts = pts[inside]
    xs, ys = t * (pts[:, 1] + 0.5, pts[:, 0] + 0.5)
    return LineString(np.c_[xs, ys]).simplify(2.0)


def rivers(s: Scenario) -> gpd.GeoDataFrame:
    lines = [_river_line(s.river, s.spec), _river_line(s.tributary, s.spec)]
    records = [{"name": s.river.name, "source": SOURCE}, {"name": s.tributary.name, "source": SOURCE}]
    return _frame(records, lines, f"EPSG:{s.spec.epsg}").to_crs("EPSG:4326")


def provinces(s: Scenario) -> gpd.GeoDataFrame:
    t = grid_transform(s.spec)
    north, south = s.spec.region_info.provinces
    a = mask_to_geometry(s.regions["province_a"], t, 20.0)
    b = mask_to_geometry(~s.regions["province_a"], t, 20.0)
    records = [{"name": north, "source": SOURCE}, {"name": south, "source": SOURCE}]
    return _frame(records, [a, b], f"EPSG:{s.spec.epsg}").to_crs("EPSG:4326")


def ground_truth(s: Scenario) -> gpd.GeoDataFrame:
    """One feature per event: ``kind``, ``start_date`` and what a correct system should say."""
    t = grid_transform(s.spec)
    records, geoms = [], []
    for event in s.events:
        geom = mask_to_geometry(event.footprint, t, 5.0)
        if geom is None:
            continue
        records.append({
            "name": event.name,
            "kind": event.kind,
            "start_date": event.start.isoformat(),
            "expected_legality": event.legality,
            "notes": event.notes,
            "synthetic": True,
            "source": SOURCE,
        })
        geoms.append(geom)
    return _frame(records, geoms, f"EPSG:{s.spec.epsg}").to_crs("EPSG:4326")


#: Layer name -> file name. Formats and CRSs differ on purpose.
LAYERS = {
    "concessions": "concessions.gpkg",
    "protected_areas": "protected_areas.geojson",
    "indigenous_territories": "indigenous_territories.gpkg",
    "rivers": "rivers.geojson",
    "provinces": "provinces.gpkg",
}


def context_layers(s: Scenario) -> dict[str, gpd.GeoDataFrame]:
    return {
        "concessions": concessions(s),
        "protected_areas": protected_areas(s),
        "indigenous_territories": indigenous_territories(s),
        "rivers": rivers(s),
        "provinces": provinces(s),
    }
