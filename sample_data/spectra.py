"""Surface reflectance of the land covers in the synthetic sample area (SYNTHETIC).

Four spectra are anchored on medians measured on real Sentinel-2 L2A chips
over Ecuadorian mining areas (forest, bare mining soil, turbid mining ponds,
mixed regrowth/pasture). The others are set from their physics relative to
those anchors, and say so. Band order everywhere in this package is
``REFLECTANCE_BANDS``: blue, green, red, nir, swir16, swir22.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

import numpy as np

from geo_monitor.bands import REFLECTANCE_BANDS

N_BANDS: Final[int] = len(REFLECTANCE_BANDS)


class Cover(IntEnum):
    """Land-cover end-members; each pixel is a linear mixture of their fractions."""

    FOREST = 0
    PASTURE = 1  # mixed regrowth / pasture
    MINING_SOIL = 2
    POND = 3  # turbid mining pond
    RIVER = 4  # sediment-laden Andean-Amazon river water
    SAND = 5  # river sand and gravel bars
    AG_SOIL = 6  # freshly cleared / tilled field soil with debris
    CHAR = 7  # burn scar
    CROP = 8
    ROCK = 9  # fresh landslide scar
    URBAN = 10
    GRAVEL = 11  # road surface


N_COVERS: Final[int] = len(Cover)

#: Reflectance of each cover, rows in ``Cover`` order, columns blue..swir22.
SPECTRA: Final[np.ndarray] = np.array(
    [
        # anchored: median of real S2 chips, Ecuadorian mining areas
        [0.025, 0.042, 0.023, 0.284, 0.147, 0.062],  # FOREST
        [0.071, 0.093, 0.085, 0.264, 0.193, 0.122],  # PASTURE
        [0.098, 0.137, 0.166, 0.215, 0.234, 0.154],  # MINING_SOIL
        [0.078, 0.102, 0.107, 0.072, 0.057, 0.042],  # POND
        # set from physics, relative to the anchors
        [0.062, 0.088, 0.092, 0.058, 0.038, 0.027],  # RIVER: turbid like ponds, slightly darker
        [0.105, 0.135, 0.155, 0.205, 0.255, 0.195],  # SAND: bright, dry, no chlorophyll
        [0.062, 0.082, 0.102, 0.190, 0.240, 0.168],  # AG_SOIL: darker, moister, slash left on it
        [0.035, 0.045, 0.055, 0.110, 0.180, 0.150],  # CHAR: low NIR, SWIR up (NBR drop)
        [0.040, 0.075, 0.050, 0.340, 0.210, 0.105],  # CROP: green, high NIR
        [0.115, 0.150, 0.175, 0.235, 0.280, 0.210],  # ROCK: fresh landslide debris
        [0.085, 0.095, 0.105, 0.170, 0.200, 0.175],  # URBAN: roofs, concrete, streets
        [0.110, 0.135, 0.150, 0.200, 0.240, 0.190],  # GRAVEL: road surface
    ],
    dtype=np.float32,
)

#: How much each cover's NIR and red follow the season (vegetation only).
SEASONAL_AMPLITUDE: Final[np.ndarray] = np.array(
    [0.04, 0.12, 0, 0, 0, 0, 0, 0, 0.10, 0, 0, 0], dtype=np.float32
)

#: Top-of-cloud reflectance (thick convective cloud), blue..swir22.
CLOUD_SPECTRUM: Final[np.ndarray] = np.array([0.46, 0.45, 0.45, 0.47, 0.36, 0.24], dtype=np.float32)
#: Path radiance added by haze of unit optical depth: strongest in blue, ~nothing in SWIR.
HAZE_SPECTRUM: Final[np.ndarray] = np.array([1.0, 0.78, 0.58, 0.32, 0.08, 0.03], dtype=np.float32)
#: Thin cirrus is nearly spectrally flat in the VNIR-SWIR.
CIRRUS_SPECTRUM: Final[np.ndarray] = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.8], dtype=np.float32)
