"""Bbox queries on SQLite: the R*Tree over alert envelopes, exact counts from it, and the page plan.

Migration 0003 keeps ``alert_envelopes`` (an R*Tree: key, minx, maxx, miny,
maxy, +alert_id) in step with ``alerts`` by triggers. Three facts shape the
queries here:

- The R*Tree stores 32-bit floats rounded *outwards*: its box always
  contains the alert's true envelope. So its overlap test gives a superset of
  the candidates (the exact tests on the alert's own columns follow), and an
  R*Tree box lying inside the query box proves the alert intersects it (a
  non-empty geometry inside the box touches it).
- Counting from the R*Tree alone costs about a microsecond per match; every
  match looked up in ``alerts`` costs tens. A bbox-only count therefore counts
  the R*Tree boxes inside the query box and tests exactly only the few that
  cross its edge (:func:`exact_count`).
- A page is the first ``limit`` matches in polling order. For a box holding
  few alerts, fetching them through the R*Tree and sorting is cheapest; for a
  box holding many, walking the ``(updated_at, id)`` index and testing each
  row finds a page after ``limit * total / matches`` rows, much sooner than
  fetching every match (``query.query_page`` chooses, with :func:`table_size`).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, column, func, not_, select, table
from sqlalchemy.orm import Session

from geo_monitor.store.schema import AlertRow
from geo_monitor.types import BBox

#: The R*Tree and its key table (migration 0003). Not models: triggers write them.
ENVELOPES = table("alert_envelopes", column("minx"), column("maxx"), column("miny"), column("maxy"),
                  column("alert_id"))
ENVELOPE_KEYS = table("alert_envelope_keys", column("key"))
#: The polling-order index of ``alerts`` (schema: ``Index(None, "updated_at", "id")``).
POLLING_INDEX = "ix_alerts_updated_at_id"


def overlapping(bbox: BBox) -> ColumnElement[bool]:
    """R*Tree rows whose (outward-rounded) box overlaps ``bbox``: a superset of the candidates."""
    west, south, east, north = bbox
    return and_(ENVELOPES.c.minx <= east, ENVELOPES.c.maxx >= west, ENVELOPES.c.miny <= north,
                ENVELOPES.c.maxy >= south)


def inside(bbox: BBox) -> ColumnElement[bool]:
    """R*Tree rows whose box lies inside ``bbox``: alerts certainly intersecting it."""
    west, south, east, north = bbox
    return and_(ENVELOPES.c.minx >= west, ENVELOPES.c.maxx <= east, ENVELOPES.c.miny >= south,
                ENVELOPES.c.maxy <= north)


def candidate_ids(bbox: BBox) -> ColumnElement[bool]:
    """``alerts.id IN`` the R*Tree's candidates for ``bbox``."""
    return AlertRow.id.in_(select(ENVELOPES.c.alert_id).where(overlapping(bbox)))


def exact_count(session: Session, bbox: BBox, exact: ColumnElement[bool]) -> int:
    """How many alerts intersect ``bbox``: R*Tree boxes inside it, plus edge-crossers passing ``exact``.

    ``exact`` is the full test on an alert row (envelope and geometry).
    Only for queries whose one filter is the bbox: other filters need
    every match's row.
    """
    surely = select(func.count()).select_from(ENVELOPES).where(inside(bbox)).scalar_subquery()
    edge = select(ENVELOPES.c.alert_id).where(overlapping(bbox), not_(inside(bbox)))
    crossing = select(func.count()).select_from(AlertRow).where(AlertRow.id.in_(edge), exact).scalar_subquery()
    return int(session.scalar(select(surely + crossing)) or 0)


def table_size(session: Session) -> int:
    """About how many alerts are stored: the key table's largest key (an upper bound, read in O(log n))."""
    return int(session.scalar(select(func.max(ENVELOPE_KEYS.c.key))) or 0)
