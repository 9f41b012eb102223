"""Request arguments -> :class:`AlertQuery`, with a caller's province restriction applied (no Flask here).

Both APIs and the export share these filters, so a partner's polling query,
its export and its GIS layer select the same alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from geo_monitor.alerts import Confidence, Legality, Priority, Status
from geo_monitor.store.auth import Principal
from geo_monitor.store.query import AlertQuery
from web.params import (
    DEFAULT_LIMIT,
    decode_cursor,
    parse_bbox_param,
    parse_datetime_interval,
    parse_enum_list,
    parse_instant,
    parse_limit,
    parse_offset,
    parse_text_list,
    single,
    ParameterError,
)

#: Filters shared by /api/v1/alerts, its export and (partly) /ogc items.
FILTER_PARAMS: tuple[str, ...] = (
    "bbox",
    "datetime",
    "updated_since",
    "status",
    "confidence",
    "priority",
    "legality",
    "province",
)
#: Filters a webhook subscription takes (updated_since and paging mean nothing for pushes).
SUBSCRIPTION_FILTERS: tuple[str, ...] = tuple(p for p in FILTER_PARAMS if p != "updated_since")
LIST_PARAMS: tuple[str, ...] = (*FILTER_PARAMS, "limit", "cursor")
EXPORT_PARAMS: tuple[str, ...] = (*FILTER_PARAMS, "format")
#: OGC API - Features items: its standard parameters plus our filters as queryables.
OGC_ITEMS_PARAMS: tuple[str, ...] = (*FILTER_PARAMS, "limit", "offset", "f", "crs", "bbox-crs")
#: The one CRS the OGC API serves and reads (lon/lat, OGC API - Features Part 2's default).
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84_ALIASES = frozenset({CRS84, "http://www.opengis.net/def/crs/EPSG/0/4326"})


def filters_query(args: Mapping[str, list[str]], *, ogc: bool = False) -> AlertQuery:
    """The filter part of a query (no paging)."""
    bbox_text = single(args, "bbox")
    when_text = single(args, "datetime")
    since_text = single(args, "updated_since")
    when = None if when_text is None else parse_datetime_interval(when_text)
    return AlertQuery(
        bbox=None if bbox_text is None else parse_bbox_param(bbox_text, require_ecuador=not ogc),
        first_detected_from=None if when is None else when.start,
        first_detected_to=None if when is None else when.end,
        updated_since=None if since_text is None else parse_instant(since_text, "updated_since"),
        statuses=parse_enum_list(args, "status", Status),
        confidences=parse_enum_list(args, "confidence", Confidence),
        priorities=parse_enum_list(args, "priority", Priority),
        legalities=parse_enum_list(args, "legality", Legality),
        provinces=parse_text_list(args, "province"),
    )


def list_query(args: Mapping[str, list[str]], key: bytes) -> AlertQuery:
    """``GET /api/v1/alerts``: filters, ``limit`` (1..1000) and the signed keyset ``cursor``."""
    query = filters_query(args)
    cursor = single(args, "cursor")
    return replace(
        query,
        limit=parse_limit(single(args, "limit")),
        after=None if cursor is None else decode_cursor(cursor, key),
    )


def ogc_query(args: Mapping[str, list[str]], default_limit: int = DEFAULT_LIMIT) -> AlertQuery:
    """OGC items: filters, ``limit`` clamped to the maximum, ``offset`` paging.

    ``crs`` and ``bbox-crs`` (Part 2) are accepted when they name CRS84, which
    GDAL sends because the collection lists it; EPSG:4326 is taken to mean
    the same lon/lat order here, as GDAL and QGIS send bbox in that order.
    """
    for name in ("crs", "bbox-crs"):
        value = single(args, name)
        if value is not None and value.strip() not in CRS84_ALIASES:
            raise ParameterError(name, f"only {CRS84} is served; got {value[:200]!r}")
    query = filters_query(args, ogc=True)
    return replace(
        query,
        limit=parse_limit(single(args, "limit"), clamp=True, default=default_limit),
        offset=parse_offset(single(args, "offset")),
    )


def restrict(query: AlertQuery, principal: Principal | None) -> AlertQuery:
    """Narrow ``query`` to the caller's provinces; an empty set means "nothing" (the caller asked outside)."""
    return query.within_provinces(None if principal is None else principal.provinces)


def may_see(province: str | None, principal: Principal | None) -> bool:
    """Whether a caller limited to provinces may see an alert in ``province``."""
    allowed = None if principal is None else principal.provinces
    return allowed is None or (province is not None and province in allowed)
