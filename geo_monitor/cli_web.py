"""``geo-monitor serve``: the web application under waitress, a production WSGI server.

Registered on the main group by :mod:`geo_monitor.cli`. The app is built
here from settings (the command line is the one place that wires the
library to ``web``). Waitress is pure Python and runs the same on Linux,
macOS and Windows; for several processes on one host use gunicorn with
``web:create_app()`` and a shared ``rate_limit_storage_uri`` (Redis).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import click

from geo_monitor.errors import InvalidInputError
from geo_monitor.cli import _settings, main

log = logging.getLogger(__name__)

#: Waitress worker threads: requests mostly wait on the database, so a few per core.
DEFAULT_THREADS = 8
#: Bodies waitress itself accepts (spooled to disk past 512 KiB). Larger than the app's own
#: limit on purpose: a body between the two reaches Flask and gets a problem+json 413;
#: only absurd ones meet waitress's plain-text 413.
WIRE_BODY_LIMIT = 128 * 1024 * 1024


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--threads", default=DEFAULT_THREADS, show_default=True, type=click.IntRange(1, 256),
              help="Worker threads.")
@click.option("--demo-user", metavar="NAME",
              help="Make NAME an agent with a NEW random password, printed once (for `make demo`; not for production).")
def serve(host: str, port: int, threads: int, demo_user: str | None) -> None:
    """Serve the map viewer (/), the alerts API (/api/v1), OGC API - Features (/ogc) and the API docs (/api/docs)."""
    import waitress

    from web import create_app

    settings = _settings()
    app = create_app(settings)
    store = app.extensions["geo_monitor"].store
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    log.info("serving on http://%s:%d (store %s)", host, port, settings.public_view()["database_url"])
    click.echo(f"geo-monitor: map viewer at http://{shown_host}:{port}/ ; API docs at /api/docs (Ctrl+C stops)",
               err=True)
    if demo_user:
        password = _demo_login(store, demo_user)
        click.echo(f"geo-monitor: log in as {demo_user.strip().lower()} with password {password} "
                   "(a new one each start)", err=True)
    waitress.serve(app, host=host, port=port, threads=threads, ident="geo-monitor",
                   max_request_body_size=max(WIRE_BODY_LIMIT, settings.max_request_bytes))


def _demo_login(store: Any, username: str) -> str:
    """An agent login for the demo: created if missing, else given a fresh password (never a fixed one)."""
    password = secrets.token_urlsafe(12)
    try:
        store.create_user(username, password, "agent")
    except InvalidInputError:  # it exists (an earlier demo): a new password instead
        store.set_password(username, password)
    return password
