"""Webhooks on both back-ends: outbox in the alert's transaction, Standard Webhooks signatures checked by a
real loopback receiver, retries with backoff, failure after max attempts, restart safety, province scope."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from geo_monitor.alerts import Context, Status
from geo_monitor.errors import InvalidInputError
from geo_monitor.store import AlertQuery, AlertStore
from geo_monitor.store.features import alert_feature
from geo_monitor.store.outbox import RetryPolicy, SubscriptionNotFoundError
from geo_monitor.webhook_targets import DestinationPolicy
from geo_monitor.webhooks import Dispatcher, WebhookVerificationError, sign, verify_signature

from alert_samples import AGENT, PIPELINE, grown, make_alert
from conftest import cli

FAST = RetryPolicy(max_attempts=3, backoff_s=0.2, backoff_max_s=1.0, lease_s=30.0)
#: The receivers here listen on loopback, which the SSRF guard refuses unless allowed.
LOOPBACK = DestinationPolicy.from_entries(["127.0.0.1"])


def loopback_dispatcher(store: AlertStore, policy: RetryPolicy, **kwargs: Any) -> Dispatcher:
    return Dispatcher(store, policy, destinations=LOOPBACK, **kwargs)


class Receiver:
    """A real HTTP server on loopback that verifies every request's signature, failing the first ``fail`` ones."""

    def __init__(self, fail: int = 0, status: int = 503) -> None:
        self.secret: str | None = None
        self.fail, self.status = fail, status
        self.received: list[dict[str, Any]] = []  # verified requests: headers, event, arrival time
        self.rejected: list[str] = []
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls += 1
                if outer.calls <= outer.fail:
                    self.send_response(outer.status)
                    self.end_headers()
                    self.wfile.write(b"try later")
                    return
                try:
                    assert outer.secret is not None
                    verify_signature(outer.secret, dict(self.headers), body)
                except WebhookVerificationError as exc:
                    outer.rejected.append(str(exc))
                    self.send_response(401)
                    self.end_headers()
                    return
                outer.received.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "event": json.loads(body), "at": time.time()})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/geo-monitor"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def subscribe(store: AlertStore, url: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    key_id, _ = store.create_api_key("Fiscalía", "partner", provinces=kwargs.pop("provinces", None))
    return key_id, store.create_subscription(key_id, url, **kwargs)


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


# --- signing ------------------------------------------------------------------------


def test_signature_is_standard_webhooks_and_verification_refuses_tampering() -> None:
    # The Standard Webhooks specification's own example secret, id, timestamp and body.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {"Webhook-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "Webhook-Timestamp": "1614265330",
               "Webhook-Signature": f"v1,bm90LXRoaXMtb25l {signature}"}  # a rotated-out one first
    verify_signature(secret, headers, body, now=1614265330 + 10)
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_signature(secret, headers, body + b" ", now=1614265330)
    with pytest.raises(WebhookVerificationError, match="too far"):
        verify_signature(secret, headers, body, now=1614265330 + 301)
    with pytest.raises(WebhookVerificationError, match="headers"):
        verify_signature(secret, {"webhook-id": "x"}, body)


# --- outbox -------------------------------------------------------------------------


def test_alert_changes_are_delivered_signed_with_their_events(alert_store: AlertStore, receiver: Receiver) -> None:
    _, sub = subscribe(alert_store, receiver.url)
    receiver.secret = sub["secret"]
    assert sub["secret"].startswith("whsec_")
    alert = make_alert("gm-a")
    alert_store.upsert_alerts([alert], actor=PIPELINE)
    alert_store.upsert_alerts([alert], actor=PIPELINE)  # unchanged: no event
    alert_store.upsert_alerts([grown(alert)], actor=PIPELINE)
    alert_store.change_status("gm-a", Status.UNDER_REVIEW, actor=AGENT, note="patrol Monday")

    counts = loopback_dispatcher(alert_store, FAST).run_once()

    assert counts == {"delivered": 3, "retry": 0, "failed": 0} and receiver.rejected == []
    events = [r["event"] for r in receiver.received]
    assert [e["type"] for e in events] == ["alert.created", "alert.updated", "alert.status_changed"]
    assert events[2]["data"]["changes"] == {"status": ["new", "under_review"]}
    feature = events[2]["data"]["alert"]
    assert feature["id"] == "gm-a" and feature["geometry"]["type"] == "Polygon"
    assert feature["properties"]["status"] == "under_review" and feature["properties"]["note"] == "patrol Monday"
    assert feature == json.loads(json.dumps(alert_feature(alert_store.get_stored("gm-a"))))  # what the APIs serve
    assert "area_ha" in events[1]["data"]["changes"]
    ids = [r["headers"]["webhook-id"] for r in receiver.received]
    assert len(set(ids)) == 3 and all(i.startswith("msg_") for i in ids)
    log = alert_store.deliveries(sub["id"])
    assert {d["status"] for d in log} == {"delivered"} and {d["response_code"] for d in log} == {204}
    assert loopback_dispatcher(alert_store, FAST).run_once() == {"delivered": 0, "retry": 0, "failed": 0}


def test_filters_event_types_and_key_scope_decide_who_hears_what(alert_store: AlertStore) -> None:
    url = "http://127.0.0.1:9/unused"
    _, napo_only = subscribe(alert_store, url, filters={"provinces": ["Napo"]})
    _, status_only = subscribe(alert_store, url, event_types=["alert.status_changed"])
    _, bbox_high = subscribe(alert_store, url, filters=AlertQuery(bbox=(-79.0, -4.2, -78.5, -3.9),
                                                                  priorities=frozenset({"high"})))
    _, scoped_key = subscribe(alert_store, url, provinces=["Zamora Chinchipe"])  # the KEY is limited

    alert_store.upsert_alerts([
        make_alert("gm-napo", at=(-77.62, -1.02), context=Context(province="Napo")),
        make_alert("gm-zamora", at=(-78.79, -4.06), context=Context(province="Zamora Chinchipe")),
    ], actor=PIPELINE)
    alert_store.change_status("gm-napo", Status.UNDER_REVIEW, actor=AGENT)

    def heard(sub: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((d["alert_id"], d["event_type"]) for d in alert_store.deliveries(sub["id"]))

    assert heard(napo_only) == [("gm-napo", "alert.created"), ("gm-napo", "alert.status_changed")]
    assert heard(status_only) == [("gm-napo", "alert.status_changed")]
    assert heard(bbox_high) == [("gm-zamora", "alert.created")]
    assert heard(scoped_key) == [("gm-zamora", "alert.created")]


def test_revoked_owners_and_deleted_subscriptions_get_nothing(alert_store: AlertStore) -> None:
    key_id, sub = subscribe(alert_store, "http://127.0.0.1:9/x")
    other_key, other = subscribe(alert_store, "http://127.0.0.1:9/y")
    alert_store.revoke_api_key(key_id)
    with pytest.raises(SubscriptionNotFoundError):
        alert_store.delete_subscription(other["id"], owner=key_id)  # not the owner: "not found"
    alert_store.delete_subscription(other["id"], owner=other_key)
    alert_store.upsert_alerts([make_alert("gm-a")], actor=PIPELINE)
    assert alert_store.deliveries(sub["id"]) == [] and alert_store.deliveries(other["id"]) == []
    assert [s["id"] for s in alert_store.list_subscriptions(key_id)] == [sub["id"]]
    assert "secret" not in alert_store.list_subscriptions(None)[0]


def test_the_outbox_commits_with_the_alert_or_not_at_all(alert_store: AlertStore) -> None:
    _, sub = subscribe(alert_store, "http://127.0.0.1:9/x")
    with pytest.raises(InvalidInputError):
        alert_store.upsert_alerts([make_alert("gm-a"), make_alert("gm-bad", score=7.0)], actor=PIPELINE)
    assert alert_store.count() == 0 and alert_store.deliveries(sub["id"]) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://example.org/x"}, "http:// or https://"),
        ({"url": "http:///nohost"}, "with a host"),
        ({"url": "http://h/" + "x" * 2001}, "at most"),
        ({"url": "http://h/", "filters": {"limit": 5}}, "unknown field"),
        ({"url": "http://h/", "filters": {"bbox": [1, 2]}}, "bbox"),
        ({"url": "http://h/", "filters": {"first_detected_from": "yesterday"}}, "first_detected_from"),
        ({"url": "http://h/", "filters": ["Napo"]}, "filters must be an object"),
        ({"url": "http://h/", "event_types": ["alert.deleted"]}, "event_types"),
    ],
)
def test_bad_subscriptions_are_refused(alert_store: AlertStore, kwargs: dict[str, Any], message: str) -> None:
    key_id, _ = alert_store.create_api_key("p", "partner")
    kwargs = dict(kwargs)  # the parameter dict is shared by both back-ends' cases
    url = kwargs.pop("url")
    with pytest.raises(InvalidInputError, match=message):
        alert_store.create_subscription(key_id, url, **kwargs)
    with pytest.raises(InvalidInputError, match="no API key"):
        alert_store.create_subscription("0000000000000000", "http://h/")


# --- retries ------------------------------------------------------------------------


def test_a_failing_receiver_is_retried_with_growing_backoff(alert_store: AlertStore) -> None:
    failing = Receiver(fail=2)
    try:
        _, sub = subscribe(alert_store, failing.url)
        failing.secret = sub["secret"]
        alert_store.upsert_alerts([make_alert("gm-a")], actor=PIPELINE)
        dispatcher = loopback_dispatcher(alert_store, RetryPolicy(max_attempts=5, backoff_s=0.4, backoff_max_s=10.0))
        attempts_at: list[float] = []
        while not failing.received:
            before = failing.calls
            dispatcher.run_once()
            if failing.calls > before:
                attempts_at.append(time.monotonic())
            time.sleep(0.02)
            assert len(attempts_at) <= 3
        [delivery] = alert_store.deliveries(sub["id"])
        assert delivery["status"] == "delivered" and delivery["attempts"] == 3 and delivery["last_error"] is None
        first_wait, second_wait = attempts_at[1] - attempts_at[0], attempts_at[2] - attempts_at[1]
        # Never earlier than [cap/2, cap] allows (cap 0.4 s, then 0.8 s); later only by polling and a busy machine.
        assert 0.2 <= first_wait < 0.4 + 1.0
        assert 0.4 <= second_wait < 0.8 + 1.0
    finally:
        failing.close()


def test_a_receiver_that_never_answers_well_ends_failed_with_its_last_error(alert_store: AlertStore) -> None:
    down = Receiver(fail=100, status=500)
    try:
        _, sub = subscribe(alert_store, down.url)
        alert_store.upsert_alerts([make_alert("gm-a")], actor=PIPELINE)
        dispatcher = loopback_dispatcher(alert_store, FAST)
        wait_until(lambda: dispatcher.run_once() and alert_store.deliveries(sub["id"])[0]["status"] == "failed")
        [delivery] = alert_store.deliveries(sub["id"])
        assert delivery["attempts"] == 3 and delivery["response_code"] == 500
        assert delivery["last_error"].startswith("HTTP 500") and down.calls == 3
    finally:
        down.close()


def test_unreachable_receivers_are_errors_not_crashes(alert_store: AlertStore) -> None:
    _, sub = subscribe(alert_store, "http://127.0.0.1:9/closed-port")
    alert_store.upsert_alerts([make_alert("gm-a")], actor=PIPELINE)
    assert loopback_dispatcher(alert_store, FAST, timeout_s=2).run_once() == {"delivered": 0, "retry": 1, "failed": 0}
    [delivery] = alert_store.deliveries(sub["id"])
    assert delivery["status"] == "pending" and delivery["response_code"] is None and delivery["last_error"]


# --- restart safety -------------------------------------------------------------------


def test_pending_deliveries_survive_a_restart(store_url: str, receiver: Receiver) -> None:
    with AlertStore.from_url(store_url) as first:
        first.migrate()
        _, sub = subscribe(first, receiver.url)
        receiver.secret = sub["secret"]
        first.upsert_alerts([make_alert(f"gm-{i}", at=(-77.6 + i * 0.01, -1.0)) for i in range(3)], actor=PIPELINE)
        # a dispatcher claims one delivery and dies before sending it
        [lost] = first.claim_deliveries(RetryPolicy(lease_s=0.3), limit=1)

    with AlertStore.from_url(store_url) as second:  # a new process: new store, new dispatcher
        dispatcher = loopback_dispatcher(second, FAST)
        assert dispatcher.run_once()["delivered"] == 2  # the unclaimed two at once
        time.sleep(0.35)  # the dead dispatcher's lease runs out
        assert dispatcher.run_once()["delivered"] == 1
        log = second.deliveries(sub["id"])
        assert {d["status"] for d in log} == {"delivered"}
        assert next(d for d in log if d["id"] == lost.id)["attempts"] == 2  # the lost try counts
    assert sorted(r["event"]["data"]["alert"]["id"] for r in receiver.received) == ["gm-0", "gm-1", "gm-2"]


def test_two_dispatchers_never_send_the_same_delivery_twice(alert_store: AlertStore, receiver: Receiver) -> None:
    _, sub = subscribe(alert_store, receiver.url)
    receiver.secret = sub["secret"]
    alert_store.upsert_alerts([make_alert(f"gm-{i:03d}", at=(-78.0 + i * 0.005, -1.0)) for i in range(60)],
                              actor=PIPELINE)
    dispatchers = [loopback_dispatcher(alert_store, FAST, batch=5) for _ in range(3)]
    threads = [threading.Thread(target=d.run_once) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ids = [r["headers"]["webhook-id"] for r in receiver.received]
    assert len(ids) == 60 and len(set(ids)) == 60


def test_webhooks_deliver_command(store_url: str, receiver: Receiver, tmp_path: Path) -> None:
    with AlertStore.from_url(store_url) as store:
        store.migrate()
        _, sub = subscribe(store, receiver.url)
        receiver.secret = sub["secret"]
        store.upsert_alerts([make_alert("gm-a")], actor=PIPELINE)
    result = cli("webhooks", "deliver", "--once",
                 env={"GEO_MONITOR_DATABASE_URL": store_url, "GEO_MONITOR_DATA_DIR": str(tmp_path),
                      "GEO_MONITOR_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "delivered=1 retry=0 failed=0"
    assert [r["event"]["type"] for r in receiver.received] == ["alert.created"]


def test_backoff_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff_s=30, backoff_max_s=300)
    for attempts, cap in [(1, 30), (2, 60), (3, 120), (4, 240), (5, 300), (9, 300)]:
        delays = [policy.delay(attempts).total_seconds() for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays) and len(set(delays)) > 1  # jittered

