"""Stored alerts as GeoJSON for the web layer: the store's one rendering, and history entries.

The feature itself is rendered by ``geo_monitor.store.features`` (the store
keeps its text for every alert, written with each change); this module only
re-exports it for the blueprints, so there is no second copy to drift, and
splices stored texts into response bodies without parsing them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from geo_monitor.store.features import alert_feature, feature_properties, iso

__all__ = ["alert_feature", "feature_collection", "feature_properties", "feature_with", "history_entry", "iso"]


def history_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One history row, JSON-ready (timestamps as RFC 3339)."""
    return {key: iso(value) if isinstance(value, datetime) else value for key, value in entry.items()}


def feature_collection(head: bytes, features: list[bytes]) -> bytes:
    """A FeatureCollection body: ``head`` (its other members as a JSON object) and stored feature texts, joined.

    The texts are JSON already (``geo_monitor.store.features.feature_text``),
    UTF-8 encoded: they are spliced in as they are, never parsed or encoded
    again. ``head`` must not be empty (there is always at least ``type``).
    """
    return b"".join((head[:-1], b',"features":[', b",".join(features), b"]}"))


def feature_with(text: str, **members: Any) -> bytes:
    """A stored feature text with more top-level members (``history``, ``links``), without parsing it."""
    if not members:
        return text.encode()
    return text.encode()[:-1] + b"," + orjson.dumps(members)[1:]
