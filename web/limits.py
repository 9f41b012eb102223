"""Rate limits per API key, session user or anonymous address (flask-limiter).

Counters live in process memory by default (one worker) or in Redis when
``rate_limit_storage_uri`` names it, so several workers share them. A caller
over the limit gets a 429 problem with ``Retry-After``.
"""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter

from geo_monitor.settings import Settings
from web.auth import rate_limit_key

#: Login attempts per address: slows password guessing whatever the general limit is.
LOGIN_LIMIT = "10/minute"


def init_rate_limits(app: Flask, settings: Settings) -> Limiter:
    """Attach the limiter; call after the blueprints are registered (the login view gets its own limit)."""
    limiter = Limiter(
        key_func=rate_limit_key,
        app=app,
        default_limits=[settings.rate_limit],
        storage_uri=settings.rate_limit_storage_uri,
        headers_enabled=True,  # X-RateLimit-* and Retry-After, so clients can pace themselves
        strategy="moving-window",
        key_prefix="geo-monitor",
    )
    app.extensions["geo_monitor_limiter"] = limiter
    # Limits are looked up by the view's name at request time, so a registered view can be limited here.
    login_view = app.view_functions.get("login.login_post")
    if login_view is not None:
        limiter.limit(LOGIN_LIMIT, key_func=lambda: f"login:{request.remote_addr}")(login_view)
    return limiter
