"""Random fields and terrain for the synthetic sample area: pure numpy, seeded.

Everything here takes a ``numpy.random.Generator`` and array shapes, never
paths, so the same seed always gives the same arrays.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def power_law_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float = 3.0) -> np.ndarray:
    """Gaussian random field with a 1/f^beta spectrum, normalised to zero mean, unit std.

    beta ~3 gives cloud-like and terrain-like fields (large smooth structures
    with rough edges); beta ~1 gives fine texture.
    """
    h, w = shape
    white = rng.standard_normal(shape).astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freq = np.sqrt(fx * fx + fy * fy)
    freq[0, 0] = 1.0
    spectrum = np.fft.rfft2(white) / freq ** (beta / 2.0)
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=shape).astype(np.float32)
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def to_unit_rank(field: np.ndarray) -> np.ndarray:
    """Map a field to [0, 1] by its empirical distribution (so thresholds are quantiles)."""
    flat = field.ravel()
    order = np.argsort(flat, kind="stable")
    ranks = np.empty_like(order)
    ranks[order] = np.arange(flat.size)
    return (ranks.reshape(field.shape) / max(flat.size - 1, 1)).astype(np.float32)


def smooth_mask(mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Soft 0..1 fractions from a boolean mask: mixed pixels along its edges."""
    if sigma_px <= 0:
        return mask.astype(np.float32)
    return np.clip(ndimage.gaussian_filter(mask.astype(np.float32), sigma_px), 0.0, 1.0)


def distance_px(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (pixels) from every pixel to the nearest True pixel of ``mask``."""
    return ndimage.distance_transform_edt(~mask).astype(np.float32)


def hillshade_factor(
    dem: np.ndarray, res_m: float, sun_elevation_deg: float, sun_azimuth_deg: float
) -> np.ndarray:
    """Multiplicative illumination of each pixel relative to flat ground (Lambertian, clipped).

    ``sun_azimuth_deg`` is clockwise from north; rows run north to south.
    """
    dz_dy, dz_dx = np.gradient(dem, res_m)
    slope = np.arctan(np.hypot(dz_dx, dz_dy))
    # aspect: direction the slope faces, clockwise from north (rows increase southwards)
    aspect = np.arctan2(-dz_dx, dz_dy)
    zenith = np.radians(90.0 - sun_elevation_deg)
    azimuth = np.radians(sun_azimuth_deg)
    cos_i = np.cos(zenith) * np.cos(slope) + np.sin(zenith) * np.sin(slope) * np.cos(azimuth - aspect)
    # diffuse sky light keeps shaded slopes from going black
    factor = 0.25 + 0.75 * np.clip(cos_i, 0.0, None) / max(np.cos(zenith), 1e-3)
    return np.clip(factor, 0.35, 1.35).astype(np.float32)


def slope_deg(dem: np.ndarray, res_m: float) -> np.ndarray:
    dz_dy, dz_dx = np.gradient(dem, res_m)
    return np.degrees(np.arctan(np.hypot(dz_dx, dz_dy))).astype(np.float32)


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of the last two axes (10 m -> 20 m)."""
    *lead, h, w = array.shape
    return array.reshape(*lead, h // factor, factor, w // factor, factor).mean(axis=(-3, -1))
