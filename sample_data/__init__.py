"""The SYNTHETIC sample area: a seeded generator of Sentinel-2 L2A-like imagery over a real Ecuadorian mining region.

Everything this package produces is synthetic and labelled so. See
``sample_data/README.md`` for what it contains and how it is made.
"""

from sample_data.areas import FULL, PRESETS, REGIONS, SMALL, AreaSpec, Region
from sample_data.build import BuildReport, build_sample_area, verify_sample_area

__all__ = [
    "FULL",
    "PRESETS",
    "REGIONS",
    "SMALL",
    "AreaSpec",
    "BuildReport",
    "Region",
    "build_sample_area",
    "verify_sample_area",
]
