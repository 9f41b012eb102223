"""Shared type aliases and literal choices."""

from __future__ import annotations

from typing import Literal, TypeAlias

#: (west, south, east, north) in EPSG:4326 degrees unless a docstring says otherwise.
BBox: TypeAlias = tuple[float, float, float, float]

AssetConvention: TypeAlias = Literal["earth-search", "planetary-computer"]
