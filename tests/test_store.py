"""The alert store on both real back-ends (a SQLite file, PostgreSQL + PostGIS): upserts by stable id,
workflow, history, bbox, atomicity, concurrency. The back-end fixtures live in store_backends.py."""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shapely.geometry import MultiPolygon, Point, Polygon, box
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_monitor.alerts import Alert, Confidence, Context, Signature, Status
from geo_monitor.errors import InvalidInputError
from geo_monitor.settings import load_settings
from geo_monitor.store import BUSY_TIMEOUT_MS, AlertNotFoundError, AlertStore, UpsertResult
from geo_monitor.store.engine import SQLITE_MMAP_BYTES

from alert_samples import AGENT, PIPELINE, grown, make_alert

@pytest.fixture
def store(alert_store: AlertStore) -> AlertStore:
    """A fresh migrated store, once per back-end (see ``store_backends.alert_store``)."""
    return alert_store


def history_count(store: AlertStore, *ids: str) -> int:
    return sum(len(store.history(i)) for i in ids)


# --- engine -------------------------------------------------------------------


def test_sqlite_file_is_tuned_for_several_processes(tmp_path: Path) -> None:
    db_file = tmp_path / "store" / "alerts.sqlite"
    with AlertStore.from_url(f"sqlite:///{db_file}") as sqlite_store:
        sqlite_store.migrate()
        assert db_file.is_file()  # parent folder created too
        with sqlite_store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == SQLITE_MMAP_BYTES


def test_from_settings_uses_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", database_url=None)
    with AlertStore.from_settings(settings) as s:
        s.migrate()
        s.migrate()  # idempotent
        assert s.count() == 0
    assert (tmp_path / "data" / "geo-monitor.sqlite").is_file()


# --- upserts ------------------------------------------------------------------


def test_new_alerts_are_inserted_as_new_with_a_creation_record(store: AlertStore) -> None:
    alerts = [make_alert(f"gm-{i:016x}", at=(-77.6 + i * 0.01, -1.0)) for i in range(3)]
    result = store.upsert_alerts(alerts, actor=PIPELINE)
    assert result == UpsertResult(new=3, updated=0, unchanged=0)
    assert store.count() == 3
    got = store.get(alerts[0].id)
    assert got is not None and got.status is Status.NEW
    assert got.created_at is not None and got.created_at.tzinfo is not None
    assert got.created_at == got.updated_at
    [created] = store.history(alerts[0].id)
    assert created["kind"] == "detection" and created["actor"] == PIPELINE
    assert created["changes"]["area_ha"] == [None, 4.8]
    assert store.get("gm-missing") is None


def test_round_trip_alert_store_alert_is_equal(store: AlertStore) -> None:
    alert = make_alert(
        geometry=MultiPolygon([box(-77.62, -1.02, -77.61, -1.01), box(-77.60, -1.02, -77.59, -1.015)]),
        confirmed_at=None,
        confidence=Confidence.NOMINAL,
        context=Context(province="Napo", concession_code="CM-401", concession_status="inscrita"),
        extra={"chunk": [3, 7], "note": "ñandú"},
    )
    store.upsert_alerts([alert], actor=PIPELINE)
    got = store.get(alert.id)
    assert got is not None
    assert replace(got, created_at=None, updated_at=None) == alert
    # and the GeoJSON view of it survives too
    assert Alert.from_feature(json.loads(json.dumps(got.to_feature()))).id == alert.id


def test_rerun_over_same_inputs_changes_nothing(store: AlertStore) -> None:
    alerts = [make_alert(f"gm-{i:016x}", at=(-77.6 + i * 0.01, -1.0)) for i in range(4)]
    store.upsert_alerts(alerts, actor=PIPELINE)
    before = {a.id: store.get(a.id) for a in alerts}
    history_before = history_count(store, *before)

    # Same inputs from another run: float noise and a new job id are not changes.
    rerun = [
        replace(a, area_ha=a.area_ha * (1 + 1e-9), score=a.score + 1e-12,
                provenance=replace(a.provenance, job_id="job-rerun"))
        for a in alerts
    ]
    result = store.upsert_alerts(rerun, actor=PIPELINE)

    assert result == UpsertResult(new=0, updated=0, unchanged=4)
    assert store.count() == 4
    assert {a.id: store.get(a.id) for a in alerts} == before  # updated_at, provenance included
    assert history_count(store, *before) == history_before


def test_growing_site_updates_detection_fields_and_keeps_the_workflow(store: AlertStore) -> None:
    alert = make_alert()
    store.upsert_alerts([alert], actor=PIPELINE)
    store.change_status(alert.id, Status.UNDER_REVIEW, actor=AGENT, note="patrol planned")
    store.assign(alert.id, "agent.napo", actor=AGENT)
    reviewed = store.get(alert.id)
    assert reviewed is not None

    later = grown(alert)
    result = store.upsert_alerts([later], actor=PIPELINE)

    assert result == UpsertResult(new=0, updated=1, unchanged=0)
    got = store.get(alert.id)
    assert got is not None and reviewed.updated_at is not None and got.updated_at is not None
    assert got.area_ha == pytest.approx(later.area_ha) and got.last_observed == later.last_observed
    assert got.geometry.equals(later.geometry)
    assert got.updated_at > reviewed.updated_at and got.created_at == reviewed.created_at
    workflow = store.workflow(alert.id)
    assert workflow is not None
    assert (workflow.status, workflow.assignee, workflow.note) == (Status.UNDER_REVIEW, "agent.napo", "patrol planned")

    entry = store.history(alert.id)[-1]
    assert entry["kind"] == "detection" and entry["actor"] == PIPELINE
    changes = entry["changes"]
    assert changes["area_ha"] == [pytest.approx(alert.area_ha), pytest.approx(later.area_ha)]
    assert changes["last_observed"] == ["2024-03-10", "2024-03-12"]
    assert changes["geometry"][0]["area_ha"] == pytest.approx(alert.area_ha)  # a summary ...
    assert "coordinates" not in json.dumps(changes)  # ... never the full GeoJSON
    assert changes["provenance.scene_ids"] == {"added": ["S2A_17MQV_20240312_0_L2A"], "removed": []}
    assert "status" not in changes and "score" not in changes


def test_numpy_numbers_from_the_pipeline_are_stored_as_plain_json(store: AlertStore) -> None:
    alert = make_alert(
        area_ha=np.float32(4.8),  # type: ignore[arg-type]
        signature=Signature(vegetation_loss=np.float32(0.42), bare_soil=np.float64(0.5),  # type: ignore[arg-type]
                            water=np.int64(0), turbidity=0.0),  # type: ignore[arg-type]
    )
    assert store.upsert_alerts([alert], actor=PIPELINE).new == 1
    assert store.upsert_alerts([alert], actor=PIPELINE).unchanged == 1
    got = store.get(alert.id)
    assert got is not None and type(got.signature.water) is int
    assert got.signature.vegetation_loss == pytest.approx(0.42)


def test_pipeline_status_field_is_ignored_on_upsert(store: AlertStore) -> None:
    store.upsert_alerts([make_alert(status=Status.CONFIRMED)], actor=PIPELINE)
    got = store.get(make_alert().id)
    assert got is not None and got.status is Status.NEW


def test_updated_at_strictly_increases_even_when_the_clock_stalls(store_url: str) -> None:
    frozen = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    with AlertStore.from_url(store_url, clock=lambda: frozen) as s:
        s.migrate()
        s.upsert_alerts([make_alert("gm-a"), make_alert("gm-b", at=(-77.5, -1.0))], actor=PIPELINE)
        s.upsert_alerts([grown(make_alert("gm-a"))], actor=PIPELINE)
        s.change_status("gm-b", Status.UNDER_REVIEW, actor=AGENT)
        a, b = s.get("gm-a"), s.get("gm-b")
        assert a is not None and b is not None and a.created_at == frozen
        assert frozen < a.updated_at < b.updated_at  # type: ignore[operator]
        # polling order and keyset resume
        assert [x.id for x in s.list_alerts()] == ["gm-a", "gm-b"]
        assert [x.id for x in s.list_alerts(after=(a.updated_at, a.id))] == ["gm-b"]  # type: ignore[arg-type]
        assert [x.id for x in s.list_alerts(updated_since=b.updated_at)] == ["gm-b"]


# --- workflow -----------------------------------------------------------------


def test_status_workflow_follows_the_transition_rules(store: AlertStore) -> None:
    ids = ["gm-a", "gm-b"]
    store.upsert_alerts([make_alert(i, at=(-77.6 + n * 0.01, -1.0)) for n, i in enumerate(ids)], actor=PIPELINE)

    with pytest.raises(InvalidInputError, match="new can move to under_review, not confirmed"):
        store.change_status("gm-a", Status.CONFIRMED, actor=AGENT)
    with pytest.raises(InvalidInputError, match="status must be one of"):
        store.change_status("gm-a", "approved", actor=AGENT)
    with pytest.raises(AlertNotFoundError, match="no alert"):
        store.change_status("gm-zzz", Status.UNDER_REVIEW, actor=AGENT)
    with pytest.raises(InvalidInputError, match="actor"):
        store.change_status("gm-a", Status.UNDER_REVIEW, actor=" ")

    store.change_status("gm-a", "under_review", actor=AGENT)
    store.change_status("gm-b", Status.UNDER_REVIEW, actor=AGENT)
    for note in (None, "   "):
        with pytest.raises(InvalidInputError, match="needs a note"):
            store.change_status("gm-a", Status.DISMISSED, actor=AGENT, note=note)
    dismissed = store.change_status("gm-a", Status.DISMISSED, actor=AGENT, note="river bank erosion")
    assert dismissed.status is Status.DISMISSED
    with pytest.raises(InvalidInputError, match="cannot change status any more"):
        store.change_status("gm-a", Status.UNDER_REVIEW, actor=AGENT)

    store.change_status("gm-b", Status.CONFIRMED, actor=AGENT, note="seen from the air")
    store.change_status("gm-b", Status.ACTIONED, actor="user:police.tena", note="site closed")

    statuses = [(h["changes"]["status"], h["actor"], h["note"]) for h in store.history("gm-b") if h["kind"] == "status"]
    assert statuses == [
        (["new", "under_review"], AGENT, None),
        (["under_review", "confirmed"], AGENT, "seen from the air"),
        (["confirmed", "actioned"], "user:police.tena", "site closed"),
    ]
    assert [a.status for a in store.list_alerts(status=Status.DISMISSED)] == [Status.DISMISSED]
    assert {a.id for a in store.list_alerts(status=["dismissed", "actioned"])} == set(ids)


# --- queries ------------------------------------------------------------------


def test_bbox_filter_uses_exact_geometry(store: AlertStore) -> None:
    # A thin L along the west and south edges of (-77.70, -1.10, -77.60, -1.00): its envelope
    # covers the whole square, its shape does not reach the north-east corner.
    ell = Polygon([(-77.70, -1.10), (-77.60, -1.10), (-77.60, -1.099), (-77.699, -1.099), (-77.699, -1.00),
                   (-77.70, -1.00)])
    store.upsert_alerts(
        [
            make_alert("gm-punino", at=(-77.62, -1.02)),
            make_alert("gm-nambija", at=(-78.79, -4.06)),
            make_alert("gm-ell", geometry=ell),
        ],
        actor=PIPELINE,
    )
    assert {a.id for a in store.list_alerts(bbox=(-77.7, -1.1, -77.5, -0.9))} == {"gm-punino", "gm-ell"}
    assert [a.id for a in store.list_alerts(bbox=(-78.9, -4.1, -78.7, -4.0))] == ["gm-nambija"]
    assert [a.id for a in store.list_alerts(bbox=(-77.63, -1.03, -77.605, -1.005))] == ["gm-punino"]
    assert store.list_alerts(bbox=(-80.0, 0.5, -79.9, 0.6)) == []
    assert len(store.list_alerts(bbox=(-79.0, -4.2, -77.0, -0.5), limit=2)) == 2
    with pytest.raises(InvalidInputError, match="W < E"):
        store.list_alerts(bbox=(-77.5, -1.1, -77.7, -0.9))
    with pytest.raises(InvalidInputError, match="limit"):
        store.list_alerts(limit=0)
    with pytest.raises(InvalidInputError, match="timezone"):
        store.list_alerts(updated_since=datetime(2024, 1, 1))


# --- atomicity ----------------------------------------------------------------


def test_an_invalid_alert_mid_batch_rolls_the_whole_batch_back(store: AlertStore) -> None:
    first = make_alert("gm-a")
    store.upsert_alerts([first], actor=PIPELINE)
    before, history_before = store.get("gm-a"), history_count(store, "gm-a")

    batch = [
        grown(first),
        make_alert("gm-b", at=(-77.5, -1.0)),
        make_alert("gm-bad", geometry=Point(-77.4, -1.0)),
        make_alert("gm-c", at=(-77.3, -1.0)),
    ]
    with pytest.raises(InvalidInputError, match="'gm-bad': geometry must be a Polygon or MultiPolygon"):
        store.upsert_alerts(batch, actor=PIPELINE)

    assert store.count() == 1 and store.get("gm-b") is None
    assert store.get("gm-a") == before and history_count(store, "gm-a") == history_before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"geometry": Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])}, "not valid"),
        ({"geometry": box(500000, 9880000, 500100, 9880100)}, "EPSG:4326"),
        ({"score": 1.5}, "score"),
        ({"area_ha": float("nan")}, "area_ha"),
        ({"last_observed": date(2024, 1, 1)}, "before first_detected"),
        ({"confidence": "certain"}, "confidence must be one of"),
        ({"id": ""}, "id must be"),
    ],
)
def test_invalid_alerts_are_refused_with_a_clear_message(
    store: AlertStore, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.upsert_alerts([make_alert(**overrides)], actor=PIPELINE)
    assert store.count() == 0


def test_duplicate_ids_in_one_batch_are_refused(store: AlertStore) -> None:
    with pytest.raises(InvalidInputError, match="twice"):
        store.upsert_alerts([make_alert("gm-a"), make_alert("gm-a")], actor=PIPELINE)
    assert store.count() == 0


def test_a_database_failure_while_writing_leaves_nothing_behind(
    store: AlertStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.upsert_alerts([make_alert("gm-a")], actor=PIPELINE)
    before = store.get("gm-a")
    real_flush = Session.flush

    def failing_flush(self: Session, *args: Any, **kwargs: Any) -> None:
        real_flush(self, *args, **kwargs)  # rows really reach the database ...
        raise RuntimeError("disk full")  # ... then the transaction fails

    monkeypatch.setattr(Session, "flush", failing_flush)
    with pytest.raises(RuntimeError, match="disk full"):
        store.upsert_alerts([grown(make_alert("gm-a")), make_alert("gm-b", at=(-77.5, -1.0))], actor=PIPELINE)
    monkeypatch.undo()

    assert store.count() == 1 and store.get("gm-a") == before and store.get("gm-b") is None
    assert history_count(store, "gm-a", "gm-b") == 1


# --- detection runs -----------------------------------------------------------


def test_detection_runs_are_recorded_and_linked_from_history(store: AlertStore) -> None:
    run_id = store.start_run("mining-change", "1.0.0", parameters={"bbox": (-77.7, -1.1, -77.5, -0.9)})
    assert store.get_run(run_id)["status"] == "running"  # type: ignore[index]
    store.upsert_alerts([make_alert()], actor=PIPELINE, run_id=run_id)
    store.finish_run(run_id, "succeeded", summary={"new": 1, "scenes_skipped": {"S2B_x": "all cloud"}})

    run = store.get_run(run_id)
    assert run is not None and run["status"] == "succeeded" and run["finished_at"] >= run["started_at"]
    assert run["parameters"] == {"bbox": [-77.7, -1.1, -77.5, -0.9]} and run["summary"]["new"] == 1
    assert store.history(make_alert().id)[0]["run_id"] == run_id

    with pytest.raises(InvalidInputError, match="already finished"):
        store.finish_run(run_id, "failed")
    with pytest.raises(InvalidInputError, match="no detection run"):
        store.upsert_alerts([make_alert("gm-b")], actor=PIPELINE, run_id="nope")
    with pytest.raises(InvalidInputError, match="already exists"):
        store.start_run("mining-change", "1.0.0", run_id=run_id)


# --- several processes --------------------------------------------------------


def _write_many(url: str, worker: int, rounds: int, start: Any) -> None:
    """One process's share: an upsert and a status change per round, each its own transaction."""
    store = AlertStore.from_url(url)
    start.wait()
    for n in range(rounds):
        alert_id = f"gm-w{worker}-{n:03d}"
        store.upsert_alerts([make_alert(alert_id, at=(-77.9 + n * 0.005, -1.5 + worker * 0.1))], actor=PIPELINE)
        store.change_status(alert_id, Status.UNDER_REVIEW, actor=f"user:{worker}")
        store.upsert_alerts([grown(make_alert(alert_id, at=(-77.9 + n * 0.005, -1.5 + worker * 0.1)))],
                            actor=PIPELINE)
    store.dispose()


def test_two_processes_writing_at_once_do_not_lock_each_other_out(store: AlertStore, store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    rounds = 40
    workers = [ctx.Process(target=_write_many, args=(store_url, w, rounds, start)) for w in range(2)]
    for p in workers:
        p.start()
    start.set()
    for p in workers:
        p.join(timeout=240)
    assert [p.exitcode for p in workers] == [0, 0]  # a "database is locked" would make one non-zero

    assert store.count() == 2 * rounds
    alerts = store.list_alerts(limit=1000)
    assert {a.status for a in alerts} == {Status.UNDER_REVIEW}
    stamps = [a.updated_at for a in alerts]
    assert len(set(stamps)) == len(stamps)  # every transaction got its own updated_at
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alert_history")).scalar() == 2 * rounds * 3
