"""The compiled scene update equals the numpy reference (classify + apply_observation) bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from geo_monitor import change
from geo_monitor.bands import SCL
from geo_monitor.fold_kernel import Band20, fold_scene, merge_unclear

SCALE = np.float32(1e-4)
OFFSET = np.float32(-0.1)
#: DN (scale 1e-4, offset -0.1) of forest, soil, turbid pond, pasture, cloud, haze, shadow (blue, green, red, nir, swir16).
SPECTRA_DN = np.array([
    [1250, 1420, 1230, 3840, 2470],
    [1980, 2370, 2660, 3150, 3340],
    [1780, 2020, 2070, 1720, 1570],
    [1710, 1930, 1850, 3640, 2930],
    [5600, 5500, 5500, 5700, 4600],
    [1600, 1700, 1480, 3800, 2450],
    [1080, 1150, 1090, 1700, 1400],
], np.int32)
SCL_CODES = np.array([SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER, SCL.CLOUD_MEDIUM_PROBABILITY,
                      SCL.CLOUD_SHADOW, SCL.NO_DATA, SCL.THIN_CIRRUS, SCL.UNCLASSIFIED], np.uint8)


def _scene(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Blue, green, red, nir at 10 m, swir16 and SCL at 20 m: a mix of covers with noise, ties and gaps."""
    h, w = shape
    cover = rng.integers(0, len(SPECTRA_DN), (h, w))
    # pixels of one cover come in runs so that a pixel keeps a state across scenes now and then
    dn = SPECTRA_DN[cover] + rng.integers(-400, 400, (h, w, 5))
    dn[rng.random((h, w)) < 0.02] = 2600  # blue exactly at the cloud threshold after conversion
    dn = np.clip(dn, 1, 20000).astype(np.uint16)
    dn[rng.random((h, w, 5)) < 0.01] = 0  # no data in single bands
    h20, w20 = h // 2 + 1, w // 2 + 1
    swir16 = np.clip(SPECTRA_DN[rng.integers(0, len(SPECTRA_DN), (h20, w20)), 4] + rng.integers(-300, 300, (h20, w20)),
                     0, 20000).astype(np.uint16)
    scl = rng.choice(SCL_CODES, size=(h20, w20), p=[0.55, 0.15, 0.1, 0.05, 0.05, 0.03, 0.04, 0.03]).astype(np.uint8)
    return [dn[..., b] for b in range(4)], swir16, scl


def _upsampled(native: np.ndarray, shape: tuple[int, int], off_r: int, off_c: int) -> np.ndarray:
    full = np.repeat(np.repeat(native, 2, axis=0), 2, axis=1)
    return full[off_r:off_r + shape[0], off_c:off_c + shape[1]]


def _reference_observation(ten, swir16_grid, scl_grid) -> change.Observation:
    """What the numpy path made of the DNs (NaN for 0, scale and offset in float32)."""
    bands = [*ten, swir16_grid, swir16_grid]  # swir22 is not used by the tests; any array will do
    refl = np.stack([np.where(b == 0, np.nan, b * SCALE + OFFSET) for b in bands]).astype(np.float32)
    return change.Observation.from_stack(refl, scl_grid)


def _float_baseline(rng: np.random.Generator, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    forest = (SPECTRA_DN[0] * SCALE + OFFSET).astype(np.float32)
    base = {name: np.full(shape, forest[i], np.float32) * rng.uniform(0.9, 1.1, shape).astype(np.float32)
            for i, name in enumerate(("base_blue", "base_green", "base_red", "base_nir", "base_swir16"))}
    base["base_ndvi"] = ((base["base_nir"] - base["base_red"]) / (base["base_nir"] + base["base_red"])).astype(np.float32)
    base["base_eligible"] = (rng.random(shape) < 0.9).astype(np.float32)
    gaps = rng.random(shape) < 0.03  # no baseline
    for name in base:
        base[name][gaps] = np.nan if name != "base_eligible" else 0
    return base


def _baseline(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(what the kernel reads, what the reference reads): the quantised fold baseline and its floats."""
    fold = change.quantize_fold_baseline(_float_baseline(rng, shape))
    return fold, change.dequantize_fold_baseline(fold)


@pytest.mark.parametrize("off_r, off_c", [(0, 0), (1, 0), (1, 1)])
def test_kernel_equals_numpy_reference_over_many_scenes(off_r: int, off_c: int) -> None:
    rng = np.random.default_rng(20240607 + off_r + 2 * off_c)
    shape = (96, 80)
    fold, base = _baseline(rng, shape)
    fast, slow = change.empty_state(shape), change.empty_state(shape)
    n_clear, last_clear, days = np.zeros(shape, np.uint16), np.zeros(shape, np.int16), []  # kept the plain way
    # Long runs of the same cover per pixel: confirmations, high confidence and withdrawals all happen.
    plan = rng.integers(0, 3, shape)  # 0: mostly forest, 1: turns to soil, 2: turns to pond then regrows
    for k in range(14):
        ten, swir16, scl = _scene(rng, shape)
        if k >= 3:
            turned = (plan == 1) | ((plan == 2) & (k < 9))
            for b in range(4):
                ten[b][turned] = np.where(plan[turned] == 1, SPECTRA_DN[1, b], SPECTRA_DN[2, b]).astype(np.uint16)
        day = 3300 + 5 * k
        fold_scene(*ten, Band20(swir16, 2, off_r, off_c), Band20(scl, 2, off_r, off_c),
                   np.full(5, SCALE), np.full(5, OFFSET), fold, fast, day, change.DEFAULT_THRESHOLDS)
        o = _reference_observation(ten, _upsampled(swir16, shape, off_r, off_c), _upsampled(scl, shape, off_r, off_c))
        classified = change.classify(o, base)
        change.apply_observation(slow, classified, day)
        n_clear += classified.clear
        last_clear[classified.clear] = day
        days.append(day)
    for name in change.STATE_VARS:
        np.testing.assert_array_equal(fast[name], slow[name], err_msg=name)
    # the stored complement gives back the clear looks exactly
    decoded_n, decoded_last = change.clear_looks(fast, days)
    np.testing.assert_array_equal(decoded_n, n_clear)
    np.testing.assert_array_equal(decoded_last, last_clear)
    assert (n_clear < len(days)).any() and ((n_clear > 0) & (last_clear < day)).any()
    # the comparison means something only if every counter was exercised
    for name in ("n_anom", "n_water", "n_turbid", "n_bare", "n_strict", "confirmed_at", "high_at", "consec_normal"):
        assert slow[name].any(), name


def test_grid_aligned_bands_need_no_factor() -> None:
    rng = np.random.default_rng(3)
    shape = (32, 32)
    fold, _ = _baseline(rng, shape)
    ten, swir16, scl = _scene(rng, shape)
    sw, sc = _upsampled(swir16, shape, 0, 0), _upsampled(scl, shape, 0, 0)
    a, b = change.empty_state(shape), change.empty_state(shape)
    fold_scene(*ten, Band20(swir16, 2, 0, 0), Band20(scl, 2, 0, 0), np.full(5, SCALE), np.full(5, OFFSET), fold, a,
               3300, change.DEFAULT_THRESHOLDS)
    fold_scene(*ten, Band20.of_grid(sw.copy()), Band20.of_grid(sc.copy()), np.full(5, SCALE), np.full(5, OFFSET), fold,
               b, 3300, change.DEFAULT_THRESHOLDS)
    for name in change.STATE_VARS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert a["n_unclear"].any() and not a["n_unclear"].all()


def test_unchanged_forest_leaves_only_the_clear_counters() -> None:
    """Updates over stable forest seen clearly leave the whole state at zero: such chunks need no storage."""
    shape = (16, 16)
    base = _float_baseline(np.random.default_rng(1), shape)
    base = {name: np.where(np.isnan(v), np.nanmean(v), v).astype(np.float32) for name, v in base.items()}
    base["base_eligible"][:] = 1
    fold = change.quantize_fold_baseline(base)
    state = change.empty_state(shape)
    forest = [np.full(shape, SPECTRA_DN[0, b], np.uint16) for b in range(4)]
    swir = np.full((8, 8), SPECTRA_DN[0, 4], np.uint16)
    for k in range(5):
        fold_scene(*forest, Band20(swir, 2, 0, 0), Band20(np.full((8, 8), SCL.VEGETATION, np.uint8), 2, 0, 0),
                   np.full(5, SCALE), np.full(5, OFFSET), fold, state, 3300 + k, change.DEFAULT_THRESHOLDS)
    assert not any(state[n].any() for n in change.STATE_VARS)
    n_clear, last_clear = change.clear_looks(state, [3300 + k for k in range(5)])
    assert (n_clear == 5).all() and (last_clear == 3304).all()


@pytest.mark.parametrize("split", [1, 4, 6])
def test_folding_into_zeros_and_merging_equals_folding_into_the_stored_counters(split: int) -> None:
    """What a chunk task does with the unclear counters (never read before the scenes) is exact."""
    rng = np.random.default_rng(11 + split)
    shape = (64, 48)
    fold, _ = _baseline(rng, shape)
    scenes = [_scene(rng, shape) for _ in range(7)]

    def apply(state: dict[str, np.ndarray], first: int, last: int) -> None:
        for k in range(first, last):
            ten, swir16, scl = scenes[k]
            fold_scene(*ten, Band20(swir16, 2, 0, 0), Band20(scl, 2, 0, 0), np.full(5, SCALE), np.full(5, OFFSET),
                       fold, state, 3300 + k, change.DEFAULT_THRESHOLDS)

    whole, before = change.empty_state(shape), change.empty_state(shape)
    apply(whole, 0, len(scenes))
    apply(before, 0, split)
    batch = {name: np.zeros(shape, dtype) if name in change.UNCLEAR_VARS else before[name].copy()
             for name, dtype in change.STATE_VARS.items()}
    apply(batch, split, len(scenes))
    for merge in (change.merge_unclear, merge_unclear):  # the reference and the compiled one
        read: list[str] = []
        merged = merge({name: batch[name].copy() for name in change.UNCLEAR_VARS}, len(scenes) - split,
                       lambda name: read.append(name) or before[name])
        for name in change.UNCLEAR_VARS:
            np.testing.assert_array_equal(before[name] if merged[name] is None else merged[name], whole[name], name)
        assert read == list(change.UNCLEAR_VARS)  # these scenes missed some pixels in every look
        # a clear batch leaves n_unclear as stored and reads nothing
        clear = {name: np.zeros(shape, np.uint16) for name in change.UNCLEAR_VARS}
        assert merge(clear, 2, lambda name: pytest.fail(f"read {name}"))["n_unclear"] is None


def test_fold_baseline_keeps_one_dn_of_precision_and_marks_what_cannot_alert() -> None:
    rng = np.random.default_rng(5)
    base = _float_baseline(rng, (40, 40))
    back = change.dequantize_fold_baseline(change.quantize_fold_baseline(base))
    ok = base["base_eligible"] > 0
    for name in ("base_blue", "base_red", "base_nir", "base_swir16"):
        assert np.array_equal(np.isnan(back[name]), np.isnan(base[name]))
        assert np.nanmax(np.abs(back[name] - base[name])) <= 0.5e-4 + 1e-7
    # no baseline NDVI where the pixel may not alert: the update needs no separate flag
    assert np.array_equal(back["base_eligible"] > 0, ok & np.isfinite(base["base_ndvi"]))
    assert np.isnan(back["base_ndvi"][~ok]).all()
