"""The scenes the map may show: an index of the configured catalog, and the allow-list of imagery requests.

Every imagery request names a scene by id. The id is only ever a key into
this index, built from the STAC catalog or API that the settings name; the
COG hrefs GDAL opens come from that catalog, never from a request. An id the
catalog does not know is an :class:`~geo_monitor.errors.UnknownSceneError`.

Reading a catalog costs a walk of its JSON documents (or pages of a STAC API
search), so the index is kept for ``ttl_s`` seconds and rebuilt by the first
lookup after that: scenes added to the catalog show up within ``ttl_s``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Final

from geo_monitor.errors import CatalogError, ImageryUnavailableError, UnknownSceneError
from geo_monitor.scenes import Scene
from geo_monitor.sources import ImagerySource, open_source
from geo_monitor.types import BBox
from geo_monitor.validation import ECUADOR_BBOX

__all__ = ["SceneIndex", "SceneCatalog", "FIRST_SENTINEL2_DAY", "MAX_SCENE_ID"]

#: Sentinel-2A's first image: no L2A scene is older.
FIRST_SENTINEL2_DAY: Final[date] = date(2015, 6, 23)
#: Longest scene id looked up: anything longer is not an id of any catalog we serve.
MAX_SCENE_ID: Final[int] = 200


@dataclass(frozen=True)
class SceneIndex:
    """The scenes of one reading of the catalog, by id, and in time order."""

    scenes: dict[str, Scene]
    ordered: tuple[Scene, ...]
    read_at: float  # time.monotonic() of the reading
    fingerprint: str  # changes whenever the set of scenes or their files change

    @classmethod
    def of(cls, scenes: Sequence[Scene], read_at: float) -> SceneIndex:
        ordered = tuple(sorted(scenes, key=lambda s: s.sort_key))
        digest = hashlib.sha256()
        for scene in ordered:
            digest.update(scene.id.encode())
            for name, asset in sorted(scene.assets.items()):
                digest.update(f"|{name}={asset.href};{asset.scale};{asset.offset}".encode())
            digest.update(b"\n")
        return cls({s.id: s for s in ordered}, ordered, read_at, digest.hexdigest()[:24])

    def search(self, bbox: BBox | None = None, start: date | None = None, end: date | None = None,
               max_cloud_cover: float | None = None) -> list[Scene]:
        """Scenes whose footprint box intersects ``bbox`` (lon/lat), acquired on UTC days
        ``start``..``end`` (inclusive, None = open), with cloud cover at most ``max_cloud_cover``
        percent (scenes that report none are kept); in time order."""
        out = []
        for scene in self.ordered:
            day = scene.datetime.astimezone(timezone.utc).date()
            if (start and day < start) or (end and day > end):
                continue
            if bbox is not None and not _intersects(scene.bbox, bbox):
                continue
            if max_cloud_cover is not None and scene.cloud_cover is not None and scene.cloud_cover > max_cloud_cover:
                continue
            out.append(scene)
        return out


def _intersects(a: BBox, b: BBox) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


class SceneCatalog:
    """The index of one imagery source, rebuilt when older than ``ttl_s``; safe to share between threads.

    ``source`` is a path/URL given to :func:`~geo_monitor.sources.open_source`
    (opened lazily, so an app starts even while the catalog is missing) or an
    already open :class:`~geo_monitor.sources.ImagerySource`.
    """

    def __init__(self, source: str | ImagerySource, collection: str | None = None, *, ttl_s: float = 300.0,
                 area: BBox = ECUADOR_BBOX, clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], date] | None = None) -> None:
        self._source = source
        self._collection = collection
        self._ttl_s = ttl_s
        self._area = area
        self._clock = clock
        self._today = today or (lambda: datetime.now(timezone.utc).date())
        self._index: SceneIndex | None = None
        self._lock = threading.Lock()

    def index(self) -> SceneIndex:
        """The current index, read again when it is older than ``ttl_s``.

        Raises :class:`ImageryUnavailableError` when the catalog cannot be read
        and no earlier reading exists (a stale index is kept over a failed re-read,
        so a catalog server's hiccup does not blank the map).
        """
        index = self._index
        if index is not None and self._clock() - index.read_at < self._ttl_s:
            return index
        with self._lock:  # one reader at a time; the others wait for its result
            index = self._index
            if index is not None and self._clock() - index.read_at < self._ttl_s:
                return index
            try:
                self._index = SceneIndex.of(self._read(), self._clock())
            except CatalogError as exc:
                if self._index is None:
                    raise ImageryUnavailableError(f"the imagery catalog cannot be read: {exc}") from exc
                self._index = SceneIndex.of(self._index.ordered, self._clock())  # keep it, retry after ttl
            return self._index

    def get(self, scene_id: str) -> Scene:
        """The scene with this id, or :class:`UnknownSceneError` (the allow-list check)."""
        if not isinstance(scene_id, str) or not scene_id or len(scene_id) > MAX_SCENE_ID:
            raise UnknownSceneError("no such scene in the imagery catalog")
        scene = self.index().scenes.get(scene_id)
        if scene is None:
            raise UnknownSceneError(f"no scene {scene_id!r} in the imagery catalog")
        return scene

    def _read(self) -> list[Scene]:
        source = self._source
        if isinstance(source, str):
            source = self._source = open_source(source, self._collection)
        end = self._today() + timedelta(days=1)  # items stamped "tomorrow" in UTC are still today somewhere
        return list(source.search(self._area, FIRST_SENTINEL2_DAY, end).scenes)
