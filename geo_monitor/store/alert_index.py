"""A per-process, in-memory index of every alert, answering API pages without SQL.

It owns the columns a bbox page is decided on: the envelope, ``updated_at``
(µs since the epoch), the id, and the filter fields of ``AlertQuery``
(``first_detected`` as a day number; status, confidence, priority, legality
and province as small integer codes), plus the geometry as WKB, for the
exact test of the few envelopes crossing the box edge (parsed for those
only: ~3 µs each). WKB costs ~600 bytes an alert where a GEOS geometry
costs ~2.3 kB (measured on the benchmark's 12-60 vertex polygons: 60 MB
against 230 MB for 100,000 alerts). Rows are kept in
polling order ``(updated_at, id)``, so a page is "the ``limit`` smallest
matching positions" and a keyset ``after`` is a binary search.

For each alert it also keeps up to :data:`SAMPLE_VERTICES` of its
vertices: a box that contains one of them intersects the geometry, so most
edge crossers are settled by testing those points and only the rest are
parsed from WKB (which cost ~15 % of a worker's time on the benchmark's
pages, ~74 crossers each). Every candidate of a box is tested in one
compiled pass (``bbox_kernel``, numba): envelope, liveness, inside the
box, sample vertices.

It also holds each alert's stored feature text (``alerts.feature``, read
with the row), so a page is served from one snapshot with no second read:
the texts are the versions the page was decided on, by construction. That
costs the texts' size in memory (~2.2 kB an alert on the benchmark's
polygons: ~220 MB for 100,000 alerts, per web process) and saves a
statement per request, the heaviest one (see docs/performance.md).

Freshness is incremental and exact. Writers are serialised and stamp each
transaction strictly after every stamp already stored, in commit order (see
``alert_store``), so ``updated_at > latest stamp held`` brings in every row
committed since the last refresh, and only those, with one indexed query.
A changed alert arrives again with its new stamp: its old entry is marked
dead and the new one appended, which keeps the arrays sorted. Alerts are
never deleted by the store (nothing in it issues a DELETE on ``alerts``);
dead entries are compacted away when they pile up.

Readers never lock: :meth:`AlertIndex.snapshot` returns an immutable
:class:`IndexSnapshot` whose arrays later refreshes never change below its
``size`` (appends go past it; the live mask is copied before an entry dies;
compaction builds new arrays). Refreshes (:meth:`AlertIndex.apply`, under
:attr:`AlertIndex.lock`) are serialised. This module does no I/O: the store
reads the rows with ``index_reads`` (raw DB-API) and applies them.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

import numpy as np
import shapely

from geo_monitor.alerts import Confidence, Legality, Priority, Status
from geo_monitor.store.features import DIGEST_SIZE, feature_digest
from geo_monitor.store.query import AlertQuery

#: Enum columns in the order :class:`IndexRow` carries them, with the query field filtering each.
ENUM_COLUMNS: tuple[tuple[str, type[Enum], str], ...] = (
    ("status", Status, "statuses"),
    ("confidence", Confidence, "confidences"),
    ("priority", Priority, "priorities"),
    ("legality", Legality, "legalities"),
)
#: Compact when dead entries exceed this share of the arrays (and :data:`COMPACT_MIN`).
COMPACT_SHARE = 0.25
COMPACT_MIN = 1024
#: Side of the grid cells that order entries for bbox searches (degrees): 0.1-0.5 degree boxes span 3-11 rows.
CELL_DEG = 0.05
GRID_COLUMNS = int(round(360 / CELL_DEG))
GRID_ROWS = int(round(180 / CELL_DEG))
#: Entries appended since the cell order was sorted that make it sort again (share of all, and at least).
RESORT_SHARE = 0.05
RESORT_MIN = 1000
#: First capacity of the column buffers; they double when full.
INITIAL_CAPACITY = 1024

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)
_CODES = {name: {member.value: code for code, member in enumerate(enum_cls)} for name, enum_cls, _ in ENUM_COLUMNS}
_FLOAT_COLUMNS = ("minx", "miny", "maxx", "maxy")
#: Vertices kept per alert for the "a vertex inside the box" test (any subset keeps the test exact).
SAMPLE_VERTICES = 16
#: Fixed-size columns other than the envelope's (``digest``: ``features.feature_digest`` of the text).
_TYPED_COLUMNS = {"updated_us": np.int64, "first_day": np.int32, "province": np.int32,
                  "vertex_start": np.int64, "vertex_count": np.int8, "digest": f"S{DIGEST_SIZE}",
                  **{name: np.int8 for name, _, _ in ENUM_COLUMNS}}


class IndexOrderError(RuntimeError):
    """Rows arrived out of polling order: the index's binary searches would give wrong pages."""


@dataclass(frozen=True)
class IndexRow:
    """One alert as the index reads it (``index_reads`` converts the back-end's raw values)."""

    id: str
    updated_us: int  # updated_at, µs since 1970-01-01 UTC
    minx: float
    miny: float
    maxx: float
    maxy: float
    first_day: int  # first_detected.toordinal()
    status: str  # enum values
    confidence: str
    priority: str
    legality: str
    province: str | None
    geometry: bytes  # WKB (exact bbox test)
    feature: bytes  # the stored GeoJSON Feature text, UTF-8 encoded, as the APIs serve it


@dataclass(frozen=True)
class IndexPage:
    """A page from one snapshot: ids in polling order, plus one more when more follow."""

    ids: list[str]
    stamps_us: list[int]  # updated_at of each id
    features: list[bytes]  # the feature text of each id (the last one too, when more follow)
    digests: bytes  # the feature digest of each id, concatenated (DIGEST_SIZE bytes each)
    number_matched: int


@dataclass(frozen=True)
class CellOrder:
    """Positions ``0 .. covers-1`` sorted by the grid cell of their envelope's south-west corner.

    The grid has :data:`CELL_DEG` cells numbered row by row (``row *
    GRID_COLUMNS + column``), so the cells a box can touch are one
    contiguous run of numbers per row: a few binary searches find every
    candidate. An envelope overlapping the box has its corner at most
    ``widest`` west and ``tallest`` south of it (the largest envelope
    sorted here), so those margins widen the search and no match is lost.
    The envelopes are kept in this order too (``envelopes``: minx, miny,
    maxx, maxy), so a search reads a few contiguous runs of them instead of
    gathering thousands of scattered entries from the position-ordered
    columns. Positions appended later (``covers`` on) are scanned one by one
    until there are enough to sort again (:data:`RESORT_SHARE`).
    """

    positions: np.ndarray  # sorted by cell
    cells: np.ndarray  # the cell of each, ascending
    envelopes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # minx, miny, maxx, maxy of each, same order
    widest: float
    tallest: float
    covers: int

    @classmethod
    def of(cls, columns: dict[str, np.ndarray]) -> CellOrder:
        minx, miny = columns["minx"], columns["miny"]
        cells = _cell(_grid_column(minx), _grid_row(miny))
        order = np.argsort(cells, kind="stable")
        widest = float(np.max(columns["maxx"] - minx)) if minx.size else 0.0
        tallest = float(np.max(columns["maxy"] - miny)) if minx.size else 0.0
        envelopes = tuple(columns[name][order] for name in _FLOAT_COLUMNS)
        return cls(positions=order, cells=cells[order], envelopes=envelopes,  # type: ignore[arg-type]
                   widest=widest, tallest=tallest, covers=int(minx.size))

    def runs(self, bbox: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """Where the candidates of ``bbox`` lie in this order: runs ``starts[i]:ends[i]`` (a superset of the matches).

        Positions from ``covers`` on (appended since the sort) are candidates too.
        """
        west, south, east, north = bbox
        first_column, last_column = _column_of(west - self.widest), _column_of(east)
        rows = np.arange(_row_of(south - self.tallest), _row_of(north) + 1)
        starts = np.searchsorted(self.cells, _cell(first_column, rows), "left")
        ends = np.searchsorted(self.cells, _cell(last_column, rows), "right")
        return starts, ends


def _grid_column(lon: Any) -> Any:
    return np.clip(np.floor((np.asarray(lon) + 180.0) / CELL_DEG), 0, GRID_COLUMNS - 1).astype(np.int64)


def _grid_row(lat: Any) -> Any:
    return np.clip(np.floor((np.asarray(lat) + 90.0) / CELL_DEG), 0, GRID_ROWS - 1).astype(np.int64)


def _column_of(lon: float) -> int:
    """:func:`_grid_column` of one longitude, in plain floats (the same IEEE arithmetic; numpy's scalar path is slow)."""
    return min(max(math.floor((lon + 180.0) / CELL_DEG), 0), GRID_COLUMNS - 1)


def _row_of(lat: float) -> int:
    """:func:`_grid_row` of one latitude, as :func:`_column_of`."""
    return min(max(math.floor((lat + 90.0) / CELL_DEG), 0), GRID_ROWS - 1)


def _cell(column: Any, row: Any) -> Any:
    return row * GRID_COLUMNS + column


@dataclass(frozen=True)
class IndexSnapshot:
    """Every alert as of one refresh; read-only for its readers (see the module docstring)."""

    size: int
    columns: dict[str, np.ndarray]  # each sliced to ``size``
    live: np.ndarray  # bool[size]: False for entries replaced by a newer version
    ids: list[str]  # shared, append-only: only ``ids[:size]`` belongs to this snapshot
    geometries: np.ndarray  # object[size] of WKB bytes
    features: np.ndarray  # object[size] of feature texts (UTF-8 bytes: a page is joined without encoding)
    vertices: np.ndarray  # float64 (n, 2): sample vertices, entry i's at vertex_start[i] (vertex_count[i] rows)
    province_codes: dict[str, int]  # shared, append-only; codes >= size of the table are newer
    live_count: int
    cell_order: CellOrder

    def page(self, query: AlertQuery) -> IndexPage:
        """The matches of ``query`` (count and page) in this snapshot: what ``query.feature_page`` answers."""
        positions = self._matches(query)
        matched = int(positions.size)
        if query.after is not None:
            positions = positions[positions >= self._position_after(query.after)]
        chosen = _smallest(positions, query.offset or 0, query.limit + 1)
        return IndexPage(ids=[self.ids[p] for p in chosen.tolist()],
                         stamps_us=self.columns["updated_us"][chosen].tolist(),
                         features=self.features[chosen].tolist(),
                         digests=self.columns["digest"][chosen].tobytes(), number_matched=matched)

    # --- filters -------------------------------------------------------------------

    def _matches(self, query: AlertQuery) -> np.ndarray:
        """Positions of every live entry matching ``query``'s filters (ascending = polling order, or unordered)."""
        low = 0
        if query.updated_since is not None:  # sorted by updated_at: a range, not a mask
            low = int(np.searchsorted(self.columns["updated_us"], to_us(query.updated_since), "left"))
        if query.bbox is not None:
            positions = self._in_bbox(query.bbox, low)
        else:
            positions = np.flatnonzero(self.live[low:]) + low
        for test in self._tests(query):
            if positions.size == 0:
                break
            positions = positions[test(positions)]
        return positions

    def _in_bbox(self, bbox: tuple[float, float, float, float], low: int) -> np.ndarray:
        """Live positions from ``low`` on whose geometry intersects the box (as ``query.bbox_clause``), unordered.

        ``bbox_kernel`` settles every candidate but the few edge crossers none
        of whose sample vertices is in the box: those get the exact GEOS test.
        """
        from geo_monitor.store.bbox_kernel import bbox_matches  # here: numba's import costs every CLI run ~0.2 s

        west, south, east, north = bbox
        order, c = self.cell_order, self.columns
        starts, ends = order.runs(bbox)
        matched, undecided = bbox_matches(
            starts, ends, order.positions, *order.envelopes, order.covers, self.size,
            c["minx"], c["miny"], c["maxx"], c["maxy"], self.live, low, float(west), float(south), float(east),
            float(north), c["vertex_start"], c["vertex_count"], self.vertices)
        if undecided.size:
            box = shapely.box(west, south, east, north)
            shapely.prepare(box)
            hits = shapely.intersects(box, shapely.from_wkb(self.geometries[undecided]))
            matched = np.concatenate([matched, undecided[hits]])
        return matched

    def _tests(self, query: AlertQuery) -> list[Any]:
        """Vectorised tests, one per filter other than bbox and updated_since, over candidate positions."""
        c, tests = self.columns, []
        if query.first_detected_from is not None:
            first = query.first_detected_from.toordinal()
            tests.append(lambda p: c["first_day"][p] >= first)
        if query.first_detected_to is not None:
            last = query.first_detected_to.toordinal()
            tests.append(lambda p: c["first_day"][p] <= last)
        for name, _, field in ENUM_COLUMNS:
            values = getattr(query, field)
            if values is not None:
                tests.append(_code_test(c[name], [_CODES[name][v] for v in values], len(_CODES[name])))
        if query.provinces is not None:
            codes = [self.province_codes[p] for p in query.provinces if p in self.province_codes]
            tests.append(_code_test(c["province"], codes, len(self.province_codes) + 1))
        return tests

    def _position_after(self, after: tuple[datetime, str]) -> int:
        """The first position strictly after the keyset ``(updated_at, id)`` in polling order."""
        stamp, last_id = to_us(after[0]), after[1]
        stamps = self.columns["updated_us"]
        low = int(np.searchsorted(stamps, stamp, "left"))
        high = int(np.searchsorted(stamps, stamp, "right"))
        # One transaction's alerts share a stamp and arrive in one refresh, sorted by id (C collation).
        return bisect_right(self.ids, last_id, low, high) if high > low else low


def _smallest(positions: np.ndarray, skip: int, count: int) -> np.ndarray:
    """The ``skip``-th to ``skip + count - 1``-th smallest of ``positions`` (distinct), ascending.

    A page needs its few positions in polling order, not all the matches
    sorted: a partition first (O(n)) leaves only those to sort.
    """
    wanted = skip + count
    if positions.size > wanted:
        positions = np.partition(positions, wanted - 1)[:wanted]
    return np.sort(positions)[skip:]


def _gather_runs(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the runs ``starts[i] .. starts[i] + counts[i] - 1``, concatenated; and where each run begins in them."""
    firsts = np.cumsum(counts) - counts
    return np.repeat(starts - firsts, counts) + np.arange(int(counts.sum())), firsts


def _code_test(column: np.ndarray, allowed: Sequence[int], size: int) -> Any:
    table = np.zeros(max(size, 1), dtype=bool)
    table[list(allowed)] = True
    return lambda positions: table[column[positions]]


class AlertIndex:
    """The mutable side: column buffers, the id -> position map and the refresh lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._size = 0
        self._capacity = 0
        self._columns: dict[str, np.ndarray] = {}
        self._geometries = np.empty(0, dtype=object)
        self._features = np.empty(0, dtype=object)
        self._vertices = np.zeros((0, 2))
        self._vertex_size = 0
        self._live = np.zeros(0, dtype=bool)
        self._ids: list[str] = []
        self._positions: dict[str, int] = {}
        self._province_codes: dict[str, int] = {}
        self._latest: Any = None  # the newest updated_at held, in the back-end's own form (the next "since")
        self._snapshot: IndexSnapshot | None = None
        self._cell_order: CellOrder | None = None
        self._allocate(INITIAL_CAPACITY)

    @property
    def lock(self) -> threading.Lock:
        """Held while refreshing: the reader of new rows runs under it, so refreshes never interleave."""
        return self._lock

    @property
    def latest(self) -> Any:
        """The newest ``updated_at`` held, as the back-end returned it (None: nothing loaded yet)."""
        return self._latest

    def snapshot(self) -> IndexSnapshot:
        """The current snapshot (call :meth:`apply` first to bring it up to date)."""
        if self._snapshot is None:
            self._snapshot = self._make_snapshot()
        return self._snapshot

    def apply(self, rows: Sequence[IndexRow], latest: Any) -> None:
        """Add ``rows`` (every row with ``updated_at`` after :attr:`latest`, in polling order); hold the lock.

        A row whose id is already held replaces that entry. ``latest`` is the
        newest stamp among ``rows`` in the back-end's own form.
        """
        if not rows:
            return
        self._check_order(rows)
        live = self._live.copy()  # readers of older snapshots keep theirs
        dead = 0
        needed = self._size + len(rows)
        if needed > self._capacity:
            self._allocate(max(needed, 2 * self._capacity))
            live = self._live
        start = self._size
        for offset, row in enumerate(rows):
            old = self._positions.get(row.id)
            if old is not None:
                live[old] = False
                dead += 1
            self._positions[row.id] = start + offset
            self._ids.append(row.id)
        self._write_rows(start, rows)
        live[start:needed] = True
        self._live, self._size, self._latest = live, needed, latest
        if needed - int(live[:needed].sum()) > max(COMPACT_MIN, COMPACT_SHARE * needed):
            self._compact()
        self._snapshot = None  # made on the next snapshot(), once for all of a refresh's batches

    # --- internals -----------------------------------------------------------------

    def _check_order(self, rows: Sequence[IndexRow]) -> None:
        """Stamps never go down: searches rely on it, and a conversion bug must not turn into wrong pages."""
        stamps = np.fromiter((row.updated_us for row in rows), dtype=np.int64, count=len(rows))
        previous = self._columns["updated_us"][self._size - 1] if self._size else stamps[0]
        if stamps[0] < previous or (stamps.size > 1 and bool(np.any(np.diff(stamps) < 0))):
            raise IndexOrderError("alert rows arrived out of (updated_at, id) order")

    def _write_rows(self, start: int, rows: Sequence[IndexRow]) -> None:
        end = start + len(rows)
        c = self._columns
        for name in _FLOAT_COLUMNS:
            c[name][start:end] = [getattr(row, name) for row in rows]
        c["updated_us"][start:end] = [row.updated_us for row in rows]
        c["first_day"][start:end] = [row.first_day for row in rows]
        for name, _, _ in ENUM_COLUMNS:
            codes = _CODES[name]
            c[name][start:end] = [codes[getattr(row, name)] for row in rows]
        c["province"][start:end] = [self._province_code(row.province) for row in rows]
        self._geometries[start:end] = [row.geometry for row in rows]
        self._features[start:end] = [row.feature for row in rows]
        c["digest"][start:end] = [feature_digest(row.feature) for row in rows]
        self._append_vertices(start, [row.geometry for row in rows])

    def _append_vertices(self, start: int, wkbs: list[bytes]) -> None:
        """Sample up to SAMPLE_VERTICES vertices of each geometry, evenly along its coordinates."""
        coords, owner = shapely.get_coordinates(shapely.from_wkb(wkbs), return_index=True)
        counts = np.bincount(owner, minlength=len(wkbs))
        kept = np.minimum(counts, SAMPLE_VERTICES)
        step, _ = _gather_runs(np.zeros_like(kept), kept)  # 0 .. kept-1 for each geometry
        # The step-th of kept vertices spread evenly over the geometry's counts coordinates.
        first = np.cumsum(counts) - counts
        sample = coords[np.repeat(first, kept) + step * np.repeat(counts, kept) // np.repeat(kept, kept)]
        end = self._vertex_size + len(sample)
        if end > len(self._vertices):
            grown = np.zeros((max(end, 2 * len(self._vertices), 1024), 2))
            grown[: self._vertex_size] = self._vertices[: self._vertex_size]
            self._vertices = grown  # older snapshots keep the old buffer
        self._vertices[self._vertex_size:end] = sample
        self._columns["vertex_start"][start:start + len(wkbs)] = self._vertex_size + np.cumsum(kept) - kept
        self._columns["vertex_count"][start:start + len(wkbs)] = kept
        self._vertex_size = end

    def _province_code(self, province: str | None) -> int:
        if province is None:
            return 0  # no code any filter can name: NULL never matches a province filter (as in SQL)
        code = self._province_codes.get(province)
        if code is None:
            code = self._province_codes[province] = len(self._province_codes) + 1
        return code

    def _allocate(self, capacity: int) -> None:
        """New, larger buffers holding the current entries (older snapshots keep the old ones)."""
        columns = {name: np.zeros(capacity, dtype=np.float64) for name in _FLOAT_COLUMNS}
        columns.update({name: np.zeros(capacity, dtype=dtype) for name, dtype in _TYPED_COLUMNS.items()})
        for name, column in self._columns.items():
            columns[name][: self._size] = column[: self._size]
        geometries, features = np.empty(capacity, dtype=object), np.empty(capacity, dtype=object)
        geometries[: self._size] = self._geometries[: self._size]
        features[: self._size] = self._features[: self._size]
        live = np.zeros(capacity, dtype=bool)
        live[: self._size] = self._live[: self._size]
        self._columns, self._geometries, self._features = columns, geometries, features
        self._live, self._capacity = live, capacity

    def _compact(self) -> None:
        """Drop dead entries into new buffers: positions change, so the id map is rebuilt too."""
        keep = np.flatnonzero(self._live[: self._size])
        capacity = max(INITIAL_CAPACITY, 2 * keep.size)
        columns = {}
        for name, column in self._columns.items():
            columns[name] = np.zeros(capacity, dtype=column.dtype)
            columns[name][: keep.size] = column[keep]
        geometries, features = np.empty(capacity, dtype=object), np.empty(capacity, dtype=object)
        geometries[: keep.size] = self._geometries[keep]
        features[: keep.size] = self._features[keep]
        live = np.zeros(capacity, dtype=bool)
        live[: keep.size] = True
        self._ids = [self._ids[p] for p in keep.tolist()]  # a new list: old snapshots keep theirs
        self._positions = {alert_id: position for position, alert_id in enumerate(self._ids)}
        rows, firsts = _gather_runs(columns["vertex_start"][: keep.size],
                                    columns["vertex_count"][: keep.size].astype(np.int64))
        self._vertices = np.concatenate([self._vertices[rows], np.zeros((len(rows), 2))])  # room to append
        self._vertex_size = len(rows)
        columns["vertex_start"][: keep.size] = firsts
        self._columns, self._geometries, self._features, self._live = columns, geometries, features, live
        self._size, self._capacity = int(keep.size), capacity
        self._cell_order = None  # positions changed

    def _make_snapshot(self) -> IndexSnapshot:
        size = self._size
        live = self._live[:size]
        order = self._cell_order
        if order is None or size - order.covers > max(RESORT_MIN, RESORT_SHARE * size):
            order = self._cell_order = CellOrder.of({name: self._columns[name][:size] for name in _FLOAT_COLUMNS})
        return IndexSnapshot(
            size=size,
            columns={name: column[:size] for name, column in self._columns.items()},
            live=live,
            ids=self._ids,
            geometries=self._geometries[:size],
            features=self._features[:size],
            vertices=self._vertices[: self._vertex_size],
            province_codes=self._province_codes,
            live_count=int(live.sum()),
            cell_order=order,
        )


def to_us(moment: datetime) -> int:
    """An aware datetime as whole µs since 1970-01-01 UTC (the index's ``updated_at``)."""
    return (moment - _EPOCH) // _ONE_US


def from_us(micros: int) -> datetime:
    """The inverse of :func:`to_us`: an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=micros)

