"""The WSGI entry point for process-based servers: ``gunicorn 'web.wsgi:app'``.

Each process that imports this module builds its app (and its store engine
and connection pool) from the settings in its environment (``GEO_MONITOR_*``)
and loads the in-memory alert index (``geo_monitor.store.alert_index``) and
its compiled bbox test (``bbox_kernel``) before it takes requests, rather
than on its first partner request (seconds for 100,000 alerts).

With gunicorn's ``--preload`` this happens once, in the master, before the
workers fork: every worker starts with the index loaded, at the same moment,
and shares its pages with the master until it touches them. The connections
the load used are closed here, before any fork, because a database
connection must never be shared by two processes; each worker opens its own
on first use. Without ``--preload`` each worker does all this itself.

The objects the load made (~200,000 the garbage collector tracks) are then
frozen (``gc.freeze``): they live as long as the process, and a full
collection that walked them held the worker for ~150 ms, every request in
it waiting. Frozen, collections walk only what requests leave behind; with
``--preload`` they also stop touching (and so copying) the shared pages.

Several workers keep separate in-process rate-limit counters unless
``GEO_MONITOR_RATE_LIMIT_STORAGE_URI`` names a shared store (Redis).
"""

from __future__ import annotations

import gc

from geo_monitor.store import bbox_kernel
from web import create_app

app = create_app()
_store = app.extensions["geo_monitor"].store
if _store.index_snapshot() is not None:  # None: the index is switched off (GEO_MONITOR_ALERT_INDEX=false)
    bbox_kernel.warm_up()  # compiled (or read from numba's cache) now, not on the first partner's page
_store.dispose()  # the pools stay usable: they open new connections on demand, in whichever process
gc.collect()
gc.freeze()  # see the module docstring
