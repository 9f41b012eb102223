"""Sky and sensor over the synthetic ground: clouds, shadows, haze, cirrus, noise, SCL (SYNTHETIC).

Pure computation. :func:`draw_sky` draws one scene's conditions from its own
seeded generator; :func:`observe` turns ground reflectance into what the
sensor records; :func:`scene_classification` makes a Sen2Cor-like SCL at
20 m that is wrong the ways Sen2Cor is wrong over the Amazon: it misses thin
cloud edges and the soft edges of shadows, and in some scenes calls bright
bare soil (mining pits, sand bars, landslides) cloud.

The numbers below are physical or climatological choices, not fits to any
detector: cloud cover in the Ecuadorian Amazon foothills is high all year
(median scene cover well above 60 %) and highest March–July; convective
clouds sit 0.8–3 km up; the sun is 45–75° high at the 10:30 overpass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy import ndimage

from geo_monitor.bands import SCL
from sample_data.fields import block_mean, power_law_noise, to_unit_rank
from sample_data.render import SunPosition
from sample_data.spectra import CIRRUS_SPECTRUM, CLOUD_SPECTRUM, HAZE_SPECTRUM

#: Fraction of scenes cut by the edge of the orbit swath (no data beyond it).
SWATH_EDGE_SHARE = 0.12
#: Fraction of scenes where Sen2Cor calls bright bare ground cloud.
BRIGHT_SOIL_CONFUSION_SHARE = 0.35
#: Fraction of scenes with thin cirrus.
CIRRUS_SHARE = 0.25
#: Sensor noise (reflectance units, 1 sigma).
NOISE_SIGMA = 0.0025

_BLUE, _GREEN, _RED, _NIR, _SWIR16, _SWIR22 = range(6)


@dataclass(frozen=True)
class Sky:
    """Everything about one acquisition except the ground: pixel fields at 10 m."""

    cloud: np.ndarray  # opacity 0..1
    shadow: np.ndarray  # 0..1 share of direct sunlight blocked
    haze: np.ndarray  # path reflectance at blue, added with HAZE_SPECTRUM
    cirrus: np.ndarray  # reflectance added with CIRRUS_SPECTRUM
    valid: np.ndarray  # False beyond the swath edge
    cloud_brightness: float
    gain: float  # small absolute calibration difference between passes
    bright_soil_confusion: bool
    noise_seed: int


def cloud_target(day: date, rng: np.random.Generator) -> float:
    """Share of the scene under cloud: Beta-distributed around a seasonal mean."""
    doy = day.timetuple().tm_yday
    mean = 0.70 + 0.12 * math.sin(2 * math.pi * (doy - 50) / 365.0)  # wettest ~April-May
    concentration = 2.2
    return float(rng.beta(mean * concentration, (1 - mean) * concentration))


def _upsampled_noise(rng: np.random.Generator, shape: tuple[int, int], factor: int, beta: float) -> np.ndarray:
    """Large-scale noise drawn on a coarse grid and zoomed: cheap, smooth, seeded."""
    coarse = power_law_noise(rng, (shape[0] // factor, shape[1] // factor), beta)
    return ndimage.zoom(coarse, factor, order=1)[: shape[0], : shape[1]]


def _cloud_opacity(rng: np.random.Generator, shape: tuple[int, int], share: float) -> np.ndarray:
    """Clumped convective cloud with thick cores and thin, ragged edges covering ~``share``."""
    if share < 0.005:
        return np.zeros(shape, np.float32)
    field = _upsampled_noise(rng, shape, 4, 3.4) + 0.25 * power_law_noise(rng, shape, 1.8)
    rank = to_unit_rank(field)
    threshold = 1.0 - share
    # opacity rises over ~8 % of the rank distribution: a margin of thin cloud
    opacity = np.clip((rank - threshold) / 0.08, 0.0, 1.0) ** 0.8
    return opacity.astype(np.float32)


def _shadow_offset_px(sun: SunPosition, height_m: float, res_m: float) -> tuple[float, float]:
    """(rows, cols) from a cloud to its shadow: away from the sun, longer when the sun is low."""
    length_px = height_m / math.tan(math.radians(sun.elevation_deg)) / res_m
    az = math.radians(sun.azimuth_deg)
    return length_px * math.cos(az), -length_px * math.sin(az)  # rows run south


def _cloud_and_shadow(rng: np.random.Generator, shape: tuple[int, int], share: float, sun: SunPosition,
                      res_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Cloud opacity and its shadow over ``shape``.

    Clouds are drawn over a margin around the area as wide as the shadow's
    offset, so that clouds just outside cast shadows inside, as they do.
    """
    drow, dcol = _shadow_offset_px(sun, rng.uniform(800, 3000), res_m)
    pad = int(math.ceil(max(abs(drow), abs(dcol)))) + 4
    # the coarse noise grid needs sides that are a multiple of its zoom factor
    padded = tuple(-(-(n + 2 * pad) // 8) * 8 for n in shape)
    cloud = _cloud_opacity(rng, padded, share)
    shadow = ndimage.shift(cloud, (drow, dcol), order=1, mode="constant", cval=0.0)
    shadow = ndimage.gaussian_filter(shadow, 1.5)
    shadow = np.clip(shadow * (1.0 - cloud), 0.0, 1.0)
    inner = (slice(pad, pad + shape[0]), slice(pad, pad + shape[1]))
    return cloud[inner].astype(np.float32), shadow[inner].astype(np.float32)


def _swath_valid(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Valid side of a swath edge running roughly north-south, tilted like the orbit track."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w]
    tilt = math.tan(math.radians(rng.uniform(8, 14)))
    edge_col = rng.uniform(0.35, 0.8) * w
    left_is_valid = rng.random() < 0.5
    beyond = cols - tilt * (rows - h / 2) > edge_col
    return ~beyond if left_is_valid else beyond


def draw_sky(rng: np.random.Generator, day: date, sun: SunPosition, shape: tuple[int, int], res_m: float) -> Sky:
    """One scene's atmosphere and geometry, all from ``rng``."""
    share = cloud_target(day, rng)
    cloud, shadow = _cloud_and_shadow(rng, shape, share, sun, res_m)
    aot = float(rng.lognormal(math.log(0.025), 0.6))  # path reflectance in blue
    haze = (aot * (0.6 + 0.8 * to_unit_rank(_upsampled_noise(rng, shape, 8, 4.0)))).astype(np.float32)
    if rng.random() < CIRRUS_SHARE:
        streaks = ndimage.zoom(power_law_noise(rng, (shape[0] // 16, shape[1] // 2), 3.0), (16, 2), order=1)
        streaks = streaks[: shape[0], : shape[1]]
        cirrus = (rng.uniform(0.01, 0.05) * np.clip(streaks, 0, None)).astype(np.float32)
        angle = rng.uniform(0, 180)
        cirrus = ndimage.rotate(cirrus, angle, reshape=False, order=1, mode="reflect")
    else:
        cirrus = np.zeros(shape, np.float32)
    valid = _swath_valid(rng, shape) if rng.random() < SWATH_EDGE_SHARE else np.ones(shape, bool)
    return Sky(
        cloud=cloud,
        shadow=shadow,
        haze=haze,
        cirrus=cirrus,
        valid=valid,
        cloud_brightness=float(rng.uniform(0.8, 1.1)),
        gain=float(rng.normal(1.0, 0.012)),
        bright_soil_confusion=bool(rng.random() < BRIGHT_SOIL_CONFUSION_SHARE),
        noise_seed=int(rng.integers(2**31)),
    )


def observe(ground: np.ndarray, sky: Sky) -> np.ndarray:
    """Bottom-of-atmosphere reflectance (6, H, W) as Sen2Cor would deliver it, NaN beyond the swath."""
    refl = ground * (1.0 - 0.8 * sky.shadow)  # diffuse skylight still reaches shadowed ground
    refl = refl + HAZE_SPECTRUM[:, None, None] * sky.haze
    cloud_top = (CLOUD_SPECTRUM * sky.cloud_brightness)[:, None, None]
    refl = refl * (1.0 - sky.cloud) + cloud_top * sky.cloud
    refl = refl + CIRRUS_SPECTRUM[:, None, None] * sky.cirrus
    refl = refl * sky.gain
    noise = np.random.default_rng(sky.noise_seed).standard_normal(refl.shape, dtype=np.float32)
    refl = refl + NOISE_SIGMA * noise
    refl = np.clip(refl, 0.0005, 1.5).astype(np.float32)
    refl[:, ~sky.valid] = np.nan
    return refl


def scene_classification(refl: np.ndarray, sky: Sky, rng: np.random.Generator) -> np.ndarray:
    """Sen2Cor-like SCL (uint8) at 20 m from 10 m reflectance and the true sky.

    Right most of the time, wrong the documented ways: thin cloud edges
    (opacity below ~0.15) and soft shadow edges are left as ground, part of
    the medium-thin margin goes to class 7 (unclassified) instead of cloud,
    and where ``sky.bright_soil_confusion`` bright bare ground is flagged
    cloud medium/high probability.
    """
    r20 = block_mean(np.nan_to_num(refl, nan=0.0), 2)
    cloud = block_mean(sky.cloud, 2)
    shadow = block_mean(sky.shadow, 2)
    cirrus = block_mean(sky.cirrus, 2)
    valid = block_mean(sky.valid.astype(np.float32), 2) > 0.99

    blue, green, red, nir, swir16 = r20[_BLUE], r20[_GREEN], r20[_RED], r20[_NIR], r20[_SWIR16]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    ndwi = (green - nir) / np.maximum(green + nir, 1e-6)
    scl = np.full(cloud.shape, SCL.NOT_VEGETATED, np.uint8)
    scl[ndvi > 0.45] = SCL.VEGETATION
    scl[(ndwi > 0.05) & (nir < 0.13)] = SCL.WATER
    scl[(green + red + nir < 0.09)] = SCL.DARK_AREA

    scl[shadow > 0.45] = SCL.CLOUD_SHADOW
    thin_margin = (cloud > 0.15) & (cloud <= 0.35)
    scl[thin_margin & (rng.random(cloud.shape) < 0.5)] = SCL.UNCLASSIFIED
    scl[(cirrus > 0.025) & (cloud <= 0.35)] = SCL.THIN_CIRRUS
    scl[(cloud > 0.35) & (cloud <= 0.6)] = SCL.CLOUD_MEDIUM_PROBABILITY
    scl[cloud > 0.6] = SCL.CLOUD_HIGH_PROBABILITY

    if sky.bright_soil_confusion:
        bright_bare = (blue > 0.085) & (swir16 > 0.2) & (ndvi < 0.3) & (cloud < 0.35)
        coin = ndimage.gaussian_filter(rng.random(cloud.shape).astype(np.float32), 1.0)
        scl[bright_bare & (coin > 0.5)] = SCL.CLOUD_MEDIUM_PROBABILITY
        scl[bright_bare & (blue > 0.11)] = SCL.CLOUD_HIGH_PROBABILITY
    scl[~valid] = SCL.NO_DATA
    return scl


def cloud_cover_percent(scl: np.ndarray) -> float:
    """``eo:cloud_cover`` as Sen2Cor reports it: cloud medium/high and cirrus over valid pixels."""
    valid = scl != SCL.NO_DATA
    if not valid.any():
        return 100.0
    cloudy = np.isin(scl, (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY, SCL.THIN_CIRRUS))
    return round(float(cloudy[valid].mean() * 100.0), 2)
