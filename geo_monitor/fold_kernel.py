"""The scene update in one pass per pixel: DN → reflectance → tests → counters (numba).

:func:`geo_monitor.change.classify` followed by
:func:`geo_monitor.change.apply_observation` is the readable reference of the
method; this module computes exactly the same thing (``tests/test_change.py``
compares them bit for bit on random and edge-case pixels) but in one compiled
loop. The reference makes ~40 full-size temporary arrays per scene and chunk,
which made the update memory-bound and several times slower than decoding
the scene (docs/performance.md); here each pixel is read once, tested in
registers and written once.

Exactness: every quantity is computed in float32 with the same operations in
the same order as the numpy reference, and thresholds are passed as float32
(numpy compares a float32 array with a Python float in float32), so both
paths agree on every pixel, threshold ties included.

Bands at 20 m come at their native resolution with an integer ``factor`` and
a row/column offset (``grid pixel (i, j) = native[(i + off_r) // factor,
(j + off_c) // factor]``), so they are never upsampled into full-size copies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numba import njit

from geo_monitor.bands import SCL_NEVER_EVIDENCE
from geo_monitor.change import (DEFAULT_THRESHOLDS, FOLD_NODATA, FOLD_STEP, FOLD_VARS, STATE_VARS, Thresholds,
                                 empty_state)

#: SCL classes allowed as evidence, as a 256-entry lookup table.
EVIDENCE_LUT: Final[np.ndarray] = np.array([code not in SCL_NEVER_EVIDENCE for code in range(256)], np.bool_)


@dataclass(frozen=True)
class Band20:
    """A band at a coarser resolution than the grid, laid over a grid window without copying."""

    data: np.ndarray  # native pixels covering the window
    factor: int  # native pixel size / grid pixel size
    off_r: int  # grid row i is native row (i + off_r) // factor
    off_c: int

    @classmethod
    def of_grid(cls, data: np.ndarray) -> Band20:
        """A band already on the grid (factor 1, no offset)."""
        return cls(data, 1, 0, 0)


def _thresholds32(t: Thresholds) -> np.ndarray:
    return np.array([t.cloud_blue, t.haze_blue_rise, t.soil_red_blue_rise_ratio, t.shadow_ratio,
                     t.bsi_bare, t.ndvi_bare_max, t.bare_min_brightness, t.bsi_bare_strict, t.ndvi_bare_strict,
                     t.mndwi_water, t.ndvi_water_max, t.ndti_turbid, t.ndvi_drop], np.float32)


def fold_scene(blue: np.ndarray, green: np.ndarray, red: np.ndarray, nir: np.ndarray, swir16: Band20, scl: Band20,
               scale: np.ndarray, offset: np.ndarray, fold_baseline: dict[str, np.ndarray],
               state: dict[str, np.ndarray], day: int, t: Thresholds) -> bool:
    """Apply one scene's DNs (0 = no data) to ``state`` in place, as classify + apply_observation would.

    Returns whether any variable other than ``n_unclear`` and ``unclear_run`` changed (an
    anomaly or a withdrawal somewhere): when not, the others need no look at all.

    ``scale``/``offset`` convert DN to reflectance for blue, green, red, nir, swir16 (in that
    order); ``fold_baseline`` holds the int16 :data:`~geo_monitor.change.FOLD_VARS`, equal to the
    float baseline of :func:`~geo_monitor.change.dequantize_fold_baseline`.
    """
    return _fold(blue, green, red, nir,
          swir16.data, swir16.factor, swir16.off_r, swir16.off_c,
          scl.data, scl.factor, scl.off_r, scl.off_c,
          np.asarray(scale, np.float32), np.asarray(offset, np.float32),
          *(fold_baseline[name] for name in FOLD_VARS),
          *(state[name] for name in STATE_VARS),
          np.int16(day), _thresholds32(t), np.int64(t.confirm_after), np.int64(t.high_after),
          np.int64(t.withdraw_after), EVIDENCE_LUT)


#: What the first pass over a row found for each pixel (:func:`_classify_row`).
_UNCLEAR: Final = np.uint8(0)  # no observation: SCL, no data, cloud, haze or shadow
_NORMAL: Final = np.uint8(1)  # a clear look that cannot be an anomaly (no baseline, or no vegetation drop)
_CANDIDATE: Final = np.uint8(2)  # a clear look with a vegetation drop on an eligible pixel: test soil and water

# error_model="numpy": float division by zero gives inf/NaN as in numpy (the results are then
# replaced, as the reference does), instead of a Python exception check that blocks SIMD.


@njit(cache=True, nogil=True, error_model="numpy")
def _nd(a: np.float32, b: np.float32) -> np.float32:
    """normalized_difference for one pixel: NaN where a + b == 0."""
    total = a + b
    return np.float32((a - b) / total) if total != 0 else np.float32(np.nan)


@njit(cache=True, nogil=True, error_model="numpy")
def _base(q: np.int16) -> np.float32:
    """One quantised baseline value as float32 (NaN for no data), as dequantize_fold_baseline does."""
    return np.float32(np.float32(q) * FOLD_STEP) if q != FOLD_NODATA else np.float32(np.nan)


@njit(cache=True, nogil=True, error_model="numpy")
def _refl(dn: np.uint16, scale: np.float32, offset: np.float32) -> np.float32:
    return np.float32(np.float32(dn) * scale + offset) if dn != 0 else np.float32(np.nan)


@njit(cache=True, nogil=True, error_model="numpy")
def _classify_row(blue, green, red, nir, sw, evidence, q_blue, q_red, q_nir, q_swir16, q_ndvi, scale, offset, th,
                  kind):  # pragma: no cover - compiled
    """First pass over one row: which pixels are unclear, normal, or candidates (``kind``).

    Branch-free on purpose (``&`` rather than ``and``, selects rather than ifs) so that
    LLVM can run it on several pixels at once; the counters need branches and come after.
    """
    cloud_blue, haze_rise, soil_ratio, shadow_ratio = th[0], th[1], th[2], th[3]
    ndvi_drop_min = th[12]
    for j in range(blue.shape[0]):
        b = _refl(blue[j], scale[0], offset[0])
        g = _refl(green[j], scale[1], offset[1])
        r = _refl(red[j], scale[2], offset[2])
        n = _refl(nir[j], scale[3], offset[3])
        s = _refl(sw[j], scale[4], offset[4])
        # finite reflectance = a DN other than 0 (a present band converts to a finite number)
        usable = evidence[j] & (blue[j] != 0) & (red[j] != 0) & (nir[j] != 0) & (sw[j] != 0) & (b < cloud_blue)
        mndwi = _nd(g, s)
        blue_rise = np.float32(b - _base(q_blue[j]))
        red_rise = np.float32(r - _base(q_red[j]))
        hazy = (blue_rise > haze_rise) & (red_rise < np.float32(soil_ratio * blue_rise))
        shadow = ((n < np.float32(shadow_ratio * _base(q_nir[j])))
                  & (s < np.float32(shadow_ratio * _base(q_swir16[j]))) & (mndwi <= 0))
        clear = usable & ~hazy & ~shadow
        drop = np.float32(_base(q_ndvi[j]) - _nd(n, r))  # NaN (no candidate) where the baseline is FOLD_NODATA
        candidate = clear & (drop > ndvi_drop_min)
        kind[j] = np.uint8(candidate) + np.uint8(clear)


@njit(cache=True, nogil=True, error_model="numpy")
def _fold(blue, green, red, nir, sw16, f16, r16, c16, scl, fs, rs, cs, scale, offset,
          q_blue, q_red, q_nir, q_swir16, q_ndvi,
          n_unclear, unclear_run, consec, consec_normal, n_anom, n_bare, n_water, n_turbid, n_strict,
          run_start, first_detected, confirmed_at, high_at, last_anom, sum_ndvi_drop,
          day, th, confirm_after, high_after, withdraw_after, lut):  # pragma: no cover - compiled
    # Baseline in FOLD_VARS order and state in STATE_VARS order (fold_scene passes them positionally).
    bsi_bare, ndvi_bare_max, bare_bright, bsi_strict, ndvi_strict = th[4], th[5], th[6], th[7], th[8]
    mndwi_water, ndvi_water_max, ndti_turbid = th[9], th[10], th[11]
    three = np.float32(3.0)
    height, width = blue.shape
    # native column of each grid column, once per chunk (an integer division per pixel is slow)
    col16 = np.empty(width, np.int64)
    colsc = np.empty(width, np.int64)
    for j in range(width):
        col16[j] = (j + c16) // f16
        colsc[j] = (j + cs) // fs
    sw_row = np.empty(width, np.uint16)  # the row's swir16 and SCL evidence laid on the grid
    evidence_row = np.empty(width, np.bool_)
    kind = np.empty(width, np.uint8)
    changed = False
    for i in range(height):
        i16 = (i + r16) // f16
        isc = (i + rs) // fs
        for j in range(width):
            sw_row[j] = sw16[i16, col16[j]]
            evidence_row[j] = lut[scl[isc, colsc[j]]]
        _classify_row(blue[i], green[i], red[i], nir[i], sw_row, evidence_row, q_blue[i], q_red[i], q_nir[i],
                      q_swir16[i], q_ndvi[i], scale, offset, th, kind)
        for j in range(width):
            k = kind[j]
            if k == _UNCLEAR:  # no observation: only the unclear counters move
                n_unclear[i, j] += 1
                unclear_run[i, j] += 1
                continue
            if unclear_run[i, j] != 0:  # (an unconditional write would touch every page of the array)
                unclear_run[i, j] = 0
            anom = False
            if k == _CANDIDATE:  # most clear pixels keep their vegetation: test soil and water only here
                b = _refl(blue[i, j], scale[0], offset[0])
                g = _refl(green[i, j], scale[1], offset[1])
                r = _refl(red[i, j], scale[2], offset[2])
                n = _refl(nir[i, j], scale[3], offset[3])
                s = _refl(sw_row[j], scale[4], offset[4])
                ndvi = _nd(n, r)
                mndwi = _nd(g, s)
                water = mndwi > mndwi_water and ndvi < ndvi_water_max
                drop = np.float32(_base(q_ndvi[i, j]) - ndvi)
                bsi = _nd(s + r, n + b)
                bright = np.float32((b + g + r) / three) >= bare_bright
                bare = bsi > bsi_bare and ndvi < ndvi_bare_max and bright and not water
                anom = bare or water
            if anom:
                changed = True
                if consec[i, j] == 0:
                    run_start[i, j] = day
                consec[i, j] = min(consec[i, j] + 1, 255)
                consec_normal[i, j] = 0
                n_anom[i, j] += 1
                if bare:
                    n_bare[i, j] += 1
                if water:
                    n_water[i, j] += 1
                    if _nd(r, g) > ndti_turbid:
                        n_turbid[i, j] += 1
                if water or (bsi > bsi_strict and ndvi < ndvi_strict):
                    n_strict[i, j] += 1
                last_anom[i, j] = day
                sum_ndvi_drop[i, j] += drop
                if consec[i, j] >= confirm_after and confirmed_at[i, j] == 0:
                    confirmed_at[i, j] = day
                    first_detected[i, j] = run_start[i, j]
                if consec[i, j] >= high_after and high_at[i, j] == 0:
                    high_at[i, j] = day
            else:
                if consec[i, j] > 0:
                    changed = True
                    consec[i, j] = 0
                if confirmed_at[i, j] > 0:
                    changed = True
                    consec_normal[i, j] = min(consec_normal[i, j] + 1, 255)
                    if consec_normal[i, j] >= withdraw_after:
                        confirmed_at[i, j] = 0
                        high_at[i, j] = 0
                        first_detected[i, j] = 0
                        n_anom[i, j] = 0
                        n_bare[i, j] = 0
                        n_water[i, j] = 0
                        n_turbid[i, j] = 0
                        n_strict[i, j] = 0
                        sum_ndvi_drop[i, j] = 0
                        consec_normal[i, j] = 0
    return changed


def merge_unclear(batch: dict[str, np.ndarray], n_scenes: int,
                  previous: Callable[[str], np.ndarray | None]) -> dict[str, np.ndarray | None]:
    """:func:`geo_monitor.change.merge_unclear` (its reference) in one compiled pass, in place of ``batch``."""
    missed, run = batch["n_unclear"], batch["unclear_run"]
    merged: dict[str, np.ndarray | None] = {"n_unclear": missed if missed.any() else None, "unclear_run": run}
    continued = _any_equal(run, n_scenes)
    before_missed = previous("n_unclear") if merged["n_unclear"] is not None else None
    before_run = previous("unclear_run") if continued else None
    if before_missed is not None or before_run is not None:
        _merge(missed, run, before_missed if before_missed is not None else missed[:0, :0],
               before_run if before_run is not None else run[:0, :0], np.uint16(n_scenes))
    return merged


@njit(cache=True, nogil=True)
def _any_equal(values, target):  # pragma: no cover - compiled
    for v in values.flat:
        if v == target:
            return True
    return False


@njit(cache=True, nogil=True)
def _merge(missed, run, before_missed, before_run, n_scenes):  # pragma: no cover - compiled
    """In place: missed += before_missed; run += before_run where run == n_scenes (empty = nothing to add)."""
    add_missed, add_run = before_missed.size > 0, before_run.size > 0
    for i in range(missed.shape[0]):
        for j in range(missed.shape[1]):
            if add_missed:
                missed[i, j] = missed[i, j] + before_missed[i, j]
            if add_run and run[i, j] == n_scenes:
                run[i, j] = run[i, j] + before_run[i, j]


def warm_up() -> None:
    """Compile the kernel (or load it from numba's on-disk cache) now, on a 2 x 2 window."""
    tiny = np.ones((2, 2), np.uint16)
    fold = {name: np.zeros((2, 2), np.int16) for name in FOLD_VARS}
    fold_scene(tiny, tiny, tiny, tiny, Band20.of_grid(tiny), Band20.of_grid(np.zeros((2, 2), np.uint8)),
               np.ones(5, np.float32), np.zeros(5, np.float32), fold, empty_state((2, 2)), 1, DEFAULT_THRESHOLDS)
    batch = {name: np.ones((2, 2), np.uint16) for name in ("n_unclear", "unclear_run")}
    merge_unclear(batch, 1, lambda name: np.ones((2, 2), np.uint16))
