"""Mining score of a candidate site: physical rules on its features, 0..1 (pure).

Alluvial gold mining in the Ecuadorian Amazon leaves a recognisable trace:
forest replaced by bare soil *and* turbid ponds in the pits, within a few
hundred metres of a river, growing pit by pit over weeks. Each decoy misses
part of it: fields and landslides have no ponds; roads and landslides are long
and thin; a river eating its bank adds water joined to the river, not pools
beside it; floods and crop cycles come back (handled per pixel). The score is
a logistic function of evidence for and against, with weights set from that
reasoning (docs/method.md), not fitted to the sample area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from geo_monitor.alerts import Confidence
from geo_monitor.sites import Site, SiteFeatures

RULES_VERSION: Final[str] = "rules-1"
#: Sites scoring below this are not reported.
REPORT_THRESHOLD: Final[float] = 0.5
#: Pond evidence needs a few pixels of turbid water (0.03 ha), not one stray pixel.
MIN_POND_PX: Final[int] = 3


@dataclass(frozen=True)
class Weights:
    bias: float = -1.0
    soil: float = 2.5  # x bare share x how far the strict (mostly-soil) share is above strict_floor
    ponds: float = 1.5
    no_ponds: float = -1.75  # alluvial mining sits in the water table and washes gravel: no pools is strong evidence against
    near_river: float = 1.0  # within near_river_m
    mid_river: float = 0.0  # within mid_river_m: possible (wide flood plains), no evidence either way
    far_from_river: float = -1.5  # alluvial gold is in river gravels
    river_change: float = -2.5  # mostly new water joined to the river
    linear_without_ponds: float = -1.5
    growth: float = 0.3
    near_river_m: float = 300.0
    mid_river_m: float = 1000.0
    linear_elongation: float = 4.0
    river_extension_share: float = 0.4
    growth_days: float = 60.0  # cloud gaps alone spread first sightings over a month or so
    #: Stripped pits are mostly pure soil or water; settlements, gardens and verges stay mixed.
    strict_floor: float = 0.4
    strict_full: float = 0.9


DEFAULT_WEIGHTS: Final[Weights] = Weights()


def evidence(f: SiteFeatures, w: Weights = DEFAULT_WEIGHTS) -> dict[str, float]:
    """Each rule's contribution to the log-odds, by name (kept for the alert's explanation)."""
    has_ponds = f.pond_px >= MIN_POND_PX
    if f.river_distance_m <= w.near_river_m:
        river = w.near_river
    elif f.river_distance_m <= w.mid_river_m:
        river = w.mid_river
    else:
        river = w.far_from_river
    return {
        "bias": w.bias,
        "soil": w.soil * f.bare_share * min(max((f.strict_share - w.strict_floor) / (w.strict_full - w.strict_floor), 0.0), 1.0),
        "ponds": w.ponds if has_ponds else w.no_ponds,
        "river": river,
        "river_change": w.river_change if f.river_extension_share >= w.river_extension_share else 0.0,
        "linear": w.linear_without_ponds if (f.elongation > w.linear_elongation and not has_ponds) else 0.0,
        "growth": w.growth if f.growth_days >= w.growth_days else 0.0,
    }


def rule_score(f: SiteFeatures, w: Weights = DEFAULT_WEIGHTS) -> float:
    z = sum(evidence(f, w).values())
    return 1.0 / (1.0 + math.exp(-z))


def confidence(site: Site) -> Confidence:
    """By confirming clear observations: high at 3 consecutive looks, nominal at 2, low at 1."""
    if site.confirmed_at:
        return Confidence.HIGH
    if site.nominal_at:
        return Confidence.NOMINAL
    return Confidence.LOW
