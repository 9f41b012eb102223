"""Schema migrations of the alert store (Alembic), run from Python: ``upgrade``, ``current_revision``, ``schema_diff``.

The migration scripts ship inside the package (``migrations/``), so an
installed geo-monitor can upgrade its own database with ``geo-monitor db
upgrade`` or :meth:`AlertStore.migrate`; there is no alembic.ini to find.

An upgrade runs in one write transaction (``BEGIN IMMEDIATE`` on SQLite, an
advisory lock on PostgreSQL; DDL is transactional on both), so several
processes starting at once upgrade the schema exactly once and a failed
migration leaves the previous schema intact.

On PostgreSQL the alert geometry is a PostGIS type: :func:`ensure_postgis`
creates the extension when the server has it and the role may, and
otherwise fails with a message saying what to install.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from geo_monitor.errors import ConfigError
from geo_monitor.store.engine import writer
from geo_monitor.store.schema import Base

log = logging.getLogger(__name__)
# Alembic announces its context at INFO on every call (each command, each web worker start);
# the one line worth keeping, what was applied, is logged by upgrade() itself.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Advisory lock key serialising schema upgrades on PostgreSQL ("gm-schem").
SCHEMA_LOCK = 0x676D2D736368656D
#: Tables in the database that are not the store's models (PostGIS's, Alembic's own).
FOREIGN_TABLES = frozenset({"spatial_ref_sys", "alembic_version"})
#: SQLite's R*Tree over alert envelopes (revision 0003): the key table, the virtual table and its
#: shadow tables (``_node``, ``_rowid``, ``_parent``). Written by triggers, never by the models.
SQLITE_INDEX_TABLE_PREFIX = "alert_envelope"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, with ``connection`` for env.py."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` in one write transaction; log what it applied."""
    with writer(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(alembic_config(connection), revision)
        after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        log.info("alert store schema upgraded", extra={"from_revision": before, "to_revision": after})


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_diff(engine: Engine) -> list[Any]:
    """What autogenerate would change to make the database match the models ([] when they match)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": object_filter(connection.dialect.name)}
        )
        return list(compare_metadata(context, Base.metadata))


def object_filter(dialect: str) -> Callable[..., bool]:
    """Alembic ``include_object`` for ``dialect``: leave out what does not exist there.

    The GiST index is declared ``ddl_if(dialect="postgresql")``, which
    Alembic does not read, so a SQLite comparison would call it missing;
    PostGIS's own ``spatial_ref_sys`` table is not ours to drop; SQLite's
    R*Tree tables are a migration's (0003), not the models'.
    """

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and reflected and compare_to is None:
            return name not in FOREIGN_TABLES and not (name or "").startswith(SQLITE_INDEX_TABLE_PREFIX)
        ddl_if = getattr(obj, "_ddl_if", None)
        return ddl_if is None or ddl_if.dialect is None or ddl_if.dialect == dialect

    return include


def ensure_postgis(connection: Connection) -> None:
    """Create the PostGIS extension when missing; fail clearly when this server cannot have it."""
    if connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first():
        return
    available = connection.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")).first()
    if not available:
        raise ConfigError(
            "the PostgreSQL server has no PostGIS extension: install it (Debian: apt-get install "
            "postgresql-<version>-postgis-3), or use a PostGIS server"
        )
    try:
        with connection.begin_nested():
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    except DBAPIError as exc:
        raise ConfigError(
            "cannot create the PostGIS extension in this database (a superuser must run "
            f"'CREATE EXTENSION postgis' once): {str(exc.orig).strip()}"
        ) from None
