"""The webhook SSRF guard: non-public destinations refused at subscription time (422) and at delivery time.

Resolution is faked where a test needs a name to resolve somewhere
particular (no DNS on the test machines); delivery-time tests use real
loopback receivers and ``localhost``, which resolves from /etc/hosts.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from geo_monitor.errors import InvalidInputError
from geo_monitor.settings import load_settings
from geo_monitor.store import AlertStore
from geo_monitor.store.outbox import RetryPolicy
from geo_monitor.webhook_targets import (
    STRICT,
    DestinationPolicy,
    ForbiddenDestinationError,
    check_destination,
    guarded_connect,
    is_public,
)
from geo_monitor.webhooks import Dispatcher

from alert_samples import PIPELINE, make_alert
from api_support import Api, api, make_api, problem, test_settings  # noqa: F401  (fixture)
from test_webhooks import Receiver, subscribe

FAST = RetryPolicy(max_attempts=3, backoff_s=0.2, backoff_max_s=1.0, lease_s=30.0)

NOT_PUBLIC = [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.10",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "2001:db8::1",
]
PUBLIC = ["8.8.8.8", "190.152.4.1", "2001:4860:4860::8888", "2800:370::1"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def resolver(*answers: str) -> Any:
    """A getaddrinfo that answers with ``answers`` (IP strings) for any name, counting its calls."""

    def resolve(host: str, port: int, *_args: Any) -> list[tuple[Any, ...]]:
        resolve.calls += 1  # type: ignore[attr-defined]
        out = []
        for answer in answers:
            family = socket.AF_INET6 if ":" in answer else socket.AF_INET
            out.append((family, socket.SOCK_STREAM, 6, "", (answer, port)))
        return out

    resolve.calls = 0  # type: ignore[attr-defined]
    return resolve


def unresolvable(host: str, port: int, *_args: Any) -> list[tuple[Any, ...]]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize(
    ("url", "answers", "kind"),
    [
        ("http://127.0.0.1:8080/hook", (), "loopback"),
        ("http://[::1]/hook", (), "loopback"),
        ("http://169.254.169.254/latest/meta-data", (), "link-local"),
        ("https://10.0.0.7/hook", (), "private"),
        ("https://hooks.partner.example/x", ("192.168.0.5",), "private"),
        ("https://hooks.partner.example/x", ("8.8.8.8", "10.0.0.5"), "private"),  # one bad answer is enough
        ("https://hooks.partner.example/x", ("fe80::1",), "link-local"),
        ("https://hooks.partner.example/x", ("224.0.0.5",), "multicast"),
    ],
)
def test_non_public_destinations_are_refused_when_subscribing(url: str, answers: tuple[str, ...], kind: str) -> None:
    with pytest.raises(ForbiddenDestinationError, match=kind) as caught:
        check_destination(url, STRICT, resolve=resolver(*answers))
    assert isinstance(caught.value, InvalidInputError)  # the web layer answers 422
    assert "webhook_allowed_hosts" in str(caught.value)


def test_public_unresolvable_and_allowed_destinations_pass() -> None:
    check_destination("https://hooks.partner.example/x", STRICT, resolve=resolver("190.152.4.1"))
    check_destination("https://not-yet-in-dns.example/x", STRICT, resolve=unresolvable)  # delivery checks again
    allowed = DestinationPolicy.from_entries(["127.0.0.1", "Intranet.Example", "10.20.0.0/16"])
    check_destination("http://127.0.0.1:9000/x", allowed, resolve=resolver())
    check_destination("http://intranet.example./x", allowed, resolve=resolver("10.99.0.1"))  # by name
    check_destination("http://hooks.example/x", allowed, resolve=resolver("10.20.3.4"))  # by network
    with pytest.raises(ForbiddenDestinationError):
        check_destination("http://hooks.example/x", allowed, resolve=resolver("10.21.3.4"))


def test_delivery_connects_only_to_the_address_it_checked() -> None:
    """DNS rebinding: a name public when subscribed may resolve to a private address later."""
    connect = guarded_connect(STRICT, resolve=resolver("169.254.169.254"))
    with pytest.raises(ForbiddenDestinationError, match="link-local"):
        connect(("rebinding.example", 80), 2.0)


def test_a_subscription_to_loopback_is_a_422_unless_the_operator_allows_it(api: Api, tmp_path: Any) -> None:
    for url in ("http://127.0.0.1:8080/hook", "http://localhost:9/hook", "http://169.254.169.254/latest/",
                "http://[::1]:80/x", "http://0.0.0.0/x"):
        body = problem(api.request("POST", "/api/v1/webhooks", key="partner", json={"url": url}), 422)
        assert "public addresses only" in body["detail"], body
    assert api.get("/api/v1/webhooks", key="partner").get_json()["subscriptions"] == []

    allowing = make_api(api.store, test_settings(tmp_path / "allowing", webhook_allowed_hosts="127.0.0.1"))
    created = allowing.request("POST", "/api/v1/webhooks", key="partner", json={"url": "http://127.0.0.1:8080/hook"})
    assert created.status_code == 201, created.get_data(as_text=True)


def test_deliveries_to_a_forbidden_address_are_not_sent(alert_store: AlertStore) -> None:
    receiver = Receiver()
    try:
        # Subscribed through the store (no subscription-time check), by IP and by a name resolving to loopback.
        _, by_ip = subscribe(alert_store, receiver.url)
        _, by_name = subscribe(alert_store, receiver.url.replace("127.0.0.1", "localhost"))
        receiver.secret = by_ip["secret"]
        alert_store.upsert_alerts([make_alert("gm-a")], PIPELINE)
        counts = Dispatcher(alert_store, FAST).run_once()  # the default: public destinations only
        assert counts == {"delivered": 0, "retry": 2, "failed": 0}
        assert receiver.calls == 0
        for sub in (by_ip, by_name):
            (log,) = alert_store.deliveries(sub["id"])
            assert log["status"] == "pending" and "loopback" in log["last_error"], log
            assert log["response_code"] is None
    finally:
        receiver.close()


def test_allowed_hosts_setting_reads_names_addresses_and_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEO_MONITOR_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1, hooks.intranet.example ,10.0.0.0/8,::1")
    settings = load_settings()
    assert settings.webhook_allowed_hosts == ("127.0.0.1", "hooks.intranet.example", "10.0.0.0/8", "::1")
    assert load_settings(webhook_allowed_hosts=[]).webhook_allowed_hosts == ()
    monkeypatch.delenv("GEO_MONITOR_WEBHOOK_ALLOWED_HOSTS")
    assert load_settings().webhook_allowed_hosts == ()  # default: nothing non-public
    for bad in ("not a host!", "10.0.0.0/40"):
        with pytest.raises(Exception, match="webhook_allowed_hosts"):
            load_settings(webhook_allowed_hosts=bad)
