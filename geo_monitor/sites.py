"""From per-pixel change state to candidate sites: regions, polygons and the features that score them.

Pure computation on whole-grid arrays (the state of one UTM grid) plus the
grid's affine transform; no I/O. Sites are found by hysteresis: pixels whose
change is confirmed (and survive a morphological opening, which removes
one- and two-pixel-wide lines such as roads) seed a site; pixels whose latest
clear observation was anomalous, connected to a seed, extend it (a growing
pit seen once so far). Pits a few tens of metres apart are one site.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from affine import Affine
from rasterio import features
from scipy import ndimage
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

#: Minimum mapping unit: 0.3 ha = 30 pixels of 10 m. Smaller openings are
#: below what 10 m imagery maps reliably under this much cloud (docs/method.md).
MMU_HA: Final[float] = 0.3
#: Pits closer than this are one site (pixels; 4 px: gaps up to ~40 m bridged). One crew
#: works pits a few tens of metres apart; farther apart they are reported separately.
MERGE_GAP_PX: Final[int] = 4
#: A baseline pixel wet in more than this share of observations is permanent water (rivers).
PERMANENT_WATER_SHARE: Final[float] = 0.5


@dataclass
class SiteFeatures:
    """What the scorer looks at; every value is physical and documented in docs/method.md."""

    area_ha: float
    core_px: int
    pond_px: int  # pixels seen as turbid water during the change, in pools not connected to the river
    bare_share: float
    water_share: float
    strict_share: float
    ndvi_drop: float
    river_distance_m: float  # to permanent water in the baseline (capped at WATER_SEARCH_PX pixels)
    river_contact_share: float  # share of the site's pixels within 20 m of permanent water
    river_extension_share: float  # share of the site that became water connected to the river (bank erosion, flood)
    growth_days: float  # spread (10th-90th percentile) of the pixels' first anomalous dates
    elongation: float  # long / short side of the minimum rotated rectangle
    fill: float  # site area / rectangle area (compact blobs ~0.7, lines low)
    confirming_obs: float  # median anomalous clear observations per core pixel


@dataclass
class Site:
    label: int
    geometry: BaseGeometry  # in the grid's CRS (UTM metres)
    anchor_xy: tuple[float, float]  # centre of the earliest-confirmed pixel (stable id)
    first_detected: int  # day index (change.EPOCH): first day one MMU of it was seen changed
    nominal_at: int  # first day one MMU of it was confirmed (0 = not yet)
    confirmed_at: int  # first day one MMU of it reached high confidence (0 = not yet)
    last_observed: int
    features: SiteFeatures
    pond_geometry: BaseGeometry | None


#: How far around a site permanent water is looked for (px). Beyond it the distance is reported as
#: this far: every score rule about rivers works within 1 km, and reading a window keeps memory bounded.
WATER_SEARCH_PX: Final[int] = 110

#: Reads a state or baseline variable over a window (``None`` = the whole grid) as a numpy array.
Reader = Callable[[str, "tuple[slice, slice] | None"], np.ndarray]


def dict_reader(arrays: Mapping[str, np.ndarray]) -> Reader:
    """A :data:`Reader` over in-memory arrays (tests, small grids)."""
    return lambda name, window: arrays[name] if window is None else arrays[name][window]


def permanent_water(water_share: np.ndarray) -> np.ndarray:
    return np.nan_to_num(water_share, nan=0.0) > PERMANENT_WATER_SHARE


#: Side of the coarse blocks used to find where anything changed (px); morphology runs only there.
ACTIVE_BLOCK_PX: Final[int] = 64


def find_sites(read: Reader, shape: tuple[int, int], transform: Affine, res_m: float = 10.0,
               changed: Sequence[tuple[slice, slice]] | None = None) -> list[Site]:
    """Candidate sites in one grid, in a deterministic order (by anchor).

    ``changed`` lists the windows outside which no pixel has an anomaly
    (``n_anom`` is 0: the pipeline knows which state chunks it stored);
    None means the whole grid. Memory: three full-grid boolean arrays plus,
    per area of change, its box's labels and each site's window; state
    variables are read window by window. Morphology and labelling run only
    in boxes around blocks where something changed (a tile is mostly
    unchanged forest).
    """
    if changed is not None and not changed:
        return []  # no anomaly anywhere: nothing to read
    extent = np.zeros(shape, bool)
    seed_candidates = np.zeros(shape, bool)
    for window in ([(slice(0, shape[0]), slice(0, shape[1]))] if changed is None else changed):
        confirmed = read("confirmed_at", window) > 0
        current = (read("consec", window) >= 1) & (read("n_anom", window) >= 1)  # latest clear look was anomalous
        # A seed is confirmed change, or change seen once so far that was mostly soil or water:
        # under Amazon cloud a new pit may have one clear look before the analyst needs it
        # (such sites get low confidence).
        seed_candidates[window] = confirmed | (current & (read("n_strict", window) >= 1))
        extent[window] = confirmed | current
    mmu_px = int(round(MMU_HA * 10_000 / res_m**2))
    sites: list[Site] = []
    for box in _active_boxes(extent, ACTIVE_BLOCK_PX):
        sites += _sites_in_box(box, extent[box], seed_candidates[box], read, shape, transform, res_m, mmu_px)
    return sorted(sites, key=lambda s: s.anchor_xy)


def _active_boxes(active: np.ndarray, block: int) -> list[tuple[slice, slice]]:
    """Boxes (one block of margin around each group of touching blocks with any active pixel).

    The margin is far wider than the opening and closing reach, so running
    them per box gives exactly what running them on the whole grid gives.
    """
    h, w = active.shape
    bh, bw = -(-h // block), -(-w // block)
    padded = np.zeros((bh * block, bw * block), bool)
    padded[:h, :w] = active
    coarse = padded.reshape(bh, block, bw, block).any(axis=(1, 3))
    if not coarse.any():
        return []
    labels, _ = ndimage.label(ndimage.binary_dilation(coarse, structure=np.ones((3, 3), bool)),
                              structure=np.ones((3, 3), bool))
    boxes = []
    for rows, cols in ndimage.find_objects(labels):
        boxes.append((slice(rows.start * block, min(rows.stop * block, h)),
                      slice(cols.start * block, min(cols.stop * block, w))))
    return boxes


def _sites_in_box(box: tuple[slice, slice], extent: np.ndarray, seed_candidates: np.ndarray, read: Reader,
                  shape: tuple[int, int], transform: Affine, res_m: float, mmu_px: int) -> list[Site]:
    seeds = ndimage.binary_opening(seed_candidates, structure=np.ones((3, 3), bool))
    grouped = ndimage.binary_closing(extent | seeds, structure=np.ones((3, 3), bool), iterations=MERGE_GAP_PX)
    labels, n = ndimage.label(grouped, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    seed_count = ndimage.sum_labels(seeds, labels, index=np.arange(1, n + 1))
    windows = ndimage.find_objects(labels)
    r0, c0 = box[0].start, box[1].start
    found = []
    for lab in np.nonzero(seed_count >= mmu_px)[0] + 1:
        win = windows[lab - 1]
        member = (labels[win] == lab) & extent[win]
        grid_win = (slice(win[0].start + r0, win[0].stop + r0), slice(win[1].start + c0, win[1].stop + c0))
        site = _site(int(lab), grid_win, member, member & seeds[win], read, shape, transform, res_m, mmu_px)
        if site is not None:
            found.append(site)
    return found


def _water_around(read: Reader, win: tuple[slice, slice], shape: tuple[int, int], res_m: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Within ``win``: pixels within 20 m of permanent water, and distance to it (m, capped at the search radius)."""
    m = WATER_SEARCH_PX
    r0, r1 = max(win[0].start - m, 0), min(win[0].stop + m, shape[0])
    c0, c1 = max(win[1].start - m, 0), min(win[1].stop + m, shape[1])
    water = permanent_water(read("base_water_share", (slice(r0, r1), slice(c0, c1))))
    inner = (slice(win[0].start - r0, win[0].stop - r0), slice(win[1].start - c0, win[1].stop - c0))
    near = ndimage.binary_dilation(water, iterations=2)[inner]
    if not water.any():
        return near, np.full(near.shape, m * res_m, np.float32)
    dist = np.minimum(ndimage.distance_transform_edt(~water) * res_m, m * res_m)[inner]
    return near, dist.astype(np.float32)


def _site(lab: int, win: tuple[slice, slice], member: np.ndarray, core: np.ndarray, read: Reader,
          shape: tuple[int, int], transform: Affine, res_m: float, mmu_px: int) -> Site | None:
    if member.sum() < mmu_px:
        return None
    s = {name: read(name, win) for name in _SITE_VARS}
    near_water, water_dist_m = _water_around(read, win, shape, res_m)
    r0, c0 = win[0].start, win[1].start
    win_transform = transform * Affine.translation(c0, r0)
    geometry = _polygonize(member, win_transform)
    wet = member & (s["n_water"] >= 1)
    ponds, river_extension = _split_water(wet & (s["n_turbid"] >= 1), wet, near_water)
    pond_geometry = _polygonize(ponds, win_transform) if ponds.any() else None
    first_days = np.where(s["run_start"] > 0, s["run_start"], s["first_detected"])[member]
    first_days = first_days[first_days > 0]
    conf_days = s["confirmed_at"][core]
    anchor_idx = np.lexsort((np.nonzero(core)[1], np.nonzero(core)[0], conf_days))[0]
    ar, ac = np.nonzero(core)[0][anchor_idx], np.nonzero(core)[1][anchor_idx]
    anchor = win_transform * (ac + 0.5, ar + 0.5)
    feats = SiteFeatures(
        area_ha=float(geometry.area / 10_000),
        core_px=int(core.sum()),
        pond_px=int(ponds.sum()),
        bare_share=float((s["n_bare"][member] > 0).mean()),
        water_share=float((s["n_water"][member] > 0).mean()),
        strict_share=float((s["n_strict"][member] > 0).mean()),
        ndvi_drop=float(np.median(s["sum_ndvi_drop"][core] / np.maximum(s["n_anom"][core], 1))),
        river_distance_m=float(water_dist_m[member].min()),
        river_contact_share=float(near_water[member].mean()),
        river_extension_share=float(river_extension.sum() / member.sum()),
        growth_days=float(np.percentile(first_days, 90) - np.percentile(first_days, 10)) if first_days.size else 0.0,
        elongation=_elongation(geometry),
        fill=float(geometry.area / max(geometry.minimum_rotated_rectangle.area, 1e-9)),
        confirming_obs=float(np.median(s["n_anom"][core])),
    )
    return Site(
        label=lab,
        geometry=geometry,
        anchor_xy=(float(anchor[0]), float(anchor[1])),
        first_detected=_mappable_day(first_days, mmu_px) or int(first_days.min(initial=0)),
        nominal_at=_mappable_day(conf_days[conf_days > 0], mmu_px),
        confirmed_at=_mappable_day(s["high_at"][core][s["high_at"][core] > 0], mmu_px),
        last_observed=int(s["last_anom"][member].max()),
        features=feats,
        pond_geometry=pond_geometry,
    )


#: State variables a site's features are computed from (read over its window only).
_SITE_VARS: Final[tuple[str, ...]] = (
    "n_water", "n_turbid", "n_bare", "n_strict", "n_anom", "run_start", "first_detected", "confirmed_at",
    "high_at", "last_anom", "sum_ndvi_drop",
)


def _split_water(turbid: np.ndarray, wet: np.ndarray, near_river: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turbid pools standing apart from the river (ponds), and new water joined to it (river extension)."""
    labels, n = ndimage.label(wet, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros_like(wet), np.zeros_like(wet)
    touching = np.unique(labels[near_river & wet])
    joined = np.isin(labels, touching[touching > 0])
    return turbid & ~joined, joined


def _mappable_day(days: np.ndarray, mmu_px: int) -> int:
    """First day by which at least one MMU of pixels showed it (0 if never): robust to a stray early pixel."""
    if days.size < mmu_px:
        return 0
    ordered = np.sort(days)
    return int(ordered[mmu_px - 1])


def _polygonize(mask: np.ndarray, transform: Affine) -> BaseGeometry:
    polys = [shape(g) for g, v in features.shapes(mask.astype(np.uint8), mask=mask, transform=transform) if v == 1]
    return unary_union(polys)


def _elongation(geometry: BaseGeometry) -> float:
    rect = geometry.minimum_rotated_rectangle
    xs, ys = rect.exterior.coords.xy if hasattr(rect, "exterior") else ([0, 1], [0, 1])
    sides = [np.hypot(xs[i + 1] - xs[i], ys[i + 1] - ys[i]) for i in range(min(2, len(xs) - 1))]
    if len(sides) < 2 or min(sides) == 0:
        return float("inf")
    return float(max(sides) / min(sides))
