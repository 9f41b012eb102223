"""The map's point set as typed-array columns (``/map/points.bin``): what the page itself reads.

The JSON form (``/map/points.json``) of 100,000 alerts is 1.1 million
numbers in text: ~0.2 s to encode on the server and ~0.1-0.3 s to parse in
the page (more on a phone), for the same bytes on the wire once gzipped.
Here the numbers travel as little-endian binary columns the browser maps
straight onto typed arrays (no parsing); the few strings (ids, province
names, the codes) are in a small JSON header.

Layout: ``GMP1``, the header's length (uint32), the header (UTF-8 JSON:
``count``, ``codes``, ``provinces``, ``ids``, ``coordScale`` and
``columns``, a list of ``[name, type, byte offset, byte length]``), then, from
the next multiple of 4, the columns (offsets count from there, each a
multiple of 4). Types: ``i4`` (lon, lat in units of ``1 / COORD_SCALE`` degree),
``u1`` (enumeration codes), ``i2`` (province index, -1 unknown), ``u2``
(first detection, days since 1970-01-01), ``f4`` (area in ha, score).
"""

from __future__ import annotations

import json
from datetime import date

import numpy as np

from geo_monitor.store.map_points import CODES, COORD_DECIMALS, MapPoints

MAGIC = b"GMP1"
COORD_SCALE = 10**COORD_DECIMALS
_EPOCH = date(1970, 1, 1).toordinal()
#: Column name -> numpy type (little-endian), in the order they are written.
COLUMN_TYPES: dict[str, str] = {
    "lon": "<i4", "lat": "<i4", "priority": "u1", "confidence": "u1", "status": "u1", "legality": "u1",
    "province": "<i2", "first_detected": "<u2", "area_ha": "<f4", "score": "<f4",
}
_TYPE_NAMES = {"<i4": "i4", "u1": "u1", "<i2": "i2", "<u2": "u2", "<f4": "f4"}


def encode_points(points: MapPoints) -> bytes:
    """The point set as ``GMP1`` bytes (see the module's docstring)."""
    arrays = {
        "lon": np.rint(np.asarray(points.lon, dtype=np.float64) * COORD_SCALE),
        "lat": np.rint(np.asarray(points.lat, dtype=np.float64) * COORD_SCALE),
        "first_detected": np.asarray([date.fromisoformat(d).toordinal() - _EPOCH for d in points.first_detected]),
        **{name: np.asarray(getattr(points, name)) for name in COLUMN_TYPES
           if name not in ("lon", "lat", "first_detected")},
    }
    blobs = {name: arrays[name].astype(kind).tobytes() for name, kind in COLUMN_TYPES.items()}
    columns, offset = [], 0
    for name, kind in COLUMN_TYPES.items():
        columns.append([name, _TYPE_NAMES[kind], offset, len(blobs[name])])
        offset = _aligned(offset + len(blobs[name]))
    header = json.dumps({"count": len(points.ids), "codes": CODES, "provinces": points.provinces, "ids": points.ids,
                         "coordScale": COORD_SCALE, "columns": columns},
                        separators=(",", ":"), ensure_ascii=False).encode()
    out = bytearray(MAGIC + len(header).to_bytes(4, "little") + header)
    data_start = _aligned(len(out))
    for name, _kind, start, _length in columns:
        out.extend(b"\0" * (data_start + start - len(out)))
        out.extend(blobs[name])
    return bytes(out)


def _aligned(offset: int) -> int:
    return (offset + 3) // 4 * 4
