"""The alert record: one place that fixes its fields (DESIGN.md's Alert contract).

Alerts travel as :class:`Alert` objects inside the library, as rows in the
store and as GeoJSON features (EPSG:4326) outside. Field names here are the
names everywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry


class Confidence(str, Enum):
    LOW = "low"
    NOMINAL = "nominal"
    HIGH = "high"


class Legality(str, Enum):
    PROBABLY_ILLEGAL = "probably_illegal"
    INSIDE_CONCESSION = "inside_concession"
    UNKNOWN = "unknown"


class Priority(str, Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Status(str, Enum):
    NEW = "new"
    UNDER_REVIEW = "under_review"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    ACTIONED = "actioned"


#: Workflow: which status may follow which (issue 4 enforces it in the store/API).
STATUS_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.UNDER_REVIEW}),
    Status.UNDER_REVIEW: frozenset({Status.CONFIRMED, Status.DISMISSED, Status.ACTIONED}),
    Status.CONFIRMED: frozenset({Status.ACTIONED}),
    Status.DISMISSED: frozenset(),
    Status.ACTIONED: frozenset(),
}


@dataclass
class Signature:
    """Evidence seen in the site's pixels, each 0..1 or a reflectance-index difference."""

    vegetation_loss: float  # median NDVI drop from the baseline
    bare_soil: float  # share of the site's pixels seen as bare soil
    water: float  # share of the site's pixels seen as open water
    turbidity: float  # median red/green ratio of the water pixels (turbid > ~0.95), 0 without water


@dataclass
class Context:
    """Where the site is, from the context layers; None when a layer is absent or nothing applies."""

    province: str | None = None
    concession_code: str | None = None
    concession_status: str | None = None
    protected_area: str | None = None
    indigenous_territory: str | None = None
    nearest_river: str | None = None
    river_distance_m: float | None = None


@dataclass
class Provenance:
    pipeline: str
    pipeline_version: str
    model_version: str | None
    scene_ids: list[str]
    job_id: str | None = None


@dataclass
class Alert:
    """One candidate illegal-mining site, as the detection pipeline reports it."""

    id: str
    geometry: BaseGeometry  # Polygon/MultiPolygon in EPSG:4326
    area_ha: float
    pond_area_ha: float
    first_detected: date
    last_observed: date
    confirmed_at: date | None
    confidence: Confidence
    score: float
    signature: Signature
    context: Context
    legality: Legality
    priority: Priority
    provenance: Provenance
    status: Status = Status.NEW
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def properties(self) -> dict[str, Any]:
        """GeoJSON properties: every field but the geometry, JSON-ready."""
        # A direct walk, not dataclasses.asdict: asdict deep-copies every value first, which
        # made this the costliest step of serving a page of alerts. _jsonable builds new
        # containers anyway, so the result shares nothing with the alert.
        return {name: _jsonable(getattr(self, name)) for name in _field_names(Alert) if name != "geometry"}

    def to_feature(self) -> dict[str, Any]:
        return {"type": "Feature", "id": self.id, "geometry": mapping(self.geometry), "properties": self.properties()}

    @classmethod
    def from_feature(cls, feature: dict[str, Any]) -> Alert:
        p = dict(feature["properties"])
        return cls(
            id=str(p["id"]),
            geometry=shape(feature["geometry"]),
            area_ha=float(p["area_ha"]),
            pond_area_ha=float(p["pond_area_ha"]),
            first_detected=date.fromisoformat(p["first_detected"]),
            last_observed=date.fromisoformat(p["last_observed"]),
            confirmed_at=date.fromisoformat(p["confirmed_at"]) if p.get("confirmed_at") else None,
            confidence=Confidence(p["confidence"]),
            score=float(p["score"]),
            signature=Signature(**p["signature"]),
            context=Context(**p["context"]),
            legality=Legality(p["legality"]),
            priority=Priority(p["priority"]),
            provenance=Provenance(**p["provenance"]),
            status=Status(p.get("status", "new")),
            created_at=datetime.fromisoformat(p["created_at"]) if p.get("created_at") else None,
            updated_at=datetime.fromisoformat(p["updated_at"]) if p.get("updated_at") else None,
            extra=dict(p.get("extra") or {}),
        )


def _jsonable(value: Any) -> Any:
    if value is None or type(value) is str or type(value) is int or type(value) is bool:
        return value  # the common cases first (exact types: the enums here are str subclasses)
    if type(value) is float:
        return round(value, 6)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    if is_dataclass(value) and not isinstance(value, type):
        return {name: _jsonable(getattr(value, name)) for name in _field_names(type(value))}
    return value


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, in order (cached: ``fields()`` is slow for something done per value)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def stable_alert_id(epsg: int, anchor_x: float, anchor_y: float) -> str:
    """Id of the site whose earliest-confirmed pixel centre is (anchor_x, anchor_y) in EPSG ``epsg``.

    The anchor does not move while a site grows, and the same inputs give the
    same anchor, so reruns give the same ids.
    """
    key = f"{epsg}:{anchor_x:.1f}:{anchor_y:.1f}".encode()
    return "gm-" + hashlib.sha256(key).hexdigest()[:16]


def feature_collection(alerts: list[Alert]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [a.to_feature() for a in alerts]}
