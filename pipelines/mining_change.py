"""The ``mining-change`` pipeline: Sentinel-2 scenes -> per-pixel change state -> scored, contextualised alerts.

A named, versioned composition of library stages (geo_monitor.*), run on Dask:

1. search the imagery source over the baseline and monitoring windows;
2. (first run of a grid) compute the per-pixel baseline from the baseline scenes;
3. fold every monitoring scene not yet applied into the change state, in date
   order, one read per scene (a late scene dated before the last applied one
   triggers a replay from scratch, so incremental runs and a replay agree;
   ``DetectionRequest.replay`` forces one);
4. write the new state as a new Zarr version and make it current atomically;
5. find sites, score them, join the context layers, decide legality and
   priority, and return alerts with stable ids.

Bad scenes cost themselves, not the run: unreadable, truncated or wrongly
sized assets are found (before or, failing that, after the fold) and skipped
with the reason in the summary and the logs.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Final

import dask
import dask.array as da
import numpy as np
import rasterio
import zarr
from affine import Affine
from numcodecs import Zstd
from zarr.codecs import BytesCodec, ZstdCodec
from pyproj import Transformer
from shapely.geometry import box as shapely_box
from shapely.ops import transform as shapely_transform

from geo_monitor import change
from geo_monitor.alerts import Alert, Context, Legality, Priority, Provenance, Signature, stable_alert_id
from geo_monitor.bands import ALL_BANDS, NATIVE_RESOLUTION_M, REFLECTANCE_BANDS, SCL_BAND
from geo_monitor.errors import GeoMonitorError, InvalidInputError
from geo_monitor.fold_kernel import Band20, fold_scene, merge_unclear
from geo_monitor.grid_alignment import BandLayout, Tiling, dominant_tiling, scene_tiling, snap_to_tiling
from geo_monitor.loading import load_dn, utm_epsg_for
from geo_monitor.scenes import Scene, SkippedItem
from geo_monitor.scoring import REPORT_THRESHOLD, RULES_VERSION, confidence, evidence, rule_score
from geo_monitor.site_model import SiteModel, combined_score
from geo_monitor.sites import Site, find_sites
from geo_monitor.sources import open_source
from geo_monitor.state_store import GridSpec, StateInfo, StateStore, grid_key
from geo_monitor.types import BBox
from geo_monitor.window_reader import read_window, read_window_native

log = logging.getLogger(__name__)

PIPELINE_NAME: Final[str] = "mining-change"
PIPELINE_VERSION: Final[str] = "3"
#: Anything that changes what the state means bumps this (new state key).
METHOD_VERSION: Final[str] = f"{PIPELINE_NAME}@{PIPELINE_VERSION}"
#: Attribute of a state version: the day of every scene applied to it, in the order applied.
APPLIED_DAYS_ATTR: Final[str] = "applied_days"
#: Chunk side: large enough that reopening each COG per chunk is cheap (PERFORMANCE.md: ~2048 is best,
#: 1024 keeps a task's memory low); baseline medians run in BASELINE_TILE_PX sub-windows.
DEFAULT_CHUNK_PX: Final[int] = 1024
BASELINE_TILE_PX: Final[int] = 512  # = the COG tile side: a smaller window would decode whole tiles for part of them
#: The baseline's packed int16 copy a scene update reads: (change.FOLD_VARS, y, x).
FOLD_ARRAY: Final[str] = "fold"
#: The assets a scene update decodes, in the order of SceneInputs.hrefs (swir22 enters only the baseline).
UPDATE_BANDS: Final[tuple[str, ...]] = (*REFLECTANCE_BANDS[:5], SCL_BAND)


@dataclass(frozen=True)
class DetectionRequest:
    stac_url: str
    bbox: BBox
    start: date  # monitoring start
    end: date
    baseline_start: date
    collection: str | None = None
    max_cloud_cover: float | None = None
    chunk_px: int = DEFAULT_CHUNK_PX
    job_id: str | None = None
    #: Rebuild the change state from the stored baseline: every monitoring scene folded again from
    #: zero into a new version (made current atomically, like any other). Without a stored state
    #: this is an ordinary first run. The baseline itself is kept: it is the fixed reference.
    replay: bool = False


@dataclass
class DetectionResult:
    alerts: list[Alert]
    grid: GridSpec
    scenes_found: int
    scenes_applied: list[str]
    scenes_already_applied: int
    skipped: list[SkippedItem]
    replayed: bool
    state_version: int
    sites_found: int
    #: Every candidate site, reported or not (for training and diagnosis), with its score.
    candidates: list[tuple[Site, float]] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- Dask kernels (module level: they pickle)


@dataclass(frozen=True)
class SceneInputs:
    """What a chunk task needs to read and convert some scenes itself (small: it travels with every task)."""

    hrefs: tuple[tuple[str, ...], ...]  # per scene: REFLECTANCE_BANDS then SCL
    scale: np.ndarray  # (T, 6): reflectance = DN * scale + offset
    offset: np.ndarray  # (T, 6)
    days: tuple[int, ...]
    crs: str
    grid_origin: tuple[float, float, float]  # x0, y0, resolution

    @classmethod
    def of(cls, scenes: Sequence[Scene], crs: str, grid: GridSpec) -> SceneInputs:
        ordered = sorted(scenes, key=lambda s: s.sort_key)
        return cls(
            hrefs=tuple(tuple(s.assets[b].href for b in (*REFLECTANCE_BANDS, SCL_BAND)) for s in ordered),
            scale=np.array([[s.assets[b].scale for b in REFLECTANCE_BANDS] for s in ordered], dtype=np.float64),
            offset=np.array([[s.assets[b].offset for b in REFLECTANCE_BANDS] for s in ordered], dtype=np.float64),
            days=tuple(change.day_index(s.datetime.date()) for s in ordered),
            crs=crs,
            grid_origin=(grid.x0, grid.y0, grid.resolution),
        )


def _observations(inputs: SceneInputs, window: tuple[slice, slice]) -> Iterator[change.Observation]:
    """Read and convert each scene over ``window``, one at a time (memory: one scene's bands)."""
    x0, y0, res = inputs.grid_origin
    transform = Affine(res, 0, x0 + window[1].start * res, 0, -res, y0 - window[0].start * res)
    shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
    for i, hrefs in enumerate(inputs.hrefs):
        dns = [read_window(href, inputs.crs, transform, shape) for href in hrefs]
        refl = np.stack([np.where(dn == 0, np.nan, dn * np.float32(inputs.scale[i, b]) + np.float32(inputs.offset[i, b]))
                         for b, dn in enumerate(dns[:-1])]).astype(np.float32)
        yield change.Observation.from_stack(refl, dns[-1])


def _chunk_window(block_info: dict[Any, Any]) -> tuple[slice, slice]:
    """The (y, x) window of the current block in the whole grid (from dask's block_info)."""
    (_, _), (y0, y1), (x0, x1) = block_info[0]["array-location"]
    return slice(y0, y1), slice(x0, x1)


def _baseline_block(_template: np.ndarray, *, inputs: SceneInputs, target: str,
                    block_info: dict[Any, Any] | None = None) -> np.ndarray:
    """Compute one chunk's baseline from the baseline scenes and write it into ``target``; return a token."""
    window = _chunk_window(block_info)
    # A median needs every look at once: work in sub-windows so memory stays at
    # (scenes x 7 bands x BASELINE_TILE_PX^2), whatever the chunk size.
    for rows in _split(window[0], BASELINE_TILE_PX):
        for cols in _split(window[1], BASELINE_TILE_PX):
            base = change.compute_baseline(list(_observations(inputs, (rows, cols))))
            write_baseline(zarr.open_group(target, mode="r+"), (rows, cols), base)
    return np.ones((1, 1, 1), bool)


def _split(span: slice, step: int) -> list[slice]:
    return [slice(a, min(a + step, span.stop)) for a in range(span.start, span.stop, step)]


def _fold_block(_template: np.ndarray, *, inputs: SceneInputs, previous: str | None, baseline: str, target: str,
                stored: np.ndarray | None = None, block_info: dict[Any, Any] | None = None) -> np.ndarray:
    """Fold the new scenes into one chunk's state.

    Reads the chunk's previous state (``previous`` Zarr; None = start from zero),
    its baseline and the scenes' windows, writes the new state into ``target``
    and returns which state variables it stored for this chunk (one flag per
    variable, :data:`change.STATE_VARS` order): nothing but file paths and
    these flags move between workers. ``stored`` is that answer from the
    previous version for every chunk (None: unknown, read everything); a
    variable never stored for the chunk is all zero and is not read.

    What the scenes did not change is not rewritten: its stored chunk is linked
    into the new version as it is (no decode, no encode). The unclear counters
    are not even read first: the scenes are folded into zeros and merged with
    the stored chunk afterwards, only where a scene missed a pixel
    (:func:`~geo_monitor.fold_kernel.merge_unclear`), so a chunk seen clearly costs no state I/O.
    """
    window = _chunk_window(block_info)
    shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
    _, block_y, block_x = block_info[0]["chunk-location"]
    packed = _fold_baseline_chunk(baseline, window, (block_y, block_x))  # (FOLD_VARS, y, x)
    fold_baseline = {name: packed[k] for k, name in enumerate(change.FOLD_VARS)}
    old = zarr.open_group(previous, mode="r") if previous else None
    if old is None:
        was_stored = np.zeros(len(change.STATE_VARS), bool)  # starting from zero
    elif stored is None:
        was_stored = np.ones(len(change.STATE_VARS), bool)  # unknown: read everything
    else:
        was_stored = stored[block_y, block_x]
    stored_before = dict(zip(change.STATE_VARS, was_stored))
    chunk_files = _ChunkFiles(target, (block_y, block_x), window,
                              # linking needs the same chunk grid in both versions (the record says so)
                              previous if previous and stored is not None else None)
    state = {name: chunk_files.read_previous(old[name], name).astype(dtype, copy=False)
             if stored_before[name] and name not in change.UNCLEAR_VARS else np.zeros(shape, dtype)
             for name, dtype in change.STATE_VARS.items()}
    x0, y0, res = inputs.grid_origin
    transform = Affine(res, 0, x0 + window[1].start * res, 0, -res, y0 - window[0].start * res)
    others_changed = False  # any variable but the unclear counters
    for i, (hrefs, day) in enumerate(zip(inputs.hrefs, inputs.days)):
        # UPDATE_BANDS: blue, green, red, nir on the grid; swir16 and SCL at their own 20 m
        ten = [read_window(hrefs[b], inputs.crs, transform, shape) for b in range(4)]
        swir16 = Band20(*read_window_native(hrefs[4], inputs.crs, transform, shape))
        scl = Band20(*read_window_native(hrefs[-1], inputs.crs, transform, shape))
        others_changed |= fold_scene(*ten, swir16, scl, inputs.scale[i, :5], inputs.offset[i, :5], fold_baseline,
                                     state, int(day), change.DEFAULT_THRESHOLDS)
    out = zarr.open_group(target, mode="r+")
    # the kernel reports whether anything but the unclear counters moved: if not, all of it is as stored
    unchanged = set() if others_changed else set(change.STATE_VARS) - set(change.UNCLEAR_VARS)
    state.update(merge_unclear(state, len(inputs.days),
                               lambda name: chunk_files.read_previous(old[name], name) if stored_before[name] else None))
    now_stored = np.zeros(len(change.STATE_VARS), bool)
    for k, name in enumerate(change.STATE_VARS):
        value = state[name]
        if value is None or name in unchanged:  # as stored before: carried over (or still all zero)
            if stored_before[name]:
                if not chunk_files.link(out[name], name):
                    chunk_files.write(out[name], name, chunk_files.read_previous(old[name], name))
                now_stored[k] = True
        # ``target`` is a new version: a chunk never written reads as 0, so an all-zero one
        # (unchanged pixels seen clearly in every scene) costs no write.
        elif value.any():
            chunk_files.write(out[name], name, value)
            now_stored[k] = True
    return now_stored[None, None, :]


def _fold_baseline_chunk(baseline: str, window: tuple[slice, slice], block: tuple[int, int]) -> np.ndarray:
    """The packed fold baseline over one chunk window, (FOLD_VARS, y, x).

    Every chunk task reads it for every scene, so it is stored raw (little-endian int16, no
    compressor): where the window is exactly one stored chunk, its file is mapped into memory
    instead of being copied through Zarr (~5x less CPU; docs/performance.md). Anything
    else (another chunking, a chunk never written) is read through Zarr.
    """
    array = zarr.open_group(baseline, mode="r")[FOLD_ARRAY]
    _, step_y, step_x = array.chunks
    raw = array.metadata.codecs == (BytesCodec(endian="little"),) and array.dtype == np.dtype("int16")
    if raw and (window[0].start, window[1].start) == (block[0] * step_y, block[1] * step_x):
        path = Path(baseline, FOLD_ARRAY, array.metadata.encode_chunk_key((0, *block)))
        if path.is_file():
            chunk = np.memmap(path, dtype="<i2", mode="r", shape=array.chunks)
            height, width = window[0].stop - window[0].start, window[1].stop - window[1].start
            return np.asarray(chunk)[:, :height, :width]  # edge chunks are stored full size
    return array[(slice(None), *window)]


@dataclass(frozen=True)
class _ChunkFiles:
    """One chunk of a new state version on a local disk, written without Zarr's per-write overhead.

    Zarr's own write of a 2048 px chunk costs ~10x the Zstandard encoding it does (buffers,
    an all-fill-value scan, copies): measured 14 ms against 1.5 ms (docs/performance.md). For the
    arrays this pipeline creates (little-endian bytes, then Zstandard; fill value 0) the chunk
    file is written here exactly as Zarr would write it (``tests/test_state_chunks.py`` reads
    them back through Zarr); anything else goes through Zarr.
    """

    target: str
    block: tuple[int, int]
    window: tuple[slice, slice]
    previous: str | None = None  # a version with the same chunk grid, to carry chunks over from

    def _path(self, root: str, array: zarr.Array, name: str) -> Path:
        return Path(root, name, array.metadata.encode_chunk_key(self.block))

    def link(self, array: zarr.Array, name: str) -> bool:
        """Carry the previous version's chunk over unchanged (no decode, no encode); False if it cannot be."""
        if self.previous is None:
            return False
        source, dest = self._path(self.previous, array, name), self._path(self.target, array, name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, dest)  # versions share the file; removing the old version keeps it
        except OSError:
            shutil.copyfile(source, dest)  # another file system, or one without hard links
        return True

    def _zstd(self, array: zarr.Array) -> Zstd | None:
        """The chunk codec, if the array is one this class reads and writes itself (see the class)."""
        codecs = array.metadata.codecs
        plain = (len(codecs) == 2 and codecs[0] == BytesCodec(endian="little") and isinstance(codecs[1], ZstdCodec)
                 and array.fill_value == 0 and tuple(w.start for w in self.window) == tuple(
                     b * c for b, c in zip(self.block, array.chunks)))
        return Zstd(level=codecs[1].level, checksum=codecs[1].checksum) if plain else None

    def write(self, array: zarr.Array, name: str, value: np.ndarray) -> None:
        zstd = self._zstd(array)
        if zstd is None:
            array[self.window] = value
            return
        chunk = np.zeros(array.chunks, array.dtype.newbyteorder("<"))  # edge chunks: padded with the fill value
        chunk[:value.shape[0], :value.shape[1]] = value
        path = self._path(self.target, array, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(zstd.encode(chunk))

    def read_previous(self, array: zarr.Array, name: str) -> np.ndarray:
        """The chunk as the previous version stored it (``array`` is that version's)."""
        zstd = self._zstd(array)
        if zstd is None or self.previous is None:
            return array[self.window]
        height, width = (w.stop - w.start for w in self.window)
        path = self._path(self.previous, array, name)
        if not path.is_file():  # never written: the fill value
            return np.zeros((height, width), array.dtype)
        chunk = np.empty(array.chunks, array.dtype.newbyteorder("<"))
        zstd.decode(path.read_bytes(), out=chunk)  # (decoded into a writable array the kernels can update)
        return chunk[:height, :width]


def _stored_chunks(group_path: str, chunk_px: int | None = None) -> np.ndarray | None:
    """Which state variables a version stored per chunk ((blocks y, blocks x, variables) flags), if known.

    None when the version has no record, or was chunked otherwise than ``chunk_px`` (when given).
    """
    attrs = zarr.open_group(group_path, mode="r").attrs.asdict()
    manifest = attrs.get("stored_chunks")
    if not manifest or manifest.get("variables") != list(change.STATE_VARS):
        return None  # an older layout: read everything
    if chunk_px is not None and manifest.get("chunk_px") != chunk_px:
        return None
    return np.array(manifest["flags"], bool)


def _changed_windows(group_path: str, shape: tuple[int, int]) -> list[tuple[slice, slice]] | None:
    """The chunks of a version where any pixel has an anomaly (n_anom stored); None if unknown."""
    flags = _stored_chunks(group_path)
    if flags is None:
        return None
    step = int(zarr.open_group(group_path, mode="r").attrs["stored_chunks"]["chunk_px"])
    anomalies = flags[..., list(change.STATE_VARS).index("n_anom")]
    return [(slice(by * step, min((by + 1) * step, shape[0])), slice(bx * step, min((bx + 1) * step, shape[1])))
            for by, bx in zip(*np.nonzero(anomalies))]


def applied_days_of(group_path: str) -> list[int]:
    """Days of the scenes a state version has applied, in the order applied (see change.clear_looks)."""
    return [int(d) for d in zarr.open_group(group_path, mode="r").attrs[APPLIED_DAYS_ATTR]]


def _record_stored_chunks(group_path: str, chunk_px: int, flags: np.ndarray) -> None:
    group = zarr.open_group(group_path, mode="r+")
    group.attrs["stored_chunks"] = {"chunk_px": chunk_px, "variables": list(change.STATE_VARS),
                                    "flags": flags.astype(bool).tolist()}


def _create_store(path: Path, names_and_dtypes: dict[str, str], shape: tuple[int, int], chunk_px: int,
                  attrs: dict[str, Any] | None = None) -> None:
    """An empty Zarr group of (y, x) arrays; unwritten chunks read as 0 (NaN for floats of a baseline)."""
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update(attrs or {})
    for name, dtype in names_and_dtypes.items():
        fill = np.nan if np.dtype(dtype).kind == "f" and name in change.BASELINE_VARS else 0
        group.create_array(name, shape=shape, chunks=(chunk_px, chunk_px), dtype=dtype, fill_value=fill,
                           dimension_names=("y", "x"))


def _create_baseline_store(path: Path, shape: tuple[int, int], chunk_px: int) -> None:
    """The float32 baseline plus :data:`FOLD_ARRAY`, its quantised copy for scene updates."""
    _create_store(path, {name: "float32" for name in change.BASELINE_VARS}, shape, chunk_px)
    # Read for every scene and chunk: packed (one read instead of five) and uncompressed (a
    # noisy int16 field compresses poorly: LZ4 with bit shuffling gains 1.3x and reads twice
    # as slowly; docs/performance.md).
    zarr.open_group(str(path), mode="r+").create_array(
        FOLD_ARRAY, shape=(len(change.FOLD_VARS), *shape), chunks=(len(change.FOLD_VARS), chunk_px, chunk_px),
        dtype="int16", fill_value=change.FOLD_NODATA, dimension_names=("variable", "y", "x"), compressors=None,
        attributes={"variables": list(change.FOLD_VARS)})


def write_baseline(group: zarr.Group, window: tuple[slice, slice], base: dict[str, np.ndarray]) -> None:
    """One window of the baseline: its float32 variables and their packed, quantised copy."""
    for name in change.BASELINE_VARS:
        group[name][window] = base[name]
    fold = change.quantize_fold_baseline(base)
    group[FOLD_ARRAY][(slice(None), *window)] = np.stack([fold[name] for name in change.FOLD_VARS])


def effective_chunk_px(grid: GridSpec, chunk_px: int, min_chunks: int = 4, floor: int = 256) -> int:
    """``chunk_px``, halved until a small grid still splits into ``min_chunks`` tasks (so every worker works)."""
    while chunk_px > floor and (-(-grid.height // chunk_px)) * (-(-grid.width // chunk_px)) < min_chunks:
        chunk_px //= 2
    return chunk_px


# --------------------------------------------------------------------------- scene checks


def read_scene_headers(scene: Scene) -> tuple[str | None, list[BandLayout]]:
    """Why a scene cannot be used (None if fine), and how its bands are laid out, from headers only.

    Catches what search cannot: files that do not open, are not the size the
    item declares, or whose pixel size does not fit the band. The layouts
    (where the tiles of each band lie) let the grid's chunks follow the tiles
    (:mod:`geo_monitor.grid_alignment`).
    """
    layouts = []
    for band in ALL_BANDS:
        asset = scene.assets[band]
        try:
            with rasterio.open(asset.href) as ds:
                res = abs(ds.transform.a)
                declared = scene.item_json["assets"][band].get("proj:shape")
                if declared and list(declared) != [ds.height, ds.width]:
                    return f"{band}: {ds.height}x{ds.width} pixels, item says {declared[0]}x{declared[1]}", []
                if not np.isclose(res, NATIVE_RESOLUTION_M[band], rtol=0.01):
                    return f"{band}: {res:g} m pixels, expected {NATIVE_RESOLUTION_M[band]} m", []
                if ds.crs is None:
                    return f"{band}: no CRS", []
                layouts.append(_band_layout(ds))
        except rasterio.errors.RasterioIOError as exc:
            return f"{band}: cannot open ({_short(exc)})", []
    return None, layouts


def _band_layout(ds: rasterio.DatasetReader) -> BandLayout:
    block_rows, block_cols = ds.block_shapes[0]
    t = ds.transform
    square_tiles = block_rows == block_cols and block_rows < max(ds.height, ds.width) and not (t.b or t.d)
    return BandLayout(epsg=ds.crs.to_epsg(), x0=t.c, y0=t.f, resolution=abs(t.a), width=ds.width,
                      height=ds.height, block_px=block_rows if square_tiles and t.e < 0 else None)


def find_unreadable(scene: Scene) -> str | None:
    """Read every asset in full (the slow, sure check, used only after a failed fold)."""
    for band in ALL_BANDS:
        try:
            with rasterio.open(scene.assets[band].href) as ds:
                ds.read(1)
        except (rasterio.errors.RasterioError, OSError) as exc:
            return f"{band}: unreadable ({_short(exc)})"
    return None


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


# --------------------------------------------------------------------------- the pipeline


class MiningChangePipeline:
    """Runs one :class:`DetectionRequest` against a state root; wire a Dask client around it."""

    def __init__(self, state_root: Path, context_layers: Any | None = None,
                 progress: Callable[[str, int, int], None] | None = None,
                 compute: Callable[[Any], Any] | None = None, model: SiteModel | None = None) -> None:
        """``progress(stage, done, total)`` hears about each stage; ``compute(delayed)`` runs the
        heavy graph (default ``dask.compute`` on whatever scheduler is active, e.g. a
        distributed Client), so a caller can show a progress bar over its tasks."""
        self.state_root = Path(state_root)
        self.context_layers = context_layers
        self.progress = progress or (lambda stage, done, total: None)
        self.compute = compute or (lambda delayed: dask.compute(delayed)[0])
        self.model = model  # None: the rule score alone

    def run(self, req: DetectionRequest) -> DetectionResult:
        t0 = time.monotonic()
        if req.baseline_start >= req.start:
            raise InvalidInputError(f"baseline start {req.baseline_start} must be before the monitoring start {req.start}")
        source = open_source(req.stac_url, req.collection)
        found = source.search(req.bbox, req.baseline_start, req.end, req.max_cloud_cover)
        skipped = list(found.skipped)
        epsg = utm_epsg_for((req.bbox[0] + req.bbox[2]) / 2, (req.bbox[1] + req.bbox[3]) / 2)
        self.progress("checking scenes", 0, len(found.scenes))
        scenes, tilings = [], []
        for i, scene in enumerate(found.scenes):
            reason, layouts = read_scene_headers(scene)
            if reason:
                skipped.append(SkippedItem(scene.id, reason))
                log.warning("scene skipped", extra={"scene": scene.id, "reason": reason})
            else:
                scenes.append(scene)
                tilings.append(scene_tiling(layouts))
            self.progress("checking scenes", i + 1, len(found.scenes))
        baseline_scenes = [s for s in scenes if s.datetime.date() < req.start]
        monitor_scenes = [s for s in scenes if req.start <= s.datetime.date() <= req.end]
        if not monitor_scenes and not baseline_scenes:
            raise InvalidInputError(f"no usable scenes over {req.bbox} between {req.baseline_start} and {req.end}")

        crs = f"EPSG:{epsg}"
        asked, grid, chunk_px = self.grids(scenes, tilings, crs, req)
        req = replace(req, chunk_px=chunk_px)
        store = StateStore(self.state_root, grid_key(grid, req.baseline_start.isoformat(), req.start.isoformat(),
                                                     METHOD_VERSION))
        info = store.current()
        applied = set(info.applied_scene_ids) if info else set()
        new = [s for s in monitor_scenes if s.id not in applied]
        last_key = max((s.sort_key for s in monitor_scenes if s.id in applied), default=None)
        late = info is not None and last_key is not None and any(s.sort_key < last_key for s in new)
        replay = info is not None and (late or req.replay)
        if replay:
            log.info("replaying the monitoring window from the baseline",
                     extra={"new": len(new), "why": "late scene" if late else "requested"})
            new = list(monitor_scenes)

        if info is None or new or replay:
            info, new_applied, bad = self._update(store, info, grid, crs, req, baseline_scenes, new, replay)
            skipped += bad
        else:
            new_applied = []
        transform = Affine(grid.resolution, 0, grid.x0, 0, -grid.resolution, grid.y0)
        t_sites = time.monotonic()
        shape = (grid.height, grid.width)
        sites = find_sites(self._reader(store, info), shape, transform, grid.resolution,
                           changed=_changed_windows(str(store.version_path(info.version)), shape))
        # only what touches the grid asked for: the strips added for the tiles are read, not reported
        asked_box = shapely_box(*asked.bounds)
        sites = [site for site in sites if site.geometry.intersects(asked_box)]
        log.info("sites found", extra={"sites": len(sites), "seconds": round(time.monotonic() - t_sites, 2)})
        monitor_ids = [s for s in monitor_scenes if s.id in set(info.applied_scene_ids)]
        scored = [(site, combined_score(rule_score(site.features), self.model, site.features)) for site in sites]
        alerts = self._alerts(scored, grid, monitor_ids, req)
        return DetectionResult(
            alerts=alerts,
            grid=grid,
            scenes_found=len(found.scenes) + len(found.skipped),
            scenes_applied=new_applied,
            scenes_already_applied=len([s for s in monitor_scenes if s.id in applied]) if not replay else 0,
            skipped=skipped,
            replayed=replay,
            state_version=info.version,
            sites_found=len(sites),
            candidates=scored,
            seconds=round(time.monotonic() - t0, 1),
        )

    # -- grid and state

    def grids(self, scenes: list[Scene], tilings: Sequence[Tiling | None], crs: str, req: DetectionRequest
              ) -> tuple[GridSpec, GridSpec, int]:
        """The grid ``req`` asks for, the state's grid and its chunk size.

        The state's grid is the one asked for grown to the scenes' tile corners
        (``tilings``: one per scene, from :func:`read_scene_headers`), so that no
        chunk edge cuts a tile and no tile is decoded twice (:mod:`geo_monitor.grid_alignment`).
        """
        asked = self._grid(scenes, crs, req)
        chunk_px = effective_chunk_px(asked, req.chunk_px)
        grid = snap_to_tiling(asked, dominant_tiling(tilings, asked), chunk_px)
        if grid != asked:
            log.info("grid grown to the scenes' tiles", extra={"rows": grid.height - asked.height,
                                                               "cols": grid.width - asked.width})
        return asked, grid, chunk_px

    def _grid(self, scenes: list[Scene], crs: str, req: DetectionRequest) -> GridSpec:
        """The grid odc-stac lays over ``req.bbox`` in ``crs`` (lazy: nothing is read)."""
        template = load_dn(scenes[:1], crs=crs, bbox=req.bbox, chunk_px=req.chunk_px, bands=[SCL_BAND])
        x, y = template.x.values, template.y.values
        res = float(abs(x[1] - x[0]))
        grid = GridSpec(int(crs.split(":")[1]), float(x[0] - res / 2), float(y[0] + res / 2), len(x), len(y), res)
        return grid

    @staticmethod
    def _chunks(grid: GridSpec, chunk_px: int) -> da.Array:
        """One tiny task per grid chunk: the blocks the kernels map over."""
        return da.zeros((1, grid.height, grid.width), dtype=bool, chunks=(1, chunk_px, chunk_px))

    def _update(self, store: StateStore, info: StateInfo | None, grid: GridSpec, crs: str, req: DetectionRequest,
                baseline_scenes: list[Scene], new: list[Scene], replay: bool
                ) -> tuple[StateInfo, list[str], list[SkippedItem]]:
        bad: list[SkippedItem] = []
        for attempt in range(2):
            try:
                return self._write_version(store, info, grid, crs, req, baseline_scenes, new, replay) + (bad,)
            except (rasterio.errors.RasterioError, OSError, RuntimeError) as exc:
                if attempt:
                    raise GeoMonitorError(f"state update failed twice: {_short(exc)}") from exc
                log.warning("state update failed; looking for unreadable scenes", extra={"error": _short(exc)})
                for scene in [*new, *(baseline_scenes if info is None else [])]:
                    reason = find_unreadable(scene)
                    if reason:
                        bad.append(SkippedItem(scene.id, reason))
                        log.warning("scene skipped", extra={"scene": scene.id, "reason": reason})
                bad_ids = {b.id for b in bad}
                if not bad_ids:
                    raise
                new = [s for s in new if s.id not in bad_ids]
                baseline_scenes = [s for s in baseline_scenes if s.id not in bad_ids]
        raise AssertionError("unreachable")

    def _write_version(self, store: StateStore, info: StateInfo | None, grid: GridSpec, crs: str,
                       req: DetectionRequest, baseline_scenes: list[Scene], new: list[Scene], replay: bool
                       ) -> tuple[StateInfo, list[str]]:
        shape = (grid.height, grid.width)
        if info is None:
            if not baseline_scenes:
                raise InvalidInputError(f"no usable baseline scenes between {req.baseline_start} and {req.start}")
            _create_baseline_store(store.baseline_path, shape, req.chunk_px)
            tokens = da.map_blocks(_baseline_block, self._chunks(grid, req.chunk_px),
                                   inputs=SceneInputs.of(baseline_scenes, crs, grid),
                                   target=str(store.baseline_path), dtype=bool, chunks=(1, 1, 1))
            self.progress("computing baseline", 0, 1)
            self.compute(tokens)
            self.progress("computing baseline", 1, 1)
        start_over = info is None or replay
        previous = None if start_over else str(store.version_path(info.version))
        already = [] if start_over else list(info.applied_scene_ids)
        version, path = store.new_version_path(info)
        ordered = sorted(new, key=lambda s: s.sort_key)
        # the days of the scenes applied, in order: what turns the stored unclear counters into clear looks
        applied_days = ([] if previous is None else applied_days_of(previous)) + [
            change.day_index(s.datetime.date()) for s in ordered]
        _create_store(path, change.STATE_VARS, shape, req.chunk_px,
                      {"crs": crs, "method": METHOD_VERSION, "thresholds": change.thresholds_record(),
                       APPLIED_DAYS_ATTR: applied_days})
        if ordered:
            n_vars = len(change.STATE_VARS)
            flags = da.map_blocks(_fold_block, self._chunks(grid, req.chunk_px),
                                  inputs=SceneInputs.of(ordered, crs, grid), previous=previous,
                                  baseline=str(store.baseline_path), target=str(path),
                                  stored=_stored_chunks(previous, req.chunk_px) if previous else None,
                                  dtype=bool, chunks=(1, 1, n_vars))
            self.progress("updating change state", 0, 1)
            t_fold = time.monotonic()
            done = np.asarray(self.compute(flags))
            _record_stored_chunks(str(path), req.chunk_px, done.reshape(done.shape[1], -1, n_vars))
            log.info("scenes folded into the state", extra={"scenes": len(ordered),
                                                            "seconds": round(time.monotonic() - t_fold, 2)})
            self.progress("updating change state", 1, 1)
        elif previous:  # nothing new: carry the state over unchanged
            shutil.rmtree(path)
            shutil.copytree(previous, path)
        applied_now = [s.id for s in ordered]
        all_applied = applied_now if (info is None or replay) else already + applied_now
        last_day = max((change.day_index(s.datetime.date()) for s in new), default=info.last_applied_day if info else 0)
        new_info = StateInfo(version=version, grid=grid.__dict__, baseline_start=req.baseline_start.isoformat(),
                             monitor_start=req.start.isoformat(), method=METHOD_VERSION,
                             applied_scene_ids=all_applied, last_applied_day=int(last_day))
        store.commit(new_info)
        log.info("change state updated", extra={"version": version, "scenes": len(applied_now), "replay": replay})
        return new_info, applied_now

    def _reader(self, store: StateStore, info: StateInfo) -> Callable[[str, Any], np.ndarray]:
        """Read state variables lazily from the current Zarr version, window by window."""
        # zarr directly, not xarray/dask: a plane or a window is one plain read
        state, base = store.state_group(info), store.baseline_group()

        def read(name: str, window: Any) -> np.ndarray:
            array = state[name] if name in change.STATE_VARS else base[name]
            return array[:] if window is None else array[window]

        return read

    # -- alerts

    def _alerts(self, scored: list[tuple[Site, float]], grid: GridSpec, monitor_scenes: list[Scene],
                req: DetectionRequest) -> list[Alert]:
        to_wgs84 = Transformer.from_crs(f"EPSG:{grid.epsg}", "EPSG:4326", always_xy=True).transform
        kept = [(site, score) for site, score in scored if score >= REPORT_THRESHOLD]
        contexts = self._contexts([site for site, _ in kept], grid)
        model_version = RULES_VERSION + (f"+{self.model.version}" if self.model else "")
        alerts = []
        for (site, score), ctx in zip(kept, contexts):
            conf = confidence(site)
            legality, priority = self._legality(ctx, conf, score, site.features.area_ha)
            first, last = site.first_detected, site.last_observed
            scene_ids = [s.id for s in monitor_scenes
                         if first <= change.day_index(s.datetime.date()) <= last]
            f = site.features
            alerts.append(Alert(
                id=stable_alert_id(grid.epsg, *site.anchor_xy),
                geometry=shapely_transform(to_wgs84, site.geometry),
                area_ha=round(f.area_ha, 4),
                pond_area_ha=round(site.pond_geometry.area / 10_000, 4) if site.pond_geometry is not None else 0.0,
                first_detected=change.day_from_index(first),
                last_observed=change.day_from_index(last),
                confirmed_at=change.day_from_index(site.confirmed_at) if site.confirmed_at else None,
                confidence=conf,
                score=round(score, 4),
                signature=Signature(vegetation_loss=round(f.ndvi_drop, 4), bare_soil=round(f.bare_share, 4),
                                    water=round(f.water_share, 4), turbidity=float(f.pond_px > 0)),
                context=ctx,
                legality=legality,
                priority=priority,
                provenance=Provenance(PIPELINE_NAME, PIPELINE_VERSION, model_version, scene_ids, req.job_id),
                extra={"evidence": {k: round(v, 3) for k, v in evidence(f).items()},
                       "rule_score": round(rule_score(f), 4),
                       "features": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in f.__dict__.items()}},
            ))
        return sorted(alerts, key=lambda a: a.id)

    def _contexts(self, sites: list[Site], grid: GridSpec) -> list[Context]:
        if self.context_layers is None or not sites:
            return [Context() for _ in sites]
        import geopandas as gpd

        from geo_monitor.legality import site_context

        layers = self.context_layers.to_crs(f"EPSG:{grid.epsg}")
        geoms = gpd.GeoSeries([s.geometry for s in sites], crs=f"EPSG:{grid.epsg}")
        return site_context(geoms, layers)

    def _legality(self, ctx: Context, conf: Any, score: float, area_ha: float) -> tuple[Legality, Priority]:
        from geo_monitor.legality import legality, priority

        legal = legality(ctx, self.context_layers) if self.context_layers is not None else Legality.UNKNOWN
        return legal, priority(legal, ctx, conf, score, area_ha)
