"""Who is calling: an ``X-API-Key`` header or a web session, and what their role allows.

Keys and passwords are checked by the store (which keeps only hashes). The
principal is resolved once per request and kept in ``flask.g``; the rate
limiter keys on it too. A session-authenticated request that changes
something must carry the session's CSRF token (``X-CSRF-Token`` header or
``csrf_token`` form field), because browsers send cookies on cross-site
requests; API-key requests need none (no ambient credential to abuse).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Collection
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request, session

from geo_monitor.store.auth import Principal, Role
from web.problems import Problem

F = TypeVar("F", bound=Callable[..., Any])

API_KEY_HEADER = "X-API-Key"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
#: Longest key string looked up: anything longer is not one of ours, and hashing it costs time.
MAX_KEY_LENGTH = 256
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: What each action needs. Reading is every role; partners never change anything but their webhooks.
READ_ROLES: frozenset[Role] = frozenset(Role)
WORKFLOW_ROLES: frozenset[Role] = frozenset({Role.AGENT, Role.ANALYST, Role.ADMIN})
WEBHOOK_ROLES: frozenset[Role] = frozenset({Role.PARTNER, Role.ADMIN})

_UNSET = object()


def current_principal() -> Principal | None:
    """The authenticated caller of this request, or None (anonymous). Resolved once per request."""
    cached = g.get("principal", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[no-any-return]
    principal = _resolve()
    g.principal = principal
    return principal


def _resolve() -> Principal | None:
    secret = request.headers.get(API_KEY_HEADER)
    if secret is not None:
        secret = secret.strip()
        principal = None
        if 0 < len(secret) <= MAX_KEY_LENGTH:
            principal = current_app.extensions["geo_monitor"].store.verify_api_key(secret)
        if principal is None:
            g.auth_error = "the API key is not valid (unknown, revoked or expired)"
        return principal
    stored = session.get("principal")
    if isinstance(stored, dict):
        try:
            return principal_from_session(stored)
        except (KeyError, ValueError, TypeError):
            session.clear()
    return None


def principal_to_session(principal: Principal) -> dict[str, Any]:
    return {
        "kind": principal.kind,
        "id": principal.id,
        "name": principal.name,
        "role": principal.role.value,
        "provinces": None if principal.provinces is None else sorted(principal.provinces),
    }


def principal_from_session(data: dict[str, Any]) -> Principal:
    provinces = data["provinces"]
    return Principal(
        kind=str(data["kind"]),
        id=str(data["id"]),
        name=str(data["name"]),
        role=Role(data["role"]),
        provinces=None if provinces is None else frozenset(provinces),
    )


def actor_name(principal: Principal | None) -> str:
    """How the history records who made a change: ``key:<id>`` or ``user:<name>``."""
    if principal is None:
        return "anonymous"
    prefix = "key" if principal.kind in ("api_key", "key") else principal.kind
    return f"{prefix}:{principal.name if prefix == 'user' else principal.id}"


def require(roles: Collection[Role], *, public: bool = False) -> Callable[[F], F]:
    """Route decorator: the caller needs one of ``roles``.

    ``public`` routes are open to anonymous callers when the deployment sets
    ``public_read`` (open data); writes never are. No credential -> 401, a
    bad key -> 401 even on public routes (a partner must learn its key broke),
    the wrong role -> 403.
    """
    allowed = frozenset(roles)

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            check_access(allowed, public=public)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def check_access(allowed: frozenset[Role], *, public: bool = False) -> Principal | None:
    principal = current_principal()
    error = g.get("auth_error")
    if error:
        raise Problem(401, error, headers={"WWW-Authenticate": f'APIKey header="{API_KEY_HEADER}"'})
    if principal is None:
        if public and current_app.extensions["geo_monitor"].settings.public_read:
            return None
        raise Problem(
            401,
            f"authentication required: send your key in the {API_KEY_HEADER} header, or log in",
            headers={"WWW-Authenticate": f'APIKey header="{API_KEY_HEADER}"'},
        )
    if principal.role not in allowed:
        raise Problem(403, f"the {principal.role.value} role may not do this")
    if principal.kind == "user" and request.method not in SAFE_METHODS:
        check_csrf()
    return principal


# --- CSRF for session users -----------------------------------------------------------


def csrf_token() -> str:
    """This session's CSRF token (created on first use)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    expected = session.get(CSRF_FIELD)
    given = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    if not isinstance(expected, str) or not given or not hmac.compare_digest(expected, given):
        raise Problem(403, f"missing or wrong CSRF token (send it as {CSRF_HEADER} or the {CSRF_FIELD} field)")


def rate_limit_key() -> str:
    """Counters are per key or user; anonymous and bad-key callers share their address's counter."""
    principal = current_principal()
    if principal is not None:
        return f"{principal.kind}:{principal.id}"
    return f"addr:{request.remote_addr or 'unknown'}"
