"""Which scenes show an alert best: the clearest one before ``first_detected`` and the clearest after.

"Clearest" is measured, not taken from the item's ``eo:cloud_cover`` (which
covers a whole 110 km tile): the share of the chip's own ground that SCL calls
usable (:func:`geo_monitor.imagery.clear_fraction`), in whole percent. Ties
go to the scene closest in time to ``first_detected`` (the evidence most
relevant to the change), then to the smaller id. Candidates are looked at
from the closest date outwards and the search stops at the first fully clear
one, since nothing can beat it; so a chip costs one small SCL read per scene
only when the sky has been bad.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from typing import Final, Literal

import rasterio.errors
from shapely.geometry.base import BaseGeometry

from geo_monitor.imagery import ChipArea, chip_area, clear_fraction
from geo_monitor.scenes import Scene

__all__ = ["ChipScene", "ChipChoice", "choose_chip_scenes", "CHIP_WINDOW_DAYS", "CLEAR_STEPS"]

log = logging.getLogger(__name__)

#: How far from ``first_detected`` a chip's scene may be: older or later imagery says little about the change.
CHIP_WINDOW_DAYS: Final[int] = 365
#: Clear shares are compared in whole percent: 0.991 and 0.994 are equally clear.
CLEAR_STEPS: Final[int] = 100

Side = Literal["before", "after"]


@dataclass(frozen=True)
class ChipScene:
    """A scene chosen for one side of an alert, and how clear the chip's ground is in it (0..1)."""

    scene: Scene
    clear_fraction: float


@dataclass(frozen=True)
class ChipChoice:
    """The chip area around an alert and the scene for each side (None when no scene shows any of it)."""

    area: ChipArea
    first_detected: date
    before: ChipScene | None
    after: ChipScene | None

    def side(self, name: Side) -> ChipScene | None:
        return self.before if name == "before" else self.after


def _day(scene: Scene) -> date:
    return scene.datetime.astimezone(timezone.utc).date()


def candidates(scenes: Sequence[Scene], area: ChipArea, first_detected: date, side: Side,
               window_days: int = CHIP_WINDOW_DAYS) -> list[Scene]:
    """Scenes on ``side`` of ``first_detected`` (strictly before / strictly after, within ``window_days``)
    whose footprint box meets the chip, closest in time first."""
    w, s, e, n = area.lonlat_bounds
    lo, hi = (first_detected - timedelta(days=window_days), first_detected - timedelta(days=1)) if side == "before" \
        else (first_detected + timedelta(days=1), first_detected + timedelta(days=window_days))
    found = [sc for sc in scenes
             if lo <= _day(sc) <= hi and sc.bbox[0] <= e and w <= sc.bbox[2] and sc.bbox[1] <= n and s <= sc.bbox[3]]
    return sorted(found, key=lambda sc: (abs((_day(sc) - first_detected).days), sc.id))


def clearest(ordered: Sequence[Scene], area: ChipArea,
             measure: Callable[[Scene, ChipArea], float] = clear_fraction) -> ChipScene | None:
    """The clearest of ``ordered`` (closest-in-time first) by :data:`CLEAR_STEPS`; None if none shows any ground."""
    best: ChipScene | None = None
    best_steps = 0
    for scene in ordered:
        try:
            share = measure(scene, area)
        except (rasterio.errors.RasterioError, OSError) as exc:  # one broken file must not hide the others
            log.warning("scene skipped for a chip", extra={"scene": scene.id, "error": str(exc)[:200]})
            continue
        steps = math.floor(share * CLEAR_STEPS + 1e-9)
        if share > 0 and (best is None or steps > best_steps):
            best, best_steps = ChipScene(scene, share), steps
        if best_steps >= CLEAR_STEPS:
            break  # fully clear and closest of those: nothing later in the order can win
    return best


def choose_chip_scenes(scenes: Sequence[Scene], geometry: BaseGeometry, first_detected: date, *,
                       window_days: int = CHIP_WINDOW_DAYS,
                       measure: Callable[[Scene, ChipArea], float] = clear_fraction) -> ChipChoice:
    """The chip around ``geometry`` (lon/lat) and the clearest scene before and after ``first_detected``."""
    area = chip_area(geometry)
    return ChipChoice(
        area=area,
        first_detected=first_detected,
        before=clearest(candidates(scenes, area, first_detected, "before", window_days), area, measure),
        after=clearest(candidates(scenes, area, first_detected, "after", window_days), area, measure),
    )
