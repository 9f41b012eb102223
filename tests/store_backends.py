"""The two real back-ends of the alert store, as fixtures every store and API test can share.

``alert_store`` and ``store_url`` are parametrized ``["sqlite", "postgis"]``:

- ``sqlite``: a fresh file in ``tmp_path``;
- ``postgis``: a fresh schema in the PostgreSQL + PostGIS database named by
  ``GEO_MONITOR_TEST_POSTGRES_URL`` (``.ci/run`` creates it), selected through the
  connection's ``search_path`` and dropped after the test. A schema per test is
  much cheaper than a database per test, and the PostGIS types stay reachable
  because ``public`` (where the extension lives) follows it on the path.

Without ``GEO_MONITOR_TEST_POSTGRES_URL`` the postgis cases are skipped on a
developer's machine but FAIL under ``CI=true``: CI promises both back-ends, and a
silently skipped half would hide that PostgreSQL never ran.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from geo_monitor.store import AlertStore

#: Environment variable with the SQLAlchemy URL of the throw-away PostGIS test database.
POSTGRES_URL_ENV = "GEO_MONITOR_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgis"]


def postgres_base_url() -> str:
    """The test database URL, or skip (locally) / fail (CI) when it is not configured."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if url:
        return url
    message = f"{POSTGRES_URL_ENV} is not set (bash .ci/run starts PostGIS and sets it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostGIS back-end required in CI: {message}")
    pytest.skip(message)


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> str:
    """The back-end name of the current case: "sqlite" or "postgis"."""
    return str(request.param)


@pytest.fixture
def store_url(store_backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database (not yet migrated) on the current back-end, removed after the test."""
    if store_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'alerts.sqlite'}"
        return
    base = make_url(postgres_base_url())
    schema = f"gm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        # Every connection made from this URL (other processes too) works inside the schema.
        yield base.update_query_dict({"options": f"-csearch_path={schema},public"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.begin() as conn:
            # A connection left open by a crashed worker would make the drop wait forever.
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def alert_store(store_url: str) -> Iterator[AlertStore]:
    """A fresh, migrated, empty :class:`AlertStore` on the current back-end."""
    store = AlertStore.from_url(store_url)
    store.migrate()
    try:
        yield store
    finally:
        store.dispose()
