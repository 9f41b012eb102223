"""/api/v1/webhooks: partners and admins manage subscriptions; a partner sees only its own; deliveries arrive signed."""

from __future__ import annotations

from alert_samples import make_alert
from api_support import Api, api, problem  # noqa: F401  (fixture)

HOOK = "https://partner.example.org/geo-monitor-hook"


def test_partner_subscribes_lists_and_deletes_its_own(api: Api) -> None:
    created = api.request("POST", "/api/v1/webhooks", key="partner",
                          json={"url": HOOK, "filters": {"priority": "critical,high", "bbox": "-78,-2,-77,0"},
                                "event_types": ["alert.created"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["secret"].startswith("whsec_") and body["url"] == HOOK
    assert created.headers["Location"].endswith(f"/api/v1/webhooks/{body['id']}")
    other = api.request("POST", "/api/v1/webhooks", key="napo", json={"url": HOOK}).get_json()

    mine = api.get("/api/v1/webhooks", key="partner").get_json()["subscriptions"]
    assert [s["id"] for s in mine] == [body["id"]] and "secret" not in mine[0]
    every = {s["id"] for s in api.get("/api/v1/webhooks", key="admin").get_json()["subscriptions"]}
    assert every == {body["id"], other["id"]}
    # another partner's subscription is "not found", for reading its log and for deleting
    problem(api.get(f"/api/v1/webhooks/{other['id']}/deliveries", key="partner"), 404)
    problem(api.request("DELETE", f"/api/v1/webhooks/{other['id']}", key="partner"), 404)
    assert api.get(f"/api/v1/webhooks/{body['id']}/deliveries", key="partner").get_json() == {"deliveries": []}
    assert api.request("DELETE", f"/api/v1/webhooks/{body['id']}", key="partner").status_code == 204
    assert api.get("/api/v1/webhooks", key="partner").get_json()["subscriptions"] == []


def test_agents_cannot_manage_webhooks_and_bad_bodies_are_refused(api: Api) -> None:
    problem(api.request("POST", "/api/v1/webhooks", key="agent", json={"url": HOOK}), 403)
    problem(api.get("/api/v1/webhooks", key="analyst"), 403)
    problem(api.request("POST", "/api/v1/webhooks", key=None, json={"url": HOOK}), 401)
    for body, status in [
        ({"url": "ftp://x.example.org/"}, 422),
        ({}, 422),
        ({"url": HOOK, "colour": "red"}, 422),
        ({"url": HOOK, "filters": {"priority": "urgent"}}, 400),
        ({"url": HOOK, "filters": {"bbox": "nan,0,1,1"}}, 400),
        ({"url": HOOK, "filters": {"updated_since": "2024-01-01"}}, 422),
        ({"url": HOOK, "event_types": ["alert.deleted"]}, 422),
        ([HOOK], 400),
    ]:
        problem(api.request("POST", "/api/v1/webhooks", key="partner", json=body), status)
    problem(api.request("POST", "/api/v1/webhooks", key="partner", data="url=x",
                        content_type="application/x-www-form-urlencoded"), 415)


def test_a_new_alert_queues_a_signed_delivery(api: Api) -> None:
    created = api.request("POST", "/api/v1/webhooks", key="partner", json={"url": HOOK}).get_json()
    api.store.upsert_alerts([make_alert("gm-0000000000000001")], "pipeline:mining-change@1")
    log = api.get(f"/api/v1/webhooks/{created['id']}/deliveries", key="partner").get_json()["deliveries"]
    assert [(d["event_type"], d["alert_id"]) for d in log] == [("alert.created", "gm-0000000000000001")]
