"""An alert as a GeoJSON Feature: the one rendering the store keeps and every API serves.

Properties are every field of DESIGN.md's Alert contract plus the human
workflow (status, assignee, note) and the store's timestamps, with the
store's workflow values winning over the detection record's.

The store writes :func:`feature_text` of each alert into ``alerts.feature``
in the same transaction as every change to the alert (see ``alert_store``),
so serving a page is joining stored texts: no rows turned into objects, no
geometry parsed, no JSON encoded per request. Anything else that shows an
alert as a feature (the viewer's panel, single items) uses
:func:`alert_feature`, which this text is the encoding of, so the two cannot
drift apart. Changing the rendering here means stored texts are stale:
rewrite them with a migration that calls ``alert_store.rewrite_features``
(as 0004 does), or ``AlertStore.refresh_features()``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
import shapely

if TYPE_CHECKING:
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
    """The alert as a GeoJSON Feature (EPSG:4326), JSON-ready."""
    return {
        "type": "Feature",
        "id": stored.alert.id,
        # GEOS writes GeoJSON with round-trip precision, faster than shapely's mapping() in Python.
        "geometry": json.loads(shapely.to_geojson(stored.alert.geometry)),
        "properties": feature_properties(stored),
    }


def feature_text(stored: StoredAlert) -> str:
    """:func:`alert_feature` as compact JSON text with sorted keys: what ``alerts.feature`` holds.

    Sorted keys make the text a function of the feature's value alone (JSONB
    on PostgreSQL hands documents back in its own key order), so a fresh
    rendering of a stored alert gives the very same text.
    """
    return orjson.dumps(alert_feature(stored), option=orjson.OPT_SORT_KEYS).decode()


#: Bytes of :func:`feature_digest`: 128 bits, so two different texts never share one in practice.
DIGEST_SIZE = 16


def feature_digest(text: bytes) -> bytes:
    """A fixed-size digest of one stored feature text (UTF-8), for ETags.

    A page's ETag hashes its features' digests instead of its ~220 kB body,
    and the in-memory index keeps each alert's digest beside its text, so a
    page costs a hash of 1.6 kB instead of 220 kB (~0.15 ms of a page's ~3).
    Digests of the text itself, not of (id, updated_at): a text rewritten
    without a new stamp (``refresh_features``) still changes the ETag.
    """
    return hashlib.sha256(text).digest()[:DIGEST_SIZE]
