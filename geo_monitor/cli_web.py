"""``geo-monitor serve``: the web application under waitress, a production WSGI server.

Registered on the main group by :mod:`geo_monitor.cli`. The app is built
here from settings (the command line is the one place that wires the
library to ``web``). Waitress is pure Python and runs the same on Linux,
macOS and Windows; for several processes on one host use gunicorn with
``web.wsgi:app`` (``--worker-class gthread``; see docs/performance.md for the
measured settings) and a shared ``rate_limit_storage_uri`` (Redis).
"""

from __future__ import annotations

import logging

import click

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
def serve(host: str, port: int, threads: int) -> None:
    """Serve the alerts API (/api/v1), OGC API - Features (/ogc) and the API docs (/api/docs)."""
    import waitress

    from web import create_app

    settings = _settings()
    app = create_app(settings)
    log.info("serving on http://%s:%d (store %s)", host, port, settings.public_view()["database_url"])
    click.echo(f"geo-monitor: http://{host}:{port}/api/docs (Ctrl+C stops)", err=True)
    waitress.serve(app, host=host, port=port, threads=threads, ident="geo-monitor",
                   max_request_body_size=max(WIRE_BODY_LIMIT, settings.max_request_bytes))
