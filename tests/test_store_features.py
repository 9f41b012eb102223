"""Pre-rendered features (``alerts.feature``, migration 0004) on both back-ends.

The store writes each alert's GeoJSON Feature text with every change; the
APIs serve those texts as they are. These tests read the column with plain
SQL and compare it with a fresh rendering of the alert read back from the
store (``features.feature_text`` of ``get_stored``), after every kind of
write, so a write path that forgot to re-render, or a rendering that depends
on more than the stored values, fails here.
"""

from __future__ import annotations

import json
from dataclasses import replace

import orjson
import pytest
from sqlalchemy import insert, inspect, text

from geo_monitor.alerts import Context, Status
from geo_monitor.store import AlertQuery, AlertStore
from geo_monitor.store.features import alert_feature, feature_text
from geo_monitor.store.migrate import schema_diff, upgrade
from geo_monitor.store.schema import AlertRow

from alert_samples import AGENT, PIPELINE, grown, make_alert, old_rows


def stored_text(store: AlertStore, alert_id: str) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(text("SELECT feature FROM alerts WHERE id = :id"), {"id": alert_id}).scalar_one())


def assert_fresh(store: AlertStore, alert_id: str) -> dict:
    """The stored text is exactly a fresh rendering of the alert as the store holds it now."""
    stored = store.get_stored(alert_id)
    assert stored is not None
    saved = stored_text(store, alert_id)
    assert saved == feature_text(stored)
    feature = json.loads(saved)
    assert feature == json.loads(json.dumps(alert_feature(stored)))  # the same value the web layer renders
    return feature


def test_the_stored_feature_follows_every_write(alert_store: AlertStore) -> None:
    store = alert_store
    first = make_alert("gm-a")
    other = make_alert("gm-b", at=(-77.5, -1.0), context=Context(province="Zamora Chinchipe", nearest_river="Río Nangaritza"))
    store.upsert_alerts([first, other], actor=PIPELINE)
    created = assert_fresh(store, "gm-a")
    assert created["properties"]["status"] == "new" and created["properties"]["area_ha"] == 4.8
    assert_fresh(store, "gm-b")

    store.upsert_alerts([first, other], actor=PIPELINE)  # a rerun over the same inputs: nothing to rewrite
    assert stored_text(store, "gm-a") == json.dumps(created, ensure_ascii=False, separators=(",", ":"),
                                                    sort_keys=True)

    store.upsert_alerts([grown(first)], actor=PIPELINE)  # the site grew: detection fields and updated_at
    regrown = assert_fresh(store, "gm-a")
    assert regrown["properties"]["area_ha"] > created["properties"]["area_ha"]
    assert regrown["geometry"] != created["geometry"]
    assert regrown["properties"]["updated_at"] > created["properties"]["updated_at"]

    store.change_status("gm-a", Status.UNDER_REVIEW, actor=AGENT, note="going there on Monday")
    reviewed = assert_fresh(store, "gm-a")
    assert (reviewed["properties"]["status"], reviewed["properties"]["note"]) == ("under_review", "going there on Monday")

    store.assign("gm-a", "ana", actor=AGENT)
    assigned = assert_fresh(store, "gm-a")
    assert assigned["properties"]["assignee"] == "ana"
    assert assigned["properties"]["updated_at"] > reviewed["properties"]["updated_at"]

    store.upsert_alerts([grown(grown(first))], actor=PIPELINE)  # a rerun keeps the workflow in the text too
    again = assert_fresh(store, "gm-a")
    assert (again["properties"]["status"], again["properties"]["assignee"]) == ("under_review", "ana")
    assert assert_fresh(store, "gm-b") == json.loads(stored_text(store, "gm-b"))


def test_a_feature_page_is_the_stored_texts_in_polling_order(alert_store: AlertStore) -> None:
    alerts = [make_alert(f"gm-{i:02d}", at=(-77.62 + 0.01 * i, -1.02)) for i in range(7)]
    alert_store.upsert_alerts(alerts, actor=PIPELINE)
    alert_store.change_status("gm-03", Status.UNDER_REVIEW, actor=AGENT)  # moves to the end of the order
    query = AlertQuery(bbox=(-77.7, -1.1, -77.5, -0.9), limit=4)
    page, objects = alert_store.feature_page(query), alert_store.query_alerts(query)
    assert [json.loads(f)["id"] for f in page.features] == [item.alert.id for item in objects.items]
    assert page.features == [stored_text(alert_store, item.alert.id).encode() for item in objects.items]
    assert (page.number_matched, page.next_after) == (objects.number_matched, objects.next_after) == (7, page.last)
    rest = alert_store.feature_page(replace(query, after=page.next_after))
    assert [json.loads(f)["id"] for f in page.features] == ["gm-00", "gm-01", "gm-02", "gm-04"]
    assert [json.loads(f)["id"] for f in rest.features] == ["gm-05", "gm-06", "gm-03"]
    assert rest.more is False and rest.next_after is None and rest.last[1] == "gm-03"  # type: ignore[index]
    empty = alert_store.feature_page(AlertQuery(bbox=(-80.0, -4.0, -79.9, -3.9)))
    assert (empty.features, empty.number_matched, empty.last) == ([], 0, None)


def test_refresh_rewrites_texts_written_around_the_store(alert_store: AlertStore) -> None:
    alert_store.upsert_alerts([make_alert("gm-a"), make_alert("gm-b", at=(-77.5, -1.0))], actor=PIPELINE)
    before = alert_store.get_stored("gm-a").updated_at  # type: ignore[union-attr]
    with alert_store.engine.begin() as conn:  # seed SQL, as a bulk import might do
        conn.execute(text("UPDATE alerts SET status = 'confirmed', feature = '{}' WHERE id = 'gm-a'"))
    assert alert_store.refresh_features() == 2
    assert assert_fresh(alert_store, "gm-a")["properties"]["status"] == "confirmed"
    assert alert_store.get_stored("gm-a").updated_at == before  # type: ignore[union-attr]


def test_migration_0004_renders_the_alerts_already_stored(store_url: str) -> None:
    """A store at 0003 with alerts (one reviewed and assigned) gets every text filled, then keeps them current."""
    with AlertStore.from_url(store_url) as store:
        upgrade(store.engine, "0003")
        rows = old_rows([make_alert(f"gm-{i}", at=(-77.62 + 0.01 * i, -1.02)) for i in range(3)])
        rows[1].update(status=Status.UNDER_REVIEW, assignee="ana", note="a note")
        with store.engine.begin() as conn:  # the 0003 columns only: the feature column does not exist yet
            conn.execute(insert(AlertRow.__table__), rows)
        store.migrate()
        assert store.schema_revision() == "0004" and schema_diff(store.engine) == []
        for i in range(3):
            assert_fresh(store, f"gm-{i}")
        assert json.loads(stored_text(store, "gm-1"))["properties"]["assignee"] == "ana"
        store.change_status("gm-1", Status.CONFIRMED, actor=AGENT)
        assert assert_fresh(store, "gm-1")["properties"]["status"] == "confirmed"


def test_migration_0004_downgrades_cleanly(store_url: str) -> None:
    from alembic import command

    from geo_monitor.store.engine import writer
    from geo_monitor.store.migrate import alembic_config

    with AlertStore.from_url(store_url) as store:
        store.migrate()
        store.upsert_alerts([make_alert("gm-a")], actor=PIPELINE)
        with writer(store.engine).begin() as connection:
            command.downgrade(alembic_config(connection), "0003")
        with store.engine.connect() as conn:
            columns = [c["name"] for c in inspect(conn).get_columns("alerts")]
        assert "feature" not in columns
        store.migrate()
        assert_fresh(store, "gm-a")
        page = store.feature_page(AlertQuery())
        assert orjson.loads(page.features[0])["id"] == "gm-a"
