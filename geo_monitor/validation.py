"""Parsing and checking of user-given bboxes and dates.

Shared by the command line, the web API and jobs, so every entry point
rejects the same inputs with the same messages.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from typing import Final

from geo_monitor.errors import InvalidInputError
from geo_monitor.types import BBox

#: Mainland Ecuador with a ~20 km margin (lon/lat, EPSG:4326). The Galápagos
#: have no mining and are outside on purpose.
ECUADOR_BBOX: Final[BBox] = (-81.2, -5.2, -75.0, 1.7)


def parse_bbox(text: str | BBox | list[float]) -> BBox:
    """Parse ``"W,S,E,N"`` (or a 4-sequence) into a lon/lat bbox and check its shape."""
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 4:
            raise InvalidInputError(f"bbox must be four numbers W,S,E,N; got {text!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InvalidInputError(f"bbox must be four numbers W,S,E,N; got {text!r}") from None
    else:
        values = [float(v) for v in text]
        if len(values) != 4:
            raise InvalidInputError(f"bbox must have four numbers W,S,E,N; got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise InvalidInputError("bbox values must be finite numbers")
    west, south, east, north = values
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise InvalidInputError("bbox is not in longitude/latitude degrees (EPSG:4326)")
    if west >= east or south >= north:
        raise InvalidInputError("bbox must have W < E and S < N")
    return (west, south, east, north)


def check_bbox_in_ecuador(bbox: BBox) -> BBox:
    """Raise unless ``bbox`` lies within mainland Ecuador (with a small margin)."""
    w, s, e, n = bbox
    ew, es, ee, en = ECUADOR_BBOX
    if w < ew or s < es or e > ee or n > en:
        raise InvalidInputError(
            f"bbox {w:g},{s:g},{e:g},{n:g} is outside Ecuador "
            f"(allowed: {ew:g},{es:g},{ee:g},{en:g})"
        )
    return bbox


def parse_date(text: str | date, name: str = "date") -> date:
    """Parse an ISO date (``YYYY-MM-DD``)."""
    if isinstance(text, datetime):
        return text.date()
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidInputError(f"{name} must be an ISO date YYYY-MM-DD; got {text!r}") from None


def check_date_range(start: date, end: date) -> tuple[date, date]:
    """Raise unless ``start`` is on or before ``end``."""
    if start > end:
        raise InvalidInputError(f"start date {start} is after end date {end}")
    return start, end


def utc_day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Inclusive UTC datetime bounds covering whole days ``start``..``end``."""
    return (
        datetime(start.year, start.month, start.day, tzinfo=timezone.utc),
        datetime(end.year, end.month, end.day, 23, 59, 59, 999999, tzinfo=timezone.utc),
    )
