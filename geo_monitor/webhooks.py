"""Webhook signing (Standard Webhooks) and the dispatcher that sends the store's outbox.

Every delivery is an HTTP POST of a JSON body with three headers, as the
Standard Webhooks specification defines them:

- ``webhook-id``: the delivery id (``msg_...``), the same on every retry, so
  receivers can drop duplicates;
- ``webhook-timestamp``: seconds since the epoch when this attempt was signed;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``
  keyed with the base64-decoded part of the subscription's ``whsec_`` secret.

:func:`verify_signature` is the receiving side, written to be copied into a
partner's code (standard library only). The :class:`Dispatcher` claims due
deliveries from the store, sends them with a timeout, and records the
outcome; the store retries failures with exponential backoff and jitter
until ``webhook_max_attempts``. Nothing here knows Flask.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from geo_monitor import __version__
from geo_monitor.settings import Settings
from geo_monitor.store import AlertStore
from geo_monitor.store.outbox import ClaimedDelivery, RetryPolicy
from geo_monitor.webhook_targets import STRICT, DestinationPolicy, guarded_connect

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
#: How far a receiver lets a timestamp stray from its clock (the spec's suggestion): limits replays.
DEFAULT_TOLERANCE_S = 300
#: Response bytes read (and kept in the error text) from a receiver.
RESPONSE_PEEK = 300


class WebhookVerificationError(Exception):
    """A webhook request whose signature, timestamp or headers do not check out."""


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one request."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise :class:`WebhookVerificationError` unless it is authentic and fresh.

    ``headers`` may use any letter case; ``body`` must be the raw bytes as
    received (not re-serialised JSON). Several space-separated signatures
    are accepted (the sender may sign with an old and a new secret).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, stamp, signatures = lowered["webhook-id"], lowered["webhook-timestamp"], lowered["webhook-signature"]
        timestamp = int(stamp)
    except (KeyError, ValueError):
        raise WebhookVerificationError("missing or malformed webhook-id/-timestamp/-signature headers") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookVerificationError("timestamp too far from now (replayed or clock skew)")
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise WebhookVerificationError("no matching signature")


@dataclass(frozen=True)
class SendResult:
    """What one POST came to: a status code, an error text (None when delivered), or both."""

    response_code: int | None
    error: str | None


def post(
    url: str, headers: Mapping[str, str], body: bytes, timeout_s: float, policy: DestinationPolicy = STRICT
) -> SendResult:
    """POST ``body``; any 2xx is delivered, everything else (3xx too: no redirects followed) an error.

    The connection goes only to an address ``policy`` allows (public ones;
    see ``webhook_targets``), checked at connect time; a refused destination
    is an error like a refused connection. No proxy from the environment is
    used: through a proxy the destination's address could not be checked.
    """
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), _NoRedirect(), _GuardedHTTPHandler(policy), _GuardedHTTPSHandler(policy)
    )
    try:
        with opener.open(request, timeout=timeout_s) as response:
            code = response.status
            if 200 <= code < 300:
                return SendResult(code, None)
            return SendResult(code, f"HTTP {code}")
    except urllib.error.HTTPError as exc:
        peek = exc.read(RESPONSE_PEEK).decode("utf-8", "replace") if exc.fp is not None else ""
        return SendResult(exc.code, f"HTTP {exc.code} {peek}".strip())
    except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, DNS, timeout, bad URL
        reason = getattr(exc, "reason", exc)
        return SendResult(None, f"{type(exc).__name__}: {reason}")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, policy: DestinationPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = guarded_connect(policy)  # type: ignore[method-assign]


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, policy: DestinationPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = guarded_connect(policy)  # type: ignore[method-assign]


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: DestinationPolicy) -> None:
        super().__init__()
        self._policy = policy

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_GuardedHTTPConnection, policy=self._policy), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: DestinationPolicy) -> None:
        super().__init__()
        self._policy = policy

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_GuardedHTTPSConnection, policy=self._policy), req,
                            context=self._context)  # type: ignore[attr-defined]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would send a signed body somewhere the partner did not register."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class Dispatcher:
    """Sends due webhook deliveries from the store's outbox; safe to run in several processes."""

    def __init__(
        self,
        store: AlertStore,
        policy: RetryPolicy,
        *,
        timeout_s: float = 10.0,
        batch: int = 20,
        send: Callable[[str, Mapping[str, str], bytes, float], SendResult] | None = None,
        clock: Callable[[], float] = time.time,
        destinations: DestinationPolicy = STRICT,
    ) -> None:
        """``destinations``: which non-public addresses deliveries may go to anyway (none by default)."""
        self.store = store
        self.policy = policy
        self.timeout_s = timeout_s
        self.batch = batch
        self._send = send or functools.partial(post, policy=destinations)
        self._clock = clock

    @classmethod
    def from_settings(cls, store: AlertStore, settings: Settings, **kwargs: Any) -> Dispatcher:
        policy = RetryPolicy(
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
            backoff_max_s=settings.webhook_backoff_max_s,
            lease_s=settings.webhook_timeout_s + 60.0,
        )
        destinations = DestinationPolicy.from_entries(settings.webhook_allowed_hosts)
        return cls(store, policy, timeout_s=settings.webhook_timeout_s, destinations=destinations, **kwargs)

    def run_once(self) -> dict[str, int]:
        """Send every delivery due now (batch after batch); count the outcomes."""
        counts = {"delivered": 0, "retry": 0, "failed": 0}
        while claimed := self.store.claim_deliveries(self.policy, self.batch):
            for delivery in claimed:
                status = self.deliver(delivery)
                counts["retry" if status == "pending" else status or "failed"] += 1
            if len(claimed) < self.batch:
                break
        return counts

    def run_forever(self, poll_s: float, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Deliver until ``should_stop()``; sleeps ``poll_s`` when nothing is due."""
        while not should_stop():
            counts = self.run_once()
            if not any(counts.values()):
                time.sleep(poll_s)

    def deliver(self, delivery: ClaimedDelivery) -> str | None:
        """Sign and send one claimed delivery, record the outcome, return the delivery's new status."""
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            "user-agent": f"geo-monitor-webhooks/{__version__}",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(delivery.secret, delivery.id, timestamp, body),
        }
        result = self._send(delivery.url, headers, body, self.timeout_s)
        status = self.store.record_delivery(
            delivery.id, self.policy, response_code=result.response_code, error=result.error
        )
        log.info(
            "webhook delivery",
            extra={"delivery": delivery.id, "attempt": delivery.attempts, "code": result.response_code,
                   "error": result.error, "status": status},
        )
        return status
