"""Sentinel-2 L2A band names, asset-key aliases and SCL classes: the one place they live.

Canonical names are Earth Search v1's asset keys; Planetary Computer's keys
map onto them. Nothing else in the project spells band names or SCL codes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

#: Bands a mining-change pipeline reads, in canonical (Earth Search v1) names.
REFLECTANCE_BANDS: Final[tuple[str, ...]] = ("blue", "green", "red", "nir", "swir16", "swir22")
#: The scene classification layer.
SCL_BAND: Final[str] = "scl"
ALL_BANDS: Final[tuple[str, ...]] = (*REFLECTANCE_BANDS, SCL_BAND)

#: Native ground sample distance of each band, metres.
NATIVE_RESOLUTION_M: Final[dict[str, int]] = {
    "blue": 10,
    "green": 10,
    "red": 10,
    "nir": 10,
    "swir16": 20,
    "swir22": 20,
    "scl": 20,
}

#: Planetary Computer asset key -> canonical name.
PLANETARY_COMPUTER_KEYS: Final[dict[str, str]] = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B08": "nir",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}
#: Canonical name -> Planetary Computer asset key.
CANONICAL_TO_PLANETARY_COMPUTER: Final[dict[str, str]] = {v: k for k, v in PLANETARY_COMPUTER_KEYS.items()}

#: Sentinel-2 band designation (eo:bands common names use these too).
BAND_DESIGNATION: Final[dict[str, str]] = dict(CANONICAL_TO_PLANETARY_COMPUTER)

#: Digital-number conventions of L2A products.
DEFAULT_SCALE: Final[float] = 0.0001
#: From processing baseline 04.00 (January 2022) L2A DNs carry a +1000 offset.
BOA_OFFSET: Final[float] = -0.1
BOA_OFFSET_FIRST_BASELINE: Final[tuple[int, int]] = (4, 0)
NODATA_DN: Final[int] = 0


class SCL(IntEnum):
    """Sen2Cor scene classification codes."""

    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA = 2
    CLOUD_SHADOW = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW_ICE = 11


#: SCL classes that are never evidence of change (DESIGN.md, "Imagery in").
SCL_NEVER_EVIDENCE: Final[frozenset[int]] = frozenset(
    {
        SCL.NO_DATA,
        SCL.SATURATED_OR_DEFECTIVE,
        SCL.CLOUD_SHADOW,
        SCL.CLOUD_MEDIUM_PROBABILITY,
        SCL.CLOUD_HIGH_PROBABILITY,
        SCL.THIN_CIRRUS,
    }
)


def canonical_band_name(asset_key: str) -> str | None:
    """Return the canonical band name for an asset key of either convention, or None."""
    if asset_key in NATIVE_RESOLUTION_M:
        return asset_key
    return PLANETARY_COMPUTER_KEYS.get(asset_key)


def parse_processing_baseline(value: str | float | None) -> tuple[int, int] | None:
    """Parse ``s2:processing_baseline`` ("05.09", "5.9", 5.09) into (major, minor)."""
    if value is None:
        return None
    text = str(value).strip()
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return None


def default_offset(processing_baseline: str | float | None, offset_already_applied: bool) -> float:
    """Reflectance offset to use when an asset has no ``raster:bands`` scale/offset.

    Baseline 04.00 and later add 1000 to every DN (offset -0.1) unless the
    provider says it already removed it. Unknown baselines are treated as
    current ones, because every product reprocessed since 2022 carries the offset.
    """
    if offset_already_applied:
        return 0.0
    parsed = parse_processing_baseline(processing_baseline)
    if parsed is not None and parsed < BOA_OFFSET_FIRST_BASELINE:
        return 0.0
    return BOA_OFFSET
