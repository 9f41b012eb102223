"""The in-memory alert index (``geo_monitor.store.alert_index``) against the SQL path, on both back-ends.

The index answers API pages (ids, ``numberMatched``, keyset and offset
paging); the SQL path (``query.feature_page``) still answers exports and is
the fallback. Both must give the same answer for any query on the same
store, so the property test draws random queries and compares them.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
from shapely.geometry import Polygon, box
from sqlalchemy import text

from alert_samples import AGENT, PIPELINE, make_alert
from api_support import Api, make_api, problem, test_settings
from geo_monitor.alerts import Confidence, Context, Legality, Priority, Status
from geo_monitor.store import AlertQuery, AlertStore, FeaturePage
from geo_monitor.store import alert_index
from geo_monitor.store.features import feature_digest
from geo_monitor.store.index_reads import RawReader
from geo_monitor.store.query import feature_page as sql_feature_page

PROVINCES = ["Napo", "Zamora Chinchipe", "Azuay", None]
AREA = (-78.0, -2.0, -77.0, -1.0)  # W, S, E, N: where the random alerts lie


def _random_alert(rng: random.Random, number: int):
    """A site of random shape and size (a jagged polygon, so boxes cross envelopes without touching it)."""
    lon, lat = rng.uniform(AREA[0], AREA[2]), rng.uniform(AREA[1], AREA[3])
    size = rng.choice([0.002, 0.01, 0.05])
    ring = [(lon, lat), (lon + size, lat), (lon + size * 0.1, lat + size * 0.1), (lon, lat + size)]  # a thin "L"
    geometry = Polygon(ring) if rng.random() < 0.7 else box(lon, lat, lon + size, lat + size)
    province = rng.choice(PROVINCES)
    return make_alert(
        f"gm-{number:016x}",
        geometry=geometry,
        first_detected=date(2024, 1, 1) + timedelta(days=rng.randrange(0, 60)),
        confidence=rng.choice(list(Confidence)),
        priority=rng.choice(list(Priority)),
        legality=rng.choice(list(Legality)),
        context=Context(province=province, protected_area=None, nearest_river=None, river_distance_m=None),
    )


def _fill(store: AlertStore, rng: random.Random, count: int = 160) -> None:
    alerts = [_random_alert(rng, i) for i in range(count)]
    for start in range(0, count, 40):  # several transactions: several stamps
        store.upsert_alerts(alerts[start:start + 40], PIPELINE)
    for alert in rng.sample(alerts, 30):
        store.change_status(alert.id, "under_review", AGENT)


def _random_query(rng: random.Random, stamps: list[datetime], ids: list[str]) -> AlertQuery:
    fields: dict = {"limit": rng.choice([1, 5, 20, 100])}
    if rng.random() < 0.8:
        west, south = rng.uniform(AREA[0] - 0.1, AREA[2]), rng.uniform(AREA[1] - 0.1, AREA[3])
        width = rng.choice([0.01, 0.1, 0.3, 0.6, 1.5])
        fields["bbox"] = (west, south, west + width, south + width * rng.uniform(0.5, 2))
    if rng.random() < 0.2:
        fields["first_detected_from"] = date(2024, 1, 1) + timedelta(days=rng.randrange(0, 40))
    if rng.random() < 0.2:
        fields["first_detected_to"] = date(2024, 1, 20) + timedelta(days=rng.randrange(0, 40))
        if fields.get("first_detected_from") and fields["first_detected_from"] > fields["first_detected_to"]:
            del fields["first_detected_from"]
    if rng.random() < 0.3:
        fields["updated_since"] = rng.choice(stamps)
    for name, enum_cls in (("statuses", Status), ("confidences", Confidence), ("priorities", Priority),
                           ("legalities", Legality)):
        if rng.random() < 0.15:
            fields[name] = rng.sample([m.value for m in enum_cls], rng.randint(0, 2))
    if rng.random() < 0.2:
        fields["provinces"] = rng.sample(["Napo", "Azuay", "Zamora Chinchipe", "Pastaza"], rng.randint(0, 2))
    paging = rng.random()
    if paging < 0.3:
        fields["after"] = (rng.choice(stamps), rng.choice(ids))
    elif paging < 0.5:
        fields["offset"] = rng.randrange(0, 30)
    return AlertQuery(**fields)


def _sql_page(store: AlertStore, query: AlertQuery) -> FeaturePage:
    with store._read() as session:  # noqa: SLF001  # the SQL path the index replaces, on the same store
        return sql_feature_page(session, query)


def test_index_answers_as_sql_does_on_random_queries(alert_store: AlertStore) -> None:
    rng = random.Random(4)
    _fill(alert_store, rng)
    compared = matched_some = 0
    for round_ in range(2):
        if round_:  # alerts added and changed since the index sorted its cells: they are searched unsorted
            alert_store.upsert_alerts([_random_alert(rng, i) for i in range(160, 200)], PIPELINE)
            for number in rng.sample(range(200), 10):
                alert_store.assign(f"gm-{number:016x}", "agent.napo", AGENT)
        stored = [alert_store.get_stored(f"gm-{i:016x}") for i in range(160 + 40 * round_)]
        stamps = sorted({s.updated_at for s in stored}) + [datetime(2000, 1, 1, tzinfo=timezone.utc)]
        ids = [s.alert.id for s in stored]
        for _ in range(150):
            query = _random_query(rng, stamps, ids)
            expected, got = _sql_page(alert_store, query), alert_store.feature_page(query)
            assert got == expected, query  # digests included: the index's are the SQL path's
            assert got.digests == b"".join(feature_digest(text) for text in got.features)  # what ETags hash
            compared += 1
            matched_some += expected.number_matched > 0
    assert compared == 300 and matched_some > 120  # the queries were not all empty
    snapshot = alert_store.index_snapshot()
    assert snapshot is not None and snapshot.cell_order.covers < snapshot.size  # the second round had a tail


def test_index_follows_new_updated_and_reviewed_alerts(alert_store: AlertStore) -> None:
    first = make_alert("gm-a", at=(-77.5, -1.5))
    alert_store.upsert_alerts([first, make_alert("gm-b", at=(-77.4, -1.5))], PIPELINE)
    everything = AlertQuery(limit=100)
    assert alert_store.feature_page(everything).number_matched == 2

    alert_store.upsert_alerts([make_alert("gm-c", at=(-77.3, -1.5))], PIPELINE)  # new
    alert_store.upsert_alerts([replace(first, geometry=box(-76.5, -0.5, -76.4, -0.4))], PIPELINE)  # moved
    alert_store.change_status("gm-b", "under_review", AGENT)  # reviewed

    page = alert_store.feature_page(everything)
    assert page.number_matched == 3
    assert [f.split(b'"id":"')[1].split(b'"')[0] for f in page.features] == [b"gm-c", b"gm-a", b"gm-b"]
    assert alert_store.feature_page(AlertQuery(bbox=(-76.6, -0.6, -76.3, -0.3))).number_matched == 1
    assert alert_store.feature_page(AlertQuery(bbox=(-77.51, -1.51, -77.49, -1.49))).number_matched == 0
    assert alert_store.feature_page(AlertQuery(statuses=["under_review"])).number_matched == 1
    snapshot = alert_store.index_snapshot()
    assert snapshot is not None and snapshot.live_count == 3 and snapshot.size == 5  # two replaced entries


def test_index_compacts_replaced_entries(alert_store: AlertStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alert_index, "COMPACT_MIN", 3)
    alert = make_alert("gm-a")
    alert_store.upsert_alerts([alert, make_alert("gm-b", at=(-77.0, -1.0))], PIPELINE)
    alert_store.feature_page(AlertQuery())
    for step in range(1, 8):
        alert_store.upsert_alerts([replace(alert, area_ha=alert.area_ha + step)], PIPELINE)
        alert_store.feature_page(AlertQuery())
    snapshot = alert_store.index_snapshot()
    assert snapshot is not None and snapshot.size < 6 and snapshot.live_count == 2
    assert alert_store.feature_page(AlertQuery(limit=1)) == _sql_page(alert_store, AlertQuery(limit=1))
    assert alert_store.feature_page(AlertQuery()) == _sql_page(alert_store, AlertQuery())


def test_a_write_from_another_process_shows_on_the_next_page(store_url: str, alert_store: AlertStore) -> None:
    """Texts come from the index: a change committed elsewhere must reach them (text and filters alike)."""
    alert = make_alert("gm-a")
    alert_store.upsert_alerts([alert, make_alert("gm-b", at=(-77.0, -1.0))], PIPELINE)
    before = alert_store.feature_page(AlertQuery())
    assert b'"area_ha":99.0' not in b"".join(before.features)

    other = AlertStore.from_url(store_url)  # another web or pipeline process, with its own index
    try:
        other.upsert_alerts([replace(alert, area_ha=99.0)], PIPELINE)
        other.change_status("gm-b", "under_review", AGENT)
    finally:
        other.dispose()

    page = alert_store.feature_page(AlertQuery())
    assert page == _sql_page(alert_store, AlertQuery())
    assert b'"area_ha":99.0' in page.features[0] and b'"status":"under_review"' in page.features[1]
    reviewed = alert_store.feature_page(AlertQuery(statuses=["under_review"]))
    assert reviewed.number_matched == 1 and b'"id":"gm-b"' in reviewed.features[0]


def test_a_snapshot_keeps_its_texts_while_the_index_moves_on(alert_store: AlertStore) -> None:
    """A reader holding a snapshot keeps one state of the store, whatever later refreshes bring."""
    alert = make_alert("gm-a")
    alert_store.upsert_alerts([alert], PIPELINE)
    held = alert_store.index_snapshot()
    assert held is not None
    alert_store.upsert_alerts([replace(alert, area_ha=99.0)], PIPELINE)
    assert alert_store.index_snapshot() is not held  # refreshed
    page = held.page(AlertQuery())
    assert page.ids == ["gm-a"] and b'"area_ha":99.0' not in page.features[0]
    newer = alert_store.index_snapshot()
    assert newer is not None and b'"area_ha":99.0' in newer.page(AlertQuery()).features[0]


def test_keyset_resumes_inside_one_transactions_alerts(alert_store: AlertStore) -> None:
    """Alerts of one upsert share a stamp: ``after`` resumes by id inside it, as SQL does."""
    alert_store.upsert_alerts([make_alert(f"gm-{i:02d}", at=(-77.5 + i * 0.01, -1.5)) for i in range(10)], PIPELINE)
    page = alert_store.feature_page(AlertQuery(limit=3))
    seen = 3
    while page.more:
        assert page.next_after is not None
        query = AlertQuery(limit=3, after=page.next_after)
        page = alert_store.feature_page(query)
        assert page == _sql_page(alert_store, query)
        seen += len(page.features)
    assert seen == 10


@pytest.mark.parametrize("micros", [0, 1, 499_999, 999_600, 999_999])
def test_stamps_keep_every_microsecond(store_url: str, micros: int) -> None:
    """``updated_at`` as µs is exact at any fraction of a second (SQLite's strftime rounds to ms)."""
    moment = datetime(2026, 11, 29, 12, 0, 59, micros, tzinfo=timezone.utc)
    store = AlertStore.from_url(store_url, clock=lambda: moment)
    store.migrate()
    try:
        store.upsert_alerts([make_alert("gm-a")], PIPELINE)
        page = store.feature_page(AlertQuery())
        assert page.last == (moment, "gm-a")
        assert page == _sql_page(store, AlertQuery())
    finally:
        store.dispose()


def test_rows_out_of_order_turn_the_index_off(alert_store: AlertStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stamp going backwards (a conversion bug) must not give wrong pages: the store falls back to SQL."""
    alert_store.upsert_alerts([make_alert("gm-a")], PIPELINE)
    alert_store.feature_page(AlertQuery())
    alert_store.upsert_alerts([make_alert("gm-b", at=(-77.0, -1.0))], PIPELINE)
    read_rows = RawReader.new_index_rows

    def backwards(self, connection, since):  # type: ignore[no-untyped-def]
        for rows, latest in read_rows(self, connection, since):
            yield [replace(row, updated_us=0) for row in rows], latest

    monkeypatch.setattr(RawReader, "new_index_rows", backwards)
    assert alert_store.feature_page(AlertQuery()) == _sql_page(alert_store, AlertQuery())
    assert alert_store.index_snapshot() is None  # off for good in this process


def test_store_without_index_uses_sql(store_url: str) -> None:
    store = AlertStore.from_url(store_url, alert_index=False)
    store.migrate()
    try:
        store.upsert_alerts([make_alert("gm-a")], PIPELINE)
        assert store.index_snapshot() is None
        assert store.feature_page(AlertQuery()).number_matched == 1
    finally:
        store.dispose()


def test_revoked_key_gets_401_on_the_next_request_from_another_process(store_url: str, tmp_path) -> None:
    """The web process checks the key's row on every request: no cache outlives a revocation elsewhere."""
    web_store, admin_store = AlertStore.from_url(store_url), AlertStore.from_url(store_url)
    web_store.migrate()
    try:
        api: Api = make_api(web_store, test_settings(tmp_path))
        assert api.get("/api/v1/alerts", key="partner").status_code == 200
        admin_store.revoke_api_key(api.key_ids["partner"])  # another engine: as another process would
        problem(api.get("/api/v1/alerts", key="partner"), 401)
        assert api.get("/api/v1/alerts", key="napo").status_code == 200
    finally:
        web_store.dispose()
        admin_store.dispose()


def test_pages_survive_the_server_closing_the_hot_path_connection(alert_store: AlertStore, store_backend: str) -> None:
    """The hot-path pool does not ping before use: a connection PostgreSQL closed is replaced on the spot."""
    if store_backend != "postgis":
        pytest.skip("only a database server closes connections")
    alert_store.upsert_alerts([make_alert("gm-a")], PIPELINE)
    assert alert_store.feature_page(AlertQuery()).number_matched == 1
    reader = alert_store._raw  # noqa: SLF001  # the pooled connection the next request will get
    pid = reader.read(lambda connection: connection.info.backend_pid)
    with alert_store.engine.begin() as connection:  # the store's own pool: another connection
        assert connection.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    alert_store.upsert_alerts([make_alert("gm-b", at=(-77.0, -1.0))], PIPELINE)
    assert alert_store.feature_page(AlertQuery()).number_matched == 2  # read again on a new connection
    assert reader.read(lambda connection: connection.info.backend_pid) != pid


def test_scalar_grid_cells_agree_with_the_vectorised_ones() -> None:
    """Searches place the box with the scalar helpers, entries were sorted with the numpy ones: same cells."""
    rng = random.Random(11)
    edges = [k * alert_index.CELL_DEG - 180.0 for k in range(0, 7200, 97)]  # on cell boundaries
    lons = [-200.0, -180.0, 180.0, 200.0, -0.0, *edges, *(rng.uniform(-181, 181) for _ in range(2000))]
    lats = [-100.0, -90.0, 90.0, 100.0, *(v / 2 for v in edges), *(rng.uniform(-91, 91) for _ in range(2000))]
    assert [alert_index._column_of(v) for v in lons] == alert_index._grid_column(np.array(lons)).tolist()
    assert [alert_index._row_of(v) for v in lats] == alert_index._grid_row(np.array(lats)).tolist()
