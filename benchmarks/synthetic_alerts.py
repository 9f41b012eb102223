"""SYNTHETIC alerts spread over mainland Ecuador, for load benchmarks (never real detections).

Alerts cluster around the country's known gold-mining districts, as real
detections would (most of the store's alerts sit in a few provinces), with a
thin scatter elsewhere. Each site is an irregular polygon of 0.3-40 ha with
12-60 vertices (a few are chains of ponds: MultiPolygons), and carries every
field of DESIGN.md's Alert contract with plausible values. Every alert says
it is synthetic in ``extra``. The same seed gives the same alerts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from shapely.geometry import MultiPolygon, Polygon

from geo_monitor.alerts import Alert, Confidence, Context, Legality, Priority, Provenance, Signature


@dataclass(frozen=True)
class District:
    """A mining district: where its alerts gather (lon, lat), how far they spread (degrees), their share."""

    province: str
    lon: float
    lat: float
    spread_deg: float
    weight: float
    river: str


#: Mining districts (approximate centres) and the share of alerts in each; the rest is background.
DISTRICTS: tuple[District, ...] = (
    District("Napo", -77.62, -1.02, 0.25, 0.16, "Río Punino"),
    District("Zamora Chinchipe", -78.78, -4.06, 0.35, 0.16, "Río Nambija"),
    District("Azuay", -79.62, -3.10, 0.20, 0.10, "Río Tenguel"),
    District("El Oro", -79.65, -3.63, 0.25, 0.10, "Río Amarillo"),
    District("Esmeraldas", -78.95, 0.95, 0.30, 0.09, "Río Santiago"),
    District("Sucumbíos", -77.35, 0.05, 0.35, 0.08, "Río Aguarico"),
    District("Morona Santiago", -78.25, -3.05, 0.40, 0.07, "Río Santiago"),
    District("Orellana", -76.95, -0.60, 0.40, 0.05, "Río Napo"),
    District("Imbabura", -78.55, 0.40, 0.20, 0.04, "Río Chota"),
    District("Pastaza", -77.60, -1.60, 0.40, 0.04, "Río Pastaza"),
    District("Loja", -79.35, -4.20, 0.30, 0.04, "Río Catamayo"),
)
#: Background alerts fall anywhere in this box (mainland Ecuador, lon/lat) and take the nearest district's province.
MAINLAND = (-80.9, -4.9, -75.3, 1.3)
BACKGROUND_SHARE = 0.07
#: Metres per degree of latitude (and of longitude at the equator, near enough for Ecuador).
M_PER_DEG = 111_320.0
SCENE_DAYS = 5  # Sentinel-2 revisit with both satellites


def synthetic_alerts(count: int, seed: int = 42) -> Iterator[Alert]:
    """``count`` SYNTHETIC alerts with ids ``syn-<n>``, the same for the same ``seed``."""
    rng = random.Random(seed)
    weights = [d.weight for d in DISTRICTS]
    for n in range(count):
        if rng.random() < BACKGROUND_SHARE:
            lon, lat = rng.uniform(MAINLAND[0], MAINLAND[2]), rng.uniform(MAINLAND[1], MAINLAND[3])
            district = min(DISTRICTS, key=lambda d: (d.lon - lon) ** 2 + (d.lat - lat) ** 2)
        else:
            district = rng.choices(DISTRICTS, weights)[0]
            lon = district.lon + rng.gauss(0, district.spread_deg / 2)
            lat = district.lat + rng.gauss(0, district.spread_deg / 2)
        yield _alert(rng, f"syn-{n:07d}", lon, lat, district)


def site_centres(count: int, seed: int = 42) -> list[tuple[float, float]]:
    """Where ``synthetic_alerts(count, seed)`` puts its sites, without building them (for query boxes)."""
    return [alert.geometry.centroid.coords[0] for alert in synthetic_alerts(count, seed)]


def _alert(rng: random.Random, alert_id: str, lon: float, lat: float, district: District) -> Alert:
    area_ha = min(40.0, rng.lognormvariate(math.log(3.0), 0.9) + 0.3)
    geometry = _site_geometry(rng, lon, lat, area_ha)
    first = date(2019, 1, 1) + timedelta(days=rng.randrange(0, 6 * 365))
    looks = rng.randint(2, 12)
    last = first + timedelta(days=SCENE_DAYS * looks * rng.randint(1, 4))
    confidence = rng.choices(list(Confidence), [0.25, 0.35, 0.40])[0]
    legality = rng.choices(list(Legality), [0.55, 0.25, 0.20])[0]
    protected = rng.random() < 0.15
    priority = _priority(legality, confidence, protected)
    water = rng.uniform(0.0, 0.4)
    return Alert(
        id=alert_id,
        geometry=geometry,
        area_ha=round(area_ha, 3),
        pond_area_ha=round(area_ha * water * rng.uniform(0.3, 1.0), 3),
        first_detected=first,
        last_observed=last,
        confirmed_at=first + timedelta(days=SCENE_DAYS * 2) if confidence is Confidence.HIGH else None,
        confidence=confidence,
        score=round(rng.uniform(0.35, 0.99), 4),
        signature=Signature(
            vegetation_loss=round(rng.uniform(0.1, 0.7), 3),
            bare_soil=round(rng.uniform(0.2, 0.9), 3),
            water=round(water, 3),
            turbidity=round(rng.uniform(0.9, 1.3) if water > 0.05 else 0.0, 3),
        ),
        context=Context(
            province=district.province,
            concession_code=f"{rng.randint(100000, 999999)}" if legality is Legality.INSIDE_CONCESSION else None,
            concession_status="inscrita" if legality is Legality.INSIDE_CONCESSION else None,
            protected_area="Parque Nacional Podocarpus" if protected else None,
            indigenous_territory="Territorio Shuar" if rng.random() < 0.1 else None,
            nearest_river=district.river,
            river_distance_m=round(rng.expovariate(1 / 400.0), 1),
        ),
        legality=legality,
        priority=priority,
        provenance=Provenance(
            pipeline="mining-change",
            pipeline_version="1.0.0",
            model_version="rf-2024.1",
            scene_ids=[f"S2{'AB'[i % 2]}_17MQV_{(first + timedelta(days=SCENE_DAYS * i)):%Y%m%d}_0_L2A"
                       for i in range(min(looks, 8))],
            job_id=f"job-{rng.randint(1, 400)}",
        ),
        extra={"synthetic": True},
    )


def _priority(legality: Legality, confidence: Confidence, protected: bool) -> Priority:
    if legality is Legality.PROBABLY_ILLEGAL and (protected or confidence is Confidence.HIGH):
        return Priority.CRITICAL
    if legality is Legality.PROBABLY_ILLEGAL:
        return Priority.HIGH
    if legality is Legality.UNKNOWN or confidence is Confidence.HIGH:
        return Priority.MEDIUM
    return Priority.LOW


def _site_geometry(rng: random.Random, lon: float, lat: float, area_ha: float) -> Polygon | MultiPolygon:
    """An irregular star-shaped polygon of about ``area_ha`` (or a chain of 2-3 ponds) at lon, lat."""
    if rng.random() < 0.1:
        parts = rng.randint(2, 3)
        step = math.sqrt(area_ha * 10_000) / M_PER_DEG * 1.6
        heading = rng.uniform(0, math.pi)
        polys = [
            _star(rng, lon + i * step * math.cos(heading), lat + i * step * math.sin(heading), area_ha / parts)
            for i in range(parts)
        ]
        return MultiPolygon(polys)
    return _star(rng, lon, lat, area_ha)


def _star(rng: random.Random, lon: float, lat: float, area_ha: float) -> Polygon:
    vertices = rng.randint(12, 60)
    radius = math.sqrt(area_ha * 10_000 / math.pi) / M_PER_DEG  # degrees, for a disc of that area
    angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(vertices))
    ring = [
        (round(lon + radius * r * math.cos(a), 6), round(lat + radius * r * math.sin(a), 6))
        for a, r in ((a, rng.uniform(0.6, 1.3)) for a in angles)
    ]
    polygon = Polygon(ring)
    return polygon if polygon.is_valid else polygon.convex_hull  # rounding can fold a sliver; rare
