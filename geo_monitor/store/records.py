"""Between :class:`~geo_monitor.alerts.Alert` objects and alert rows.

Three jobs, kept apart from the session code so each is a small pure function:

- :func:`detection_values` checks an alert from a pipeline and turns it into
  column values (the one place bad input is refused, with a message naming
  the alert and the field);
- :func:`row_to_alert` turns a row back into an :class:`Alert`;
- :func:`diff_detection` says what changed between two sets of detection
  values, tolerant of float noise, in the compact form stored in
  ``alert_history.changes``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from numbers import Integral, Real
from typing import Any, TypeVar

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo_monitor.alerts import Alert, Confidence, Context, Legality, Priority, Provenance, Signature
from geo_monitor.errors import InvalidInputError
from geo_monitor.store.schema import ID_LENGTH, AlertRow

#: The fields a detection run owns, in the order changes are listed. Status,
#: assignee and note are not here: an upsert never touches them.
DETECTION_FIELDS: tuple[str, ...] = (
    "geometry",
    "area_ha",
    "pond_area_ha",
    "first_detected",
    "last_observed",
    "confirmed_at",
    "confidence",
    "score",
    "legality",
    "priority",
    "signature",
    "context",
    "provenance",
    "extra",
)

#: Changes that do not by themselves make an alert "updated": the run that
#: re-saw an unchanged site is not news for a partner polling ``updated_at``.
#: They are stored along with any real change.
BOOKKEEPING_CHANGES: frozenset[str] = frozenset({"provenance.job_id"})

#: Float comparison: relative tolerance, plus an absolute one for values near zero.
REL_TOLERANCE = 1e-6
ABS_TOLERANCE = 1e-9
#: Vertex tolerance when comparing geometries, in degrees (~0.1 mm).
GEOMETRY_TOLERANCE_DEG = 1e-9

E = TypeVar("E", bound=Enum)
D = TypeVar("D")


# --- alert -> column values -------------------------------------------------


def detection_values(alert: Alert) -> dict[str, Any]:
    """Column values of the detection part of ``alert`` (plus derived bbox and province).

    Raises :class:`InvalidInputError` naming the alert and the field, so one
    bad alert in a batch is easy to find.
    """
    try:
        return _detection_values(alert)
    except InvalidInputError as exc:
        raise InvalidInputError(f"alert {getattr(alert, 'id', None)!r}: {exc}") from None


def check_alert_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"id must be a non-empty string; got {value!r}")
    if len(value) > ID_LENGTH:
        raise InvalidInputError(f"id is longer than {ID_LENGTH} characters")
    return value


def coerce_enum(enum_cls: type[E], value: object, name: str) -> E:
    """``value`` (a member or its string value) as a member of ``enum_cls``."""
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_cls)
        raise InvalidInputError(f"{name} must be one of {allowed}; got {value!r}") from None


def json_ready(value: Any, name: str) -> Any:
    """``value`` as plain JSON types; numpy scalars unwrapped, dates as ISO text, NaN refused."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{name} must be a finite number; got {value!r}")
        return float(value)  # numpy.float64 is a float too: unwrap it (the stored feature text is encoded as is)
    if isinstance(value, Enum):
        return json_ready(value.value, name)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_ready(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Integral):  # numpy integers and the like
        return int(value)
    if isinstance(value, Real):  # numpy floats and the like
        return json_ready(float(value), name)
    raise InvalidInputError(f"{name} holds a {type(value).__name__}, which cannot be stored as JSON")


def _detection_values(alert: Alert) -> dict[str, Any]:
    check_alert_id(alert.id)
    geometry = _check_geometry(alert.geometry)
    first_detected = _check_date(alert.first_detected, "first_detected")
    last_observed = _check_date(alert.last_observed, "last_observed")
    if last_observed < first_detected:
        raise InvalidInputError(f"last_observed {last_observed} is before first_detected {first_detected}")
    context = _document(alert.context, "context")
    minx, miny, maxx, maxy = geometry.bounds
    return {
        "geometry": geometry,
        "minx": minx,
        "miny": miny,
        "maxx": maxx,
        "maxy": maxy,
        "area_ha": _number(alert.area_ha, "area_ha", minimum=0.0),
        "pond_area_ha": _number(alert.pond_area_ha, "pond_area_ha", minimum=0.0),
        "first_detected": first_detected,
        "last_observed": last_observed,
        "confirmed_at": None if alert.confirmed_at is None else _check_date(alert.confirmed_at, "confirmed_at"),
        "confidence": coerce_enum(Confidence, alert.confidence, "confidence"),
        "score": _number(alert.score, "score", minimum=0.0, maximum=1.0),
        "legality": coerce_enum(Legality, alert.legality, "legality"),
        "priority": coerce_enum(Priority, alert.priority, "priority"),
        "signature": _document(alert.signature, "signature"),
        "context": context,
        "provenance": _document(alert.provenance, "provenance"),
        "extra": _document(alert.extra or {}, "extra"),
        "province": context.get("province"),
    }


def _check_geometry(geometry: object) -> BaseGeometry:
    if not isinstance(geometry, (Polygon, MultiPolygon)):
        raise InvalidInputError(f"geometry must be a Polygon or MultiPolygon; got {type(geometry).__name__}")
    if geometry.is_empty:
        raise InvalidInputError("geometry is empty")
    minx, miny, maxx, maxy = geometry.bounds
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise InvalidInputError("geometry has non-finite coordinates")
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInputError("geometry is not in longitude/latitude degrees (EPSG:4326)")
    if not geometry.is_valid:
        raise InvalidInputError(f"geometry is not valid: {shapely.is_valid_reason(geometry)}")
    return geometry


def _check_date(value: object, name: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidInputError(f"{name} must be a date; got {value!r}")
    return value


def _number(value: object, name: str, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInputError(f"{name} must be a number; got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be finite; got {number!r}")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise InvalidInputError(f"{name} must be within [{minimum}, {maximum}]; got {number!r}")
    return number


def _document(value: object, name: str) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{name} must be a {name.capitalize()} or a mapping; got {type(value).__name__}")
    ready: dict[str, Any] = json_ready(value, name)
    return ready


# --- row -> alert -------------------------------------------------------------


def row_to_alert(row: AlertRow) -> Alert:
    """The :class:`Alert` a row holds, workflow status and timestamps included."""
    return Alert(
        id=row.id,
        geometry=row.geometry,
        area_ha=row.area_ha,
        pond_area_ha=row.pond_area_ha,
        first_detected=row.first_detected,
        last_observed=row.last_observed,
        confirmed_at=row.confirmed_at,
        confidence=row.confidence,
        score=row.score,
        signature=_from_document(Signature, row.signature),
        context=_from_document(Context, row.context),
        legality=row.legality,
        priority=row.priority,
        provenance=_from_document(Provenance, row.provenance),
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        extra=dict(row.extra or {}),
    )


def row_values(row: AlertRow) -> dict[str, Any]:
    """The row's detection values, keyed like :func:`detection_values`, for diffing."""
    return {field: getattr(row, field) for field in (*DETECTION_FIELDS, "minx", "miny", "maxx", "maxy")}


def _from_document(cls: type[D], document: Mapping[str, Any]) -> D:
    """Build a dataclass from stored JSON, ignoring keys it no longer has (rows outlive code)."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in document.items() if k in known})


# --- what changed -------------------------------------------------------------


def diff_detection(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Changes from ``old`` to ``new`` detection values (``old`` None: a new alert).

    Compact, JSON-ready form for ``alert_history.changes``:

    - a scalar field: ``{"area_ha": [old, new]}``;
    - the geometry: ``{"geometry": [{"area_ha", "bbox"}, {"area_ha", "bbox"}]}``
      (a summary, never the full GeoJSON);
    - a nested document, per key: ``{"context.province": [old, new]}``, and for
      a list (scene ids) ``{"provenance.scene_ids": {"added": [...], "removed": [...]}}``.

    Floats within :data:`REL_TOLERANCE` count as equal.
    """
    before: Mapping[str, Any] = old or {}
    changes: dict[str, Any] = {}
    for field in DETECTION_FIELDS:
        old_value, new_value = before.get(field), new[field]
        if field == "geometry":
            if old_value is None or not _same_geometry(old_value, new_value):
                changes[field] = [_geometry_summary(old) if old else None, _geometry_summary(new)]
        elif isinstance(new_value, Mapping):
            changes.update(_diff_document(field, old_value or {}, new_value))
        elif not _same(old_value, new_value):
            changes[field] = [json_ready(old_value, field), json_ready(new_value, field)]
    return changes


def is_update(changes: Mapping[str, Any]) -> bool:
    """Whether ``changes`` hold anything beyond bookkeeping (see :data:`BOOKKEEPING_CHANGES`)."""
    return any(key not in BOOKKEEPING_CHANGES for key in changes)


def _diff_document(field: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        old_value, new_value = old.get(key), new.get(key)
        if _same(old_value, new_value):
            continue
        if isinstance(old_value, list) or isinstance(new_value, list):
            old_list, new_list = old_value or [], new_value or []
            changes[f"{field}.{key}"] = {
                "added": [v for v in new_list if v not in old_list],
                "removed": [v for v in old_list if v not in new_list],
            }
        else:
            changes[f"{field}.{key}"] = [old_value, new_value]
    return changes


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Real) and isinstance(b, Real) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _same_geometry(a: BaseGeometry, b: BaseGeometry) -> bool:
    """Equal up to vertex noise and ring start/orientation (normalized before comparing)."""
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=GEOMETRY_TOLERANCE_DEG))


def _geometry_summary(values: Mapping[str, Any]) -> dict[str, Any]:
    bbox = [round(values[k], 6) for k in ("minx", "miny", "maxx", "maxy")]
    return {"area_ha": values["area_ha"], "bbox": bbox}
