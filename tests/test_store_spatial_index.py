"""Bbox queries through the spatial indexes: SQLite's R*Tree (migration 0002) and PostGIS's GiST.

The R*Tree is kept in step by triggers; these tests check that it follows
inserts, envelope changes and deletes, that it is filled for alerts stored
before the migration, that queries really go through it, and that bbox
answers equal a brute-force shapely test on both back-ends.
"""

from __future__ import annotations

import random
from datetime import date

import pytest
from shapely.geometry import Polygon, box
from sqlalchemy import insert, text

from geo_monitor.alerts import Context
from geo_monitor.store import AlertStore
from geo_monitor.store.migrate import upgrade
from geo_monitor.store.query import AlertQuery
from geo_monitor.store.schema import AlertRow

from alert_samples import PIPELINE, grown, make_alert, old_rows


def _index_rows(store: AlertStore) -> dict[str, tuple[float, float, float, float]]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT alert_id, minx, miny, maxx, maxy FROM alert_envelopes")).all()
    return {row[0]: tuple(row[1:]) for row in rows}  # type: ignore[misc]


def _contains(outer: tuple[float, ...], inner: tuple[float, ...]) -> bool:
    """The R*Tree's (32-bit, rounded outwards) box contains the exact envelope."""
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def _sqlite_only(store_backend: str) -> None:
    if store_backend != "sqlite":
        pytest.skip("SQLite's R*Tree; PostGIS has its GiST index (test_store_migrations)")


def test_the_rtree_follows_inserts_updates_and_deletes(alert_store: AlertStore, store_backend: str) -> None:
    _sqlite_only(store_backend)
    first = make_alert("gm-a", at=(-77.62, -1.02))
    second = make_alert("gm-b", at=(-78.5, -2.0))
    alert_store.upsert_alerts([first, second], PIPELINE)
    index = _index_rows(alert_store)
    assert set(index) == {"gm-a", "gm-b"}
    assert _contains(index["gm-a"], first.geometry.bounds)

    bigger = grown(first)  # a rerun: the site grew east
    alert_store.upsert_alerts([bigger], PIPELINE)
    index = _index_rows(alert_store)
    assert _contains(index["gm-a"], bigger.geometry.bounds) and index["gm-a"][2] > first.geometry.bounds[2]
    assert [a.id for a in alert_store.list_alerts(bbox=(bigger.geometry.bounds[2] - 0.0005, -1.1, -77.0, -0.9))] == [
        "gm-a"
    ]

    with alert_store.engine.begin() as conn:  # whoever deletes, the trigger follows
        conn.execute(text("DELETE FROM alerts WHERE id = 'gm-b'"))
    assert set(_index_rows(alert_store)) == {"gm-a"}
    with alert_store.engine.connect() as conn:
        assert conn.execute(text("SELECT alert_id FROM alert_envelope_keys")).scalars().all() == ["gm-a"]


def test_alerts_stored_before_the_index_existed_are_indexed_by_the_migration(
    store_url: str, store_backend: str
) -> None:
    _sqlite_only(store_backend)
    with AlertStore.from_url(store_url) as store:
        upgrade(store.engine, "0001")
        with store.engine.begin() as conn:  # the 0001 columns (upsert_alerts writes 0004's feature text too)
            conn.execute(insert(AlertRow.__table__), old_rows([make_alert(f"gm-{i}", at=(-78 + i * 0.01, -1.0))
                                                               for i in range(5)]))
        store.migrate()
        assert store.schema_revision() == "0004"
        assert set(_index_rows(store)) == {f"gm-{i}" for i in range(5)}
        assert [a.id for a in store.list_alerts(bbox=(-77.975, -1.1, -77.955, -0.9))] == ["gm-3", "gm-4"]


def test_bbox_queries_go_through_the_rtree(alert_store: AlertStore, store_backend: str) -> None:
    _sqlite_only(store_backend)
    from sqlalchemy import select

    from geo_monitor.store.query import filter_clauses
    from geo_monitor.store.schema import AlertRow

    stmt = select(AlertRow.id).where(*filter_clauses(AlertQuery(bbox=(-78.0, -2.0, -77.0, -1.0)), "sqlite"))
    compiled = stmt.compile(alert_store.engine, compile_kwargs={"literal_binds": True})
    with alert_store.engine.connect() as conn:
        plan = " | ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "VIRTUAL TABLE INDEX" in plan and "alert_envelopes" in plan, plan


def _site(rng: random.Random, lon: float, lat: float) -> Polygon:
    """A thin diagonal sliver: its envelope is mostly empty, so envelope-only answers would be wrong."""
    size = rng.uniform(0.005, 0.05)
    return Polygon([(lon, lat), (lon + size, lat + size), (lon + size, lat + size * 0.9), (lon, lat)])


def test_bbox_answers_equal_a_brute_force_test(alert_store: AlertStore) -> None:
    rng = random.Random(7)
    alerts = []
    for i in range(300):
        lon, lat = rng.uniform(-78.5, -77.5), rng.uniform(-1.5, -0.5)
        alerts.append(make_alert(f"gm-{i:04d}", geometry=_site(rng, lon, lat), first_detected=date(2024, 1, 1)))
    alert_store.upsert_alerts(alerts, PIPELINE)
    for _ in range(40):
        west, south = rng.uniform(-78.6, -77.6), rng.uniform(-1.6, -0.6)
        bbox = (west, south, west + rng.uniform(0.01, 0.6), south + rng.uniform(0.01, 0.6))
        expected = sorted(a.id for a in alerts if a.geometry.intersects(box(*bbox)))
        page = alert_store.query_alerts(AlertQuery(bbox=bbox, limit=1000))
        assert sorted(item.alert.id for item in page.items) == expected, bbox
        assert page.number_matched == len(expected)
        # Small pages (SQLite walks the polling index for boxes with many candidates), by keyset and by offset.
        seen, after = [], None
        while True:
            small = alert_store.query_alerts(AlertQuery(bbox=bbox, limit=7, after=after))
            assert small.number_matched == len(expected)
            seen += [item.alert.id for item in small.items]
            if small.next_after is None:
                break
            after = small.next_after
        assert sorted(seen) == expected and len(seen) == len(set(seen)), bbox
        by_offset = alert_store.query_alerts(AlertQuery(bbox=bbox, limit=7, offset=7))
        assert [item.alert.id for item in by_offset.items] == seen[7:14]


def test_a_box_with_a_filter_besides_counts_exactly_too(alert_store: AlertStore) -> None:
    alert_store.upsert_alerts(
        [make_alert(f"gm-{i}", at=(-78 + i * 0.01, -1.0), context=Context(province="Napo" if i % 2 else "Orellana")) for i in range(9)],
        PIPELINE,
    )
    page = alert_store.query_alerts(AlertQuery(bbox=(-78.05, -1.1, -77.0, -0.9), provinces=frozenset({"Napo"})))
    assert page.number_matched == 4 and [i.alert.id for i in page.items] == ["gm-1", "gm-3", "gm-5", "gm-7"]
