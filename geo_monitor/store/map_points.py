"""Every alert matching a filter as one compact, columnar set of points: what the map viewer draws.

The map must show 100,000 alerts on a phone over a weak connection. Full
GeoJSON features (polygons, provenance, signature...) are ~2 kB each; the
map only needs a position and the few fields it styles, filters and lists
by. So this reads just those columns (never the geometry itself: the
envelope's centre is the point, from the indexed ``minx..maxy`` columns)
and returns them as parallel lists, the shape that compresses and parses
fastest. Enumerations travel as small integers (their position in
:data:`CODES`), provinces as indexes into a list of names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo_monitor.alerts import Confidence, Legality, Priority, Status
from geo_monitor.store.query import AlertQuery, filter_clauses
from geo_monitor.store.schema import AlertRow

#: Integer code of each enumeration value: its position here. Ranks ascend with importance
#: (priority low=0 .. critical=3, confidence low=0 .. high=2), so clients can take maxima.
CODES: dict[str, list[str]] = {
    "priority": [Priority.LOW.value, Priority.MEDIUM.value, Priority.HIGH.value, Priority.CRITICAL.value],
    "confidence": [Confidence.LOW.value, Confidence.NOMINAL.value, Confidence.HIGH.value],
    "status": [s.value for s in Status],
    "legality": [Legality.UNKNOWN.value, Legality.INSIDE_CONCESSION.value, Legality.PROBABLY_ILLEGAL.value],
}
#: Decimal places of the point coordinates (~1 m at the equator: far below a site's size).
COORD_DECIMALS = 5


@dataclass(frozen=True)
class MapPoints:
    """Parallel columns, one entry per alert, in ``(priority desc, score desc, id)`` order."""

    ids: list[str]
    lon: list[float]
    lat: list[float]
    priority: list[int]
    confidence: list[int]
    status: list[int]
    legality: list[int]
    province: list[int]  # index into ``provinces``; -1 when unknown
    provinces: list[str]
    first_detected: list[str]  # ISO dates
    area_ha: list[float]
    score: list[float]

    def to_json(self) -> dict[str, Any]:
        return {"count": len(self.ids), "codes": CODES, **self.__dict__}


@dataclass(frozen=True)
class StoreVersion:
    """What changes whenever any alert does: a cache key for derived views of the store."""

    count: int
    last_update: datetime | None


_PRIORITY_RANK = {value: rank for rank, value in enumerate(CODES["priority"])}


def store_version(session: Session) -> StoreVersion:
    count, last = session.execute(select(func.count(), func.max(AlertRow.updated_at))).one()
    return StoreVersion(count=int(count or 0), last_update=last)


def map_points(session: Session, query: AlertQuery) -> MapPoints:
    """Every alert matching ``query``'s filters (its paging is ignored), most urgent first."""
    dialect = session.get_bind().dialect.name
    stmt = select(
        AlertRow.id, AlertRow.minx, AlertRow.miny, AlertRow.maxx, AlertRow.maxy, AlertRow.priority,
        AlertRow.confidence, AlertRow.status, AlertRow.legality, AlertRow.province, AlertRow.first_detected,
        AlertRow.area_ha, AlertRow.score,
    ).where(*filter_clauses(query, dialect))
    rows = session.execute(stmt).all()
    rows.sort(key=lambda r: (-_PRIORITY_RANK[_value(r.priority)], -r.score, r.id))
    codes = {name: {value: i for i, value in enumerate(values)} for name, values in CODES.items()}
    province_index: dict[str, int] = {}
    columns: dict[str, list[Any]] = {name: [] for name in MapPoints.__dataclass_fields__ if name != "provinces"}
    for r in rows:
        columns["ids"].append(r.id)
        columns["lon"].append(round((r.minx + r.maxx) / 2, COORD_DECIMALS))
        columns["lat"].append(round((r.miny + r.maxy) / 2, COORD_DECIMALS))
        for name in ("priority", "confidence", "status", "legality"):
            columns[name].append(codes[name][_value(getattr(r, name))])
        columns["province"].append(-1 if r.province is None else province_index.setdefault(r.province, len(province_index)))
        columns["first_detected"].append(_iso(r.first_detected))
        columns["area_ha"].append(round(r.area_ha, 2))
        columns["score"].append(round(r.score, 3))
    return MapPoints(provinces=list(province_index), **columns)


def _value(member: Any) -> str:
    return str(getattr(member, "value", member))


def _iso(value: date | str) -> str:
    return value if isinstance(value, str) else value.isoformat()
