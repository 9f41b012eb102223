"""Webhook subscriptions at ``/api/v1/webhooks``: partners (and admins) manage where alerts are pushed.

A subscription belongs to the API key that made it; a partner sees and
deletes only its own (another key's id is "not found"), an admin sees all.
Filters are written as in ``GET /api/v1/alerts`` (``bbox``, ``datetime``,
``status``, ...); the store also applies the owner key's province scope, so a
push never carries what a poll could not. The signing secret is answered
once, at creation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, request

from geo_monitor.errors import InvalidInputError
from geo_monitor.store.auth import Role
from geo_monitor.store.outbox import EVENT_TYPES
from geo_monitor.webhook_targets import DestinationPolicy, check_destination
from web.auth import WEBHOOK_ROLES, current_principal, require
from web.features import iso
from web.params import check_known
from web.problems import Problem
from web.queries import SUBSCRIPTION_FILTERS, filters_query
from web.responses import context, json_response, request_args

webhooks = Blueprint("webhooks", __name__)

BODY_FIELDS = frozenset({"url", "filters", "event_types"})


def _jsonable(subscription: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in subscription.items()}


def _owner() -> str | None:
    """Whose subscriptions the caller manages: its own key's, or everyone's for an admin."""
    principal = current_principal()
    assert principal is not None  # require() lets no anonymous caller through
    if principal.role is Role.ADMIN:
        return None
    return principal.id


@webhooks.post("/webhooks")
@require(WEBHOOK_ROLES)
def create_subscription() -> Response:
    check_known(request_args(), ())
    principal = current_principal()
    assert principal is not None
    if principal.kind != "api_key":
        raise Problem(403, "a subscription belongs to an API key: create it with X-API-Key, not a web session")
    body = _body()
    filters = body.get("filters") or {}
    query = filters_query({name: [value] for name, value in filters.items()})
    ctx = context()
    try:
        # SSRF guard: no subscription to a loopback/private/link-local/... address (deliveries check again).
        check_destination(body["url"], DestinationPolicy.from_entries(ctx.settings.webhook_allowed_hosts))
        created = ctx.store.create_subscription(
            principal.id, body["url"], filters=query, event_types=body.get("event_types")
        )
    except InvalidInputError as exc:
        raise Problem(422, str(exc)) from None
    response = json_response(_jsonable(created), status=201)
    response.headers["Location"] = f"{request.base_url}/{created['id']}"
    response.headers["Cache-Control"] = "no-store"  # the secret is in it
    return response


def _body() -> dict[str, Any]:
    if not request.is_json:
        raise Problem(415, "send the subscription as JSON (Content-Type: application/json)")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, 'the body must be a JSON object such as {"url": "https://example.org/hook"}')
    unknown = sorted(set(body) - BODY_FIELDS)
    if unknown:
        raise Problem(422, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(BODY_FIELDS))}")
    if not isinstance(body.get("url"), str):
        raise Problem(422, "url is required: the https:// address deliveries are POSTed to")
    filters = body.get("filters")
    if filters is not None:
        if not isinstance(filters, dict) or not all(isinstance(v, str) for v in filters.values()):
            raise Problem(422, 'filters must be an object of strings, e.g. {"priority": "critical,high"}')
        unknown = sorted(set(filters) - set(SUBSCRIPTION_FILTERS))
        if unknown:
            raise Problem(422, f"unknown filter(s) {', '.join(unknown)}; allowed: {', '.join(SUBSCRIPTION_FILTERS)}")
    events = body.get("event_types")
    if events is not None and (not isinstance(events, list) or not set(events) <= set(EVENT_TYPES) or not events):
        raise Problem(422, f"event_types must be a non-empty list of {', '.join(EVENT_TYPES)}")
    return body


@webhooks.get("/webhooks")
@require(WEBHOOK_ROLES)
def list_subscriptions() -> Response:
    check_known(request_args(), ())
    items = [_jsonable(s) for s in context().store.list_subscriptions(_owner())]
    return json_response({"subscriptions": items})


@webhooks.delete("/webhooks/<subscription_id>")
@require(WEBHOOK_ROLES)
def delete_subscription(subscription_id: str) -> Response:
    check_known(request_args(), ())
    # Another owner's subscription is "not found" too: SubscriptionNotFoundError, a 404 (web.problems).
    context().store.delete_subscription(subscription_id[:200], _owner())
    return Response(status=204)


@webhooks.get("/webhooks/<subscription_id>/deliveries")
@require(WEBHOOK_ROLES)
def list_deliveries(subscription_id: str) -> Response:
    """The delivery log (newest first), so a partner can see why pushes fail."""
    check_known(request_args(), ())
    owned = {s["id"] for s in context().store.list_subscriptions(_owner())}
    if subscription_id not in owned:
        raise Problem(404, f"no webhook subscription {subscription_id[:200]!r}")
    log = [_jsonable(d) for d in context().store.deliveries(subscription_id)]
    return json_response({"deliveries": log})
