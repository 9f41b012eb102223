"""Scenes from a STAC API (item search), through pystac-client.

The API filters by collection, bbox and datetime; cloud cover is filtered
again here because not every API offers the query extension, and the same
:class:`ItemFilter` as for static catalogs runs over every returned item so
that both sources answer a search identically.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

import requests
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses
from pystac_client.exceptions import APIError

from geo_monitor.errors import CatalogError
from geo_monitor.sources._static import (
    HTTP_TIMEOUT_S,
    ItemFilter,
    SearchResult,
    assemble,
    filter_items,
    search_walk,
)
from geo_monitor.types import BBox

#: Items per page asked of the API (servers may cap it lower).
PAGE_SIZE = 250


class StacApiSource:
    """Scenes from a STAC API at ``url``, in ``collection`` (all collections when None).

    The landing page is read on the first search. An API without item search
    (core conformance only) is walked by its links like a static catalog.
    The ``query`` extension is used for cloud cover when the API conforms to
    it: real Sentinel-2 APIs report ``eo:cloud_cover`` on every item, so the
    rule "items without a cloud cover are kept" holds there too.
    """

    def __init__(self, url: str, collection: str | None = None) -> None:
        self.url = url
        self.collection = collection
        self._client: Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StacApiSource({self.url!r}, collection={self.collection!r})"

    def __getstate__(self) -> dict[str, Any]:
        # A live HTTP client does not pickle; a copy on a worker reopens it.
        return {"url": self.url, "collection": self.collection}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["collection"])  # type: ignore[misc]

    def search(self, bbox: BBox, start: date, end: date, max_cloud_cover: float | None = None) -> SearchResult:
        """Scenes intersecting ``bbox`` (lon/lat) acquired on UTC days ``start``..``end`` (inclusive)."""
        wanted = ItemFilter.for_days(bbox, start, end, max_cloud_cover, self.collection)
        client = self._open()
        if not client.conforms_to(ConformanceClasses.ITEM_SEARCH):
            return search_walk(self.url, wanted)
        with _as_catalog_error(self.url):
            # The API already chose the collection; items that omit their
            # "collection" field must not fail the client-side check.
            triples = [(item, _self_href(item), wanted.collection) for item in self._items(client, wanted)]
        keep, bad = filter_items(triples, wanted)
        return assemble(keep, bad)

    def _open(self) -> Client:
        with self._lock:
            if self._client is None:
                with _as_catalog_error(self.url), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # NoConformsTo etc.: we check conformance ourselves
                    self._client = Client.open(self.url, timeout=HTTP_TIMEOUT_S)
            return self._client

    def _items(self, client: Client, wanted: ItemFilter) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {
            "bbox": list(wanted.bbox),
            "datetime": [wanted.start, wanted.end],
            "limit": PAGE_SIZE,
            "max_items": None,
        }
        if wanted.collection is not None:
            params["collections"] = [wanted.collection]
        if wanted.max_cloud_cover is not None and client.conforms_to(ConformanceClasses.QUERY):
            params["query"] = {"eo:cloud_cover": {"lte": wanted.max_cloud_cover}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield from client.search(**params).items_as_dicts()


def _self_href(item: Mapping[str, Any]) -> str | None:
    for link in item.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return None


class _as_catalog_error:
    """Turn pystac-client / requests failures into one-line :class:`CatalogError`s."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> bool:
        if exc is None or isinstance(exc, CatalogError):
            return False
        cause = exc.__cause__ or exc.__context__
        if isinstance(exc, APIError) and isinstance(cause, requests.RequestException):
            exc = cause  # pystac-client wraps network failures; report the network failure
        if isinstance(exc, APIError):
            status = getattr(exc, "status_code", None)
            detail = " ".join(str(exc).split())[:200]
            raise CatalogError(f"{self.url}: STAC API error{f' HTTP {status}' if status else ''}: {detail}") from None
        if isinstance(exc, requests.ConnectionError):
            raise CatalogError(f"{self.url}: cannot connect to STAC API") from None
        if isinstance(exc, requests.Timeout):
            raise CatalogError(f"{self.url}: STAC API did not answer within {HTTP_TIMEOUT_S:g} s") from None
        if isinstance(exc, (requests.RequestException, ValueError, KeyError, TypeError)):
            raise CatalogError(f"{self.url}: unusable STAC API response ({type(exc).__name__}: {exc})") from None
        return False
