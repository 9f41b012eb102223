"""``geo-monitor serve``: the web application under waitress, a production WSGI server, plus an embedded job worker.

Registered on the main group by :mod:`geo_monitor.cli`. The app is built
here from settings (the command line is the one place that wires the
library to ``web``). Waitress is pure Python and runs the same on Linux,
macOS and Windows; for several processes on one host use gunicorn with
``web.wsgi:app`` (``--worker-class gthread``; see docs/performance.md for the
measured settings) and a shared ``rate_limit_storage_uri`` (Redis).
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
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
@click.option("--job-worker/--no-job-worker", default=True, show_default=True,
              help="Also run reprocessing jobs in this process (off when separate 'geo-monitor worker's run them).")
@click.option("--demo-user", metavar="NAME",
              help="Make NAME an agent with a NEW random password, printed once (for `make demo`; not for production).")
def serve(host: str, port: int, threads: int, job_worker: bool, demo_user: str | None) -> None:
    """Serve the map viewer (/), the alerts and jobs API (/api/v1), OGC API - Features (/ogc), the API docs
    (/api/docs) and the analyst's jobs page (/jobs); by default also run queued jobs (an embedded worker)."""
    import waitress

    from web import create_app

    settings = _settings()
    app = create_app(settings)
    store = app.extensions["geo_monitor"].store
    embedded = EmbeddedWorker.start(settings) if job_worker else None
    # SIGTERM ends the server like Ctrl+C, so the embedded worker can release its job on the way out.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    log.info("serving on http://%s:%d (store %s)", host, port, settings.public_view()["database_url"])
    click.echo(f"geo-monitor: map viewer at http://{shown_host}:{port}/ ; API docs at /api/docs (Ctrl+C stops)",
               err=True)
    if demo_user:
        password = _demo_login(store, demo_user)
        click.echo(f"geo-monitor: log in as {demo_user.strip().lower()} with password {password} "
                   "(a new one each start)", err=True)
    try:
        waitress.serve(app, host=host, port=port, threads=threads, ident="geo-monitor",
                       max_request_body_size=max(WIRE_BODY_LIMIT, settings.max_request_bytes))
    finally:
        if embedded is not None:
            embedded.stop()


def _demo_login(store: Any, username: str) -> str:
    """An agent login for the demo: created if missing, else given a fresh password (never a fixed one)."""
    password = secrets.token_urlsafe(12)
    try:
        store.create_user(username, password, "agent")
    except InvalidInputError:  # it exists (an earlier demo): a new password instead
        store.set_password(username, password)
    return password


def _exit_on_signal(*_args: Any) -> None:
    raise SystemExit(0)


class EmbeddedWorker:
    """A job worker in a thread of the server process: the one-command demo needs nothing else.

    Jobs still run on Dask (a LocalCluster started at the first job); the
    thread only orchestrates. Stopping releases a running job for the next start.
    """

    def __init__(self, worker: Any, runner: Any, store: Any) -> None:
        self.worker, self.runner, self.store = worker, runner, store
        self.thread = threading.Thread(target=self._run, name="geo-monitor-job-worker", daemon=True)

    @classmethod
    def start(cls, settings: Any) -> EmbeddedWorker:
        from geo_monitor.jobs.runners import JobRunners
        from geo_monitor.jobs.worker import Worker, default_worker_id
        from geo_monitor.store import AlertStore, JobPolicy, JobQueue

        store = AlertStore.from_settings(settings)
        store.migrate()
        runner = JobRunners(settings, store)
        queue = JobQueue.from_store(store, JobPolicy.from_settings(settings))
        worker = Worker(queue, runner.by_kind(), worker_id=f"serve@{default_worker_id()}", poll_s=settings.job_poll_s)
        embedded = cls(worker, runner, store)
        embedded.thread.start()
        return embedded

    def _run(self) -> None:
        try:
            self.worker.run()
        finally:
            self.runner.close()

    def stop(self, timeout_s: float = 120) -> None:
        self.worker.stop()
        self.thread.join(timeout=timeout_s)
        self.store.dispose()
