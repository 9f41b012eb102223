"""Static STAC catalogs (local folder, file:// or http(s)://), and the item filter all sources share.

A static catalog is walked by its ``child`` and ``item`` links only, reading
JSON documents and nothing else. The filter (bbox, whole UTC days, cloud
cover) and the assembly of a :class:`SearchResult` live here too, because the
STAC API source applies the same rules client side.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pystac.utils

from geo_monitor.errors import CatalogError, SceneError
from geo_monitor.scenes import Scene, SkippedItem, item_bbox, item_datetime, scene_or_skip
from geo_monitor.types import BBox
from geo_monitor.validation import utc_day_bounds

#: Seconds to wait for one JSON document over HTTP before giving up.
HTTP_TIMEOUT_S = 30.0
#: Item documents read at once from one catalog (HTTP latency, not CPU, is the cost).
_READ_THREADS = 8


@dataclass(frozen=True)
class SearchResult:
    """What a search found: usable scenes (sorted by datetime, then id; one per id)
    and matching items that cannot be used, each with the reason."""

    scenes: list[Scene] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)


@dataclass(frozen=True)
class ItemFilter:
    """Which items a search wants: intersecting ``bbox`` (lon/lat), acquired
    between ``start`` and ``end`` (aware UTC, inclusive), cloud cover (percent)
    at most ``max_cloud_cover`` — items that do not report one are kept."""

    bbox: BBox
    start: datetime
    end: datetime
    max_cloud_cover: float | None = None
    collection: str | None = None

    @classmethod
    def for_days(
        cls, bbox: BBox, start: date, end: date, max_cloud_cover: float | None = None, collection: str | None = None
    ) -> ItemFilter:
        """Filter for whole UTC days ``start``..``end``."""
        lo, hi = utc_day_bounds(start, end)
        return cls(tuple(float(v) for v in bbox), lo, hi, max_cloud_cover, collection)  # type: ignore[arg-type]

    def matches(self, item: Mapping[str, Any], parent_collection: str | None = None) -> bool:
        """True if the item dict passes; raises :class:`SceneError` if it has no usable time or footprint."""
        if self.collection is not None and (item.get("collection") or parent_collection) != self.collection:
            return False
        w, s, e, n = item_bbox(item)
        qw, qs, qe, qn = self.bbox
        if w > qe or e < qw or s > qn or n < qs:
            return False
        first, last = _time_range(item)
        if last < self.start or first > self.end:
            return False
        cloud = (item.get("properties") or {}).get("eo:cloud_cover")
        return self.max_cloud_cover is None or cloud is None or float(cloud) <= self.max_cloud_cover


def _time_range(item: Mapping[str, Any]) -> tuple[datetime, datetime]:
    props = item.get("properties") or {}
    start = item_datetime(item)
    if props.get("datetime") or not props.get("end_datetime"):
        return start, start
    end = item_datetime({"id": item.get("id"), "properties": {"datetime": props["end_datetime"]}})
    return start, end


def assemble(found: Iterable[tuple[Mapping[str, Any], str | None]], skipped: Iterable[SkippedItem] = ()) -> SearchResult:
    """Turn matching (item dict, self href) pairs into a :class:`SearchResult`.

    Duplicate ids (an item linked twice, or returned on two API pages) are kept
    once; unusable items become :class:`SkippedItem` records.
    """
    scenes: dict[str, Scene] = {}
    bad: dict[str, SkippedItem] = {s.id: s for s in skipped}
    for item, self_href in found:
        result = scene_or_skip(item, self_href)
        if isinstance(result, Scene):
            scenes.setdefault(result.id, result)
        else:
            bad.setdefault(result.id, result)
    for scene_id in scenes:
        bad.pop(scene_id, None)  # a good copy of the same item wins
    ordered = sorted(scenes.values(), key=lambda sc: sc.sort_key)
    return SearchResult(ordered, sorted(bad.values(), key=lambda s: s.id))


def filter_items(
    found: Iterable[tuple[Mapping[str, Any], str | None, str | None]], wanted: ItemFilter
) -> tuple[list[tuple[Mapping[str, Any], str | None]], list[SkippedItem]]:
    """Split (item, self href, parent collection) triples into matching pairs and unreadable items."""
    keep, skipped = [], []
    for item, href, parent in found:
        try:
            if wanted.matches(item, parent):
                keep.append((item, href))
        except SceneError as exc:
            skipped.append(SkippedItem(str(item.get("id") or href), str(exc)))
    return keep, skipped


# --- reading JSON ------------------------------------------------------------------


def is_url(href: str) -> bool:
    """True for http(s) URLs."""
    return href.startswith(("http://", "https://"))


def normalize_href(path_or_url: str) -> str:
    """An http(s) URL unchanged; a path or file:// URL as an absolute local path
    (a folder means its ``catalog.json``, else its ``collection.json``)."""
    if is_url(path_or_url):
        return path_or_url
    text = unquote(urlparse(path_or_url).path) if path_or_url.startswith("file://") else path_or_url
    path = Path(text).expanduser().absolute()
    if path.is_dir():
        for name in ("catalog.json", "collection.json"):
            if (path / name).is_file():
                return str(path / name)
    return os.path.normpath(str(path))


def read_json(href: str, timeout: float = HTTP_TIMEOUT_S) -> Any:
    """Read one JSON document from a local path or http(s) URL.

    Raises :class:`CatalogError` naming ``href`` and what went wrong.
    """
    try:
        if is_url(href):
            request = urllib.request.Request(href, headers={"Accept": "application/json, application/geo+json"})
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http only)
                text = response.read().decode("utf-8")
        else:
            text = Path(href).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{href}: no such file") from None
    except IsADirectoryError:
        raise CatalogError(f"{href}: is a folder without catalog.json or collection.json") from None
    except urllib.error.HTTPError as exc:
        raise CatalogError(f"{href}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise CatalogError(f"{href}: cannot connect ({_reason(exc.reason)})") from None
    except (TimeoutError, socket.timeout):
        raise CatalogError(f"{href}: no answer within {timeout:g} s") from None
    except UnicodeDecodeError:
        raise CatalogError(f"{href}: not UTF-8 text, so not JSON") from None
    except OSError as exc:
        raise CatalogError(f"{href}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{href}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def stac_kind(doc: Any) -> str | None:
    """``"Catalog"``, ``"Collection"``, ``"Feature"`` or ``"FeatureCollection"`` for STAC JSON, else None."""
    if not isinstance(doc, Mapping):
        return None
    kind = doc.get("type")
    if kind in ("Catalog", "Collection") and isinstance(doc.get("links"), list):
        return str(kind)
    if kind == "Feature" and "stac_version" in doc:
        return "Feature"
    if kind == "FeatureCollection" and isinstance(doc.get("features"), list):
        return "FeatureCollection"
    return None


def check_catalog(doc: Any, href: str) -> None:
    """Raise :class:`CatalogError` unless ``doc`` is a STAC Catalog or Collection."""
    kind = stac_kind(doc)
    if kind in ("Catalog", "Collection"):
        return
    if kind == "Feature":
        raise CatalogError(f"{href}: is a single STAC Item; give the catalog or collection that links to it")
    what = "a JSON " + type(doc).__name__.replace("dict", "object").replace("list", "array")
    raise CatalogError(f"{href}: {what}, not a STAC catalog, collection or STAC API landing page")


# --- walking links -------------------------------------------------------------------


def walk_items(
    root_href: str, root: Mapping[str, Any] | None = None
) -> Iterator[tuple[Mapping[str, Any], str | None, str | None] | SkippedItem]:
    """Yield (item dict, item href, parent collection id) for every item below a catalog.

    Follows ``child`` and ``item`` links (and ``features`` inlined in an item
    collection). The root must be readable (else :class:`CatalogError`); a
    linked document that cannot be read is yielded as a :class:`SkippedItem`
    whose id is its href, so one broken link does not hide the rest.
    """
    if root is None:
        root = read_json(root_href)
    check_catalog(root, root_href)
    seen = {root_href}
    pending: list[tuple[str, Mapping[str, Any]]] = [(root_href, root)]
    with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
        while pending:
            href, doc = pending.pop()
            parent = str(doc["id"]) if doc.get("type") == "Collection" else None
            children = _links(doc, href, "child", seen)
            items = _links(doc, href, "item", seen)
            for child_href, child in zip(children, pool.map(_try_read, children)):
                if isinstance(child, CatalogError):
                    yield SkippedItem(child_href, f"linked catalog unreadable: {child}")
                elif stac_kind(child) in ("Catalog", "Collection"):
                    pending.append((child_href, child))
            for item_href, item in zip(items, pool.map(_try_read, items)):
                if isinstance(item, CatalogError):
                    yield SkippedItem(item_href, f"linked item unreadable: {item}")
                elif stac_kind(item) == "Feature":
                    yield item, item_href, parent
                else:
                    yield SkippedItem(item_href, "linked item is not a STAC Item")


def _links(doc: Mapping[str, Any], href: str, rel: str, seen: set[str]) -> list[str]:
    out = []
    for link in doc.get("links") or []:
        if not isinstance(link, Mapping) or link.get("rel") != rel or not link.get("href"):
            continue
        target = _resolve(str(link["href"]), href)
        if target not in seen:  # catalogs that link in loops, or one item twice
            seen.add(target)
            out.append(target)
    return out


def _resolve(href: str, base: str) -> str:
    if href.startswith("file://"):
        return unquote(urlparse(href).path)
    return pystac.utils.make_absolute_href(href, base)


def _try_read(href: str) -> Any:
    try:
        return read_json(href)
    except CatalogError as exc:
        return exc


class StaticCatalogSource:
    """Scenes from a static STAC catalog: a local path, a file:// URL or an http(s) URL.

    Nothing is read until :meth:`search`, and every search re-reads the
    catalog, so items added to it since are found.
    """

    def __init__(self, href: str | os.PathLike[str], collection: str | None = None) -> None:
        self.href = normalize_href(os.fspath(href))
        self.collection = collection

    def __repr__(self) -> str:
        return f"StaticCatalogSource({self.href!r}, collection={self.collection!r})"

    def search(self, bbox: BBox, start: date, end: date, max_cloud_cover: float | None = None) -> SearchResult:
        """Scenes intersecting ``bbox`` (lon/lat) acquired on UTC days ``start``..``end`` (inclusive)."""
        wanted = ItemFilter.for_days(bbox, start, end, max_cloud_cover, self.collection)
        return search_walk(self.href, wanted)


def search_walk(href: str, wanted: ItemFilter, root: Mapping[str, Any] | None = None) -> SearchResult:
    """Walk a catalog from ``href`` and keep what ``wanted`` matches."""
    triples, unreadable = [], []
    for found in walk_items(href, root):
        if isinstance(found, SkippedItem):
            unreadable.append(found)
        else:
            triples.append(found)
    keep, bad = filter_items(triples, wanted)
    return assemble(keep, [*unreadable, *bad])
