"""The WSGI entry point for process-based servers: ``gunicorn 'web.wsgi:app'``.

Each worker process imports this module and builds its own app (and its own
store engine and connection pool) from the settings in its environment
(``GEO_MONITOR_*``). Do not use gunicorn's ``--preload``: it would build the
engine in the master and share its connections across the fork.

Each worker loads its in-memory alert index (``geo_monitor.store.alert_index``)
here, before it takes requests, rather than on its first partner request
(seconds for 100,000 alerts).

Several workers keep separate in-process rate-limit counters unless
``GEO_MONITOR_RATE_LIMIT_STORAGE_URI`` names a shared store (Redis).
"""

from __future__ import annotations

from web import create_app

app = create_app()
app.extensions["geo_monitor"].store.index_snapshot()
