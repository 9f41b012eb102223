"""The synthetic landscape and what happens on it over time (SYNTHETIC).

Pure computation: from an :class:`~sample_data.areas.AreaSpec` this builds a
:class:`Scenario` — terrain, a meandering river, the land-cover mosaic, the
context regions and a list of :class:`Event` s (new mines, a legal mine, an
old scar and the decoys) — and answers ``cover_at(day)``: the fraction of
every land cover in every 10 m pixel on that day. Nothing here knows about
clouds, files or STAC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable

import numpy as np
from scipy import ndimage

from sample_data.areas import AreaSpec
from sample_data.fields import distance_px, power_law_noise, slope_deg, smooth_mask, to_unit_rank
from sample_data.spectra import N_COVERS, Cover

Window = tuple[slice, slice]


class PlacementError(RuntimeError):
    """The random layout left no room for a required event."""



def day_number(d: date) -> int:
    return d.toordinal()


def smoothstep(x: np.ndarray | float) -> np.ndarray | float:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def paint(cover: np.ndarray, window: Window, fraction: np.ndarray, cls: Cover) -> None:
    """Replace ``fraction`` of every pixel's current mixture in ``window`` by cover ``cls``."""
    sub = cover[(slice(None), *window)]
    sub *= 1.0 - fraction
    sub[cls] += fraction


@dataclass
class Patch:
    """A soft mask (0..1 fractions) in a window of the grid."""

    window: Window
    fraction: np.ndarray

    @property
    def footprint(self) -> np.ndarray:
        return self.fraction > 0.5


@dataclass
class Event:
    """Something that happens on the ground: a site for the ground truth and a painter."""

    name: str
    kind: str  # ground-truth kind: mining, old_mining, agriculture, ...
    start: date
    painter: Callable[[np.ndarray, int], None]
    #: Final extent (bool, full grid) used for the ground-truth polygon.
    footprint: np.ndarray
    legality: str | None = None  # expected legality for mining sites
    notes: str = ""


@dataclass
class Terrain:
    dem: np.ndarray
    slope: np.ndarray
    texture: np.ndarray  # static brightness texture, std ~1
    canopy: np.ndarray  # static NIR texture of vegetation, std ~1


@dataclass
class River:
    centerline: np.ndarray  # (N, 2) row, col points
    distance: np.ndarray  # px from centerline
    width_px: float
    name: str


@dataclass
class Scenario:
    spec: AreaSpec
    terrain: Terrain
    river: River
    tributary: River
    base_cover: np.ndarray  # (N_COVERS, H, W), before seasonal water and events
    regions: dict[str, np.ndarray]  # context masks: protected, indigenous, concession_*, province_a
    events: list[Event] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return self.base_cover.shape[1:]

    def river_width_px(self, day: int) -> float:
        """Water level follows the season: high March–July, low December–February."""
        doy = date.fromordinal(day).timetuple().tm_yday
        return self.river.width_px * (1.0 + 0.18 * np.sin(2 * np.pi * (doy - 60) / 365.0))

    def cover_at(self, day: int) -> np.ndarray:
        """Fractions of every cover (N_COVERS, H, W), float32, summing to 1 in each pixel."""
        cover = self.base_cover.copy()
        width = self.river_width_px(day)
        low_water = self.river.distance < self.river.width_px * 0.82 / 2
        wet = smooth_mask(self.river.distance < width / 2, 0.6)
        # bars exposed at low water, inside the high-water channel
        bars = smooth_mask((self.river.distance < self.river.width_px * 1.18 / 2) & ~low_water, 0.6) * (1 - wet)
        full = (slice(None), slice(None))
        paint(cover, full, bars, Cover.SAND)
        paint(cover, full, wet, Cover.RIVER)
        paint(cover, full, smooth_mask(self.tributary.distance < self.tributary.width_px / 2, 0.5), Cover.RIVER)
        for event in self.events:
            event.painter(cover, day)
        return cover


# --------------------------------------------------------------------------- geometry helpers


def _blob(rng: np.random.Generator, shape: tuple[int, int], center: tuple[float, float],
          radii: tuple[float, float], angle: float, roughness: float = 0.25) -> Patch:
    """An irregular ellipse, fractions softened along its edge."""
    h, w = shape
    ry, rx = radii
    margin = int(max(ry, rx) * 1.5) + 3
    r0, r1 = max(int(center[0]) - margin, 0), min(int(center[0]) + margin, h)
    c0, c1 = max(int(center[1]) - margin, 0), min(int(center[1]) + margin, w)
    if r1 - r0 < 4 or c1 - c0 < 4:
        raise ValueError("blob outside the grid")
    rows, cols = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    dy, dx = rows - center[0], cols - center[1]
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = (dx * ca + dy * sa) / rx, (-dx * sa + dy * ca) / ry
    d = np.sqrt(u * u + v * v)
    wobble = power_law_noise(rng, d.shape, beta=2.5) * roughness
    return Patch((slice(r0, r1), slice(c0, c1)), smooth_mask(d + wobble < 1.0, 0.7))


def _rect(shape: tuple[int, int], center: tuple[float, float], half: tuple[float, float],
          angle: float, soft: float = 0.6) -> Patch:
    """A rotated rectangle (fields and concessions of cleared land are straight-edged)."""
    h, w = shape
    margin = int(np.hypot(*half)) + 3
    r0, r1 = max(int(center[0]) - margin, 0), min(int(center[0]) + margin, h)
    c0, c1 = max(int(center[1]) - margin, 0), min(int(center[1]) + margin, w)
    rows, cols = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    dy, dx = rows - center[0], cols - center[1]
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = dx * ca + dy * sa, -dx * sa + dy * ca
    inside = (np.abs(u) <= half[1]) & (np.abs(v) <= half[0])
    return Patch((slice(r0, r1), slice(c0, c1)), smooth_mask(inside, soft))


def _full(shape: tuple[int, int], patches: list[Patch]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for p in patches:
        out[p.window] |= p.footprint
    return out


def _meander_line(rng: np.random.Generator, size: int, y_frac: float, amplitude: float,
                  wavelength: float, vertical: bool = False) -> np.ndarray:
    """Points (row, col) of a meandering line crossing the grid."""
    t = np.linspace(-0.1 * size, 1.1 * size, size * 4)
    phase1, phase2 = rng.uniform(0, 2 * np.pi, 2)
    offset = (amplitude * np.sin(2 * np.pi * t / wavelength + phase1)
              + 0.35 * amplitude * np.sin(2 * np.pi * t / (wavelength * 0.43) + phase2))
    along, across = t, y_frac * size + offset
    return np.c_[along, across] if vertical else np.c_[across, along]


def _line_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, bool)
    rows = np.round(points[:, 0]).astype(int)
    cols = np.round(points[:, 1]).astype(int)
    ok = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    mask[rows[ok], cols[ok]] = True
    return mask


def _river(rng: np.random.Generator, shape: tuple[int, int], points: np.ndarray, width_px: float, name: str) -> River:
    dense = _densify(points)
    return River(dense, distance_px(_line_mask(shape, dense)), width_px, name)


def _densify(points: np.ndarray, step: float = 0.5) -> np.ndarray:
    seg = np.diff(points, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    out = [points[:1]]
    for p, s, n in zip(points[:-1], seg, np.ceil(lengths / step).astype(int)):
        k = np.arange(1, max(n, 1) + 1)[:, None] / max(n, 1)
        out.append(p + s * k)
    return np.vstack(out)


class _Occupancy:
    """Keeps events apart: a candidate may not come within ``gap_px`` of another."""

    def __init__(self, shape: tuple[int, int], gap_px: int):
        self.taken = np.zeros(shape, bool)
        self.gap = gap_px

    def free(self, mask: np.ndarray) -> bool:
        return not (mask & self.taken).any()

    def take(self, mask: np.ndarray, gap_px: int | None = None) -> None:
        gap = self.gap if gap_px is None else gap_px
        self.taken |= ndimage.binary_dilation(mask, iterations=gap) if gap > 0 else mask


# --------------------------------------------------------------------------- the builder


class ScenarioBuilder:
    """Places the river, the regions and every event; one instance per area and seed."""

    def __init__(self, spec: AreaSpec, attempt: int = 0):
        self.spec = spec
        entropy = [spec.seed, 1] if attempt == 0 else [spec.seed, 1, attempt]
        self.rng = np.random.default_rng(np.random.SeedSequence(entropy))
        self.size = spec.size_px
        self.shape = (spec.size_px, spec.size_px)
        self.scale = min(1.0, spec.size_px / 1024) ** 0.5
        self.occupancy = _Occupancy(self.shape, gap_px=int(12 / self.scale))
        self.monitor_day = day_number(spec.monitor_start)
        self.start_day = day_number(spec.start)
        self.end_day = day_number(spec.end)

    # -- static world

    def build(self) -> Scenario:
        rng, size, shape = self.rng, self.size, self.shape
        river = _river(rng, shape, _meander_line(rng, size, rng.uniform(0.42, 0.58), size * 0.06, size * 0.55),
                       rng.uniform(4.0, 5.5), self.spec.region_info.river_name)
        trib_pts = _meander_line(rng, size, rng.uniform(0.15, 0.3), size * 0.03, size * 0.4, vertical=True)
        trib_pts = trib_pts[trib_pts[:, 0] < np.interp(trib_pts[:, 1], river.centerline[:, 1], river.centerline[:, 0])]
        tributary = _river(rng, shape, trib_pts, 1.6, "Estero sin nombre")
        terrain = self._terrain(river)
        base = np.zeros((N_COVERS, *shape), np.float32)
        base[Cover.FOREST] = 1.0
        # channels are kept free by the placement rules, not by occupancy, so that
        # mines can sit right on the bank
        self.river_channel = river.distance < river.width_px * 0.75
        self.river_distance = np.minimum(river.distance, tributary.distance)
        regions = self._regions(river)
        scenario = Scenario(self.spec, terrain, river, tributary, base, regions)
        self._pasture_mosaic(scenario)
        self._village_and_old_road(scenario)
        self._legal_mine(scenario)
        self._old_scar(scenario)
        self._illegal_mines(scenario)
        self._decoys(scenario)
        self._unworked_concessions(scenario)
        return scenario

    def _terrain(self, river: River) -> Terrain:
        rng = self.rng
        hills = power_law_noise(rng, self.shape, beta=3.0) * 45.0
        ridges = np.abs(power_law_noise(rng, self.shape, beta=2.6)) * 35.0
        valley = np.minimum(river.distance * self.spec.resolution_m * 0.05, 90.0)
        dem = (380.0 + hills + ridges + valley).astype(np.float32)
        return Terrain(
            dem=dem,
            slope=slope_deg(dem, self.spec.resolution_m),
            texture=power_law_noise(rng, self.shape, beta=1.2),
            canopy=power_law_noise(rng, self.shape, beta=1.6),
        )

    def _regions(self, river: River) -> dict[str, np.ndarray]:
        """Context regions as masks: protected east, indigenous west, concessions between."""
        size, rng = self.size, self.rng
        rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
        wobble = power_law_noise(rng, self.shape, beta=3.5) * size * 0.03
        protected = cols + wobble > size * rng.uniform(0.64, 0.70)
        indigenous = cols + wobble < size * rng.uniform(0.30, 0.36)
        slope_line = rng.uniform(-0.35, 0.35)
        province_a = rows < size * 0.5 + (cols - size * 0.5) * slope_line + wobble * 2
        return {"protected": protected, "indigenous": indigenous, "province_a": province_a}

    def _pasture_mosaic(self, s: Scenario) -> None:
        """Old farmland away from the protected area: patches of pasture in the forest."""
        rank = to_unit_rank(power_law_noise(self.rng, self.shape, beta=3.2))
        farmland = (rank > 0.78) & ~s.regions["protected"] & (s.river.distance > 12)
        frac = smooth_mask(farmland, 1.0) * 0.9
        paint(s.base_cover, (slice(None), slice(None)), frac, Cover.PASTURE)
        # Pasture takes no occupancy: events may border it, but every event that
        # stands for lost forest checks that its own ground is still forest.

    def _village_and_old_road(self, s: Scenario) -> None:
        rng, size = self.rng, self.size
        # a track along the river, some 30 px inland, on the middle third
        col = np.arange(int(size * 0.36), int(size * 0.64))
        row_center = np.interp(col, s.river.centerline[:, 1], s.river.centerline[:, 0])
        side = rng.choice([-1, 1])
        pts = np.c_[row_center + side * 45 / self.scale ** 0.5, col]
        road = smooth_mask(distance_px(_line_mask(self.shape, _densify(pts))) < 0.8, 0.5)
        paint(s.base_cover, (slice(None), slice(None)), road * 0.8, Cover.GRAVEL)
        self.occupancy.take(road > 0.3)
        # a village by the river at the road's start
        center = (float(pts[0, 0]), float(pts[0, 1]))
        village = _blob(rng, self.shape, center, (9 * self.scale, 14 * self.scale), rng.uniform(0, np.pi))
        paint(s.base_cover, village.window, village.fraction * 0.85, Cover.URBAN)
        self.occupancy.take(_full(self.shape, [village]))
        self.village_center = center
        self.road_side = side

    def _along_river(self, s: Scenario, col_range: tuple[float, float], min_off: float, max_off: float,
                     region: np.ndarray | None, radius: float) -> tuple[float, float, float, int] | None:
        """A point near the river bank (row, col, angle of the river, side) meeting the constraints."""
        rng = self.rng
        for _ in range(400):
            col = rng.uniform(*col_range) * self.size
            idx = np.argmin(np.abs(s.river.centerline[:, 1] - col))
            r_c, c_c = s.river.centerline[idx]
            nxt = s.river.centerline[min(idx + 8, len(s.river.centerline) - 1)]
            angle = float(np.arctan2(nxt[0] - r_c, nxt[1] - c_c))
            side = int(rng.choice([-1, 1]))
            off = rng.uniform(min_off, max_off) + s.river.width_px
            row = r_c + side * off * np.cos(angle)
            col = c_c - side * off * np.sin(angle)
            if not (radius < row < self.size - radius and radius < col < self.size - radius):
                continue
            if region is not None and not region[int(row), int(col)]:
                continue
            probe = np.zeros(self.shape, bool)
            probe[max(int(row - radius), 0):int(row + radius), max(int(col - radius), 0):int(col + radius)] = True
            land = probe & (s.river.distance > s.river.width_px * 1.5)
            if self.occupancy.free(land) and self._forest_share(s, land) > 0.75:
                return float(row), float(col), angle, side
        return None

    @staticmethod
    def _forest_share(s: Scenario, mask: np.ndarray) -> float:
        return float(s.base_cover[Cover.FOREST][mask].mean()) if mask.any() else 0.0

    # -- mining

    def _mine(self, s: Scenario, name: str, start: int, region: np.ndarray | None, col_range: tuple[float, float],
              n_cells: int, legality: str, kind: str = "mining") -> Event | None:
        rng = self.rng
        cell_r = rng.uniform(4.5, 8.0) * self.scale  # 45-80 m pits
        reach = cell_r * (0.9 * n_cells + 2)  # cells run one way along the bank
        spot = self._along_river(s, col_range, 3, 22 * self.scale, region, reach)
        if spot is None:
            return None
        row, col, angle, side = spot
        cells: list[tuple[Patch, int, list[tuple[Patch, int, int]]]] = []
        step = cell_r * 1.5
        direction = rng.choice([-1, 1])
        for k in range(n_cells):
            along = direction * k * step + rng.normal(0, cell_r * 0.3)
            across = rng.normal(0, cell_r * 0.5) + side * (k % 2) * cell_r
            centre = (row + along * np.sin(angle) + across * np.cos(angle),
                      col + along * np.cos(angle) - across * np.sin(angle))
            try:
                patch = _blob(rng, self.shape, centre, (cell_r * rng.uniform(0.8, 1.2), cell_r * rng.uniform(1.0, 1.6)),
                              angle + rng.normal(0, 0.4))
            except ValueError:
                continue
            patch.fraction *= ~self.river_channel[patch.window]  # pits stop at the water's edge
            opens = start + int(k * rng.uniform(18, 40))
            ponds = []
            for _ in range(int(rng.integers(1, 4))):
                pr = cell_r * rng.uniform(0.25, 0.45)
                pc = (centre[0] + rng.normal(0, cell_r * 0.35), centre[1] + rng.normal(0, cell_r * 0.35))
                try:
                    pond = _blob(rng, self.shape, pc, (pr, pr * rng.uniform(1.0, 1.8)), rng.uniform(0, np.pi), 0.15)
                except ValueError:
                    continue
                appears = opens + int(rng.uniform(10, 45))
                # some ponds are filled in again when the crew moves on
                vanishes = appears + int(rng.uniform(60, 200)) if rng.random() < 0.3 else 10**9
                ponds.append((pond, appears, vanishes))
            cells.append((patch, opens, ponds))
        if not cells:
            return None

        def painter(cover: np.ndarray, day: int) -> None:
            for patch, opens, ponds in cells:
                if day < opens:
                    continue
                # clearing takes a couple of weeks: trees felled, then topsoil stripped
                progress = 0.55 + 0.45 * smoothstep((day - opens) / 14.0)
                paint(cover, patch.window, patch.fraction * progress, Cover.MINING_SOIL)
                for pond, appears, vanishes in ponds:
                    if appears <= day < vanishes:
                        fill = 0.6 + 0.35 * smoothstep((day - appears) / 20.0)
                        paint(cover, pond.window, pond.fraction * fill * patch_overlap(pond, patch), Cover.POND)

        cells_open_by_end = [c for c in cells if c[1] <= self.end_day]
        footprint = _full(self.shape, [c[0] for c in cells_open_by_end])
        self.occupancy.take(_full(self.shape, [c[0] for c in cells]))
        return Event(name, kind, date.fromordinal(min(c[1] for c in cells)), painter, footprint, legality)

    def _cadastre_block(self, footprint: np.ndarray, pad_px: float, cell_px: int = 10) -> np.ndarray:
        """A concession around ``footprint``: Ecuador's cadastre grants whole cells on the UTM grid."""
        rows, cols = np.nonzero(footprint)
        lo = lambda v: int(max(np.floor((v - pad_px) / cell_px) * cell_px, 0))  # noqa: E731
        hi = lambda v: int(min(np.ceil((v + pad_px) / cell_px) * cell_px, self.size))  # noqa: E731
        block = np.zeros(self.shape, bool)
        block[lo(rows.min()):hi(rows.max() + 1), lo(cols.min()):hi(cols.max() + 1)] = True
        return block

    def _unworked_concessions(self, s: Scenario, count: int = 2) -> None:
        """Granted or pending concessions with no mining yet: a concession alone is no evidence."""
        rng = self.rng
        made = 0
        for _ in range(400):
            if made == count:
                break
            h, w = (rng.uniform(0.06, 0.12, 2) * self.size / 10).astype(int) * 10
            r0 = int(rng.uniform(0.05, 0.95) * self.size - h / 2) // 10 * 10
            c0 = int(rng.uniform(0.35, 0.65) * self.size - w / 2) // 10 * 10
            block = np.zeros(self.shape, bool)
            block[max(r0, 0):r0 + h, max(c0, 0):c0 + w] = True
            if block.sum() > 100 and self.occupancy.free(block):
                made += 1
                s.regions[f"concession_unworked_{made}"] = block
                self.occupancy.take(block)

    def _legal_mine(self, s: Scenario) -> None:
        """A mine inside a granted concession in the middle third (placed first: that third is crowded)."""
        restricted = s.regions["protected"] | s.regions["indigenous"]
        # The whole concession must stay clear of the park and the territory (a mine there is
        # illegal whatever its title), so the start point keeps a margin of a site plus its padding.
        open_core = ~ndimage.binary_dilation(restricted, iterations=int(80 * self.scale))
        start = int(self.rng.uniform(self.monitor_day + 30, self.end_day - 110))
        legal = self._mine(s, "legal-mine", start, open_core, (0.36, 0.64), 5, "inside_concession")
        if legal is None:
            raise PlacementError("could not place the legal mine")
        concession = self._cadastre_block(legal.footprint, 25 * self.scale)
        if (concession & restricted).any():
            raise PlacementError("the legal mine's concession reaches a protected area or territory")
        s.events.append(legal)
        s.regions["concession_granted"] = concession
        self.occupancy.take(s.regions["concession_granted"])

    def _illegal_mines(self, s: Scenario) -> None:
        """New mines in the protected area, the indigenous territory and open land, none in a concession."""
        rng = self.rng
        n_illegal = 5 if self.size >= 1024 else 2
        middle = ~s.regions["protected"] & ~s.regions["indigenous"]
        latest_start = self.end_day - 110
        placements = [("protected", s.regions["protected"], (0.70, 0.98)),
                      ("indigenous", s.regions["indigenous"], (0.02, 0.30)),
                      ("open", middle, (0.38, 0.62))]
        made = 0
        for attempt in range(n_illegal * 6):
            if made == n_illegal:
                break
            label, region, cols = placements[attempt % 3]
            start = int(rng.uniform(self.monitor_day + 20, latest_start))
            cells = int(rng.integers(2, 9)) if made else 6
            event = self._mine(s, f"new-mine-{made + 1}-{label}", start, region, cols, cells, "probably_illegal")
            if event is not None:
                s.events.append(event)
                made += 1
        if made < n_illegal:
            raise PlacementError(f"could only place {made} of {n_illegal} new mines")

    def _old_scar(self, s: Scenario) -> None:
        """Mined years before the imagery starts: soil, ponds and regrowth, all stable."""
        rng = self.rng
        spot = self._along_river(s, (0.08, 0.92), 3, 15, ~s.regions["protected"], 30 * self.scale)
        if spot is None:
            raise PlacementError("could not place the old mining scar")
        row, col, angle, _ = spot
        scar = _blob(rng, self.shape, (row, col), (14 * self.scale, 26 * self.scale), angle)
        mix = to_unit_rank(power_law_noise(rng, scar.fraction.shape, beta=2.0))
        paint(s.base_cover, scar.window, scar.fraction * 0.9, Cover.PASTURE)
        paint(s.base_cover, scar.window, scar.fraction * (mix > 0.45) * 0.8, Cover.MINING_SOIL)
        paint(s.base_cover, scar.window, scar.fraction * (mix > 0.82) * 0.9, Cover.POND)
        footprint = _full(self.shape, [scar])
        self.occupancy.take(footprint)
        s.events.append(Event("old-mining-scar", "old_mining", date(2019, 6, 1), lambda c, d: None, footprint,
                              notes="mined before the imagery starts; stable, must not raise an alert"))
        s.regions["concession_old"] = self._cadastre_block(footprint, 20 * self.scale)
        self.occupancy.take(s.regions["concession_old"])

    # -- decoys

    def _free_spot(self, s: Scenario, radius: float, region: np.ndarray | None = None,
                   away_from_river: float = 15, min_forest: float = 0.75) -> tuple[float, float]:
        """A free square of ``radius`` whose ground is mostly forest (``min_forest``)."""
        rng = self.rng
        for _ in range(2000):
            row, col = rng.uniform(radius, self.size - radius, 2)
            if region is not None and not region[int(row), int(col)]:
                continue
            if self.river_distance[int(row), int(col)] < radius + away_from_river:
                continue
            probe = np.zeros(self.shape, bool)
            probe[int(row - radius):int(row + radius), int(col - radius):int(col + radius)] = True
            if self.occupancy.free(probe) and self._forest_share(s, probe) >= min_forest:
                return float(row), float(col)
        raise PlacementError("no free room left for a decoy")

    def _monitor_date(self, margin_end: int = 90) -> int:
        return int(self.rng.uniform(self.monitor_day + 10, self.end_day - margin_end))

    def _decoys(self, s: Scenario) -> None:
        self._clearing(s, "agriculture-clearing-2023", int(self.rng.uniform(self.start_day + 90, self.monitor_day - 60)))
        self._clearing(s, "agriculture-clearing", self._monitor_date(120))
        self._crop_cycle(s)
        self._burn(s)
        self._road(s)
        self._landslide(s)
        self._meander(s)
        self._flood(s)
        self._urban_growth(s)

    def _add(self, s: Scenario, name: str, kind: str, start: int, patches: list[Patch],
             painter: Callable[[np.ndarray, int], None], notes: str) -> None:
        footprint = _full(self.shape, patches)
        self.occupancy.take(footprint)
        s.events.append(Event(name, kind, date.fromordinal(start), painter, footprint, notes=notes))

    def _clearing(self, s: Scenario, name: str, start: int) -> None:
        """Forest felled for a field: bare soil with slash, no ponds, then pasture regrows."""
        rng = self.rng
        half = (rng.uniform(7, 14) * self.scale, rng.uniform(10, 20) * self.scale)
        center = self._free_spot(s, max(half) * 1.5, ~s.regions["protected"])
        field_ = _rect(self.shape, center, half, rng.uniform(0, np.pi))
        regrow_days = rng.uniform(70, 130)

        def painter(cover: np.ndarray, day: int) -> None:
            if day < start:
                return
            age = day - start
            paint(cover, field_.window, field_.fraction * (0.6 + 0.3 * smoothstep(age / 10)), Cover.AG_SOIL)
            if age > 30:
                paint(cover, field_.window, field_.fraction * 0.9 * smoothstep((age - 30) / regrow_days), Cover.PASTURE)

        self._add(s, name, "agriculture", start, [field_], painter, "clearing for pasture; no ponds; regrows")

    def _crop_cycle(self, s: Scenario) -> None:
        """A field ploughed and grown again every ~4 months, all through the record."""
        rng = self.rng
        half = (rng.uniform(8, 12) * self.scale, rng.uniform(12, 18) * self.scale)
        center = self._free_spot(s, max(half) * 1.5, ~s.regions["protected"], min_forest=0.0)
        field_ = _rect(self.shape, center, half, rng.uniform(0, np.pi))
        period, phase = rng.uniform(110, 140), rng.uniform(0, 140)
        paint(s.base_cover, field_.window, field_.fraction * 0.9, Cover.PASTURE)

        def painter(cover: np.ndarray, day: int) -> None:
            stage = ((day + phase) % period) / period
            # 0-0.15 bare after ploughing, then the crop greens up until harvest
            green = smoothstep((stage - 0.15) / 0.5)
            paint(cover, field_.window, field_.fraction * 0.9 * (1 - green), Cover.AG_SOIL)
            paint(cover, field_.window, field_.fraction * 0.9 * green, Cover.CROP)

        self._add(s, "crop-cycle", "crop_cycle", self.start_day, [field_], painter, "recurring ploughing and harvest")

    def _burn(self, s: Scenario) -> None:
        rng = self.rng
        start = self._monitor_date(100)
        center = self._free_spot(s, 20 * self.scale, ~s.regions["protected"])
        scar = _blob(rng, self.shape, center, (rng.uniform(8, 14) * self.scale, rng.uniform(12, 20) * self.scale), rng.uniform(0, np.pi))

        def painter(cover: np.ndarray, day: int) -> None:
            if day < start:
                return
            age = day - start
            char = 1 - smoothstep((age - 20) / 90)
            paint(cover, scar.window, scar.fraction * 0.85 * char, Cover.CHAR)
            paint(cover, scar.window, scar.fraction * 0.85 * (1 - char), Cover.PASTURE)

        self._add(s, "burn", "burn", start, [scar], painter, "slash-and-burn; char fades to regrowth")

    def _road(self, s: Scenario) -> None:
        """A new road pushed through the forest at ~25 m a day: long and thin."""
        rng = self.rng
        start = self._monitor_date(150)
        for _ in range(200):
            r0, c0 = rng.uniform(0.1, 0.9, 2) * self.size
            heading = rng.uniform(0, 2 * np.pi)
            n = int(self.size * 0.45)
            turn = np.cumsum(rng.normal(0, 0.02, n))
            pts = np.c_[r0 + np.cumsum(np.sin(heading + turn)), c0 + np.cumsum(np.cos(heading + turn))]
            inside = (pts > 2).all(axis=1) & (pts < self.size - 3).all(axis=1)
            pts = pts[: np.argmin(inside) if not inside.all() else n]
            if len(pts) < self.size * 0.25:
                continue
            dist = distance_px(_line_mask(self.shape, _densify(pts)))
            footprint = dist < 1.5
            if self.occupancy.free(footprint):
                break
        else:
            raise PlacementError("could not place the road")
        # each pixel of the road opens on the day the front reaches it (25 m/day = 2.5 px/day)
        along = np.full(self.shape, np.inf, np.float32)
        dense = _densify(pts)
        idx = np.clip(np.round(dense).astype(int), 0, self.size - 1)
        order_day = np.arange(len(dense)) * 0.5 / 2.5
        along[idx[:, 0], idx[:, 1]] = np.minimum(along[idx[:, 0], idx[:, 1]], order_day)
        _, (ii, jj) = ndimage.distance_transform_edt(~np.isfinite(along), return_indices=True)
        opens = start + along[ii, jj]
        surface = np.clip(1.3 - dist, 0, 1).astype(np.float32)  # ~12 m gravel: mixed pixels
        verge = np.clip(2.5 - dist, 0, 1).astype(np.float32) * 0.6
        rows, cols = np.nonzero(verge > 0)
        win = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        surface, verge, opens = surface[win], verge[win], opens[win]

        def painter(cover: np.ndarray, day: int) -> None:
            if day < start:
                return
            built = (opens <= day).astype(np.float32)
            paint(cover, win, verge * built, Cover.PASTURE)
            paint(cover, win, surface * built, Cover.GRAVEL)

        self._add(s, "new-road", "road", start, [Patch(win, np.maximum(surface, 0) * (surface > 0.3))], painter,
                  "new road, 12 m wide, built progressively")

    def _landslide(self, s: Scenario) -> None:
        """On the steepest free slope: sudden bright scar running downhill, no ponds, slow regrowth."""
        rng = self.rng
        start = self._monitor_date(100)
        slope = np.where(self.occupancy.taken, 0, s.terrain.slope)
        slope = ndimage.uniform_filter(slope, 9)
        for _ in range(400):
            r, c = np.unravel_index(np.argmax(slope), slope.shape)
            r, c = float(np.clip(r, 30, self.size - 30)), float(np.clip(c, 30, self.size - 30))
            gy, gx = np.gradient(ndimage.gaussian_filter(s.terrain.dem, 4))
            angle = float(np.arctan2(gy[int(r), int(c)], gx[int(r), int(c)]))
            slide = _blob(rng, self.shape, (r, c), (rng.uniform(3, 5) * self.scale, rng.uniform(14, 24) * self.scale), angle, 0.2)
            fp = _full(self.shape, [slide])
            if self.occupancy.free(fp):
                break
            slope[int(r) - 20:int(r) + 20, int(c) - 20:int(c) + 20] = 0
        else:
            raise PlacementError("could not place the landslide")

        def painter(cover: np.ndarray, day: int) -> None:
            if day < start:
                return
            regrowth = 0.5 * smoothstep((day - start - 60) / 300)
            paint(cover, slide.window, slide.fraction * 0.9, Cover.ROCK)
            paint(cover, slide.window, slide.fraction * regrowth, Cover.PASTURE)

        self._add(s, "landslide", "landslide", start, [slide], painter, "steep slope failure; bright rock and soil")

    def _meander(self, s: Scenario) -> None:
        """The river eats into its outer bank over months and leaves a bar behind."""
        rng = self.rng
        start = self._monitor_date(150)
        for _ in range(300):
            col = rng.uniform(0.1, 0.9) * self.size
            idx = np.argmin(np.abs(s.river.centerline[:, 1] - col))
            row = s.river.centerline[idx, 0]
            half_len = 22 * self.scale
            reach = s.river.width_px + 16
            box = (slice(int(max(row - reach, 0)), int(min(row + reach, self.size))),
                   slice(int(max(col - half_len * 1.6, 0)), int(min(col + half_len * 1.6, self.size))))
            probe = np.zeros(self.shape, bool)
            probe[box] = True
            probe &= s.river.distance > s.river.width_px * 1.5
            if self.occupancy.free(probe):
                break
        else:
            raise PlacementError("could not place the meander")
        shift_max = rng.uniform(4, 7) * rng.choice([-1, 1])
        cl = s.river.centerline
        sel = (cl[:, 1] >= box[1].start) & (cl[:, 1] < box[1].stop)
        local = cl[sel] - [box[0].start, box[1].start]
        bump = np.exp(-0.5 * ((local[:, 1] - (col - box[1].start)) / (half_len * 0.5)) ** 2)
        shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
        base_water = s.river.distance[box] < s.river.width_px / 2

        def channel(progress: float) -> np.ndarray:
            pts = local + np.c_[shift_max * progress * bump, np.zeros(len(local))]
            return distance_px(_line_mask(shape, pts)) < s.river.width_px / 2

        final = channel(1.0)
        # precompute a few stages; the bank retreats in steps with each high-water event
        stages = [channel(p) for p in np.linspace(0, 1, 6)]

        def painter(cover: np.ndarray, day: int) -> None:
            if day < start:
                return
            k = int(min(5, (day - start) / 40))
            water = stages[k]
            paint(cover, box, (base_water & ~water).astype(np.float32) * 0.9, Cover.SAND)
            paint(cover, box, (water & ~base_water).astype(np.float32), Cover.RIVER)

        eroded = np.zeros(self.shape, bool)
        eroded[box] = (final ^ base_water)
        self.occupancy.take(eroded)
        s.events.append(Event("river-meander", "river_change", date.fromordinal(start), painter, eroded,
                              notes="outer bank eroded, sand bar left behind; water without mining"))

    def _flood(self, s: Scenario) -> None:
        """Low flood plain under water for weeks each rainy season; bigger in the monitored year."""
        rng = self.rng
        low = (s.river.distance > s.river.width_px * 1.5) & (s.river.distance < 40 * self.scale)
        low &= s.terrain.dem < np.percentile(s.terrain.dem[low], 35)
        lab, n = ndimage.label(low & ~ndimage.binary_dilation(self.occupancy.taken, iterations=2))
        if n == 0:
            raise PlacementError("no flood plain found")
        sizes = ndimage.sum(np.ones_like(lab), lab, index=np.arange(1, n + 1))
        plain = lab == (int(np.argmax(sizes)) + 1)
        frac_full = smooth_mask(plain, 1.0)
        rows, cols = np.nonzero(frac_full > 0.01)
        win = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        frac = frac_full[win]
        year_peaks = []
        for year in range(self.spec.start.year, self.spec.end.year + 1):
            peak = day_number(date(year, 4, 1)) + int(rng.uniform(0, 60))
            year_peaks.append((peak, rng.uniform(15, 30), 0.55 if year < self.spec.monitor_start.year else 0.9))
        first_big = min(p for p, _, a in year_peaks if a > 0.6)

        def painter(cover: np.ndarray, day: int) -> None:
            for peak, half_width, amount in year_peaks:
                level = amount * max(0.0, 1 - abs(day - peak) / half_width)
                if level > 0:
                    paint(cover, win, frac * level, Cover.RIVER)

        self._add(s, "seasonal-flood", "flood", first_big - 20, [Patch(win, frac)], painter,
                  "flood plain under water for weeks each rainy season")

    def _urban_growth(self, s: Scenario) -> None:
        rng = self.rng
        start = self._monitor_date(120)
        vr, vc = self.village_center
        for _ in range(100):
            center = (vr + rng.normal(0, 25) * self.scale, vc + rng.normal(0, 25) * self.scale)
            try:
                patch = _blob(rng, self.shape, center, (6 * self.scale, 9 * self.scale), rng.uniform(0, np.pi))
            except ValueError:
                continue
            if self.occupancy.free(_full(self.shape, [patch])):
                break
        else:
            return  # a village boxed in by other events simply does not grow

        def painter(cover: np.ndarray, day: int) -> None:
            if day >= start:
                paint(cover, patch.window, patch.fraction * 0.8 * smoothstep((day - start) / 120), Cover.URBAN)

        self._add(s, "village-growth", "urban", start, [patch], painter, "new houses at the edge of the village")


def patch_overlap(inner: Patch, outer: Patch) -> np.ndarray:
    """Fractions of ``inner`` clipped to where ``outer`` exists (a pond stays inside its pit)."""
    out = np.zeros_like(inner.fraction)
    ir, ic = inner.window
    orr, oc = outer.window
    r0, r1 = max(ir.start, orr.start), min(ir.stop, orr.stop)
    c0, c1 = max(ic.start, oc.start), min(ic.stop, oc.stop)
    if r0 < r1 and c0 < c1:
        out[r0 - ir.start:r1 - ir.start, c0 - ic.start:c1 - ic.start] = \
            outer.fraction[r0 - orr.start:r1 - orr.start, c0 - oc.start:c1 - oc.start]
    return out


#: Layouts tried per seed before giving up; each attempt is itself seeded.
MAX_LAYOUT_ATTEMPTS = 12


def build_scenario(spec: AreaSpec) -> Scenario:
    """The landscape and its events for ``spec`` (same spec, same scenario).

    Random placement can crowd a small grid; then the layout is drawn again
    from a derived seed, so every seed still gives one fixed scenario.
    """
    for attempt in range(MAX_LAYOUT_ATTEMPTS):
        try:
            return ScenarioBuilder(spec, attempt).build()
        except PlacementError:
            continue
    raise PlacementError(f"no layout fits {spec.name} with seed {spec.seed} after {MAX_LAYOUT_ATTEMPTS} attempts")


def acquisition_dates(spec: AreaSpec) -> list[date]:
    """Every revisit date from ``spec.start`` to ``spec.end`` (the first ``spec.max_scenes`` if set)."""
    out, d = [], spec.start
    while d <= spec.end:
        out.append(d)
        d += timedelta(days=spec.revisit_days)
    return out if spec.max_scenes is None else out[: spec.max_scenes]
