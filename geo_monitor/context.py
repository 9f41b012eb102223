"""Context layers: concessions, protected areas, indigenous territories, rivers, provinces.

Legality is context, not spectra (DESIGN.md), so these five vector layers
decide how an alert is ranked. They come from whoever runs geo-monitor
(ARCOM's mining cadastre, the SNAP, RAISG, INEC, ...) in whatever format and
CRS those agencies publish, so the loader accepts GeoPackage or GeoJSON in
any CRS and checks, once and up front, what the rest of the code relies on:
the contract's fields exist, geometries are valid and of the right kind, the
CRS is known. Anything else fails with one line naming the file and the
problem, before a long pipeline run starts.

A missing layer is not an error (a deployment may have no river layer yet):
it is ``None`` and logged, and :mod:`geo_monitor.legality` says what each
missing layer costs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry import GeometryCollection, MultiLineString, MultiPolygon
from shapely.geometry.base import BaseGeometry

from geo_monitor.errors import InvalidInputError
from geo_monitor.settings import CONTEXT_LAYERS

log = logging.getLogger(__name__)

#: File suffixes looked for in a context folder, in order of preference
#: (the same order as ``Settings.context_layer_path``).
LAYER_SUFFIXES: Final[tuple[str, ...]] = (".gpkg", ".geojson")

_POLYGONS: Final[frozenset[str]] = frozenset({"Polygon"})
_LINES_OR_POLYGONS: Final[frozenset[str]] = frozenset({"LineString", "LinearRing", "Polygon"})


@dataclass(frozen=True)
class LayerSpec:
    """What one context layer must provide (DESIGN.md, "Context layers")."""

    fields: tuple[str, ...]
    #: Simple geometry types kept after repair; anything else in a feature is dropped.
    parts: frozenset[str]
    #: Word used in error messages.
    kind: str


#: The one table of context-layer requirements. Rivers may be lines or
#: polygons (some hydrography publishes wide rivers as areas); distance works
#: for both. Everything else is an area.
LAYER_SPECS: Final[dict[str, LayerSpec]] = {
    "concessions": LayerSpec(("code", "holder", "status", "mineral"), _POLYGONS, "polygons"),
    "protected_areas": LayerSpec(("name", "category"), _POLYGONS, "polygons"),
    "indigenous_territories": LayerSpec(("name",), _POLYGONS, "polygons"),
    "rivers": LayerSpec(("name",), _LINES_OR_POLYGONS, "lines or polygons"),
    "provinces": LayerSpec(("name",), _POLYGONS, "polygons"),
}
assert tuple(LAYER_SPECS) == CONTEXT_LAYERS, "LAYER_SPECS must list exactly settings.CONTEXT_LAYERS"

#: What pyogrio/GDAL raise for a file they cannot read.
_READ_ERRORS: Final[tuple[type[Exception], ...]] = (
    pyogrio.errors.DataSourceError,
    pyogrio.errors.DataLayerError,
    pyogrio.errors.FeatureError,
    pyogrio.errors.FieldError,
    pyogrio.errors.GeometryError,
    pyogrio.errors.CRSError,
    CRSError,
    OSError,
    ValueError,
)


@dataclass
class ContextLayers:
    """The five context layers as GeoDataFrames (``None`` where a layer is missing).

    Read through :meth:`from_dir`, :meth:`from_settings` or :meth:`from_paths`,
    each frame holds exactly its contract fields (as text or None) and a
    valid, non-empty geometry column, with a fresh 0..n-1 index (frames
    passed to the constructor directly are trusted as they are). Layers keep
    the CRS they were published in until :meth:`to_crs` puts them all in the
    pipeline's UTM zone.
    """

    concessions: gpd.GeoDataFrame | None = None
    protected_areas: gpd.GeoDataFrame | None = None
    indigenous_territories: gpd.GeoDataFrame | None = None
    rivers: gpd.GeoDataFrame | None = None
    provinces: gpd.GeoDataFrame | None = None
    #: layer -> path it was read from (loaded layers only).
    sources: dict[str, str] = field(default_factory=dict)
    #: Reprojected copies, one per CRS: a run touches thousands of chunks in
    #: one or two UTM zones, and reprojecting country-wide layers per chunk
    #: would cost more than the overlay itself.
    _by_crs: dict[CRS, ContextLayers] = field(default_factory=dict, init=False, repr=False, compare=False)
    _rivers_index: LineIndex | None = field(default=None, init=False, repr=False, compare=False)

    # -- construction

    @classmethod
    def from_dir(cls, folder: Path | str) -> ContextLayers:
        """Read ``<folder>/<layer>.gpkg`` (or ``.geojson``) for each layer; absent files give ``None``."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise InvalidInputError(f"context folder {folder} does not exist or is not a folder")
        return cls.from_paths({layer: _find_layer_file(folder, layer) for layer in CONTEXT_LAYERS})

    @classmethod
    def from_settings(cls, settings: Any) -> ContextLayers:
        """Read each layer from ``settings.context_layer_path(layer)``.

        A context folder that does not exist is an error when some layer has
        no explicit path of its own: silently running without any context
        would turn every alert's legality into "unknown".
        """
        paths = {layer: settings.context_layer_path(layer) for layer in CONTEXT_LAYERS}
        folder = Path(settings.resolved_context_dir)
        if any(path is None for path in paths.values()) and not folder.is_dir():
            raise InvalidInputError(f"context folder {folder} does not exist or is not a folder")
        return cls.from_paths(paths)

    @classmethod
    def from_paths(cls, paths: dict[str, Path | None]) -> ContextLayers:
        """Read the named files; a layer whose path is ``None`` is missing (logged as a warning)."""
        unknown = set(paths) - set(CONTEXT_LAYERS)
        if unknown:
            raise InvalidInputError(f"unknown context layer(s) {', '.join(sorted(unknown))}; "
                                    f"expected {', '.join(CONTEXT_LAYERS)}")
        frames: dict[str, gpd.GeoDataFrame | None] = {}
        sources: dict[str, str] = {}
        for layer in CONTEXT_LAYERS:
            path = paths.get(layer)
            if path is None:
                log.warning("context layer missing", extra={"layer": layer})
                frames[layer] = None
                continue
            frames[layer] = read_layer(Path(path), layer)
            sources[layer] = str(path)
        return cls(**frames, sources=sources)

    # -- access

    def layers(self) -> dict[str, gpd.GeoDataFrame | None]:
        """Layer name -> frame (or None), in ``CONTEXT_LAYERS`` order."""
        return {layer: getattr(self, layer) for layer in CONTEXT_LAYERS}

    @property
    def crs(self) -> CRS | None:
        """The CRS shared by every loaded layer, or None if they differ (or none is loaded)."""
        found = {frame.crs for frame in self.layers().values() if frame is not None}
        return found.pop() if len(found) == 1 else None

    def to_crs(self, crs: Any) -> ContextLayers:
        """All loaded layers in ``crs`` (anything pyproj understands); cached per CRS.

        The returned object is shared between callers: treat its frames as
        read-only. Geometries are re-checked after reprojection (a valid ring
        can self-touch once its vertices move) and prepared for fast
        predicates.
        """
        target = CRS.from_user_input(crs)
        cached = self._by_crs.get(target)
        if cached is not None:
            return cached
        projected: dict[str, gpd.GeoDataFrame | None] = {}
        for layer, frame in self.layers().items():
            if frame is None:
                projected[layer] = None
            elif frame.crs == target:
                projected[layer] = frame
            else:
                projected[layer] = _clean(frame.to_crs(target), LAYER_SPECS[layer])
        out = ContextLayers(**projected, sources=dict(self.sources))
        for frame in out.layers().values():
            if frame is not None:
                shapely.prepare(frame.geometry.to_numpy())
        out._by_crs[target] = out
        self._by_crs[target] = out
        return out

    def rivers_index(self) -> LineIndex | None:
        """Nearest-river index of this object's rivers (None without a river layer); built once.

        Frames are read-only once indexed: the index is not rebuilt if ``rivers`` is replaced.
        """
        if self.rivers is None:
            return None
        if self._rivers_index is None:
            self._rivers_index = LineIndex.build(self.rivers.geometry.to_numpy())
        return self._rivers_index

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without caches: Dask ships this to workers, where they are rebuilt on demand."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._by_crs = {}
        self._rivers_index = None


#: Longest piece (in segments) a line is cut into for nearest-line search.
LINE_PIECE_SEGMENTS: Final[int] = 8


@dataclass(frozen=True)
class LineIndex:
    """Lines cut into short pieces in an STRtree, with the row each piece came from.

    A river is one long line whose bounding box covers a whole valley, so an
    index of whole rivers finds every river "near" every site and measures
    the distance to each along all its vertices. Pieces of a few segments
    have tight boxes, and the distance to the nearest piece is exactly the
    distance to the river. Polygons (rivers mapped as areas) stay whole.
    """

    tree: shapely.STRtree
    owner: np.ndarray

    @classmethod
    def build(cls, geoms: np.ndarray, piece_segments: int = LINE_PIECE_SEGMENTS) -> LineIndex:
        parts, row = shapely.get_parts(geoms, return_index=True)
        keep = ~shapely.is_empty(parts)
        parts, row = parts[keep], row[keep]
        is_line = np.isin(shapely.get_type_id(parts), (1, 2))  # LineString, LinearRing
        pieces, owner = _cut_lines(parts[is_line], row[is_line], piece_segments)
        pieces = np.concatenate([pieces, parts[~is_line]])
        owner = np.concatenate([owner, row[~is_line]])
        return cls(shapely.STRtree(pieces), owner)

    def nearest(self, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each geometry: the row of the nearest line (-1 if none) and the distance to it (NaN if none)."""
        row = np.full(len(geoms), -1, dtype=np.int64)
        distance = np.full(len(geoms), np.nan)
        if len(geoms) == 0 or len(self.owner) == 0:
            return row, distance
        pairs, dist = self.tree.query_nearest(geoms, return_distance=True, all_matches=False)
        row[pairs[0]] = self.owner[pairs[1]]
        distance[pairs[0]] = dist
        return row, distance


def _cut_lines(lines: np.ndarray, row: np.ndarray, piece_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut each line into consecutive pieces of at most ``piece_segments`` segments (vectorised)."""
    coords, line_of = shapely.get_coordinates(lines, return_index=True)
    if len(coords) == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    counts = np.bincount(line_of, minlength=len(lines))
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    vertex = np.arange(len(coords)) - start[line_of]  # position of each vertex in its line
    n_pieces = np.maximum(np.ceil((counts - 1) / piece_segments).astype(np.int64), 1)
    first_piece = np.concatenate([[0], np.cumsum(n_pieces)[:-1]])
    # Vertex v ends segment v-1 and starts segment v: it belongs to the piece of each.
    starts = vertex < counts[line_of] - 1
    ends = vertex >= 1
    piece = np.concatenate([first_piece[line_of][starts] + vertex[starts] // piece_segments,
                            first_piece[line_of][ends] + (vertex[ends] - 1) // piece_segments])
    index = np.concatenate([np.flatnonzero(starts), np.flatnonzero(ends)])
    keys = np.unique(np.stack([piece, index], axis=1), axis=0)  # sorted by piece, then vertex
    pieces = shapely.linestrings(coords[keys[:, 1]], indices=keys[:, 0])
    return pieces, np.repeat(row, n_pieces)


def _find_layer_file(folder: Path, layer: str) -> Path | None:
    """``<folder>/<layer><suffix>`` for the first suffix that exists."""
    found = [folder / f"{layer}{suffix}" for suffix in LAYER_SUFFIXES if (folder / f"{layer}{suffix}").is_file()]
    if len(found) > 1:
        log.warning("context layer has several files; using the first",
                    extra={"layer": layer, "used": str(found[0]), "ignored": [str(p) for p in found[1:]]})
    return found[0] if found else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _pick_dataset_layer(path: Path, layer: str) -> str:
    """Which layer of the file to read: the only spatial one, else the one named after the file or layer.

    A GeoPackage can hold several tables (QGIS adds ``layer_styles``);
    guessing among several spatial ones would silently read the wrong data.
    """
    listed = pyogrio.list_layers(path)
    spatial = [str(name) for name, geom_type in listed if geom_type is not None]
    if len(spatial) == 1:
        return spatial[0]
    for wanted in (path.stem, layer):
        if wanted in spatial:
            return wanted
    if not spatial:
        raise InvalidInputError(f"{path}: no layer with geometries in the file")
    raise InvalidInputError(f"{path}: {len(spatial)} layers ({', '.join(spatial)}); "
                            f"name the one to use {layer!r} or keep one layer per file")


def read_layer(path: Path, layer: str) -> gpd.GeoDataFrame:
    """Read and check one context layer file; raise :class:`InvalidInputError` naming the file and problem."""
    spec = LAYER_SPECS[layer]
    if not path.is_file():
        raise InvalidInputError(f"context layer {layer}: {path} does not exist")
    try:
        dataset_layer = _pick_dataset_layer(path, layer)
        info = pyogrio.read_info(path, layer=dataset_layer)
        columns = _match_fields(path, [str(name) for name in info["fields"]], spec, int(info["features"]))
        frame = pyogrio.read_dataframe(path, layer=dataset_layer, columns=list(columns.values()))
    except InvalidInputError:
        raise
    except _READ_ERRORS as exc:
        raise InvalidInputError(f"context layer {layer}: cannot read {path}: {_one_line(exc)}") from None
    if not isinstance(frame, gpd.GeoDataFrame):
        raise InvalidInputError(f"context layer {layer}: {path} has no geometry column")
    if frame.crs is None:
        raise InvalidInputError(f"context layer {layer}: {path} has no coordinate reference system; "
                                "set one (e.g. EPSG:32718) in the file")
    data = {name: _as_text(frame[source]) if source in frame else [None] * len(frame)
            for name, source in columns.items()}
    out = gpd.GeoDataFrame(data, geometry=frame.geometry.values, crs=frame.crs)
    _check_geometry_types(out, spec, path, layer)
    cleaned = _clean(out, spec)
    dropped = len(out) - len(cleaned)
    if dropped:
        log.info("context features without usable geometry dropped",
                 extra={"layer": layer, "path": str(path), "dropped": dropped})
    return cleaned


def _match_fields(path: Path, available: list[str], spec: LayerSpec, n_features: int) -> dict[str, str]:
    """Contract field -> column in the file; exact name first, else the one differing only in case.

    Agencies publish ``NAME`` or ``Name`` as often as ``name``; accepting that
    costs nothing and is unambiguous. A missing field is an error, except in
    a file with no features (a GeoJSON ``[]`` carries no field list): an
    area with no protected areas is a legitimate, empty layer.
    """
    by_folded: dict[str, list[str]] = {}
    for name in available:
        by_folded.setdefault(name.casefold(), []).append(name)
    matched: dict[str, str] = {}
    for wanted in spec.fields:
        if wanted in available:
            matched[wanted] = wanted
        elif len(by_folded.get(wanted.casefold(), [])) == 1:
            matched[wanted] = by_folded[wanted.casefold()][0]
        elif n_features == 0:
            matched[wanted] = wanted
        else:
            raise InvalidInputError(f"{path}: required field {wanted!r} is missing "
                                    f"(fields present: {', '.join(available) or 'none'})")
    return matched


def _as_text(values: pd.Series) -> list[str | None]:
    """Field values as stripped text, None for null or blank (codes often arrive as numbers)."""
    out: list[str | None] = []
    for value in values.to_numpy(dtype=object):
        text = None if pd.isna(value) else str(value).strip()
        out.append(text or None)
    return out


def _check_geometry_types(frame: gpd.GeoDataFrame, spec: LayerSpec, path: Path, layer: str) -> None:
    """Reject a layer of the wrong kind (points as protected areas) instead of silently matching nothing."""
    geoms = frame.geometry.to_numpy()
    present = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    wrong = sorted(set(shapely.get_type_id(present).tolist()) - _allowed_types(spec.parts))
    if wrong:
        names = ", ".join(_TYPE_NAMES[t] for t in wrong)
        raise InvalidInputError(f"{path}: {layer} must be {spec.kind}; found {names}")


#: shapely type id -> geometry type name.
_TYPE_NAMES: Final[dict[int, str]] = {
    0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon",
    4: "MultiPoint", 5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection",
}
_MULTI_OF: Final[dict[str, str]] = {"Polygon": "MultiPolygon", "LineString": "MultiLineString"}


def _allowed_types(parts: frozenset[str]) -> set[int]:
    """Type ids a feature may have: its kind, the multi-part version, or a collection (repaired later)."""
    names = set(parts) | {_MULTI_OF[p] for p in parts if p in _MULTI_OF} | {"GeometryCollection"}
    return {tid for tid, name in _TYPE_NAMES.items() if name in names}


def _clean(frame: gpd.GeoDataFrame, spec: LayerSpec) -> gpd.GeoDataFrame:
    """Repair invalid geometries (make_valid), keep the parts of the layer's kind, drop empty features.

    make_valid turns a bow-tie into two triangles but may also leave the
    collapsed bits as lines or points; for an area layer only the area
    counts. Only invalid geometries are touched, so a clean national layer
    costs one vectorised validity check.
    """
    geoms = frame.geometry.to_numpy().copy()
    missing = shapely.is_missing(geoms)
    invalid = ~missing & ~shapely.is_valid(geoms)
    collections = ~missing & (shapely.get_type_id(geoms) == 7)
    fix = invalid | collections
    if fix.any():
        repaired = shapely.make_valid(geoms[fix])
        geoms[fix] = [_keep_parts(g, spec.parts) for g in repaired]
    keep = ~shapely.is_missing(geoms)
    keep[keep] = ~shapely.is_empty(geoms[keep])
    if keep.all() and not fix.any():
        return frame.reset_index(drop=True)
    out = frame.loc[keep].copy()
    out = out.set_geometry(gpd.GeoSeries(geoms[keep], index=out.index, crs=frame.crs))
    return out.reset_index(drop=True)


def _keep_parts(geom: BaseGeometry, kinds: frozenset[str]) -> BaseGeometry | None:
    """The simple parts of ``geom`` whose type is in ``kinds``, as one geometry (None if nothing is left)."""
    parts = [p for p in shapely.get_parts(shapely.get_parts(geom)) if p.geom_type in kinds and not p.is_empty]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    types = {p.geom_type for p in parts}
    if types == {"Polygon"}:
        return MultiPolygon(parts)
    if types <= {"LineString", "LinearRing"}:
        return MultiLineString(parts)
    return GeometryCollection(parts)
