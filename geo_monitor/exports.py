"""Alert exports for field and GIS tools: GeoJSON, GeoPackage, KML, CSV, zipped Shapefile and GPX.

Pure I/O: an iterable of stored alerts in, one file in a folder the caller
owns out. Alerts are written in batches through pyogrio/GDAL (appending), so
an export of the whole store never holds every alert in memory at once.

Every format has the same columns (:data:`COLUMNS`). Dates and times are ISO
8601 text (``YYYY-MM-DD``, RFC 3339 UTC), the same in every format, because
Shapefile and KML have no datetime type. The geometry is MultiPolygon in
EPSG:4326. CSV carries it as WKT plus the centroid's ``lon``/``lat`` (what a
GPS or a spreadsheet can use). Shapefile field names are at most 10
characters: :data:`SHAPEFILE_NAMES` is the mapping (also in docs/partners.md),
and the zip holds ``.shp``, ``.shx``, ``.dbf``, ``.prj`` and ``.cpg``.

GPX is for handheld GPS units and phone apps, which navigate to points, not
polygons: one waypoint per alert at its centroid (the same point as the CSV's
``lon``/``lat``), named by the alert id, with the priority as the waypoint
``type`` and a flag symbol by priority, and a short description (priority,
legality, area, first detection, province) in ``desc``. Only GPX's own
waypoint fields are written, so every GPS reads all of it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import pandas as pd
import pyogrio
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo_monitor.errors import InvalidInputError
from geo_monitor.store.query import StoredAlert

#: Alerts written per GDAL append: bounds memory whatever the export's size.
BATCH: Final = 2000
LAYER: Final = "alerts"
CRS: Final = "EPSG:4326"


@dataclass(frozen=True)
class ExportFormat:
    driver: str
    suffix: str
    media_type: str
    layer_options: tuple[tuple[str, str], ...] = ()


FORMATS: Final[dict[str, ExportFormat]] = {
    "geojson": ExportFormat("GeoJSON", ".geojson", "application/geo+json", (("RFC7946", "YES"),)),
    "gpkg": ExportFormat("GPKG", ".gpkg", "application/geopackage+sqlite3"),
    "kml": ExportFormat("LIBKML", ".kml", "application/vnd.google-earth.kml+xml"),
    "csv": ExportFormat("CSV", ".csv", "text/csv", (("GEOMETRY", "AS_WKT"), ("GEOMETRY_NAME", "wkt"))),
    "shp": ExportFormat("ESRI Shapefile", ".zip", "application/zip", (("ENCODING", "UTF-8"),)),
    "gpx": ExportFormat("GPX", ".gpx", "application/gpx+xml"),
}

#: GPX waypoint symbol per priority (Garmin's names, which most GPS apps also know).
GPX_SYMBOLS: Final[dict[str, str]] = {
    "critical": "Flag, Red",
    "high": "Flag, Red",
    "medium": "Flag, Blue",
    "low": "Flag, Green",
}
#: The GPX layer GDAL writes points to.
GPX_LAYER: Final = "waypoints"

#: (column, kind, value from a StoredAlert). Kind "float" columns are numbers, the rest text.
COLUMNS: Final[tuple[tuple[str, str, Callable[[StoredAlert], Any]], ...]] = (
    ("id", "str", lambda s: s.alert.id),
    ("status", "str", lambda s: s.status.value),
    ("priority", "str", lambda s: s.alert.priority.value),
    ("legality", "str", lambda s: s.alert.legality.value),
    ("confidence", "str", lambda s: s.alert.confidence.value),
    ("score", "float", lambda s: s.alert.score),
    ("area_ha", "float", lambda s: s.alert.area_ha),
    ("pond_area_ha", "float", lambda s: s.alert.pond_area_ha),
    ("first_detected", "str", lambda s: _text(s.alert.first_detected)),
    ("last_observed", "str", lambda s: _text(s.alert.last_observed)),
    ("confirmed_at", "str", lambda s: _text(s.alert.confirmed_at)),
    ("province", "str", lambda s: s.alert.context.province),
    ("concession_code", "str", lambda s: s.alert.context.concession_code),
    ("concession_status", "str", lambda s: s.alert.context.concession_status),
    ("protected_area", "str", lambda s: s.alert.context.protected_area),
    ("indigenous_territory", "str", lambda s: s.alert.context.indigenous_territory),
    ("nearest_river", "str", lambda s: s.alert.context.nearest_river),
    ("river_distance_m", "float", lambda s: s.alert.context.river_distance_m),
    ("vegetation_loss", "float", lambda s: s.alert.signature.vegetation_loss),
    ("bare_soil", "float", lambda s: s.alert.signature.bare_soil),
    ("water", "float", lambda s: s.alert.signature.water),
    ("turbidity", "float", lambda s: s.alert.signature.turbidity),
    ("assignee", "str", lambda s: s.assignee),
    ("note", "str", lambda s: s.note),
    ("pipeline", "str", lambda s: s.alert.provenance.pipeline),
    ("pipeline_version", "str", lambda s: s.alert.provenance.pipeline_version),
    ("model_version", "str", lambda s: s.alert.provenance.model_version),
    ("scene_ids", "str", lambda s: ";".join(s.alert.provenance.scene_ids)),
    ("job_id", "str", lambda s: s.alert.provenance.job_id),
    ("created_at", "str", lambda s: _text(s.created_at)),
    ("updated_at", "str", lambda s: _text(s.updated_at)),
)

#: Column -> Shapefile (dBASE) field name, at most 10 characters; names already short enough stay.
SHAPEFILE_NAMES: Final[dict[str, str]] = {
    "pond_area_ha": "pond_ha",
    "first_detected": "first_det",
    "last_observed": "last_obs",
    "confirmed_at": "confirmed",
    "confidence": "confidenc",
    "concession_code": "conc_code",
    "concession_status": "conc_stat",
    "protected_area": "protected",
    "indigenous_territory": "indigenous",
    "nearest_river": "river",
    "river_distance_m": "river_m",
    "vegetation_loss": "veg_loss",
    "pipeline_version": "pipe_ver",
    "model_version": "model_ver",
    "created_at": "created",
    "updated_at": "updated",
}


def check_format(name: str) -> ExportFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}; got {name!r}") from None


def write_export(alerts: Iterable[StoredAlert], fmt: str, directory: Path) -> Path:
    """Write ``alerts`` as ``fmt`` into ``directory`` (which must exist) and return the file to send."""
    spec = check_format(fmt)
    target = directory / f"{LAYER}{'.shp' if fmt == 'shp' else spec.suffix}"
    if fmt == "gpx":
        return _write_gpx(alerts, target)
    rename = SHAPEFILE_NAMES if fmt == "shp" else {}
    written = False
    for batch in _batches(alerts, BATCH):
        _write_frame(_frame(batch, rename, csv=fmt == "csv"), target, spec, append=written)
        written = True
    if not written:  # an empty export is still a valid file with the columns
        _write_frame(_frame([], rename, csv=fmt == "csv"), target, spec, append=False)
    return _zip_shapefile(target) if fmt == "shp" else target


def _write_frame(frame: gpd.GeoDataFrame, target: Path, spec: ExportFormat, *, append: bool) -> None:
    pyogrio.write_dataframe(
        frame,
        target,
        layer=LAYER,
        driver=spec.driver,
        append=append,
        geometry_type="MultiPolygon",
        promote_to_multi=True,
        layer_options=dict(spec.layer_options) or None,
    )


def _frame(batch: list[StoredAlert], rename: dict[str, str], *, csv: bool) -> gpd.GeoDataFrame:
    data: dict[str, Any] = {}
    for name, kind, value in COLUMNS:
        values = [value(stored) for stored in batch]
        data[rename.get(name, name)] = pd.Series(values, dtype="float64" if kind == "float" else "object")
    geometries = [_multi(stored.alert.geometry) for stored in batch]
    if csv:  # what a GPS or a spreadsheet can use without parsing WKT
        centroids = [g.centroid for g in geometries]
        data["lon"] = pd.Series([round(c.x, 7) for c in centroids], dtype="float64")
        data["lat"] = pd.Series([round(c.y, 7) for c in centroids], dtype="float64")
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geometries, crs=CRS), crs=CRS)


def _write_gpx(alerts: Iterable[StoredAlert], target: Path) -> Path:
    """Waypoints at the alerts' centroids. GDAL's GPX driver cannot append, so the points (a few
    short strings each) are gathered first and written in one go."""
    rows: dict[str, list[Any]] = {"name": [], "cmt": [], "desc": [], "sym": [], "type": []}
    points = []
    for stored in alerts:
        alert = stored.alert
        priority = alert.priority.value
        rows["name"].append(alert.id)
        rows["cmt"].append(f"{priority}; {alert.legality.value}; {stored.status.value}")
        rows["desc"].append(
            f"priority {priority}, {alert.legality.value.replace('_', ' ')}, {alert.area_ha:.2f} ha, "
            f"first detected {alert.first_detected.isoformat()}"
            + (f", {alert.context.province}" if alert.context.province else "")
        )
        rows["sym"].append(GPX_SYMBOLS.get(priority, "Flag, Blue"))
        rows["type"].append(priority)
        points.append(alert.geometry.centroid)
    frame = gpd.GeoDataFrame({k: pd.Series(v, dtype="object") for k, v in rows.items()},
                             geometry=gpd.GeoSeries(points, crs=CRS), crs=CRS)
    pyogrio.write_dataframe(frame, target, layer=GPX_LAYER, driver="GPX", geometry_type="Point")
    return target


def _zip_shapefile(shp: Path) -> Path:
    archive = shp.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(shp.parent.glob(f"{shp.stem}.*")):
            if part != archive:
                zf.write(part, arcname=part.name)
    return archive


def _multi(geometry: BaseGeometry) -> MultiPolygon:
    return MultiPolygon([geometry]) if isinstance(geometry, Polygon) else geometry


def _text(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _batches(items: Iterable[StoredAlert], size: int) -> Iterator[list[StoredAlert]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
