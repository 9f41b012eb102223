"""Rate limits per API key, session user or anonymous address (flask-limiter).

Counters live in process memory by default (one worker; ``web.rate_storage``,
which needs no background thread) or in Redis when ``rate_limit_storage_uri``
names it, so several workers share them. A caller over the limit gets a 429
problem with ``Retry-After``.
"""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter

from geo_monitor.settings import Settings
from web.auth import rate_limit_key
from web.rate_storage import SCHEME as IN_PROCESS_SCHEME

#: Login attempts per address: slows password guessing whatever the general limit is.
LOGIN_LIMIT = "10/minute"
#: Views under ``tile_rate_limit`` (web/imagery.py).
TILE_VIEWS = ("imagery.scene_tile", "imagery.change_tile", "imagery.chip_before", "imagery.chip_after")


def init_rate_limits(app: Flask, settings: Settings) -> Limiter:
    """Attach the limiter; call after the blueprints are registered (the login view gets its own limit)."""
    limiter = Limiter(
        key_func=rate_limit_key,
        app=app,
        default_limits=[settings.rate_limit],
        storage_uri=_storage_uri(settings.rate_limit_storage_uri),
        headers_enabled=True,  # X-RateLimit-* and Retry-After, so clients can pace themselves
        strategy="moving-window",
        key_prefix="geo-monitor",
    )
    app.extensions["geo_monitor_limiter"] = limiter
    # A decorated limit is checked by the wrapper limiter.limit returns (the request hook skips views
    # marked for limiting), so the wrapper must replace the registered view.
    login_view = app.view_functions.get("login.login_post")
    if login_view is not None:
        app.view_functions["login.login_post"] = limiter.limit(
            LOGIN_LIMIT, key_func=lambda: f"login:{request.remote_addr}")(login_view)
    # A map view asks for dozens of tiles at once: they get their own, larger budget instead of the general one.
    for name in TILE_VIEWS:
        view = app.view_functions.get(name)
        if view is not None:
            app.view_functions[name] = limiter.limit(settings.tile_rate_limit)(view)
    return limiter


def _storage_uri(configured: str) -> str:
    """``memory://`` (the settings' word for "this process") means ``web.rate_storage``'s storage."""
    return f"{IN_PROCESS_SCHEME}://" if configured.startswith("memory://") else configured
