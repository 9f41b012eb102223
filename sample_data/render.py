"""Ground surface reflectance of the synthetic scenario on one day (SYNTHETIC).

Pure computation: cover fractions (from :mod:`sample_data.scenario`) times
end-member spectra (from :mod:`sample_data.spectra`), with the static
texture that makes real canopies and soils speckled, seasonal greenness and
relief shading. Clouds, haze and noise come later (:mod:`sample_data.atmosphere`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np

from sample_data.fields import hillshade_factor
from sample_data.scenario import Scenario
from sample_data.spectra import SEASONAL_AMPLITUDE, SPECTRA, Cover

#: Day of year when the canopy is greenest: the drier, sunnier months (Sep–Nov)
#: in the Ecuadorian Amazon foothills.
GREEN_PEAK_DOY = 290
#: Local solar time of the Sentinel-2 descending pass (10:30 at the equator).
OVERPASS_SOLAR_HOUR = 10.5

_VEGETATION = (Cover.FOREST, Cover.PASTURE, Cover.CROP)
_BAND_NIR, _BAND_RED = 3, 2


@dataclass(frozen=True)
class SunPosition:
    elevation_deg: float
    azimuth_deg: float  # clockwise from north


def sun_position(day: date, lat_deg: float) -> SunPosition:
    """Sun elevation and azimuth at the overpass (textbook declination/hour-angle formulas)."""
    doy = day.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.0)
    hour_angle = math.radians(15.0 * (OVERPASS_SOLAR_HOUR - 12.0))
    lat = math.radians(lat_deg)
    sin_elev = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    elev = math.asin(sin_elev)
    cos_az = (math.sin(decl) - sin_elev * math.sin(lat)) / (math.cos(elev) * math.cos(lat))
    azimuth = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))  # morning: sun in the east
    return SunPosition(math.degrees(elev), azimuth)


def seasonal_factor(day: date) -> float:
    """-1..1: how far the canopy is from its mean greenness on ``day``."""
    doy = day.timetuple().tm_yday
    return math.sin(2 * math.pi * (doy - GREEN_PEAK_DOY + 91.25) / 365.0)


def endmember_spectra(day: date) -> np.ndarray:
    """Spectra (N_COVERS, 6) of ``day``: vegetation NIR up and red down in the green season."""
    spectra = SPECTRA.copy()
    s = seasonal_factor(day)
    spectra[:, _BAND_NIR] *= 1.0 + SEASONAL_AMPLITUDE * s
    spectra[:, _BAND_RED] *= 1.0 - 0.6 * SEASONAL_AMPLITUDE * s
    return spectra


def _mix(cover: np.ndarray, spectra: np.ndarray) -> np.ndarray:
    """Linear mixture (6, H, W): the sum over covers of fraction × spectrum, added in cover order.

    Not ``einsum(..., optimize=True)``: that hands the sum to BLAS, whose order of
    additions follows its threads and the arrays' memory alignment, so the same
    seed could give a different last bit (and DN) from one worker process to
    another. Element-wise adds in a fixed order give the same bytes everywhere.
    """
    dtype = np.result_type(cover, spectra)
    refl = np.zeros((spectra.shape[1], *cover.shape[1:]), dtype)
    for fraction, spectrum in zip(cover, spectra.astype(dtype, copy=False)):
        refl += fraction[None, :, :] * spectrum[:, None, None]
    return refl


def ground_reflectance(scenario: Scenario, day: date) -> np.ndarray:
    """Surface reflectance (6, H, W) float32 of the clear-sky ground on ``day``."""
    cover = scenario.cover_at(day.toordinal())
    spectra = endmember_spectra(day)
    vegetation = cover[list(_VEGETATION)].sum(axis=0)
    refl = _mix(cover, spectra)
    # Canopy texture: crowns and gaps make vegetation speckled, strongest in the
    # visible where gaps are shadowed; soils get a gentler grain.
    canopy, grain = scenario.terrain.canopy, scenario.terrain.texture
    veg_tex = np.array([0.14, 0.12, 0.14, 0.07, 0.09, 0.11], np.float32)[:, None, None]
    soil_tex = np.float32(0.06)
    refl *= 1.0 + vegetation * veg_tex * canopy + (1.0 - vegetation) * soil_tex * grain
    sun = sun_position(day, scenario.spec.region_info.center_lat)
    refl *= hillshade_factor(scenario.terrain.dem, scenario.spec.resolution_m, sun.elevation_deg, sun.azimuth_deg)
    return np.clip(refl, 0.0, 1.0).astype(np.float32)
