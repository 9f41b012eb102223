"""Reading alerts by filter: the typed query the API parses requests into, and the SQL that answers it.

One :class:`AlertQuery` serves the partner API (keyset cursors), OGC API -
Features (``offset`` paging with ``numberMatched``) and exports (every match,
streamed). It is validated when built, so a bad parameter is refused with an
:class:`~geo_monitor.errors.InvalidInputError` naming it before any SQL runs.

Order is always ``(updated_at, id)``: unique, indexed, and the order in which
writers stamp alerts (see ``alert_store``), so a client resuming after the
keyset of the last alert it saw never misses or repeats one.

Bounding boxes intersect the real geometry on both back-ends, in SQL:
``ST_Intersects`` with ``ST_MakeEnvelope`` on PostGIS (GiST index); on SQLite
an R*Tree over the envelopes (``alert_envelopes``) first, then an exact test
for the few candidates whose envelope crosses the box edge
(``gm_intersects_bbox``, a shapely function registered on every SQLite
connection by ``engine``).
Being in SQL, the exact test also makes counts and offsets exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, text
from sqlalchemy.orm import Session

from geo_monitor.alerts import Alert, Confidence, Legality, Priority, Status
from geo_monitor.errors import InvalidInputError
from geo_monitor.store import sqlite_spatial
from geo_monitor.store.engine import SQLITE_INTERSECTS
from geo_monitor.store.features import feature_digest
from geo_monitor.store.records import row_to_alert
from geo_monitor.store.schema import ID_LENGTH, AlertRow
from geo_monitor.types import BBox
from geo_monitor.validation import parse_bbox

#: Page size bounds of :attr:`AlertQuery.limit`.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Alerts fetched per SELECT by :func:`iter_stored` (exports).
EXPORT_PAGE = 1000
#: Longest province name accepted in a filter (the column holds 200).
PROVINCE_LENGTH = 200
#: PostgreSQL planner methods priced out while a page walks the polling-order index.
WALK_SETTINGS = ("enable_seqscan", "enable_bitmapscan", "enable_sort")
#: Every filter field of :class:`AlertQuery` (not its paging).
FILTER_FIELDS = ("bbox", "first_detected_from", "first_detected_to", "updated_since", "statuses", "confidences",
                 "priorities", "legalities", "provinces")


@dataclass(frozen=True)
class AlertQuery:
    """Which alerts, and which page of them, in ``(updated_at, id)`` order.

    Every filter is optional (None: no filter) and they combine with AND; a
    set filter matches any of its values (an empty set matches nothing).
    Values are checked and normalised on construction.
    """

    bbox: BBox | None = None  # W,S,E,N degrees EPSG:4326; alerts whose geometry intersects it
    first_detected_from: date | None = None  # inclusive; None = open
    first_detected_to: date | None = None  # inclusive; None = open
    updated_since: datetime | None = None  # inclusive, timezone-aware
    statuses: frozenset[str] | None = None  # enum values; None = any
    confidences: frozenset[str] | None = None
    priorities: frozenset[str] | None = None
    legalities: frozenset[str] | None = None
    provinces: frozenset[str] | None = None  # exact province names (context.province)
    limit: int = DEFAULT_LIMIT  # 1..MAX_LIMIT
    after: tuple[datetime, str] | None = None  # exclusive keyset (updated_at, id) of the last alert seen
    offset: int | None = None  # OGC paging; not together with ``after``

    def __post_init__(self) -> None:
        normalised: dict[str, Any] = {
            "bbox": None if self.bbox is None else _bbox(self.bbox),
            "first_detected_from": _date(self.first_detected_from, "first_detected_from"),
            "first_detected_to": _date(self.first_detected_to, "first_detected_to"),
            "updated_since": _aware(self.updated_since, "updated_since"),
            "statuses": _enum_values(self.statuses, Status, "statuses"),
            "confidences": _enum_values(self.confidences, Confidence, "confidences"),
            "priorities": _enum_values(self.priorities, Priority, "priorities"),
            "legalities": _enum_values(self.legalities, Legality, "legalities"),
            "provinces": _provinces(self.provinces),
            "limit": _limit(self.limit),
            "after": _keyset(self.after),
            "offset": _offset(self.offset),
        }
        start, end = normalised["first_detected_from"], normalised["first_detected_to"]
        if start is not None and end is not None and start > end:
            raise InvalidInputError(f"first_detected_from {start} is after first_detected_to {end}")
        if normalised["after"] is not None and normalised["offset"] is not None:
            raise InvalidInputError("after (a cursor) and offset cannot be used together")
        for name, value in normalised.items():
            object.__setattr__(self, name, value)  # frozen: normalise once, here

    def within_provinces(self, allowed: frozenset[str] | None) -> AlertQuery:
        """This query limited to ``allowed`` provinces (a partner key's scope; None: no limit).

        The result never widens the query: asking for a province outside the
        scope gives an empty set, which matches nothing.
        """
        if allowed is None:
            return self
        wanted = frozenset(allowed) if self.provinces is None else self.provinces & frozenset(allowed)
        return replace(self, provinces=wanted)


@dataclass(frozen=True)
class StoredAlert:
    """An alert as stored: the detection record plus the human workflow and bookkeeping."""

    alert: Alert
    status: Status
    assignee: str | None
    note: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def keyset(self) -> tuple[datetime, str]:
        """Its position in the polling order, for ``AlertQuery.after``."""
        return (self.updated_at, self.alert.id)


@dataclass(frozen=True)
class AlertPage:
    """One page of a query's matches."""

    items: list[StoredAlert] = field(default_factory=list)  # in (updated_at, id) order
    number_matched: int = 0  # all rows matching the filters (ignoring after/offset/limit)
    next_after: tuple[datetime, str] | None = None  # keyset of the last item when more follow


@dataclass(frozen=True)
class FeaturePage:
    """One page of a query's matches as the stored GeoJSON Feature texts: what the APIs serve."""

    features: list[bytes] = field(default_factory=list)  # UTF-8, in (updated_at, id) order: spliced into bodies
    digests: bytes = b""  # features.feature_digest of each text, concatenated: what the page's ETag hashes
    number_matched: int = 0  # as AlertPage
    last: tuple[datetime, str] | None = None  # keyset of the last feature (None: empty page)
    more: bool = False  # whether matches follow this page

    @property
    def next_after(self) -> tuple[datetime, str] | None:
        """Keyset to resume after, when more follow (as :attr:`AlertPage.next_after`)."""
        return self.last if self.more else None


@dataclass(frozen=True)
class StoredFeature:
    """One alert's stored GeoJSON Feature text, with what scope checks and caches need."""

    id: str
    province: str | None
    updated_at: datetime
    text: str


# --- answering a query (session-level; AlertStore opens the transactions) ------


def stored_alert(row: AlertRow) -> StoredAlert:
    return StoredAlert(
        alert=row_to_alert(row),
        status=row.status,
        assignee=row.assignee,
        note=row.note,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def query_page(session: Session, query: AlertQuery) -> AlertPage:
    """The page of ``query``'s matches, their total count and the keyset to resume after it.

    The page's ids are found first and only then their rows loaded: sorting
    thousands of matches by polling order is cheap with ids alone and costly
    with whole rows (geometry and documents).

    A bbox page has two plans, and the count (needed anyway) says which is
    cheaper. Through the spatial index, every match is fetched and sorted:
    best when few alerts match. Along the polling-order index, rows are
    tested in order until the page is full, after about ``wanted * total /
    matched`` rows: best when many match. The break-even is near
    ``matched = sqrt(wanted * total)``. Neither planner gets this right
    alone (SQLite cannot see into the R*Tree; PostGIS's row estimates for
    ``ST_Intersects`` swing by three orders of magnitude), so the plan is
    chosen here: ``INDEXED BY`` on SQLite; on PostGIS an ``IS TRUE`` that no
    index can serve, with sequential scans and sorts priced out for that one
    statement (:func:`_postgres_walks`).
    """
    ids, matched = _page_ids(session, query)
    more = len(ids) > query.limit
    rows = {row.id: row for row in session.scalars(select(AlertRow).where(AlertRow.id.in_(ids[: query.limit])))}
    items = [stored_alert(rows[alert_id]) for alert_id in ids[: query.limit]]
    return AlertPage(items=items, number_matched=matched, next_after=items[-1].keyset if more else None)


#: The alerts table as plain columns: feature pages read tuples, not ORM rows.
_ALERTS = AlertRow.__table__


def feature_page(session: Session, query: AlertQuery) -> FeaturePage:
    """The page of :func:`query_page`, as stored feature texts (UTF-8) read with one plain SELECT by id."""
    ids, matched = _page_ids(session, query)
    wanted = ids[: query.limit]
    if not wanted:
        return FeaturePage(number_matched=matched)
    stmt = select(_ALERTS.c.id, _ALERTS.c.updated_at, _ALERTS.c.feature).where(_ALERTS.c.id.in_(wanted))
    found = {alert_id: (updated_at, text_) for alert_id, updated_at, text_ in session.connection().execute(stmt)}
    features = [found[alert_id][1].encode() for alert_id in wanted]
    last = (found[wanted[-1]][0], wanted[-1])
    return FeaturePage(features=features, digests=b"".join(feature_digest(text_) for text_ in features),
                       number_matched=matched, last=last, more=len(ids) > query.limit)


def stored_feature(session: Session, alert_id: str) -> StoredFeature | None:
    stmt = select(_ALERTS.c.id, _ALERTS.c.province, _ALERTS.c.updated_at, _ALERTS.c.feature).where(
        _ALERTS.c.id == alert_id
    )
    row = session.connection().execute(stmt).first()
    return None if row is None else StoredFeature(*row)


def _page_ids(session: Session, query: AlertQuery) -> tuple[list[str], int]:
    """The page's ids in polling order, plus one more when more follow; and the exact count."""
    dialect = session.get_bind().dialect.name
    matched = count_matches(session, query, dialect)
    wanted = query.limit + (query.offset or 0)
    walk = query.bbox is not None and matched > math.sqrt(wanted * _table_size(session, dialect))
    filters = filter_clauses(query, dialect, bbox_test=_walking_bbox_test(dialect) if walk else None)
    stmt = _ordered(select(AlertRow.id).where(*filters, *_after_clause(query.after)))
    if walk and dialect == "sqlite":
        stmt = stmt.with_hint(AlertRow, f"INDEXED BY {sqlite_spatial.POLLING_INDEX}", "sqlite")
    if query.offset:
        stmt = stmt.offset(query.offset)
    with _postgres_walks(session, walk and dialect == "postgresql"):
        ids = list(session.scalars(stmt.limit(query.limit + 1)))  # one more says whether more follow
    return ids, matched


def _table_size(session: Session, dialect: str) -> float:
    """About how many alerts are stored, read in O(1): the planner's estimate, the R*Tree's largest key."""
    if dialect == "postgresql":
        estimate = session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'alerts'::regclass"))
        return max(float(estimate or 0), 0.0)  # -1: never analysed (a new, small table)
    if dialect == "sqlite":
        return float(sqlite_spatial.table_size(session))
    return float(session.scalar(select(func.count()).select_from(AlertRow)) or 0)


@contextmanager
def _postgres_walks(session: Session, active: bool) -> Iterator[None]:
    """Make PostgreSQL's planner walk an index in order for the next statement (in this transaction only)."""
    if not active:
        yield
        return
    for setting in WALK_SETTINGS:
        session.execute(text(f"SET LOCAL {setting} = off"))
    try:
        yield
    finally:
        for setting in WALK_SETTINGS:
            session.execute(text(f"SET LOCAL {setting} = on"))


def _walking_bbox_test(dialect: str) -> Callable[[BBox], ColumnElement[bool]]:
    """The exact bbox test without the spatial index, for a walk along the polling-order index."""
    if dialect == "postgresql":
        return lambda bbox: func.ST_Intersects(AlertRow.geometry, _envelope(bbox)).is_(True)
    return _sqlite_exact


def count_matches(session: Session, query: AlertQuery, dialect: str) -> int:
    """How many alerts match ``query``'s filters (paging ignored), exactly.

    On SQLite a bbox-only query is counted from the R*Tree (see
    ``sqlite_spatial.exact_count``); anything else counts the matching rows.
    On PostGIS, alerts whose envelope lies inside the box are counted without
    the (GEOS) geometry test. The page queries keep plain ``ST_Intersects``,
    whose row estimates let the planner choose between the GiST index and the
    polling-order index well; the faster form's estimates mislead it.
    """
    if dialect == "sqlite" and query.bbox is not None and _bbox_is_the_only_filter(query):
        return sqlite_spatial.exact_count(session, query.bbox, _sqlite_exact(query.bbox))
    filters = filter_clauses(query, dialect, bbox_test=_postgis_counting if dialect == "postgresql" else None)
    return int(session.scalar(select(func.count()).select_from(AlertRow).where(*filters)) or 0)


def _bbox_is_the_only_filter(query: AlertQuery) -> bool:
    return all(getattr(query, name) is None for name in FILTER_FIELDS if name != "bbox")


def iter_stored(session: Session, query: AlertQuery, page_size: int = EXPORT_PAGE) -> Iterator[StoredAlert]:
    """Every match of ``query`` from its ``after``/``offset`` on (``limit`` ignored), a page per SELECT.

    Memory stays flat however many alerts match. Run it inside one
    snapshot transaction so that alerts changing meanwhile are neither
    missed nor repeated.
    """
    dialect = session.get_bind().dialect.name
    filters = filter_clauses(query, dialect)
    after, offset = query.after, query.offset
    while True:
        stmt = _ordered(select(AlertRow).where(*filters, *_after_clause(after))).limit(page_size)
        if offset:
            stmt, offset = stmt.offset(offset), None
        rows = list(session.scalars(stmt))
        for row in rows:
            yield stored_alert(row)
        if len(rows) < page_size:
            return
        after = (rows[-1].updated_at, rows[-1].id)
        session.expunge_all()  # the rows already yielded are not needed by the session any more


def filter_clauses(
    query: AlertQuery, dialect: str, *, bbox_test: Callable[[BBox], ColumnElement[bool]] | None = None
) -> list[ColumnElement[bool]]:
    """SQL conditions for ``query``'s filters (not its paging) on the ``dialect`` back-end.

    ``bbox_test`` replaces :func:`bbox_clause` with another exact form of the
    same test (one that suits a given plan better).
    """
    clauses: list[ColumnElement[bool]] = []
    if query.bbox is not None:
        clauses.append(bbox_clause(query.bbox, dialect) if bbox_test is None else bbox_test(query.bbox))
    if query.first_detected_from is not None:
        clauses.append(AlertRow.first_detected >= query.first_detected_from)
    if query.first_detected_to is not None:
        clauses.append(AlertRow.first_detected <= query.first_detected_to)
    if query.updated_since is not None:
        clauses.append(AlertRow.updated_at >= query.updated_since)
    for values, column, enum_cls in (
        (query.statuses, AlertRow.status, Status),
        (query.confidences, AlertRow.confidence, Confidence),
        (query.priorities, AlertRow.priority, Priority),
        (query.legalities, AlertRow.legality, Legality),
    ):
        if values is not None:
            clauses.append(column.in_([enum_cls(v) for v in sorted(values)]))
    if query.provinces is not None:
        clauses.append(AlertRow.province.in_(sorted(query.provinces)))
    return clauses


def bbox_clause(bbox: BBox, dialect: str) -> ColumnElement[bool]:
    """Alerts whose geometry intersects ``bbox`` (W, S, E, N, EPSG:4326)."""
    if dialect == "postgresql":
        return func.ST_Intersects(AlertRow.geometry, _envelope(bbox))
    # The R*Tree (revision 0003) finds the candidates; it holds 32-bit floats rounded outwards,
    # so the exact test on the alert's own (double) columns follows it.
    return and_(sqlite_spatial.candidate_ids(bbox), _sqlite_exact(bbox))


def _envelope_inside(bbox: BBox) -> ColumnElement[bool]:
    """The alert's envelope lies inside ``bbox``: a non-empty geometry there intersects the box."""
    west, south, east, north = bbox
    return and_(AlertRow.minx >= west, AlertRow.maxx <= east, AlertRow.miny >= south, AlertRow.maxy <= north)


def _sqlite_exact(bbox: BBox) -> ColumnElement[bool]:
    """The exact test on an alert row: envelope overlap, then the geometry for envelopes crossing the edge."""
    west, south, east, north = bbox
    overlaps = and_(AlertRow.maxx >= west, AlertRow.minx <= east, AlertRow.maxy >= south, AlertRow.miny <= north)
    # Only the envelopes crossing the box edge need the exact (slower, Python) test.
    exact = getattr(func, SQLITE_INTERSECTS)(AlertRow.geometry, west, south, east, north) == 1
    return and_(overlaps, or_(_envelope_inside(bbox), exact))


def _postgis_counting(bbox: BBox) -> ColumnElement[bool]:
    """PostGIS: GiST candidates (``&&``), then GEOS only for envelopes crossing the box edge."""
    envelope = _envelope(bbox)
    return and_(AlertRow.geometry.op("&&", is_comparison=True)(envelope),
                or_(_envelope_inside(bbox), func.ST_Intersects(AlertRow.geometry, envelope)))


def _envelope(bbox: BBox) -> ColumnElement[Any]:
    west, south, east, north = bbox
    return func.ST_MakeEnvelope(west, south, east, north, 4326)


def _ordered(stmt: Select[Any]) -> Select[Any]:
    return stmt.order_by(AlertRow.updated_at, AlertRow.id)


def _after_clause(after: tuple[datetime, str] | None) -> list[ColumnElement[bool]]:
    if after is None:
        return []
    at, last_id = after
    return [or_(AlertRow.updated_at > at, and_(AlertRow.updated_at == at, AlertRow.id > last_id))]


# --- validation (each names the parameter it refuses) ---------------------------


def _bbox(value: object) -> BBox:
    try:
        return parse_bbox(value)  # type: ignore[arg-type]
    except InvalidInputError:
        raise
    except (TypeError, ValueError):
        raise InvalidInputError(f"bbox must be four numbers W,S,E,N; got {value!r}") from None


def _date(value: object, name: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidInputError(f"{name} must be a date; got {value!r}")
    return value


def _aware(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must be a datetime with a timezone; got {value!r}")
    return value


def _enum_values(values: object, enum_cls: type[Enum], name: str) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, (str, Enum)):
        values = [values]
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidInputError(f"{name} must be a set of values; got {values!r}") from None
    allowed = {member.value for member in enum_cls}
    checked = set()
    for item in items:
        value = item.value if isinstance(item, Enum) else item
        if value not in allowed:
            raise InvalidInputError(f"{name}: {item!r} is not one of {', '.join(sorted(allowed))}")
        checked.add(str(value))
    return frozenset(checked)


def _provinces(values: object) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidInputError(f"provinces must be a set of names; got {values!r}") from None
    for item in items:
        if not isinstance(item, str) or not item.strip() or len(item) > PROVINCE_LENGTH:
            raise InvalidInputError(f"provinces: each must be a name of 1..{PROVINCE_LENGTH} characters; got {item!r}")
        if "\x00" in item:  # no name holds one, and PostgreSQL refuses NUL in text (a 500, not "no match")
            raise InvalidInputError(f"provinces: a name cannot contain a NUL character; got {item!r}")
    return frozenset(items)


def _limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be an integer from 1 to {MAX_LIMIT}; got {value!r}")
    return value


def _offset(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"offset must be a non-negative integer; got {value!r}")
    return value


def _keyset(value: object) -> tuple[datetime, str] | None:
    if value is None:
        return None
    if not isinstance(value, tuple) or len(value) != 2:
        raise InvalidInputError(f"after must be an (updated_at, id) pair; got {value!r}")
    at, alert_id = value
    at = _aware(at, "after.updated_at")
    if not isinstance(alert_id, str) or not alert_id or len(alert_id) > ID_LENGTH:
        raise InvalidInputError(f"after.id must be an alert id; got {alert_id!r}")
    return (at, alert_id)  # type: ignore[return-value]
