"""Alert exports opened back with pyogrio/GDAL: every format has every alert, its columns and EPSG:4326."""

from __future__ import annotations

import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyogrio
import pytest
from alert_samples import make_alert
from shapely.geometry import MultiPolygon, box

from geo_monitor.alerts import Status
from geo_monitor.errors import InvalidInputError
from geo_monitor.alerts import Priority
from geo_monitor.exports import COLUMNS, FORMATS, GPX_LAYER, SHAPEFILE_NAMES, write_export
from geo_monitor.store.query import StoredAlert

T0 = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)


def _stored(n: int) -> list[StoredAlert]:
    out = []
    for i in range(n):
        alert = make_alert(f"gm-{i:016x}", at=(-77.9 + i * 0.01, -1.0))
        if i == 1:  # a MultiPolygon and a workflow note with non-ASCII text
            alert = type(alert)(**{**alert.__dict__, "geometry": MultiPolygon([box(-77.5, -1.2, -77.49, -1.19),
                                                                                box(-77.48, -1.2, -77.47, -1.19)])})
        out.append(StoredAlert(alert=alert, status=Status.UNDER_REVIEW if i == 1 else Status.NEW,
                               assignee="agente.napo" if i == 1 else None,
                               note="Revisión en el río Punino" if i == 1 else None,
                               created_at=T0, updated_at=T0 + timedelta(seconds=i)))
    return out


def _read(path: Path, fmt: str):
    if fmt == "shp":
        with zipfile.ZipFile(path) as zf:
            names = sorted(zf.namelist())
            assert {Path(n).suffix for n in names} >= {".shp", ".shx", ".dbf", ".prj"}, names
            zf.extractall(path.parent / "unzipped")
        path = path.parent / "unzipped" / "alerts.shp"
    if fmt == "gpx":
        return pyogrio.read_dataframe(path, layer=GPX_LAYER)
    return pyogrio.read_dataframe(path)


#: Formats carrying every column and the polygons (GPX carries waypoints for a GPS: tested on its own).
TABLE_FORMATS = [name for name in FORMATS if name != "gpx"]


@pytest.mark.parametrize("fmt", TABLE_FORMATS)
def test_every_format_reads_back(tmp_path: Path, fmt: str) -> None:
    alerts = _stored(5)
    path = write_export(iter(alerts), fmt, tmp_path)
    frame = _read(path, fmt)
    assert len(frame) == 5
    names = [SHAPEFILE_NAMES.get(c, c) if fmt == "shp" else c for c, _, _ in COLUMNS]
    if fmt == "kml":  # KML keeps its own name/description; our columns come as extended data
        assert {"id", "status", "priority", "province"} <= set(frame.columns)
    else:
        assert set(names) <= set(frame.columns), set(names) - set(frame.columns)
    if fmt == "csv":
        assert {"wkt", "lon", "lat"} <= set(frame.columns)
        assert frame["lon"].astype(float).between(-78, -77).all()
        assert frame["wkt"].str.startswith("MULTIPOLYGON").all()
    else:
        assert frame.crs is not None and frame.crs.to_epsg() == 4326
        # KML and Shapefile do not tell single- from one-part multi-polygons on reading back
        assert set(frame.geometry.geom_type) <= ({"MultiPolygon", "Polygon"} if fmt in ("kml", "shp") else {"MultiPolygon"})
        assert [round(g.area, 10) for g in frame.geometry] == [round(a.alert.geometry.area, 10) for a in alerts]
    ids = frame["id"].tolist()
    assert ids == [a.alert.id for a in alerts]
    row = frame.iloc[1]
    status_col = "status"
    assert row[status_col] == "under_review"
    note_col = "note"
    assert row[note_col] == "Revisión en el río Punino"
    first = SHAPEFILE_NAMES.get("first_detected", "first_detected") if fmt == "shp" else "first_detected"
    assert str(row[first]).startswith("2024-02-01")


def test_shapefile_field_names_fit_dbase() -> None:
    for column, _, _ in COLUMNS:
        assert len(SHAPEFILE_NAMES.get(column, column)) <= 10, column
    short = [SHAPEFILE_NAMES.get(c, c) for c, _, _ in COLUMNS]
    assert len(short) == len(set(short))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_empty_export_is_a_valid_file(tmp_path: Path, fmt: str) -> None:
    path = write_export(iter(()), fmt, tmp_path)
    assert len(_read(path, fmt)) == 0


def test_large_export_is_written_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("geo_monitor.exports.BATCH", 3)
    path = write_export(iter(_stored(10)), "gpkg", tmp_path)
    assert pyogrio.read_dataframe(path)["id"].tolist() == [f"gm-{i:016x}" for i in range(10)]


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="format must be one of"):
        write_export(iter(()), "xlsx", tmp_path)


def test_gpx_has_a_waypoint_per_alert_at_its_centroid(tmp_path: Path) -> None:
    alerts = _stored(4)
    alerts[2] = StoredAlert(**{**alerts[2].__dict__,
                               "alert": type(alerts[2].alert)(**{**alerts[2].alert.__dict__,
                                                                 "priority": Priority.CRITICAL})})
    path = write_export(iter(alerts), "gpx", tmp_path)
    assert path.suffix == ".gpx"
    assert pyogrio.read_info(path, layer=GPX_LAYER)["crs"] == "EPSG:4326"
    frame = pyogrio.read_dataframe(path, layer=GPX_LAYER)
    assert frame["name"].tolist() == [a.alert.id for a in alerts]
    assert frame["type"].tolist() == [a.alert.priority.value for a in alerts] == ["high", "high", "critical", "high"]
    assert set(frame.geometry.geom_type) == {"Point"}
    for point, stored in zip(frame.geometry, alerts):
        centroid = stored.alert.geometry.centroid
        assert point.distance(centroid) < 1e-7  # the MultiPolygon's centroid too, not its first part's
    assert "Napo" in frame["desc"][0] and "4.80 ha" in frame["desc"][0] and "2024-02-01" in frame["desc"][0]
    assert frame["cmt"][1] == "high; probably_illegal; under_review"
    text = path.read_text(encoding="utf-8")
    assert text.count("<wpt ") == 4 and "http://www.topografix.com/GPX/1/1" in text
