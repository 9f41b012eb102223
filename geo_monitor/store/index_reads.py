"""Thin reads on the API's hot path: raw DB-API statements through the store engine's own pool.

Three reads run on every partner API request, so each is one plain
statement on a pooled driver connection, with no ORM session, no compiled
SQLAlchemy statement and no result-processing layers (~20-50 µs each on
SQLite instead of the ~1 ms a session costs):

- :func:`new_index_rows`: alerts stamped after the newest ``updated_at`` the
  in-memory index holds (``alert_index``), in polling order;
- :func:`feature_texts`: a page's stored feature texts with their ``updated_at``
  (the index checks them against its snapshot);
- :func:`api_key_record`: one API key's row by primary key (no cache, so a
  revocation from any process counts on the very next request).

Both back-ends: SQLite (``?`` parameters; timestamps and dates stored as
ISO text by SQLAlchemy; geometry as GeoJSON text) and PostgreSQL through
psycopg (``%s``; native timestamps; geometry read as WKB). The connection is
used in autocommit mode, so each statement reads the latest committed state
and nothing is left open when it goes back to the pool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import shapely
from sqlalchemy import Engine

from geo_monitor.store.alert_index import IndexRow, to_us

#: Columns of an index row, in :class:`IndexRow`'s order (geometry last: its SQL differs by back-end).
_INDEX_COLUMNS = ("id, updated_at, minx, miny, maxx, maxy, first_detected, status, confidence, priority, "
                  "legality, province")


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
    """Plain statements on one back-end ("sqlite" or "postgresql"), on connections of ``engine``'s pool."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._mark = "%s" if self._postgres else "?"

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled driver connection in autocommit mode (every statement sees the latest commits)."""
        proxy = self._engine.raw_connection()
        driver = proxy.driver_connection
        try:
            if self._postgres:
                driver.autocommit = True  # no transaction to end: returning it to the pool costs nothing
            yield driver
        finally:
            if self._postgres:
                driver.autocommit = False  # as SQLAlchemy left it
            proxy.close()

    def new_index_rows(self, connection: Any, since: Any) -> tuple[list[IndexRow], Any]:
        """Alerts with ``updated_at`` after ``since`` (None: all), in polling order; and the newest stamp, raw.

        The stamp comes back in the driver's own form, to pass back as
        ``since`` next time without any conversion that could round it.
        """
        geometry = "ST_AsBinary(geometry)" if self._postgres else "geometry"
        where = "" if since is None else f" WHERE updated_at > {self._mark}"
        sql = f"SELECT {_INDEX_COLUMNS}, {geometry} FROM alerts{where} ORDER BY updated_at, id"
        cursor = connection.cursor()
        try:
            cursor.execute(sql, () if since is None else (since,))
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if not rows:
            return [], since
        return self._index_rows(rows), rows[-1][1]

    def feature_texts(self, connection: Any, ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """``id -> (updated_at in µs, stored feature text)`` for the alerts in ``ids`` that exist."""
        if not ids:
            return {}
        if self._postgres:
            sql, params = "SELECT id, updated_at, feature FROM alerts WHERE id = ANY(%s)", (list(ids),)
        else:
            sql, params = f"SELECT id, updated_at, feature FROM alerts WHERE id IN ({','.join('?' * len(ids))})", ids
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params)
            return {alert_id: (self._stamp_us(stamp), text) for alert_id, stamp, text in cursor.fetchall()}
        finally:
            cursor.close()

    def api_key_record(self, key_id: str) -> KeyRecord | None:
        """One API key's row by its id (primary key), or None."""
        sql = ("SELECT secret_hash, name, role, provinces, expires_at, revoked_at FROM api_keys "
               f"WHERE id = {self._mark}")
        with self.connection() as connection:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, (key_id,))
                row = cursor.fetchone()
            finally:
                cursor.close()
        if row is None:
            return None
        secret_hash, name, role, provinces, expires_at, revoked_at = row
        if isinstance(provinces, str):  # SQLite keeps JSON as text; psycopg decodes JSONB itself
            provinces = json.loads(provinces)
        return KeyRecord(secret_hash, name, role, provinces, self._moment(expires_at), self._moment(revoked_at))

    # --- conversions -------------------------------------------------------------

    def _index_rows(self, rows: list[tuple[Any, ...]]) -> list[IndexRow]:
        raw = [row[12] for row in rows]
        geometries = shapely.from_wkb([bytes(g) for g in raw]) if self._postgres else shapely.from_geojson(raw)
        return [
            IndexRow(alert_id, self._stamp_us(stamp), minx, miny, maxx, maxy, _day(first), status, confidence,
                     priority, legality, province, geometry)
            for (alert_id, stamp, minx, miny, maxx, maxy, first, status, confidence, priority, legality, province,
                 _), geometry in zip(rows, geometries)
        ]

    def _stamp_us(self, stamp: Any) -> int:
        moment = self._moment(stamp)
        assert moment is not None  # updated_at is NOT NULL
        return to_us(moment)

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
