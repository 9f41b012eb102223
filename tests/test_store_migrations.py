"""Alembic migrations of the alert store on both back-ends: the migrated schema is the models' schema."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, inspect, text
from sqlalchemy.engine import make_url

from geo_monitor.errors import ConfigError
from geo_monitor.store import AlertStore
from geo_monitor.store.migrate import MIGRATIONS_DIR, ensure_postgis, schema_diff, upgrade
from geo_monitor.store.schema import AlertRow, Base

from conftest import cli
from store_backends import postgres_base_url

#: The latest revision (0002 added the job queue, 0003 SQLite's R*Tree over alert envelopes, 0004 the
#: pre-rendered feature texts).
HEAD = "0004"


def test_a_migrated_database_matches_the_models(alert_store: AlertStore) -> None:
    assert alert_store.schema_revision() == HEAD
    assert schema_diff(alert_store.engine) == []  # what `alembic revision --autogenerate` would write: nothing
    tables = set(inspect(alert_store.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables


def test_the_comparison_sees_a_schema_that_drifted(alert_store: AlertStore) -> None:
    with alert_store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE users ADD COLUMN nickname VARCHAR(20)"))
        conn.execute(text("DROP INDEX ix_alerts_province"))
    diff = [str(d) for d in schema_diff(alert_store.engine)]
    assert any("remove_column" in d and "nickname" in d for d in diff), diff
    assert any("add_index" in d and "ix_alerts_province" in d for d in diff), diff


def test_migrating_twice_changes_nothing(alert_store: AlertStore) -> None:
    alert_store.migrate()
    assert alert_store.schema_revision() == HEAD and schema_diff(alert_store.engine) == []


def test_constraints_have_their_conventional_names(alert_store: AlertStore) -> None:
    """Later batch migrations on SQLite find constraints by these names."""
    inspector = inspect(alert_store.engine)
    assert inspector.get_pk_constraint("alerts")["name"] == "pk_alerts"
    checks = {c["name"] for c in inspector.get_check_constraints("alerts")}
    assert {"ck_alerts_status", "ck_alerts_confidence", "ck_alerts_priority", "ck_alerts_legality"} <= checks


def test_postgis_geometry_is_a_spatial_column_with_a_gist_index(alert_store: AlertStore, store_backend: str) -> None:
    if store_backend != "postgis":
        pytest.skip("PostGIS only: SQLite keeps GeoJSON text and envelope columns")
    with alert_store.engine.connect() as conn:
        kind = conn.execute(text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'alerts'::regclass AND attname = 'geometry'")).scalar()
        index = conn.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'alerts' AND indexname = 'ix_alerts_geometry' "
            "AND schemaname = current_schema()")).scalar()
    assert kind == "geometry(Geometry,4326)"
    assert index is not None and "USING gist (geometry)" in index


def _migrate(url: str, start: Any) -> None:
    start.wait()
    with AlertStore.from_url(url) as store:
        store.migrate()


def test_processes_starting_together_migrate_once(store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [ctx.Process(target=_migrate, args=(store_url, start)) for _ in range(3)]
    for p in workers:
        p.start()
    start.set()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    with AlertStore.from_url(store_url) as store:
        assert store.schema_revision() == HEAD and schema_diff(store.engine) == []


def test_a_store_at_0001_upgrades_to_the_job_queue_keeping_its_alerts(store_url: str) -> None:
    from alert_samples import make_alert, old_rows

    with AlertStore.from_url(store_url) as store:
        upgrade(store.engine, "0001")
        with store.engine.begin() as conn:  # the 0001 columns (today's upsert also writes 0004's feature text)
            conn.execute(insert(AlertRow.__table__), old_rows([make_alert()]))
        store.migrate()
        assert store.schema_revision() == HEAD and schema_diff(store.engine) == []
        assert store.count() == 1 and {"jobs", "job_logs"} <= set(inspect(store.engine).get_table_names())


def test_db_upgrade_command(tmp_path: Path) -> None:
    env = {"GEO_MONITOR_DATA_DIR": str(tmp_path / "data")}
    first = cli("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert f"upgraded from None to revision {HEAD}" in first.stdout
    again = cli("db", "upgrade", env=env)
    assert again.returncode == 0 and f"already at revision {HEAD}" in again.stdout
    assert (tmp_path / "data" / "geo-monitor.sqlite").is_file()


def test_migrations_ship_with_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file() and (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py")) == [
        "0001_initial.py", "0002_jobs.py", "0003_sqlite_rtree.py", "0004_alert_features.py"]


def test_a_database_without_postgis_fails_with_a_clear_message() -> None:
    base = make_url(postgres_base_url())
    name = "gm_test_no_postgis"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            # A role that may not create extensions, as on many managed servers.
            conn.execute(text("DROP ROLE IF EXISTS gm_test_plain"))
            conn.execute(text("CREATE ROLE gm_test_plain LOGIN"))
            conn.execute(text(f'GRANT ALL ON DATABASE "{name}" TO gm_test_plain'))
        plain = create_engine(base.set(database=name, username="gm_test_plain", password=None))
        with plain.connect() as conn, conn.begin():
            with pytest.raises(ConfigError, match="superuser must run 'CREATE EXTENSION postgis'"):
                ensure_postgis(conn)
        plain.dispose()
        # The store's own role (a superuser here) creates it when missing.
        owner = create_engine(base.set(database=name))
        with AlertStore(owner) as store:
            store.migrate()
            assert store.schema_revision() == HEAD
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text("DROP ROLE IF EXISTS gm_test_plain"))
        admin.dispose()
