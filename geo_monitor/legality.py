"""Where a site is (context), whether mining there is probably illegal (legality), how urgent it is (priority).

Pure functions over :class:`~geo_monitor.context.ContextLayers`: no I/O, no
module state, so Dask workers can run them on any chunk. The rules are
tables below, in the order they are applied; ``docs/legality.md`` explains
each one and must change with them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, NamedTuple

import geopandas as gpd
import numpy as np
import shapely

from geo_monitor.alerts import Confidence, Context, Legality, Priority
from geo_monitor.context import ContextLayers
from geo_monitor.errors import InvalidInputError

# -- thresholds (docs/legality.md says why each has its value)

#: A site is "in" a concession when that one concession covers at least this
#: share of the site's area. A pit that straddles the boundary but lies mostly
#: outside is mostly outside what the title allows, so it is reported as
#: such; a small spill over the boundary (a detected polygon's edge pixels, a
#: cadastre vertex a few metres off) does not turn a titled mine illegal.
CONCESSION_MIN_SHARE: Final[float] = 0.5

#: Shared areas smaller than this are numerical slivers (a boundary
#: reprojected from lon/lat, a site drawn against a park's edge), not an
#: overlap: one 10 m pixel is 100 m².
MIN_OVERLAP_M2: Final[float] = 1.0

#: Within this distance of a river, mercury and sediment from a mine reach the
#: water within one rain: alluvial gold is washed and amalgamated at the bank.
RIVER_NEAR_M: Final[float] = 500.0

#: A probably illegal site at least this large is one level more urgent
#: (up to ``high``): several hectares mean machinery, not panning.
LARGE_SITE_HA: Final[float] = 5.0

#: Below this mining score the detector itself is in doubt: one level less urgent.
DOUBTFUL_SCORE: Final[float] = 0.5

#: Concession statuses that mean the title is in force (ARCOM's cadastre is in
#: Spanish; English for other sources). Compared after case folding, accent
#: stripping and whitespace collapsing, as whole values: "no vigente" is not
#: "vigente". Anything else ("en trámite", "caducada", "archivada",
#: "suspendida", "extinguida", blank) is not a title to mine.
STATUSES_IN_FORCE: Final[frozenset[str]] = frozenset({
    "otorgada", "otorgado", "inscrita", "inscrito", "vigente", "granted",
})


def normalize_status(status: str | None) -> str:
    """Case-, accent- and space-insensitive form of a cadastre status ("En Trámite " -> "en tramite")."""
    if not status:
        return ""
    decomposed = unicodedata.normalize("NFKD", status)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def concession_in_force(status: str | None) -> bool:
    """Whether a concession with this status allows mining (see :data:`STATUSES_IN_FORCE`)."""
    return normalize_status(status) in STATUSES_IN_FORCE


# -- context


def site_context(geoms: gpd.GeoSeries, layers: ContextLayers) -> list[Context]:
    """The :class:`Context` of each site, in the order of ``geoms``.

    ``geoms`` must be in a projected CRS in metres (the pipeline's UTM zone);
    layers in another CRS are reprojected through ``layers.to_crs`` (cached),
    so passing the loaded layers as they are is fine. Every overlay goes
    through the layers' spatial index and prepared geometries: candidate
    pairs come from bounding boxes, a site wholly inside a polygon costs one
    prepared containment test, and only sites on a boundary pay for an
    exact intersection. That keeps 10^4 sites against national layers of
    detailed polygons to seconds.
    """
    crs = geoms.crs
    if crs is None or not crs.is_projected or not _in_metres(crs):
        raise InvalidInputError(f"site geometries must be in a projected CRS in metres (e.g. UTM); got {crs}")
    layers = layers.to_crs(crs)
    sites = geoms.to_numpy()
    n = len(sites)
    usable = ~(shapely.is_missing(sites) | shapely.is_empty(sites))
    areas = np.where(usable, shapely.area(sites), 0.0)

    province = _largest_overlap(sites, areas, layers.provinces, min_share=0.0)
    concession = _largest_overlap(sites, areas, layers.concessions, min_share=CONCESSION_MIN_SHARE)
    protected = _largest_overlap(sites, areas, layers.protected_areas, min_share=0.0)
    indigenous = _largest_overlap(sites, areas, layers.indigenous_territories, min_share=0.0)
    river, distance = _nearest(sites, usable, layers)

    names = {key: _column(frame, "name") for key, frame in (
        ("province", layers.provinces), ("protected", layers.protected_areas),
        ("indigenous", layers.indigenous_territories), ("river", layers.rivers))}
    codes, statuses = _column(layers.concessions, "code"), _column(layers.concessions, "status")
    return [
        Context(
            province=_pick(names["province"], province[i]),
            concession_code=_pick(codes, concession[i]),
            concession_status=_pick(statuses, concession[i]),
            protected_area=_pick(names["protected"], protected[i]),
            indigenous_territory=_pick(names["indigenous"], indigenous[i]),
            nearest_river=_pick(names["river"], river[i]),
            river_distance_m=float(distance[i]) if river[i] >= 0 else None,
        )
        for i in range(n)
    ]


def _in_metres(crs: object) -> bool:
    axes = getattr(crs, "axis_info", [])
    return bool(axes) and all(axis.unit_name in ("metre", "meter") for axis in axes)


def _column(frame: gpd.GeoDataFrame | None, name: str) -> np.ndarray | None:
    return None if frame is None else frame[name].to_numpy(dtype=object)


def _pick(values: np.ndarray | None, index: int) -> str | None:
    return None if values is None or index < 0 else values[index]


def _largest_overlap(sites: np.ndarray, areas: np.ndarray, layer: gpd.GeoDataFrame | None,
                     min_share: float) -> np.ndarray:
    """Per site, the row of ``layer`` sharing the most area with it (-1 for none).

    A row counts only if the shared area is at least :data:`MIN_OVERLAP_M2`
    (a site that merely touches a park's edge is not in it) and at least
    ``min_share`` of the site's area. Ties go to the first row, so results do not depend on the
    index's traversal order.
    """
    best = np.full(len(sites), -1, dtype=np.int64)
    if layer is None or len(layer) == 0 or len(sites) == 0:
        return best
    polys = layer.geometry.to_numpy()
    shapely.prepare(polys)
    site_i, row_j = layer.sindex.query(sites, predicate=None)  # bounding boxes only: cheap
    if len(site_i) == 0:
        return best
    inside = shapely.contains_properly(polys[row_j], sites[site_i])  # prepared: fast for big polygons
    shared = np.where(inside, areas[site_i], 0.0)
    edge = ~inside & shapely.intersects(polys[row_j], sites[site_i])
    if edge.any():
        shared[edge] = shapely.area(shapely.intersection(polys[row_j[edge]], sites[site_i[edge]]))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(areas[site_i] > 0, shared / areas[site_i], 0.0)
    ok = (shared >= MIN_OVERLAP_M2) & (share >= min_share)
    site_i, row_j, shared = site_i[ok], row_j[ok], shared[ok]
    order = np.lexsort((row_j, -shared, site_i))  # by site, then largest overlap, then first row
    first = np.unique(site_i[order], return_index=True)[1]
    best[site_i[order][first]] = row_j[order][first]
    return best


def _nearest(sites: np.ndarray, usable: np.ndarray, layers: ContextLayers) -> tuple[np.ndarray, np.ndarray]:
    """Per site, the nearest river row (-1 for none) and its distance from the site's outline.

    Shapely's polygon-to-line distance is 0 when they touch or cross and
    otherwise the gap between the outline and the line: the distance run-off
    from the pit's edge travels.
    """
    nearest = np.full(len(sites), -1, dtype=np.int64)
    distance = np.full(len(sites), np.nan)
    index = layers.rivers_index()
    if index is None or not usable.any():
        return nearest, distance
    where = np.flatnonzero(usable)
    nearest[where], distance[where] = index.nearest(sites[where])
    return nearest, distance


# -- legality


@dataclass(frozen=True)
class LegalityRule:
    """One row of the legality table: the first rule that applies gives the verdict."""

    name: str
    applies: Callable[[Context, ContextLayers], bool]
    verdict: Legality


def _in_concession(ctx: Context) -> bool:
    return ctx.concession_code is not None or ctx.concession_status is not None


#: The legality table, in order (docs/legality.md). Protected areas come
#: first: the Constitution excludes extraction of non-renewable resources
#: from protected areas and intangible zones, so neither a title nor a
#: missing cadastre changes the answer there.
LEGALITY_RULES: Final[tuple[LegalityRule, ...]] = (
    LegalityRule("in_protected_area", lambda ctx, layers: ctx.protected_area is not None,
                 Legality.PROBABLY_ILLEGAL),
    LegalityRule("no_concessions_layer", lambda ctx, layers: layers.concessions is None, Legality.UNKNOWN),
    LegalityRule("in_concession_in_force",
                 lambda ctx, layers: _in_concession(ctx) and concession_in_force(ctx.concession_status),
                 Legality.INSIDE_CONCESSION),
    LegalityRule("in_concession_not_in_force", lambda ctx, layers: _in_concession(ctx),
                 Legality.PROBABLY_ILLEGAL),
    LegalityRule("outside_concessions", lambda ctx, layers: True, Legality.PROBABLY_ILLEGAL),
)


def explain_legality(ctx: Context, layers: ContextLayers) -> tuple[Legality, str]:
    """The verdict and the name of the rule that gave it (for the alert's audit trail)."""
    for rule in LEGALITY_RULES:
        if rule.applies(ctx, layers):
            return rule.verdict, rule.name
    raise AssertionError("LEGALITY_RULES must end with a rule that always applies")


def legality(ctx: Context, layers: ContextLayers) -> Legality:
    """``probably_illegal`` / ``inside_concession`` / ``unknown`` for a site with context ``ctx``."""
    return explain_legality(ctx, layers)[0]


# -- priority


class Place(str, Enum):
    """Where a site is, as far as urgency goes."""

    SENSITIVE = "protected_area_or_indigenous_territory"
    NEAR_RIVER = "near_river"
    ELSEWHERE = "elsewhere"


def place_of(ctx: Context) -> Place:
    """Most sensitive place first: a site in a park by a river is in a park."""
    if ctx.protected_area is not None or ctx.indigenous_territory is not None:
        return Place.SENSITIVE
    if ctx.river_distance_m is not None and ctx.river_distance_m <= RIVER_NEAR_M:
        return Place.NEAR_RIVER
    return Place.ELSEWHERE


#: Priority before adjustments, by legality and place. Inside a concession and
#: of unknown legality start low everywhere: the first is the regulator's
#: business (permits can be exceeded), the second is raised below when the
#: detection is sure.
BASE_PRIORITY: Final[dict[tuple[Legality, Place], Priority]] = {
    (Legality.PROBABLY_ILLEGAL, Place.SENSITIVE): Priority.CRITICAL,
    (Legality.PROBABLY_ILLEGAL, Place.NEAR_RIVER): Priority.HIGH,
    (Legality.PROBABLY_ILLEGAL, Place.ELSEWHERE): Priority.MEDIUM,
    (Legality.INSIDE_CONCESSION, Place.SENSITIVE): Priority.LOW,
    (Legality.INSIDE_CONCESSION, Place.NEAR_RIVER): Priority.LOW,
    (Legality.INSIDE_CONCESSION, Place.ELSEWHERE): Priority.LOW,
    (Legality.UNKNOWN, Place.SENSITIVE): Priority.LOW,
    (Legality.UNKNOWN, Place.NEAR_RIVER): Priority.LOW,
    (Legality.UNKNOWN, Place.ELSEWHERE): Priority.LOW,
}

#: Priorities from least to most urgent.
PRIORITY_ORDER: Final[tuple[Priority, ...]] = (Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.CRITICAL)


class SiteFacts(NamedTuple):
    """What priority adjustments look at."""

    legality: Legality
    ctx: Context
    confidence: Confidence
    score: float
    area_ha: float


@dataclass(frozen=True)
class PriorityAdjustment:
    """One level up (``step=+1``, never above ``ceiling``) or down (``step=-1``, never below low)."""

    name: str
    applies: Callable[[SiteFacts], bool]
    step: int
    ceiling: Priority = Priority.CRITICAL


#: Applied in order to the base priority, each at most once.
PRIORITY_ADJUSTMENTS: Final[tuple[PriorityAdjustment, ...]] = (
    PriorityAdjustment("unknown_legality_high_confidence",
                       lambda f: f.legality is Legality.UNKNOWN and f.confidence is Confidence.HIGH,
                       +1, ceiling=Priority.MEDIUM),
    PriorityAdjustment("large_probably_illegal_site",
                       lambda f: f.legality is Legality.PROBABLY_ILLEGAL and f.area_ha >= LARGE_SITE_HA,
                       +1, ceiling=Priority.HIGH),
    PriorityAdjustment("doubtful_detection",
                       lambda f: f.confidence is Confidence.LOW or f.score < DOUBTFUL_SCORE,
                       -1),
)


def _step(level: Priority, adjustment: PriorityAdjustment) -> Priority:
    i = PRIORITY_ORDER.index(level)
    if adjustment.step > 0:
        ceiling = PRIORITY_ORDER.index(adjustment.ceiling)
        return PRIORITY_ORDER[max(i, min(i + adjustment.step, ceiling))]
    return PRIORITY_ORDER[max(i + adjustment.step, 0)]


def priority(legality: Legality, ctx: Context, confidence: Confidence, score: float, area_ha: float) -> Priority:
    """How urgently enforcement should look at the site: :data:`BASE_PRIORITY`, then :data:`PRIORITY_ADJUSTMENTS`."""
    facts = SiteFacts(Legality(legality), ctx, Confidence(confidence), float(score), float(area_ha))
    level = BASE_PRIORITY[(facts.legality, place_of(ctx))]
    for adjustment in PRIORITY_ADJUSTMENTS:
        if adjustment.applies(facts):
            level = _step(level, adjustment)
    return level
