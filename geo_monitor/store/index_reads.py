"""Thin reads on the API's hot path: raw DB-API statements through the store engine's own pool.

Two reads run on every partner API request, so each is one plain
statement on a pooled driver connection, with no ORM session, no compiled
SQLAlchemy statement and no result-processing layers (~20-50 µs each on
SQLite instead of the ~1 ms a session costs):

- :func:`new_index_rows`: alerts stamped after the newest ``updated_at`` the
  in-memory index holds (``alert_index``), with their feature texts, in
  polling order (on most requests: none);
- :func:`api_key_record`: one API key's row by primary key (no cache, so a
  revocation from any process counts on the very next request).

Both back-ends: SQLite (``?`` parameters; timestamps and dates stored as
ISO text by SQLAlchemy; geometry as GeoJSON text) and PostgreSQL through
psycopg (``%s``; native timestamps; geometry read as WKB). The connection is
used in autocommit mode, so each statement reads the latest committed state
and nothing is left open when it goes back to the pool.

On PostgreSQL these reads have a pool of their own, without the store
engine's pre-ping: a ping is a round trip before every statement, and here
there are two statements per request. A connection the server has closed
(restart, idle timeout) is found by the read itself, replaced, and the read
tried once more.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, TypeVar

import shapely
from sqlalchemy import Engine

from geo_monitor.store.alert_index import IndexRow
from geo_monitor.store.engine import make_engine

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Rows converted per fetch while loading the index (bounds the memory of a first load).
LOAD_BATCH = 5000
#: ``updated_at`` as whole µs since 1970 UTC, computed exactly by the database (no float on the way):
#: SQLite holds SQLAlchemy's "YYYY-MM-DD HH:MM:SS.ffffff" text (naive UTC), PostgreSQL a timestamptz.
_STAMP_US = {
    # strftime reads fractions of a second to the millisecond, rounded (.9996 s would carry into the next
    # second), so the whole seconds are read from the text without its fraction.
    "sqlite": "(CAST(strftime('%s', substr(updated_at, 1, 19)) AS INTEGER) * 1000000"
              " + CAST(substr(updated_at, 21) AS INTEGER))",
    # EXTRACT gives an exact numeric since PostgreSQL 14 (a double before: exact to ~0.1 µs in this century).
    "postgresql": "CAST(EXTRACT(EPOCH FROM updated_at) * 1000000 AS BIGINT)",
}


@dataclass(frozen=True)
class KeyRecord:
    """What verifying an API key needs from its row."""

    secret_hash: str
    name: str
    role: str
    provinces: list[str] | None
    expires_at: datetime | None
    revoked_at: datetime | None


class RawReader:
    """Plain statements on one back-end ("sqlite" or "postgresql"), on the store's database."""

    def __init__(self, engine: Engine) -> None:
        self._postgres = engine.dialect.name == "postgresql"
        # SQLite: the store's own pool (no ping there). PostgreSQL: a pool of this reader's, in autocommit.
        self._engine = make_engine(engine.url, pre_ping=False) if self._postgres else engine
        self._mark = "%s" if self._postgres else "?"
        self._stamp = _STAMP_US["postgresql" if self._postgres else "sqlite"]

    def dispose(self) -> None:
        """Close this reader's own pooled connections (PostgreSQL; SQLite shares the store's pool)."""
        if self._postgres:
            self._engine.dispose()

    def read(self, work: Callable[[Any], T]) -> T:
        """``work(driver connection)`` on a pooled connection in autocommit mode (each statement sees the
        latest commits); once more on a fresh connection when the pooled one turns out dead."""
        dialect = self._engine.dialect
        for attempt in (1, 2):
            proxy = self._engine.raw_connection()
            driver = proxy.driver_connection
            try:
                if self._postgres:
                    driver.autocommit = True  # this pool's connections serve only these reads
                return work(driver)
            except dialect.loaded_dbapi.Error as exc:
                if attempt == 2 or not dialect.is_disconnect(exc, driver, None):
                    raise
                log.warning("hot-path database connection was closed by the server; retrying on a new one")
                proxy.invalidate()
            finally:
                proxy.close()
        raise AssertionError("unreachable")  # the loop returns or raises

    def new_index_rows(self, connection: Any, since: Any) -> Iterator[tuple[list[IndexRow], Any]]:
        """Alerts with ``updated_at`` after ``since`` (None: all), in polling order, a batch at a time.

        Each batch comes with the newest stamp in it, in the driver's own form,
        to pass back as ``since`` next time without a conversion that could
        round it. Batches bound the memory a first load of every alert needs.
        """
        geometry = "ST_AsBinary(geometry)" if self._postgres else "geometry"
        where = "" if since is None else f" WHERE updated_at > {self._mark}"
        sql = (f"SELECT id, {self._stamp}, minx, miny, maxx, maxy, first_detected, status, confidence, priority, "
               f"legality, province, {geometry}, updated_at, feature FROM alerts{where} ORDER BY updated_at, id")
        cursor = connection.cursor()
        try:
            cursor.execute(sql, () if since is None else (since,))
            while rows := cursor.fetchmany(LOAD_BATCH):
                yield self._index_rows(rows), rows[-1][13]
        finally:
            cursor.close()

    def api_key_record(self, key_id: str) -> KeyRecord | None:
        """One API key's row by its id (primary key), or None."""
        sql = ("SELECT secret_hash, name, role, provinces, expires_at, revoked_at FROM api_keys "
               f"WHERE id = {self._mark}")

        def fetch(connection: Any) -> Any:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, (key_id,))
                return cursor.fetchone()
            finally:
                cursor.close()

        row = self.read(fetch)
        if row is None:
            return None
        secret_hash, name, role, provinces, expires_at, revoked_at = row
        if isinstance(provinces, str):  # SQLite keeps JSON as text; psycopg decodes JSONB itself
            provinces = json.loads(provinces)
        return KeyRecord(secret_hash, name, role, provinces, self._moment(expires_at), self._moment(revoked_at))

    # --- conversions -------------------------------------------------------------

    def _index_rows(self, rows: list[tuple[Any, ...]]) -> list[IndexRow]:
        # The index keeps WKB (~600 bytes an alert) rather than GEOS objects (~2.3 kB): see alert_index.
        if self._postgres:
            geometries = [bytes(row[12]) for row in rows]
        else:
            geometries = shapely.to_wkb(shapely.from_geojson([row[12] for row in rows])).tolist()
        return [
            IndexRow(alert_id, stamp, minx, miny, maxx, maxy, _day(first), status, confidence,
                     priority, legality, province, geometry, feature.encode())
            for (alert_id, stamp, minx, miny, maxx, maxy, first, status, confidence, priority, legality, province,
                 _, _, feature), geometry in zip(rows, geometries)
        ]

    @staticmethod
    def _moment(value: Any) -> datetime | None:
        """A stored timestamp as an aware UTC datetime (SQLite: SQLAlchemy's ISO text, naive UTC)."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _day(value: date | str) -> int:
    return (date.fromisoformat(value) if isinstance(value, str) else value).toordinal()
