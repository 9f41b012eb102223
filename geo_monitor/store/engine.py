"""Engines for the alert store, with SQLite tuned for several processes on one host.

SQLite is the embedded default, and the web workers, the job runner and the
command line may all write the same file at once. Three settings make that
safe instead of a source of "database is locked":

- ``journal_mode=WAL``: readers never block the writer and the writer never
  blocks readers;
- ``busy_timeout``: a writer that finds the write lock taken waits for it
  (up to :data:`BUSY_TIMEOUT_MS`) instead of failing at once;
- ``BEGIN IMMEDIATE`` for write transactions: the write lock is taken at the
  start. A deferred transaction that first reads and later writes can fail
  with SQLITE_BUSY *without* waiting, whatever the busy timeout, when another
  process committed in between (its read snapshot is stale). Read-only
  transactions stay deferred so they never queue behind writers.

Connections also get ``gm_intersects_bbox(geojson, w, s, e, n)``, the exact
geometry/box test SQLite lacks (shapely), so bbox filters, counts and offsets
are answered in SQL on both back-ends (see ``query``).

Python's ``sqlite3`` normally issues BEGIN itself (and not before SELECTs);
it is switched off here so SQLAlchemy's ``begin`` event can issue the right
BEGIN. PostgreSQL connections turn off JIT and parallel query for their
session (see :func:`_tune_postgresql_connection`); the execution option that
asks for an immediate transaction is ignored there.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

#: How long a SQLite writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_MS = 5000

#: Bytes of a SQLite store memory-mapped for reading (an upper limit; address space, not memory).
SQLITE_MMAP_BYTES = 1 << 30
#: Name of the SQL function testing a GeoJSON geometry against a W, S, E, N box on SQLite.
SQLITE_INTERSECTS = "gm_intersects_bbox"

#: Execution option naming the SQLite BEGIN mode of a transaction ("DEFERRED" or "IMMEDIATE").
SQLITE_BEGIN = "geo_monitor_sqlite_begin"


def make_engine(url: str | URL, *, pre_ping: bool = True, **engine_options: Any) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout, foreign keys and explicit BEGINs.

    ``pre_ping``: a server database's pooled connection is tested (a round
    trip) before each use; the partner API's hot path turns it off and
    retries on a dead connection instead (``index_reads.RawReader``).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(parsed, pool_pre_ping=pre_ping, **engine_options)
        event.listen(engine, "connect", _tune_postgresql_connection)
        return engine
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=pre_ping, **engine_options)
    _ensure_parent_dir(parsed)
    engine = create_engine(parsed, **engine_options)
    event.listen(engine, "connect", _tune_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions take the write lock at BEGIN on SQLite."""
    return engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})


def _ensure_parent_dir(url: URL) -> None:
    """Create the folder of a SQLite file: the default store lives in a data_dir that may not exist yet."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("mode") == "memory":
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _tune_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let the begin event, not the driver, decide when and how a transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL briefly needs the lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe with WAL
        cursor.execute("PRAGMA foreign_keys = ON")
        # Read pages straight from the OS page cache instead of a read() call and a copy per page:
        # a bbox page looks up thousands of rows (measured ~25 % less CPU on 100,000 alerts).
        cursor.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
    finally:
        cursor.close()
    dbapi_connection.create_function(SQLITE_INTERSECTS, 5, _intersects_bbox, deterministic=True)


def _tune_postgresql_connection(dbapi_connection: Any, _record: Any) -> None:
    # The store asks many small queries at once (web workers). PostgreSQL's JIT compiles any
    # query its cost model finds large, and PostGIS functions cost a lot in that model: a
    # bbox count spent ~50 ms compiling to run in ~30. Parallel workers only add start-up
    # time when every core already serves a request. Both for this session only.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET jit = off")
        cursor.execute("SET max_parallel_workers_per_gather = 0")
    finally:
        cursor.close()
    dbapi_connection.commit()


def _intersects_bbox(geojson: str | None, west: float, south: float, east: float, north: float) -> int:
    """1 when the GeoJSON geometry intersects the box, else 0 (SQL has no booleans on SQLite)."""
    if geojson is None:
        return 0
    return int(shapely.intersects(_prepared_box(west, south, east, north), shapely.from_geojson(geojson)))


@lru_cache(maxsize=256)
def _prepared_box(west: float, south: float, east: float, north: float) -> BaseGeometry:
    """The query box, built and prepared once per query rather than once per row tested (~100 a page)."""
    polygon = shapely.box(west, south, east, north)
    shapely.prepare(polygon)
    return polygon


def _begin_sqlite_transaction(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
        raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
    connection.exec_driver_sql(f"BEGIN {mode}")
