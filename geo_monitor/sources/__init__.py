"""Imagery sources: where Sentinel-2 L2A scenes come from, behind one interface.

:func:`open_source` takes what a user gives (a folder, a ``catalog.json``, a
``file://`` URL, a static catalog on a web server, or a STAC API URL) and
returns an :class:`ImagerySource`; its :meth:`~ImagerySource.search` answers
with scenes sorted by time and the matching items it had to skip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Protocol, runtime_checkable

from geo_monitor.errors import CatalogError
from geo_monitor.scenes import SkippedItem
from geo_monitor.sources._api import StacApiSource
from geo_monitor.sources._static import (
    SearchResult,
    StaticCatalogSource,
    check_catalog,
    is_url,
    normalize_href,
    read_json,
)
from geo_monitor.types import BBox

__all__ = [
    "ImagerySource",
    "SearchResult",
    "SkippedItem",
    "StacApiSource",
    "StaticCatalogSource",
    "is_stac_api",
    "open_source",
]

# Core or item-search conformance of any STAC API 1.x release (1.0.0, 1.0.0-rc.2, ...).
_API_CONFORMANCE = re.compile(r"^https://api\.stacspec\.org/v1\.[^/]+/(core|item-search)$")


@runtime_checkable
class ImagerySource(Protocol):
    """Anything that can find Sentinel-2 L2A scenes."""

    def search(self, bbox: BBox, start: date, end: date, max_cloud_cover: float | None = None) -> SearchResult:
        """Scenes intersecting ``bbox`` (lon/lat, EPSG:4326) acquired on UTC days
        ``start``..``end`` inclusive, with ``eo:cloud_cover`` (percent) at most
        ``max_cloud_cover`` (items without one are kept). Scenes are sorted by
        datetime then id, one per id; unusable matches are in ``skipped``.
        Raises :class:`~geo_monitor.errors.CatalogError` when the source cannot be read."""
        ...


def is_stac_api(doc: Any) -> bool:
    """True if a JSON document is a STAC API landing page (core or item-search conformance)."""
    if not isinstance(doc, Mapping):
        return False
    classes = doc.get("conformsTo")
    return isinstance(classes, list) and any(isinstance(c, str) and _API_CONFORMANCE.match(c) for c in classes)


def open_source(url_or_path: str, collection: str | None = None) -> ImagerySource:
    """Open a static STAC catalog or a STAC API, checking that it is there and is STAC.

    A local path or ``file://`` URL is a static catalog. An http(s) URL is
    fetched once: a landing page that conforms to STAC API core or item search
    gives a :class:`StacApiSource`, a Catalog or Collection a
    :class:`StaticCatalogSource`. Anything else raises :class:`CatalogError`
    with a one-line message naming the path or URL.
    """
    text = str(url_or_path).strip()
    if not text:
        raise CatalogError("no STAC catalog or API given (empty path/URL)")
    if "://" in text and not (is_url(text) or text.startswith("file://")):
        raise CatalogError(f"{text}: unsupported URL scheme; give a path, a file:// URL or an http(s) URL")
    href = normalize_href(text)
    doc = read_json(href)
    if is_url(href) and is_stac_api(doc):
        return StacApiSource(href, collection)
    check_catalog(doc, href)
    return StaticCatalogSource(href, collection)
