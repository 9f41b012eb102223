"""Context layers (concessions, protected areas, territories, rivers, provinces) as GeoJSON for the map.

Read from the files settings name (any CRS, GeoPackage or GeoJSON) with the
pipeline's own reader, put in EPSG:4326, simplified to ~10 m (the map never
needs more: a context edge drawn 10 m off changes no decision; legality is
computed on the full geometry in the pipeline) and coordinates rounded to
6 decimals. Kept in memory per file version, since they change rarely and a
country-wide concessions layer takes seconds to read.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from geo_monitor.context import read_layer
from geo_monitor.settings import CONTEXT_LAYERS, Settings

#: Simplification tolerance in degrees (~10 m at the equator).
SIMPLIFY_DEG = 0.0001
COORD_DECIMALS = 6

_cache: dict[tuple[str, str, float], bytes] = {}
_lock = threading.Lock()


def available_layers(settings: Settings) -> list[str]:
    """The context layers that have a file, in the order the map stacks them."""
    return [layer for layer in CONTEXT_LAYERS if (path := settings.context_layer_path(layer)) and path.is_file()]


def layer_geojson(settings: Settings, layer: str) -> bytes | None:
    """``layer`` as GeoJSON bytes (EPSG:4326), or None when it has no file. Raises InvalidInputError on a bad file."""
    if layer not in CONTEXT_LAYERS:
        return None
    path = settings.context_layer_path(layer)
    if path is None or not path.is_file():
        return None
    key = (layer, str(path), path.stat().st_mtime)
    with _lock:
        cached = _cache.get(key)
    if cached is None:
        cached = _convert(path, layer)
        with _lock:
            _cache[key] = cached
    return cached


def _convert(path: Path, layer: str) -> bytes:
    import shapely

    frame = read_layer(path, layer).to_crs(4326)
    geometry = shapely.simplify(frame.geometry.values, SIMPLIFY_DEG, preserve_topology=True)
    geometry = shapely.set_precision(geometry, 10.0**-COORD_DECIMALS)
    features = []
    for index, geom in enumerate(geometry):
        if geom is None or geom.is_empty:
            continue
        properties = {name: frame[name].iloc[index] for name in frame.columns if name != frame.geometry.name}
        features.append({"type": "Feature", "geometry": json.loads(shapely.to_geojson(geom)),
                         "properties": properties})
    return json.dumps({"type": "FeatureCollection", "name": layer, "features": features},
                      separators=(",", ":"), ensure_ascii=False).encode()
