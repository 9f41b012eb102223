"""AlertQuery against both back-ends: every filter, keyset and offset paging, counts, exports, validation."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from shapely.geometry import Polygon

from geo_monitor.alerts import Confidence, Context, Legality, Priority, Status
from geo_monitor.errors import InvalidInputError
from geo_monitor.store import AlertQuery, AlertStore, StoredAlert

from alert_samples import AGENT, PIPELINE, grown, make_alert

#: A thin L along the west and south edges of (-77.70, -1.10, -77.60, -1.00): its envelope covers
#: the square, its shape does not reach the north-east corner.
ELL = Polygon([(-77.70, -1.10), (-77.60, -1.10), (-77.60, -1.099), (-77.699, -1.099), (-77.699, -1.00),
               (-77.70, -1.00)])


def _ids(items: list[StoredAlert]) -> list[str]:
    return [item.alert.id for item in items]


@pytest.fixture
def varied(alert_store: AlertStore) -> AlertStore:
    """Five alerts that differ in every filtered field, written in id order (so polling order = id order)."""
    specs: list[tuple[str, dict[str, Any]]] = [
        ("gm-a", dict(at=(-77.62, -1.02), first_detected=date(2024, 1, 5), confidence=Confidence.HIGH,
                      priority=Priority.CRITICAL, legality=Legality.PROBABLY_ILLEGAL,
                      context=Context(province="Napo"))),
        ("gm-b", dict(at=(-78.79, -4.06), first_detected=date(2024, 2, 1), confidence=Confidence.NOMINAL,
                      priority=Priority.HIGH, legality=Legality.INSIDE_CONCESSION,
                      context=Context(province="Zamora Chinchipe", concession_code="CM-1"))),
        ("gm-c", dict(geometry=ELL, first_detected=date(2024, 2, 20), confidence=Confidence.LOW,
                      priority=Priority.LOW, legality=Legality.UNKNOWN, context=Context(province="Napo"))),
        ("gm-d", dict(at=(-79.6, -3.1), first_detected=date(2024, 3, 1), confidence=Confidence.HIGH,
                      priority=Priority.MEDIUM, legality=Legality.PROBABLY_ILLEGAL,
                      context=Context(province="Azuay"))),
        ("gm-e", dict(at=(-78.9, 0.9), first_detected=date(2024, 3, 2), confidence=Confidence.NOMINAL,
                      priority=Priority.HIGH, legality=Legality.PROBABLY_ILLEGAL, context=Context(province=None))),
    ]
    for alert_id, spec in specs:
        alert_store.upsert_alerts([make_alert(alert_id, last_observed=date(2024, 3, 10), **spec)], actor=PIPELINE)
    alert_store.change_status("gm-b", Status.UNDER_REVIEW, actor=AGENT)  # gm-b moves to the end of the order
    return alert_store


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (AlertQuery(), ["gm-a", "gm-c", "gm-d", "gm-e", "gm-b"]),
        (AlertQuery(bbox=(-77.7, -1.1, -77.5, -0.9)), ["gm-a", "gm-c"]),
        (AlertQuery(bbox=(-77.65, -1.05, -77.601, -1.0)), ["gm-a"]),  # ELL's envelope, not its shape
        (AlertQuery(bbox=(-80.0, 0.5, -79.9, 0.6)), []),
        (AlertQuery(first_detected_from=date(2024, 2, 1)), ["gm-c", "gm-d", "gm-e", "gm-b"]),
        (AlertQuery(first_detected_to=date(2024, 2, 1)), ["gm-a", "gm-b"]),
        (AlertQuery(first_detected_from=date(2024, 2, 1), first_detected_to=date(2024, 3, 1)),
         ["gm-c", "gm-d", "gm-b"]),
        (AlertQuery(statuses=frozenset({"under_review"})), ["gm-b"]),
        (AlertQuery(statuses=frozenset({"new", "dismissed"})), ["gm-a", "gm-c", "gm-d", "gm-e"]),
        (AlertQuery(confidences=frozenset({"high"})), ["gm-a", "gm-d"]),
        (AlertQuery(priorities=frozenset({"high", "low"})), ["gm-c", "gm-e", "gm-b"]),
        (AlertQuery(legalities=frozenset({"inside_concession", "unknown"})), ["gm-c", "gm-b"]),
        (AlertQuery(provinces=frozenset({"Napo"})), ["gm-a", "gm-c"]),
        (AlertQuery(provinces=frozenset({"Napo", "Azuay"}), confidences=frozenset({"high"})), ["gm-a", "gm-d"]),
        (AlertQuery(provinces=frozenset()), []),
        (AlertQuery(bbox=(-80.0, -5.0, -77.0, 0.0), legalities=frozenset({"probably_illegal"})), ["gm-a", "gm-d"]),
    ],
)
def test_filters_select_exactly_the_matching_alerts(varied: AlertStore, query: AlertQuery, expected: list[str]) -> None:
    page = varied.query_alerts(query)
    assert _ids(page.items) == expected
    assert page.number_matched == len(expected)
    assert page.next_after is None


def test_updated_since_is_inclusive(varied: AlertStore) -> None:
    b = varied.get_stored("gm-b")
    e = varied.get_stored("gm-e")
    assert b is not None and e is not None
    assert _ids(varied.query_alerts(AlertQuery(updated_since=e.updated_at)).items) == ["gm-e", "gm-b"]
    later = b.updated_at + timedelta(microseconds=1)
    assert varied.query_alerts(AlertQuery(updated_since=later)).items == []
    # any timezone: the same instant in Ecuador's time
    ecuador = e.updated_at.astimezone(timezone(timedelta(hours=-5)))
    assert _ids(varied.query_alerts(AlertQuery(updated_since=ecuador)).items) == ["gm-e", "gm-b"]


def test_keyset_pages_walk_every_alert_once(varied: AlertStore) -> None:
    seen: list[str] = []
    query = AlertQuery(limit=2)
    pages = 0
    while True:
        page = varied.query_alerts(query)
        pages += 1
        assert page.number_matched == 5  # the whole match, whatever the page
        seen += _ids(page.items)
        if page.next_after is None:
            break
        assert page.next_after == page.items[-1].keyset
        query = AlertQuery(limit=2, after=page.next_after)
    assert seen == ["gm-a", "gm-c", "gm-d", "gm-e", "gm-b"] and pages == 3


def test_a_full_last_page_has_no_next_keyset(varied: AlertStore) -> None:
    page = varied.query_alerts(AlertQuery(limit=5))
    assert len(page.items) == 5 and page.next_after is None
    assert varied.query_alerts(AlertQuery(limit=4)).next_after is not None


def test_offset_paging_counts_exactly_with_a_bbox(varied: AlertStore) -> None:
    ecuador = (-81.0, -5.0, -75.0, 1.5)
    first = varied.query_alerts(AlertQuery(bbox=ecuador, limit=3, offset=0))
    second = varied.query_alerts(AlertQuery(bbox=ecuador, limit=3, offset=3))
    assert first.number_matched == second.number_matched == 5
    assert _ids(first.items) + _ids(second.items) == ["gm-a", "gm-c", "gm-d", "gm-e", "gm-b"]
    assert varied.query_alerts(AlertQuery(offset=10)).items == []
    # the exact shape test is in SQL, so counts and offsets skip ELL where only its envelope matches
    north_east = (-77.65, -1.05, -77.601, -1.0)
    assert varied.query_alerts(AlertQuery(bbox=north_east, offset=0)).number_matched == 1


def test_stored_alert_carries_the_workflow(varied: AlertStore) -> None:
    varied.assign("gm-b", "agent.zamora", actor=AGENT)
    varied.change_status("gm-b", Status.DISMISSED, actor=AGENT, note="quarry with a permit")
    stored = varied.get_stored("gm-b")
    assert stored is not None
    assert (stored.status, stored.assignee, stored.note) == (Status.DISMISSED, "agent.zamora", "quarry with a permit")
    assert stored.alert.status is Status.DISMISSED and stored.alert.context.province == "Zamora Chinchipe"
    assert stored.created_at < stored.updated_at and stored.updated_at.tzinfo is not None
    assert varied.get_stored("gm-nope") is None


def test_within_provinces_never_widens_a_query(varied: AlertStore) -> None:
    napo_only = frozenset({"Napo"})
    assert _ids(varied.query_alerts(AlertQuery().within_provinces(napo_only)).items) == ["gm-a", "gm-c"]
    asked = AlertQuery(provinces=frozenset({"Azuay", "Napo"})).within_provinces(napo_only)
    assert asked.provinces == napo_only
    outside = AlertQuery(provinces=frozenset({"Azuay"})).within_provinces(napo_only)
    assert varied.query_alerts(outside).items == []
    assert AlertQuery().within_provinces(None) == AlertQuery()


def test_iter_alerts_streams_every_match_past_the_page_size(alert_store: AlertStore) -> None:
    alerts = [make_alert(f"gm-{i:05d}", at=(-78.0 + (i % 50) * 0.01, -2.0 + (i // 50) * 0.01)) for i in range(2300)]
    alert_store.upsert_alerts(alerts, actor=PIPELINE)
    alert_store.change_status("gm-00007", Status.UNDER_REVIEW, actor=AGENT)
    got = _ids(list(alert_store.iter_alerts(AlertQuery(limit=10))))  # limit is ignored by exports
    assert len(got) == 2300 and len(set(got)) == 2300 and got[-1] == "gm-00007"
    west_half = _ids(list(alert_store.iter_alerts(AlertQuery(bbox=(-78.1, -2.5, -77.755, -1.0)))))
    assert len(west_half) == 25 * 46  # the 25 grid columns west of -77.755, all 46 rows
    assert list(alert_store.iter_alerts(AlertQuery(statuses=frozenset({"actioned"})))) == []


def test_iter_alerts_sees_one_snapshot_while_alerts_change(alert_store: AlertStore) -> None:
    alerts = [make_alert(f"gm-{i:05d}", at=(-78.0 + i * 0.01, -2.0)) for i in range(1500)]
    alert_store.upsert_alerts(alerts, actor=PIPELINE)
    stream = alert_store.iter_alerts(AlertQuery())
    first = next(stream)
    # an alert not yet exported moves to the end of the polling order mid-export
    alert_store.upsert_alerts([grown(alerts[10])], actor=PIPELINE)
    rest = [item.alert.id for item in stream]
    assert [first.alert.id, *rest] == [a.id for a in alerts]  # each once, in the order of the snapshot


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bbox": (-77.5, -1.1, -77.7, -0.9)}, "W < E"),
        ({"bbox": (float("nan"), -1.1, -77.7, -0.9)}, "bbox"),
        ({"bbox": (1, 2, 3)}, "bbox"),
        ({"bbox": ("a", "b", "c", "d")}, "bbox"),
        ({"bbox": 7}, "bbox"),
        ({"first_detected_from": "2024-01-01"}, "first_detected_from"),
        ({"first_detected_to": datetime(2024, 1, 1, tzinfo=timezone.utc)}, "first_detected_to"),
        ({"first_detected_from": date(2024, 3, 1), "first_detected_to": date(2024, 2, 1)}, "is after"),
        ({"updated_since": datetime(2024, 1, 1)}, "updated_since must be a datetime with a timezone"),
        ({"statuses": frozenset({"approved"})}, "statuses: 'approved' is not one of"),
        ({"confidences": frozenset({"certain"})}, "confidences"),
        ({"priorities": frozenset({"urgent"})}, "priorities"),
        ({"legalities": frozenset({"legal"})}, "legalities"),
        ({"provinces": frozenset({""})}, "provinces"),
        ({"provinces": 5}, "provinces"),
        ({"provinces": frozenset({"Na\x00po"})}, "NUL"),
        ({"limit": 0}, "limit must be an integer from 1 to 1000"),
        ({"limit": 1001}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"after": (datetime(2024, 1, 1), "gm-a")}, "after.updated_at"),
        ({"after": (datetime(2024, 1, 1, tzinfo=timezone.utc), "")}, "after.id"),
        ({"after": "gm-a"}, "after must be"),
        ({"after": (datetime(2024, 1, 1, tzinfo=timezone.utc), "gm-a"), "offset": 0}, "not be used together"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        AlertQuery(**kwargs)


def test_query_values_are_normalised() -> None:
    query = AlertQuery(bbox=[-78, -2, -77, -1], statuses={Status.NEW, "confirmed"})  # type: ignore[arg-type]
    assert query.bbox == (-78.0, -2.0, -77.0, -1.0)
    assert query.statuses == frozenset({"new", "confirmed"})
    assert hash(query) == hash(AlertQuery(bbox=(-78.0, -2.0, -77.0, -1.0), statuses=frozenset({"confirmed", "new"})))
