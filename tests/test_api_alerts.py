"""GET/PATCH /api/v1/alerts on SQLite and PostGIS: fields, filters, cursors, ETags, workflow, provinces."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
from alert_samples import make_alert
from api_support import Api, api, problem  # noqa: F401  (fixture)

from geo_monitor.alerts import Context, Legality, Priority

PIPELINE = "pipeline:mining-change@1"

#: Every field of DESIGN.md's Alert contract, plus the workflow and the store's timestamps.
DESIGN_FIELDS = {
    "id", "area_ha", "pond_area_ha", "first_detected", "last_observed", "confirmed_at", "confidence", "score",
    "signature", "context", "legality", "priority", "status", "provenance", "created_at", "updated_at",
}
WORKFLOW_FIELDS = {"assignee", "note"}


def _seed(api: Api) -> None:
    """Five alerts: three in Napo (one outside the test bbox), one in Zamora Chinchipe, one critical in Azuay."""
    api.store.upsert_alerts(
        [
            make_alert("gm-napo-1"),
            make_alert("gm-napo-2", at=(-77.60, -1.00), first_detected=date(2024, 3, 5)),
            make_alert("gm-napo-far", at=(-77.00, -0.50), first_detected=date(2024, 1, 10)),
            make_alert(
                "gm-zamora-1",
                at=(-78.75, -4.05),
                context=Context(province="Zamora Chinchipe", nearest_river="Río Nambija", river_distance_m=80.0),
                legality=Legality.INSIDE_CONCESSION,
                priority=Priority.MEDIUM,
            ),
            make_alert(
                "gm-azuay-1",
                at=(-79.70, -3.05),
                context=Context(province="Azuay", protected_area="Bosque Protector"),
                priority=Priority.CRITICAL,
            ),
        ],
        PIPELINE,
    )


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [f["id"] for f in response.get_json()["features"]]


def test_list_is_geojson_with_every_field(api: Api) -> None:
    _seed(api)
    response = api.get("/api/v1/alerts")
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    body = response.get_json()
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == body["numberReturned"] == 5
    assert [link["rel"] for link in body["links"]] == ["self"]  # all on one page: no next
    feature = body["features"][0]
    assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert DESIGN_FIELDS | WORKFLOW_FIELDS <= set(feature["properties"])
    assert feature["properties"]["status"] == "new"
    assert feature["properties"]["updated_at"].endswith("Z")
    assert set(feature["properties"]["signature"]) == {"vegetation_loss", "bare_soil", "water", "turbidity"}
    # polling order: (updated_at, id)
    keys = [(f["properties"]["updated_at"], f["id"]) for f in body["features"]]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("bbox=-77.7,-1.1,-77.5,-0.9", {"gm-napo-1", "gm-napo-2"}),
        ("datetime=2024-03-01/..", {"gm-napo-2"}),
        ("datetime=../2024-01-31", {"gm-napo-far"}),
        ("datetime=2024-02-01", {"gm-napo-1", "gm-zamora-1", "gm-azuay-1"}),
        ("priority=critical,medium", {"gm-zamora-1", "gm-azuay-1"}),
        ("legality=inside_concession", {"gm-zamora-1"}),
        ("province=Azuay,Zamora Chinchipe", {"gm-zamora-1", "gm-azuay-1"}),
        ("status=under_review", set()),
        ("confidence=high&province=Napo&bbox=-77.7,-1.1,-77.5,-0.9", {"gm-napo-1", "gm-napo-2"}),
    ],
)
def test_filters(api: Api, query: str, expected: set[str]) -> None:
    _seed(api)
    assert set(_ids(api.get(f"/api/v1/alerts?{query}"))) == expected


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("bbox=nan,-1,-77,0", "bbox"),
        ("bbox=-77,-1,-78,0", "bbox"),
        ("bbox=10,40,11,41", "bbox"),
        ("datetime=2024-03-01/2024-01-01", "datetime"),
        ("datetime=soon", "datetime"),
        ("updated_since=2024-03-01T10:00:00", "updated_since"),
        ("status=open", "status"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=many", "limit"),
        ("cursor=forged.cursor", "cursor"),
        ("colour=red", "colour"),
        ("limit=1&limit=2", "limit"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(api: Api, query: str, parameter: str) -> None:
    body = problem(api.get(f"/api/v1/alerts?{query}"), 400)
    assert body["parameter"] == parameter
    assert parameter in body["detail"]


def test_a_province_with_a_nul_character_is_bad_input_everywhere(api: Api) -> None:
    """PostgreSQL refuses NUL in text: found by schemathesis as a 500 on the change tiles (PostGIS)."""
    for url in ("/api/v1/alerts?province=Na%00po", "/api/v1/alerts/export?province=%00",
                "/ogc/collections/alerts/items?province=%00", "/tiles/change/12/1180/2070.png?province=%00"):
        assert "NUL" in problem(api.get(url), 400)["detail"], url


def test_cursor_paging_has_next_links_and_no_repeats(api: Api) -> None:
    _seed(api)
    seen: list[str] = []
    url = "/api/v1/alerts?limit=2&priority=high,critical,medium"
    pages = 0
    while url:
        body = api.get(url).get_json()
        pages += 1
        assert body["numberMatched"] == 5
        seen += [f["id"] for f in body["features"]]
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        if nxt:
            parts = urlsplit(nxt[0])
            assert parse_qs(parts.query)["priority"] == ["high,critical,medium"]  # filters kept
            url = f"{parts.path}?{parts.query}"
        else:
            url = ""
    assert pages == 3
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 5
    # a cursor from another deployment (other secret key) is refused
    other = api.get("/api/v1/alerts?limit=2").get_json()["cursor"]
    body, mac = other.split(".")
    problem(api.get(f"/api/v1/alerts?cursor={body}.{'A' * len(mac)}"), 400)


def test_resume_cursor_returns_only_later_changes(api: Api) -> None:
    _seed(api)
    first = api.get("/api/v1/alerts").get_json()
    assert len(first["features"]) == 5
    again = api.get(f"/api/v1/alerts?cursor={first['cursor']}").get_json()
    assert again["features"] == [] and again["cursor"] == first["cursor"]
    api.store.change_status("gm-napo-2", "under_review", "user:agent.napo")
    later = api.get(f"/api/v1/alerts?cursor={first['cursor']}").get_json()
    assert [f["id"] for f in later["features"]] == ["gm-napo-2"]
    assert later["features"][0]["properties"]["status"] == "under_review"


def test_etag_and_if_none_match(api: Api) -> None:
    _seed(api)
    first = api.get("/api/v1/alerts?province=Napo")
    etag = first.headers["ETag"]
    assert etag and not etag.startswith("W/")  # strong
    same = api.get("/api/v1/alerts?province=Napo", headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.get_data() == b""
    api.store.change_status("gm-napo-1", "under_review", "user:agent.napo")
    changed = api.get("/api/v1/alerts?province=Napo", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_one_alert_with_history_and_404(api: Api) -> None:
    _seed(api)
    api.store.change_status("gm-napo-1", "under_review", "user:agent.napo", note="checking")
    body = api.get("/api/v1/alerts/gm-napo-1").get_json()
    assert body["type"] == "Feature" and body["id"] == "gm-napo-1"
    assert [entry["kind"] for entry in body["history"]] == ["detection", "status"]
    assert body["history"][1]["changes"] == {"status": ["new", "under_review"]}
    assert body["history"][1]["at"].endswith("Z")
    problem(api.get("/api/v1/alerts/gm-nothing"), 404)
    problem(api.get("/api/v1/alerts/" + "x" * 500), 404)
    assert problem(api.get("/api/v1/alerts/gm-napo-1?x=1"), 400)["parameter"] == "x"


def test_patch_follows_the_workflow(api: Api) -> None:
    _seed(api)
    url = "/api/v1/alerts/gm-napo-1"
    ok = api.patch(url, key="agent", json={"status": "under_review", "note": "a patrol goes Monday"})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    props = ok.get_json()["properties"]
    assert props["status"] == "under_review" and props["note"] == "a patrol goes Monday"
    assert ok.get_json()["history"][-1]["actor"] == f"key:{api.key_ids['agent']}"
    # the workflow refuses skipping back; dismissing needs a note
    assert "under_review" in problem(api.patch(url, key="analyst", json={"status": "new"}), 409)["detail"]
    problem(api.patch(url, key="agent", json={"status": "dismissed"}), 422)
    assert api.patch(url, key="admin", json={"status": "dismissed", "note": "a river meander"}).status_code == 200
    problem(api.patch(url, key="agent", json={"status": "actioned"}), 409)
    # assignment
    assigned = api.patch("/api/v1/alerts/gm-napo-2", key="agent", json={"assignee": "agent.napo"})
    assert assigned.get_json()["properties"]["assignee"] == "agent.napo"


@pytest.mark.parametrize(
    "kwargs, status",
    [
        ({"json": {"status": "confirmed", "colour": "red"}}, 422),
        ({"json": {"status": "flying"}}, 422),
        ({"json": {"status": 3}}, 422),
        ({"json": {}}, 422),
        ({"json": ["under_review"]}, 400),
        ({"data": "status=under_review", "content_type": "application/x-www-form-urlencoded"}, 415),
        ({"data": "{not json", "content_type": "application/json"}, 400),
    ],
)
def test_patch_bad_bodies(api: Api, kwargs: dict, status: int) -> None:
    _seed(api)
    problem(api.patch("/api/v1/alerts/gm-napo-1", key="agent", **kwargs), status)
    assert api.store.get_stored("gm-napo-1").status.value == "new"


def test_partner_cannot_patch_and_unknown_alert_is_404(api: Api) -> None:
    _seed(api)
    problem(api.patch("/api/v1/alerts/gm-napo-1", key="partner", json={"status": "under_review"}), 403)
    problem(api.patch("/api/v1/alerts/gm-nothing", key="agent", json={"status": "under_review"}), 404)
    assert api.store.get_stored("gm-napo-1").status.value == "new"


def test_key_limited_to_a_province_sees_nothing_outside_it(api: Api) -> None:
    _seed(api)
    assert set(_ids(api.get("/api/v1/alerts", key="napo"))) == {"gm-napo-1", "gm-napo-2", "gm-napo-far"}
    assert _ids(api.get("/api/v1/alerts?province=Azuay", key="napo")) == []
    assert set(_ids(api.get("/api/v1/alerts?province=Azuay,Napo&limit=1", key="napo"))) <= {"gm-napo-1", "gm-napo-2",
                                                                                              "gm-napo-far"}
    problem(api.get("/api/v1/alerts/gm-azuay-1", key="napo"), 404)
    assert api.get("/api/v1/alerts/gm-napo-1", key="napo").status_code == 200
    exported = api.get("/api/v1/alerts/export?format=geojson", key="napo")
    assert {f["properties"]["id"] for f in json.loads(exported.get_data())["features"]} == {
        "gm-napo-1", "gm-napo-2", "gm-napo-far"}
    assert api.get("/ogc/collections/alerts/items", key="napo").get_json()["numberMatched"] == 3
    problem(api.get("/ogc/collections/alerts/items/gm-azuay-1", key="napo"), 404)


def test_polling_under_churn_never_misses_or_repeats(api: Api) -> None:
    """A partner polls page by page while alerts are inserted and updated between its requests.

    It starts with ``updated_since`` and then only follows ``next`` links and
    the resume ``cursor``; at the end its copy equals the store, and no
    version of an alert (id, updated_at) ever came twice.
    """
    api.store.upsert_alerts([make_alert(f"gm-{i:04d}", at=(-77.9 + i * 0.003, -1.0)) for i in range(30)], PIPELINE)
    copy: dict[str, dict] = {}
    versions: list[tuple[str, str]] = []
    url = "/api/v1/alerts?updated_since=2000-01-01T00:00:00Z&limit=7"
    cursor = None
    churn = iter(range(40))
    for _ in range(60):
        body = api.get(url).get_json()
        for feature in body["features"]:
            versions.append((feature["id"], feature["properties"]["updated_at"]))
            copy[feature["id"]] = feature
        cursor = body["cursor"] or cursor
        step = next(churn, None)
        if step is not None:  # the pipeline and agents keep writing between the partner's requests
            if step % 3 == 0:
                api.store.upsert_alerts([make_alert(f"gm-new-{step:03d}", at=(-77.0, -1.5 + step * 0.003))], PIPELINE)
            elif step % 3 == 1:
                old = api.store.get_stored(f"gm-{step % 30:04d}").alert
                api.store.upsert_alerts([replace(old, area_ha=old.area_ha + 1.0)], PIPELINE)
            else:
                target = f"gm-{step % 30:04d}"
                now = api.store.get_stored(target).status.value
                api.store.change_status(target, "under_review" if now == "new" else "confirmed", "user:agent.napo")
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        url = nxt[0] if nxt else f"/api/v1/alerts?cursor={cursor}&limit=7"
        if step is None and not nxt and not body["features"]:
            break
    assert len(versions) == len(set(versions)), "a version of an alert came twice"
    everything = api.get("/api/v1/alerts?limit=1000", key="admin").get_json()["features"]
    assert {f["id"]: f["properties"]["updated_at"] for f in everything} == {
        k: v["properties"]["updated_at"] for k, v in copy.items()}
    assert {f["id"]: f["properties"]["status"] for f in everything} == {
        k: v["properties"]["status"] for k, v in copy.items()}
    assert len(copy) == 30 + 14
