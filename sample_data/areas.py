"""Where sample areas sit and how big they are (SYNTHETIC imagery over real places).

An :class:`AreaSpec` fixes everything the generator needs besides code:
place, grid size, dates, revisit and seed. Presets sit over real Ecuadorian
mining regions; the imagery, sites and context layers generated there are
synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Final

from pyproj import Transformer


@dataclass(frozen=True)
class Region:
    """A real place: the generator centres its synthetic area here."""

    key: str
    title: str
    center_lon: float
    center_lat: float
    river_name: str
    #: Province north-west and south-east of the synthetic boundary line.
    provinces: tuple[str, str]
    #: People whose territory borders the area (names the synthetic territory).
    indigenous_people: str


REGIONS: Final[dict[str, Region]] = {
    # Río Punino, on the Napo / Orellana boundary: one of the fastest-growing
    # illegal alluvial mining fronts in Ecuador (Yutzupino), mapped by MAAP and Amazon Mining Watch.
    "punino": Region("punino", "Río Punino, Napo / Orellana", -77.50, -0.985, "Río Punino", ("Napo", "Orellana"), "Kichwa"),
    # Río Nangaritza, Zamora Chinchipe: UTM zone 17S, alluvial mining along the river.
    "nangaritza": Region(
        "nangaritza",
        "Río Nangaritza, Zamora Chinchipe",
        -78.66,
        -4.25,
        "Río Nangaritza",
        ("Morona Santiago", "Zamora Chinchipe"),
        "Shuar",
    ),
}


@dataclass(frozen=True)
class AreaSpec:
    """Everything that determines a generated sample area, byte for byte."""

    name: str
    region: str
    size_px: int
    start: date
    end: date
    revisit_days: int
    seed: int
    #: First day of the monitoring window; sites that count as new start after it.
    monitor_start: date
    resolution_m: int = 10
    #: Render only the first N acquisitions (quick builds for tests); events still span start..end.
    max_scenes: int | None = None

    @property
    def region_info(self) -> Region:
        return REGIONS[self.region]

    @property
    def epsg(self) -> int:
        r = self.region_info
        zone = int((r.center_lon + 180) // 6) + 1
        return (32700 if r.center_lat < 0 else 32600) + zone

    def origin(self) -> tuple[float, float]:
        """Upper-left corner (x, y) in UTM metres, snapped to 60 m so 10/20/60 m grids align."""
        r = self.region_info
        to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{self.epsg}", always_xy=True)
        cx, cy = to_utm.transform(r.center_lon, r.center_lat)
        half = self.size_px * self.resolution_m / 2
        return (round((cx - half) / 60) * 60.0, round((cy + half) / 60) * 60.0)

    def with_seed(self, seed: int) -> "AreaSpec":
        return replace(self, seed=seed)


#: The demo area built by the README's first command.
FULL: Final[AreaSpec] = AreaSpec(
    name="punino-full",
    region="punino",
    size_px=1024,
    start=date(2023, 1, 2),
    end=date(2024, 10, 31),
    revisit_days=5,
    seed=20240607,
    monitor_start=date(2024, 1, 1),
)

#: The same generator on a smaller grid, for fast tests.
SMALL: Final[AreaSpec] = replace(FULL, name="punino-small", size_px=512)

PRESETS: Final[dict[str, AreaSpec]] = {"full": FULL, "small": SMALL}
