"""Per-pixel change state: baseline, observation tests and the scene-by-scene update (pure numpy).

The method (docs/method.md explains the choices):

1. A **baseline** per pixel from clear observations before the monitoring
   start: medians of the bands and indices, and how often the pixel was seen
   bare or wet. Only pixels that were stably vegetated (green, rarely bare,
   rarely wet) can raise a mining alert: fields in a crop cycle, river bars,
   old scars and flood plains are excluded here, once.
2. Each new scene gives, per pixel, either no observation (SCL says it is
   never evidence, or our own guard finds cloud, haze, thin cloud edges or
   shadow that SCL missed), a **normal** observation, or an **anomaly**: the
   vegetation is gone and bare soil or open water is there instead.
3. **Counters** turn anomalies into confirmed change: consecutive anomalous
   clear observations (missing observations do not break a run), the first
   anomalous date of the current run, the date the run reached confirmation,
   and how many of the anomalies were bare, wet or turbid. Two consecutive
   normal observations after confirmation withdraw it (regrowth, receding
   flood water).

The scene update runs in :mod:`geo_monitor.fold_kernel` (compiled, one pass
per pixel); :func:`classify` + :func:`apply_observation` here are its
readable reference, and the tests hold the two equal.

Everything here works on arrays of one spatial chunk; the Dask pipeline maps
it over chunks. Days are integers: days since 2015-01-01 (Sentinel-2's
first year), 0 meaning "never".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date
from typing import Final

import numpy as np

from geo_monitor import indices
from geo_monitor.bands import REFLECTANCE_BANDS, SCL_NEVER_EVIDENCE

EPOCH: Final[date] = date(2015, 1, 1)


def day_index(d: date) -> int:
    """Days since :data:`EPOCH` (>= 1 for any Sentinel-2 date)."""
    return (d - EPOCH).days


def day_from_index(i: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + int(i))


@dataclass(frozen=True)
class Thresholds:
    """Every number the per-pixel tests use, with why (see docs/method.md)."""

    # -- own cloud / haze / shadow guard (what SCL misses)
    #: Blue reflectance above which a pixel is cloud whatever SCL says: bright
    #: soils stay below ~0.15 in blue, thick cloud is 0.3-0.5.
    cloud_blue: float = 0.16
    #: Blue rise over the baseline that starts to look like thin cloud or haze...
    haze_blue_rise: float = 0.02
    #: ...unless red rose at least this much more than blue: soils redden, cloud
    #: and haze are flat or bluish (red rise / blue rise ~1.0 and < 1.0).
    soil_red_blue_rise_ratio: float = 1.25
    #: Shadow: NIR and SWIR both fall below this share of the baseline while the
    #: pixel is not water (water darkens NIR and SWIR too, but has MNDWI > 0).
    shadow_ratio: float = 0.6

    # -- baseline eligibility
    #: The baseline must be green: forest NDVI ~0.8, pasture ~0.5.
    baseline_min_ndvi: float = 0.55
    #: Pixels bare or wet in more than this share of baseline observations are
    #: fields in a cycle, bars, scars or flood plains: not eligible.
    baseline_max_bare_share: float = 0.10
    baseline_max_water_share: float = 0.10
    #: Fewer clear baseline observations than this: no reliable baseline.
    baseline_min_obs: int = 3

    # -- anomaly tests
    #: NDVI drop from the baseline median that counts as vegetation loss.
    ndvi_drop: float = 0.25
    #: Bare ground: BSI above this, NDVI below ndvi_bare_max, and bright enough
    #: to be soil rather than char or shadow. Set so that a 10 m pixel about
    #: half soil, half forest (the edge of every pit) still counts, while
    #: pasture (BSI ~ -0.09, NDVI ~0.5) does not.
    bsi_bare: float = -0.06
    ndvi_bare_max: float = 0.50
    bare_min_brightness: float = 0.06
    #: Strict bare soil: a pixel mostly soil (> ~70 %). Sites need some of these.
    bsi_bare_strict: float = 0.02
    ndvi_bare_strict: float = 0.35
    #: Open water: MNDWI above this with NDVI below ndvi_water_max.
    mndwi_water: float = 0.10
    ndvi_water_max: float = 0.15
    #: Turbid water: NDTI above this (sediment raises red relative to green).
    ndti_turbid: float = -0.05

    # -- confirmation
    #: Consecutive anomalous clear observations that confirm a change.
    confirm_after: int = 2
    #: Consecutive anomalous clear observations for high confidence.
    high_after: int = 3
    #: Consecutive normal clear observations that withdraw a confirmation.
    withdraw_after: int = 2


DEFAULT_THRESHOLDS: Final[Thresholds] = Thresholds()

#: Baseline variables (float32, per pixel).
BASELINE_VARS: Final[tuple[str, ...]] = (
    "base_blue", "base_red", "base_nir", "base_swir16", "base_ndvi", "base_bsi", "base_mndwi",
    "base_bare_share", "base_water_share", "base_n_obs", "base_eligible",
)
#: What a scene update reads of the baseline, quantised to int16 (name -> baseline variable).
#: A scene update reads these for every pixel of every scene, so they are kept small: steps
#: of :data:`FOLD_STEP` (one Sentinel-2 DN of reflectance, 1e-4 of NDVI), :data:`FOLD_NODATA`
#: where there is no baseline, and ``fold_ndvi`` also where the pixel is not eligible (that is
#: how a scene update knows: no baseline NDVI, no anomaly). The float32 ``base_*`` variables
#: stay for sites and diagnosis.
FOLD_VARS: Final[dict[str, str]] = {"fold_blue": "base_blue", "fold_red": "base_red", "fold_nir": "base_nir",
                                    "fold_swir16": "base_swir16", "fold_ndvi": "base_ndvi"}
FOLD_STEP: Final = np.float32(1e-4)
FOLD_NODATA: Final = np.int16(-32768)

#: Change-state variables and their dtypes.
STATE_VARS: Final[dict[str, str]] = {
    # Clear looks are kept as what an unchanged, cloud-free pixel leaves at 0 (so its chunks need
    # no storage): n_clear = scenes applied - n_unclear, and the last clear look was unclear_run
    # scenes before the last one applied (see clear_looks).
    "n_unclear": "uint16",  # scenes applied since the monitoring start that gave no clear look here
    "unclear_run": "uint16",  # scenes applied since the last clear look (all of them if never clear)
    "consec": "uint8",  # current run of anomalous clear observations
    "consec_normal": "uint8",  # normal clear observations since the last anomaly of a confirmed pixel
    "n_anom": "uint16",
    "n_bare": "uint16",
    "n_water": "uint16",
    "n_turbid": "uint16",
    "n_strict": "uint16",  # anomalies that were mostly soil or open water
    "run_start": "int16",  # first anomalous day of the current run
    "first_detected": "int16",  # first anomalous day of the run that confirmed
    "confirmed_at": "int16",  # day the run reached confirmation (confirm_after looks)
    "high_at": "int16",  # day the run reached high confidence (high_after looks)
    "last_anom": "int16",
    "sum_ndvi_drop": "float32",
}


def empty_state(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    return {name: np.zeros(shape, dtype) for name, dtype in STATE_VARS.items()}


#: The state variables a scene update folds from zero and merges afterwards (see merge_unclear).
UNCLEAR_VARS: Final[tuple[str, ...]] = ("n_unclear", "unclear_run")


def merge_unclear(batch: dict[str, np.ndarray], n_scenes: int,
                  previous: Callable[[str], np.ndarray | None]) -> dict[str, np.ndarray | None]:
    """The unclear counters after ``n_scenes`` scenes, from those scenes folded into zeros (``batch``).

    Equal to folding the scenes into the previous counters, which ``previous(name)`` reads
    (None: all zero). Called only when needed: a counter the scenes left alone comes back as
    None (unchanged, keep what is stored); ``previous`` is read only where a scene missed a
    pixel (n_unclear) or missed it in every scene (unclear_run: the run goes on from before).
    """
    merged: dict[str, np.ndarray | None] = {}
    missed = batch["n_unclear"]
    if not missed.any():
        merged["n_unclear"] = None
    else:
        before = previous("n_unclear")
        merged["n_unclear"] = missed if before is None else (before + missed).astype(missed.dtype)
    run = batch["unclear_run"]
    continued = run == n_scenes  # no clear look in these scenes: the run from before goes on
    before = previous("unclear_run") if continued.any() else None
    merged["unclear_run"] = run if before is None else np.where(continued, before + run, run).astype(run.dtype)
    return merged


def clear_looks(state: dict[str, np.ndarray], applied_days: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Clear looks per pixel (count, and day of the last one; 0 = never) from the stored counters.

    ``applied_days`` are the days of the scenes applied to the state, in the order they were
    applied (a state version records them). The state keeps the complement of the clear looks
    (:data:`STATE_VARS`) because that is 0 wherever every scene saw the pixel clearly.
    """
    looks = len(applied_days)
    n_clear = (looks - state["n_unclear"].astype(np.int64)).astype(np.uint16)
    days = np.asarray([0, *applied_days], np.int16)  # index 0: no clear look yet
    last = looks - state["unclear_run"].astype(np.int64)  # 1-based position of the last clear look
    return n_clear, days[np.where(n_clear > 0, np.clip(last, 0, looks), 0)]


_EVIDENCE_LUT: Final[np.ndarray] = np.array([code not in SCL_NEVER_EVIDENCE for code in range(256)], bool)


def evidence_mask(scl: np.ndarray) -> np.ndarray:
    """True where SCL allows the pixel as evidence (classes 0, 1, 3, 8, 9, 10 never are)."""
    return _EVIDENCE_LUT[scl.astype(np.uint8, copy=False)]


@dataclass
class Observation:
    """One scene over one chunk: reflectance bands (float32, NaN = no data) and SCL."""

    blue: np.ndarray
    green: np.ndarray
    red: np.ndarray
    nir: np.ndarray
    swir16: np.ndarray
    swir22: np.ndarray
    scl: np.ndarray

    @classmethod
    def from_stack(cls, refl: np.ndarray, scl: np.ndarray) -> Observation:
        """From a (6, y, x) array in REFLECTANCE_BANDS order and a (y, x) SCL."""
        return cls(*(refl[i] for i in range(len(REFLECTANCE_BANDS))), scl=scl)

    def usable(self, t: Thresholds) -> np.ndarray:
        """SCL allows it, all bands present, and not obviously cloud."""
        finite = np.isfinite(self.blue) & np.isfinite(self.red) & np.isfinite(self.nir) & np.isfinite(self.swir16)
        return evidence_mask(self.scl) & finite & (self.blue < t.cloud_blue)


def compute_baseline(observations: list[Observation], t: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, np.ndarray]:
    """Per-pixel medians and bare/wet shares over clear baseline observations.

    Only SCL and the absolute cloud test are applied here (no baseline exists
    yet to test haze against); the median shrugs off the few contaminated
    observations that remain.
    """
    shape = observations[0].scl.shape if observations else (0, 0)
    if not observations:
        empty = {name: np.full(shape, np.nan, np.float32) for name in BASELINE_VARS}
        empty["base_eligible"][:] = 0
        return empty
    usable = np.stack([o.usable(t) for o in observations])
    n_obs = usable.sum(axis=0)

    def median(values: list[np.ndarray]) -> np.ndarray:
        stack = np.where(usable, np.stack(values), np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: no baseline, NaN
            return np.nanmedian(stack, axis=0).astype(np.float32)

    ndvi = [indices.ndvi(o.nir, o.red) for o in observations]
    bsi = [indices.bsi(o.blue, o.red, o.nir, o.swir16) for o in observations]
    mndwi = [indices.mndwi(o.green, o.swir16) for o in observations]
    wet = np.stack([_is_water(n, m, t) for n, m in zip(ndvi, mndwi)]) & usable
    bare = np.stack([_is_bare(o, n, b, t) for o, n, b in zip(observations, ndvi, bsi)]) & usable & ~wet
    with np.errstate(all="ignore"):
        denom = np.maximum(n_obs, 1)
        base = {
            "base_blue": median([o.blue for o in observations]),
            "base_red": median([o.red for o in observations]),
            "base_nir": median([o.nir for o in observations]),
            "base_swir16": median([o.swir16 for o in observations]),
            "base_ndvi": median(ndvi),
            "base_bsi": median(bsi),
            "base_mndwi": median(mndwi),
            "base_bare_share": (bare.sum(axis=0) / denom).astype(np.float32),
            "base_water_share": (wet.sum(axis=0) / denom).astype(np.float32),
            "base_n_obs": n_obs.astype(np.float32),
        }
    base["base_eligible"] = eligible(base, t).astype(np.float32)
    return base


def quantize_fold_baseline(baseline: dict[str, np.ndarray], t: Thresholds = DEFAULT_THRESHOLDS
                           ) -> dict[str, np.ndarray]:
    """The int16 :data:`FOLD_VARS` of a float baseline (see there)."""
    ok = eligible(baseline, t)
    out = {}
    for fold_name, name in FOLD_VARS.items():
        values = baseline[name] if fold_name != "fold_ndvi" else np.where(ok, baseline[name], np.nan)
        with np.errstate(invalid="ignore"):
            steps = np.round(values.astype(np.float64) / float(FOLD_STEP))
            out[fold_name] = np.where(np.isfinite(steps), np.clip(steps, -32767, 32767), FOLD_NODATA).astype(np.int16)
    return out


def dequantize_fold_baseline(fold: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float baseline a scene update works with, as :func:`classify` takes it (with ``base_eligible``)."""
    base = {name: np.where(fold[fold_name] == FOLD_NODATA, np.float32(np.nan),
                           fold[fold_name].astype(np.float32) * FOLD_STEP).astype(np.float32)
            for fold_name, name in FOLD_VARS.items()}
    base["base_eligible"] = (fold["fold_ndvi"] != FOLD_NODATA).astype(np.float32)
    return base


def eligible(baseline: dict[str, np.ndarray], t: Thresholds = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Pixels whose baseline was stably vegetated: the only ones that may raise a mining alert."""
    if "base_eligible" in baseline:  # computed once with the baseline
        return baseline["base_eligible"] > 0
    with np.errstate(invalid="ignore"):
        return (
            (baseline["base_n_obs"] >= t.baseline_min_obs)
            & (baseline["base_ndvi"] >= t.baseline_min_ndvi)
            & (baseline["base_bare_share"] <= t.baseline_max_bare_share)
            & (baseline["base_water_share"] <= t.baseline_max_water_share)
        )


def _is_bare(o: Observation, ndvi: np.ndarray, bsi: np.ndarray, t: Thresholds) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        bright = indices.visible_brightness(o.blue, o.green, o.red) >= t.bare_min_brightness
        return (bsi > t.bsi_bare) & (ndvi < t.ndvi_bare_max) & bright


def _is_water(ndvi: np.ndarray, mndwi: np.ndarray, t: Thresholds) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (mndwi > t.mndwi_water) & (ndvi < t.ndvi_water_max)


@dataclass
class Classified:
    """What one observation says about each pixel."""

    clear: np.ndarray  # usable and not caught by our own guard
    anomaly: np.ndarray  # clear, eligible, vegetation gone, bare or wet instead
    bare: np.ndarray
    water: np.ndarray
    turbid: np.ndarray
    strict: np.ndarray  # anomaly and mostly soil (or open water)
    ndvi_drop: np.ndarray


def classify(o: Observation, baseline: dict[str, np.ndarray], t: Thresholds = DEFAULT_THRESHOLDS) -> Classified:
    """Test one observation against the baseline (see the module docstring)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = indices.ndvi(o.nir, o.red)
        bsi = indices.bsi(o.blue, o.red, o.nir, o.swir16)
        mndwi = indices.mndwi(o.green, o.swir16)
        water = _is_water(ndvi, mndwi, t)
        blue_rise = o.blue - baseline["base_blue"]
        red_rise = o.red - baseline["base_red"]
        hazy = (blue_rise > t.haze_blue_rise) & (red_rise < t.soil_red_blue_rise_ratio * blue_rise)
        shadow = ((o.nir < t.shadow_ratio * baseline["base_nir"])
                  & (o.swir16 < t.shadow_ratio * baseline["base_swir16"]) & (mndwi <= 0))
        clear = o.usable(t) & ~hazy & ~shadow
        drop = baseline["base_ndvi"] - ndvi
        water &= clear
        bare = _is_bare(o, ndvi, bsi, t) & clear & ~water  # turbid water is bright too: water wins
        turbid = water & (indices.ndti(o.red, o.green) > t.ndti_turbid)
        anomaly = clear & eligible(baseline, t) & (drop > t.ndvi_drop) & (bare | water)
        strict = anomaly & (water | ((bsi > t.bsi_bare_strict) & (ndvi < t.ndvi_bare_strict)))
    return Classified(clear, anomaly, bare, water, turbid, strict, np.where(anomaly, drop, 0).astype(np.float32))


def apply_observation(state: dict[str, np.ndarray], c: Classified, day: int,
                      t: Thresholds = DEFAULT_THRESHOLDS) -> None:
    """Advance the counters in place by one classified observation taken on ``day``."""
    clear, anom = c.clear, c.anomaly
    normal = clear & ~anom
    s = state
    s["n_unclear"] += ~clear
    s["unclear_run"][~clear] += 1
    s["unclear_run"][clear] = 0
    starting = anom & (s["consec"] == 0)
    s["run_start"][starting] = day
    s["consec"][anom] = np.minimum(s["consec"][anom].astype(np.int32) + 1, 255)
    s["consec"][normal] = 0
    s["consec_normal"][anom] = 0
    # Normal looks only matter once a change is confirmed (an anomaly resets the count and
    # confirming takes anomalies): counting them only there keeps the state of unchanged
    # pixels all zero, so their chunks need no storage (docs/performance.md).
    counting = normal & (s["confirmed_at"] > 0)
    s["consec_normal"][counting] = np.minimum(s["consec_normal"][counting].astype(np.int32) + 1, 255)
    s["n_anom"] += anom
    s["n_bare"] += anom & c.bare
    s["n_water"] += anom & c.water
    s["n_turbid"] += anom & c.turbid
    s["n_strict"] += c.strict
    s["last_anom"][anom] = day
    s["sum_ndvi_drop"] += c.ndvi_drop
    confirming = anom & (s["consec"] >= t.confirm_after) & (s["confirmed_at"] == 0)
    s["confirmed_at"][confirming] = day
    s["first_detected"][confirming] = s["run_start"][confirming]
    high = anom & (s["consec"] >= t.high_after) & (s["high_at"] == 0)
    s["high_at"][high] = day
    withdrawn = (s["confirmed_at"] > 0) & (s["consec_normal"] >= t.withdraw_after)
    for name in ("confirmed_at", "high_at", "first_detected", "n_anom", "n_bare", "n_water", "n_turbid", "n_strict"):
        s[name][withdrawn] = 0
    s["sum_ndvi_drop"][withdrawn] = 0
    s["consec_normal"][withdrawn] = 0


def thresholds_record(t: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, float]:
    """Thresholds as a dict, for provenance and the state's attributes."""
    return {f.name: getattr(t, f.name) for f in fields(t)}
