"""Webhook subscriptions and the delivery outbox, inside the store's transactions.

An alert change and the deliveries it causes are written in the SAME
transaction (:func:`enqueue`, called by ``upsert_alerts`` and
``change_status``): either both are committed or neither, so a crash or
restart between "alert changed" and "partner told" loses nothing. The
dispatcher (``geo_monitor.webhooks``) later claims due rows (:func:`claim_due`),
sends them and records the outcome (:func:`record_outcome`).

A claim is a lease: it counts the attempt and pushes ``next_attempt_at``
past the send timeout, so a dispatcher that dies mid-send leaves a row that
another dispatcher retries when the lease runs out. Claims skip rows other
dispatchers hold (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write
lock serialises claims).

Filters are stored as JSON holding :class:`AlertQuery`'s filter fields and
matched in Python against each changed alert, together with the owner key's
province scope: a partner key limited to Napo is never sent an alert outside
Napo, whatever its subscription says.
"""

from __future__ import annotations

import base64
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from shapely.geometry import box
from sqlalchemy import select
from sqlalchemy.orm import Session

from geo_monitor.alerts import Alert
from geo_monitor.errors import InvalidInputError, NotFoundError
from geo_monitor.store.query import AlertQuery
from geo_monitor.store.records import json_ready, row_to_alert
from geo_monitor.store.schema import (
    AlertRow,
    ApiKeyRow,
    DeliveryStatus,
    WebhookDeliveryRow,
    WebhookSubscriptionRow,
)

#: Event types a subscription can ask for.
EVENT_TYPES = ("alert.created", "alert.updated", "alert.status_changed")
#: AlertQuery fields a subscription may filter on (paging and updated_since make no sense for pushes).
FILTER_FIELDS = ("bbox", "first_detected_from", "first_detected_to", "statuses", "confidences", "priorities",
                 "legalities", "provinces")
URL_LENGTH = 2000
#: Longest error text kept per delivery.
ERROR_LENGTH = 500


class SubscriptionNotFoundError(NotFoundError):
    """No subscription with that id belongs to the caller."""


@dataclass(frozen=True)
class Event:
    """One change to one alert, to be offered to every subscription."""

    type: str
    row: AlertRow
    changes: dict[str, Any]


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery a dispatcher holds the lease on: everything it needs to send it."""

    id: str
    url: str
    secret: str
    event_type: str
    payload: dict[str, Any]
    attempts: int  # including the one being made


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed delivery is tried again: exponential backoff with full jitter, then ``failed``."""

    max_attempts: int = 8
    backoff_s: float = 30.0  # the first retry waits up to this long
    backoff_max_s: float = 6 * 3600.0
    lease_s: float = 70.0  # longer than a send can take (timeout + margin)

    def delay(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """Wait before the next try after ``attempts`` failed ones: random in [cap/2, cap], cap doubling."""
        cap = min(self.backoff_max_s, self.backoff_s * 2 ** max(attempts - 1, 0))
        jitter = (rng or random).uniform(0.5, 1.0)  # keeps many failing rows from retrying in lockstep
        return timedelta(seconds=cap * jitter)


# --- subscriptions -------------------------------------------------------------------


def create_subscription(
    session: Session,
    owner_key_id: str,
    url: str,
    now: datetime,
    *,
    filters: AlertQuery | dict[str, Any] | None = None,
    event_types: Any = None,
) -> dict[str, Any]:
    """A new active subscription; the returned dict holds its signing ``secret``."""
    owner = session.get(ApiKeyRow, owner_key_id) if isinstance(owner_key_id, str) else None
    if owner is None:
        raise InvalidInputError(f"no API key with id {owner_key_id!r} to own the subscription")
    row = WebhookSubscriptionRow(
        id="sub_" + uuid.uuid4().hex,
        owner_key_id=owner_key_id,
        url=_check_url(url),
        secret=new_secret(),
        filters=filters_document(filters),
        event_types=_check_event_types(event_types),
        active=True,
        created_at=now,
    )
    session.add(row)
    return {**subscription_dict(row), "secret": row.secret}


def list_subscriptions(session: Session, owner_key_id: str | None) -> list[dict[str, Any]]:
    """The owner's subscriptions (every one when ``owner_key_id`` is None), without secrets."""
    stmt = select(WebhookSubscriptionRow).order_by(WebhookSubscriptionRow.created_at, WebhookSubscriptionRow.id)
    if owner_key_id is not None:
        stmt = stmt.where(WebhookSubscriptionRow.owner_key_id == owner_key_id)
    return [subscription_dict(row) for row in session.scalars(stmt)]


def delete_subscription(session: Session, subscription_id: str, owner_key_id: str | None) -> None:
    """Delete a subscription and its delivery log; another owner's id is "not found", not "forbidden"."""
    row = session.get(WebhookSubscriptionRow, subscription_id) if isinstance(subscription_id, str) else None
    if row is None or (owner_key_id is not None and row.owner_key_id != owner_key_id):
        raise SubscriptionNotFoundError(f"no webhook subscription {subscription_id!r}")
    session.delete(row)


def deliveries(session: Session, subscription_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The subscription's delivery log, newest first."""
    stmt = (
        select(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.subscription_id == subscription_id)
        .order_by(WebhookDeliveryRow.created_at.desc(), WebhookDeliveryRow.id.desc())
        .limit(limit)
    )
    return [delivery_dict(row) for row in session.scalars(stmt)]


def subscription_dict(row: WebhookSubscriptionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner_key_id": row.owner_key_id,
        "url": row.url,
        "filters": row.filters,
        "event_types": row.event_types,
        "active": row.active,
        "created_at": row.created_at,
    }


def delivery_dict(row: WebhookDeliveryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "subscription_id": row.subscription_id,
        "event_type": row.event_type,
        "alert_id": row.alert_id,
        "status": row.status.value,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "last_error": row.last_error,
        "response_code": row.response_code,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "delivered_at": row.delivered_at,
        "payload": row.payload,
    }


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# --- filters ---------------------------------------------------------------------------


def filters_document(filters: AlertQuery | dict[str, Any] | None) -> dict[str, Any]:
    """Filters as stored JSON (validated through :class:`AlertQuery`; only :data:`FILTER_FIELDS`)."""
    query = filters if isinstance(filters, AlertQuery) else filters_query(filters)
    doc: dict[str, Any] = {}
    for name in FILTER_FIELDS:
        value = getattr(query, name)
        if value is None:
            continue
        doc[name] = sorted(value) if isinstance(value, frozenset) else json_ready(value, name)
    return doc


def filters_query(doc: dict[str, Any] | None) -> AlertQuery:
    """The :class:`AlertQuery` a stored (or requested) filter document means."""
    if doc is not None and not isinstance(doc, dict):
        raise InvalidInputError(f"filters must be an object of {', '.join(FILTER_FIELDS)}; got {doc!r}")
    doc = dict(doc or {})
    unknown = sorted(set(doc) - set(FILTER_FIELDS))
    if unknown:
        raise InvalidInputError(f"filters: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FILTER_FIELDS)}")
    values: dict[str, Any] = {}
    for name, value in doc.items():
        if value is None:
            continue
        if name.startswith("first_detected"):
            try:
                value = date.fromisoformat(value) if isinstance(value, str) else value
            except ValueError:
                raise InvalidInputError(f"filters: {name} must be a date YYYY-MM-DD; got {value!r}") from None
        elif name == "bbox":
            value = tuple(value) if isinstance(value, list) else value
        elif isinstance(value, (list, tuple, set, frozenset)):
            value = frozenset(value)
        values[name] = value
    return AlertQuery(**values)


def matches(query: AlertQuery, alert: Alert, scope: frozenset[str] | None) -> bool:
    """Whether ``alert`` (with its current status) passes ``query``'s filters and the owner's province scope."""
    province = alert.context.province
    if scope is not None and province not in scope:
        return False
    if query.bbox is not None and not alert.geometry.intersects(box(*query.bbox)):
        return False
    if query.first_detected_from is not None and alert.first_detected < query.first_detected_from:
        return False
    if query.first_detected_to is not None and alert.first_detected > query.first_detected_to:
        return False
    for wanted, value in (
        (query.statuses, alert.status),
        (query.confidences, alert.confidence),
        (query.priorities, alert.priority),
        (query.legalities, alert.legality),
    ):
        if wanted is not None and value.value not in wanted:
            return False
    return query.provinces is None or province in query.provinces


# --- the outbox ------------------------------------------------------------------------


def enqueue(session: Session, events: list[Event], now: datetime) -> int:
    """Add a pending delivery for every (event, matching active subscription) pair; return how many.

    Runs in the caller's transaction: the deliveries commit with the alert change or not at all.
    """
    if not events:
        return 0
    targets = _active_targets(session, now)
    added = 0
    for event in events:
        if not targets:
            break
        alert = row_to_alert(event.row)
        for subscription, query, scope in targets:
            if subscription.event_types is not None and event.type not in subscription.event_types:
                continue
            if not matches(query, alert, scope):
                continue
            msg_id = "msg_" + uuid.uuid4().hex
            session.add(
                WebhookDeliveryRow(
                    id=msg_id,
                    subscription_id=subscription.id,
                    event_type=event.type,
                    alert_id=alert.id,
                    payload=_payload(event, now),
                    status=DeliveryStatus.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            added += 1
    return added


def claim_due(session: Session, now: datetime, policy: RetryPolicy, limit: int) -> list[ClaimedDelivery]:
    """Take the lease on up to ``limit`` due pending deliveries, oldest first; count their attempt."""
    stmt = (
        select(WebhookDeliveryRow, WebhookSubscriptionRow)
        .join(WebhookSubscriptionRow, WebhookDeliveryRow.subscription_id == WebhookSubscriptionRow.id)
        .where(WebhookDeliveryRow.status == DeliveryStatus.PENDING, WebhookDeliveryRow.next_attempt_at <= now)
        .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=WebhookDeliveryRow)
    claimed = []
    for delivery, subscription in session.execute(stmt):
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=policy.lease_s)
        delivery.updated_at = now
        claimed.append(ClaimedDelivery(delivery.id, subscription.url, subscription.secret, delivery.event_type,
                                       delivery.payload, delivery.attempts))
    return claimed


def record_outcome(
    session: Session,
    delivery_id: str,
    now: datetime,
    policy: RetryPolicy,
    *,
    response_code: int | None,
    error: str | None,
) -> str | None:
    """Record one attempt's result: delivered, retried later, or failed for good. Return the new status."""
    row = session.get(WebhookDeliveryRow, delivery_id, with_for_update=True)
    if row is None:  # its subscription was deleted meanwhile
        return None
    row.response_code = response_code
    row.updated_at = now
    if error is None:
        row.status = DeliveryStatus.DELIVERED
        row.delivered_at = now
        row.last_error = None
    else:
        row.last_error = error[:ERROR_LENGTH]
        if row.attempts >= policy.max_attempts:
            row.status = DeliveryStatus.FAILED
        else:
            row.next_attempt_at = now + policy.delay(row.attempts)
    return row.status.value


# --- internals -------------------------------------------------------------------------


def _active_targets(
    session: Session, now: datetime
) -> list[tuple[WebhookSubscriptionRow, AlertQuery, frozenset[str] | None]]:
    """Active subscriptions whose owner key still works, with their parsed filters and the key's scope."""
    stmt = (
        select(WebhookSubscriptionRow, ApiKeyRow)
        .join(ApiKeyRow, WebhookSubscriptionRow.owner_key_id == ApiKeyRow.id)
        .where(WebhookSubscriptionRow.active.is_(True), ApiKeyRow.revoked_at.is_(None))
    )
    targets = []
    with session.no_autoflush:
        for subscription, key in session.execute(stmt):
            if key.expires_at is not None and key.expires_at <= now:
                continue
            scope = None if key.provinces is None else frozenset(key.provinces)
            targets.append((subscription, filters_query(subscription.filters), scope))
    return targets


def _payload(event: Event, now: datetime) -> dict[str, Any]:
    """The Standard Webhooks body: type, timestamp, data (the alert as a GeoJSON Feature and what changed).

    The feature is the row's stored text (rendered by the store before events
    are enqueued), so a push carries exactly what the APIs serve.
    """
    feature = orjson.loads(event.row.feature)
    return {
        "type": event.type,
        "timestamp": now.isoformat(),
        "data": {"alert": feature, "changes": json_ready(event.changes, "changes")},
    }


def _check_url(url: object) -> str:
    if not isinstance(url, str) or len(url) > URL_LENGTH:
        raise InvalidInputError(f"url must be an http(s) URL of at most {URL_LENGTH} characters")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"url must be an http:// or https:// URL with a host; got {url!r}")
    return url.strip()


def _check_event_types(event_types: object) -> list[str] | None:
    if event_types is None:
        return None
    items = [event_types] if isinstance(event_types, str) else event_types
    try:
        wanted = sorted(set(items))  # type: ignore[call-overload]
    except TypeError:
        raise InvalidInputError(f"event_types must be a list of {', '.join(EVENT_TYPES)}") from None
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown or not wanted:
        raise InvalidInputError(f"event_types must be some of {', '.join(EVENT_TYPES)}; got {event_types!r}")
    return wanted


__all__ = [
    "ClaimedDelivery",
    "EVENT_TYPES",
    "Event",
    "RetryPolicy",
    "SubscriptionNotFoundError",
    "claim_due",
    "create_subscription",
    "delete_subscription",
    "deliveries",
    "enqueue",
    "filters_document",
    "filters_query",
    "list_subscriptions",
    "matches",
    "record_outcome",
]
