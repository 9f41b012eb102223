"""Stored alerts as GeoJSON: the one shape both APIs (REST and OGC) give a feature.

Properties are every field of DESIGN.md's Alert contract plus the human
workflow (status, assignee, note) and the store's timestamps, with the
store's workflow values winning over the detection record's.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import shapely

from geo_monitor.store.query import StoredAlert


def iso(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: the form partners echo back as ``updated_since``."""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def feature_properties(stored: StoredAlert) -> dict[str, Any]:
    props = stored.alert.properties()
    props.update(
        status=stored.status.value,
        assignee=stored.assignee,
        note=stored.note,
        created_at=iso(stored.created_at),
        updated_at=iso(stored.updated_at),
    )
    return props


def alert_feature(stored: StoredAlert) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": stored.alert.id,
        # GEOS writes GeoJSON with round-trip precision, faster than shapely's mapping() in Python.
        "geometry": json.loads(shapely.to_geojson(stored.alert.geometry)),
        "properties": feature_properties(stored),
    }


def history_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One history row, JSON-ready (timestamps as RFC 3339)."""
    return {key: iso(value) if isinstance(value, datetime) else value for key, value in entry.items()}
