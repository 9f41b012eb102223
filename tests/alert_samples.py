"""Alerts as the detection pipeline reports them, for store and API tests (import, not fixtures)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

from shapely.geometry import box

from geo_monitor.alerts import Alert, Confidence, Context, Legality, Priority, Provenance, Signature

PIPELINE = "pipeline:mining-change@1"
AGENT = "user:agent.napo"
PUNINO = (-77.62, -1.02)  # a lon/lat near the Río Punino


def make_alert(
    alert_id: str = "gm-0000000000000001",
    *,
    at: tuple[float, float] = PUNINO,
    size_deg: float = 0.002,
    area_ha: float = 4.8,
    last_observed: date = date(2024, 3, 10),
    job_id: str | None = "job-1",
    **overrides: Any,
) -> Alert:
    """An alert as the pipeline would report it: a square site at ``at`` (lon, lat)."""
    lon, lat = at
    fields: dict[str, Any] = dict(
        id=alert_id,
        geometry=box(lon, lat, lon + size_deg, lat + size_deg),
        area_ha=area_ha,
        pond_area_ha=0.6,
        first_detected=date(2024, 2, 1),
        last_observed=last_observed,
        confirmed_at=date(2024, 2, 21),
        confidence=Confidence.HIGH,
        score=0.91,
        signature=Signature(vegetation_loss=0.42, bare_soil=0.55, water=0.12, turbidity=1.08),
        context=Context(province="Napo", protected_area=None, nearest_river="Río Punino", river_distance_m=140.0),
        legality=Legality.PROBABLY_ILLEGAL,
        priority=Priority.HIGH,
        provenance=Provenance(
            pipeline="mining-change",
            pipeline_version="1.0.0",
            model_version="rf-2024.1",
            scene_ids=["S2A_17MQV_20240201_0_L2A", "S2B_17MQV_20240221_0_L2A"],
            job_id=job_id,
        ),
    )
    fields.update(overrides)
    return Alert(**fields)


def grown(alert: Alert, **overrides: Any) -> Alert:
    """The same site one scene later: larger, seen later, one more scene id."""
    lon, lat, maxx, maxy = alert.geometry.bounds
    scene_ids = [*alert.provenance.scene_ids, "S2A_17MQV_20240312_0_L2A"]
    return replace(
        alert,
        geometry=box(lon, lat, maxx + 0.001, maxy),
        area_ha=alert.area_ha * 1.5,
        last_observed=alert.last_observed + timedelta(days=2),
        provenance=replace(alert.provenance, scene_ids=scene_ids, job_id="job-2"),
        **overrides,
    )


def old_rows(alerts: list[Alert], at: datetime | None = None) -> list[dict[str, Any]]:
    """Alert rows as a store before revision 0004 held them (no feature text), for migration tests.

    ``upsert_alerts`` writes today's columns, which an old schema lacks; insert
    these with ``insert(AlertRow.__table__)`` instead (SYNTHETIC timestamps).
    """
    from geo_monitor.store.records import detection_values

    at = at or datetime(2026, 11, 1, tzinfo=timezone.utc)
    return [
        {**detection_values(alert), "id": alert.id, "status": "new", "assignee": None, "note": None,
         "created_at": at, "updated_at": at + timedelta(seconds=i)}
        for i, alert in enumerate(alerts)
    ]
