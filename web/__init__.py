"""The Flask application: alerts and jobs API (``/api/v1``), OGC API - Features (``/ogc``), docs, login, the analyst's jobs page.

``create_app`` is the only way in: no module-level app or state, so tests and
several workers each build their own from settings. The library
(``geo_monitor``) never imports Flask; this package builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, Response

from geo_monitor.secret_key import resolve_secret_key
from geo_monitor.settings import Settings, load_settings
from geo_monitor.store import AlertStore

__all__ = ["WebContext", "create_app"]

#: Headers on every response: no MIME sniffing, no framing, no referrer leaks.
SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
#: What every response gets unless its route set the header itself.
DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (*SECURITY_HEADERS.items(), ("Cache-Control", "private, no-cache"))
SESSION_LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class WebContext:
    """What the routes need, kept in ``app.extensions["geo_monitor"]``."""

    settings: Settings
    store: AlertStore
    secret_key: bytes


def create_app(settings: Settings | None = None, store: AlertStore | None = None) -> Flask:
    """A configured app; the store defaults to the one ``settings`` name (migrated to the current schema)."""
    from web.api import api
    from web.analyst import analyst
    from web.docs import docs
    from web.jobs import jobs
    from web.imagery import imagery
    from web.limits import init_rate_limits
    from web.login import login
    from web.ogc import ogc
    from web.problems import register_problem_handlers
    from web.sessions import CookieSessions
    from web.i18n import init_i18n  # issue 5: the map viewer
    from web.viewer import init_viewer  # issue 5: the map viewer
    from web.webhooks import webhooks

    settings = settings or load_settings()
    if store is None:
        store = AlertStore.from_settings(settings)
        store.migrate()
    key = resolve_secret_key(settings)

    app = Flask(__name__, static_folder=None)  # web/static is served by the viewer blueprint, with its CSP
    app.config.update(
        SECRET_KEY=key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        SESSION_COOKIE_NAME="geo_monitor_session",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.session_interface = CookieSessions()
    app.extensions["geo_monitor"] = WebContext(settings=settings, store=store, secret_key=key)

    register_problem_handlers(app)
    app.register_blueprint(api, url_prefix="/api/v1")
    app.register_blueprint(webhooks, url_prefix="/api/v1")
    app.register_blueprint(jobs, url_prefix="/api/v1")
    app.register_blueprint(analyst)
    app.register_blueprint(ogc, url_prefix="/ogc")
    app.register_blueprint(docs)
    app.register_blueprint(login)
    init_i18n(app)  # issue 5: the map viewer's languages
    init_viewer(app)  # issue 5: the map viewer at /
    app.register_blueprint(imagery)
    init_rate_limits(app, settings)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        # One pass over the headers already set (each setdefault would scan them all again).
        present = {name.lower() for name in response.headers.keys()}
        response.headers.extend([(name, value) for name, value in DEFAULT_HEADERS if name.lower() not in present])
        return response

    return app
