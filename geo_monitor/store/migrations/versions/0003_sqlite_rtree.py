"""SQLite: an R*Tree index over the alert envelopes, kept in step by triggers (PostgreSQL: nothing to do).

Bbox queries on SQLite used the four envelope columns' B-tree indexes, one
range per column: a few hundred milliseconds over 100,000 alerts. The R*Tree
``alert_envelopes`` answers "which envelopes overlap this box" directly.

Its rows are keyed by ``alert_envelope_keys.key``, an INTEGER PRIMARY KEY
(stable), rather than by the alerts' implicit rowid, which VACUUM and table
rebuilds (Alembic batch mode) may renumber. Each R*Tree row also carries the
alert id (an auxiliary column), so a query needs no join to find the alert.

Triggers on ``alerts`` write both tables in the same statement, hence the
same transaction, as every insert, envelope change and delete of an alert:
the index cannot drift from the table, whoever writes it. The R*Tree keeps
32-bit floats rounded outwards, so it returns a superset of the overlapping
envelopes; the query still applies the exact tests on the alert's own
columns (see ``geo_monitor.store.query``).

A later migration that rebuilds ``alerts`` in batch mode drops these
triggers with the old table: it must run :data:`TRIGGERS` again (the key
table and the R*Tree survive, being keyed by alert id).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "CREATE TABLE alert_envelope_keys (key INTEGER PRIMARY KEY, alert_id VARCHAR(128) NOT NULL UNIQUE)",
    "CREATE VIRTUAL TABLE alert_envelopes USING rtree(key, minx, maxx, miny, maxy, +alert_id)",
)
TRIGGERS = (
    """CREATE TRIGGER alert_envelopes_insert AFTER INSERT ON alerts BEGIN
        INSERT INTO alert_envelope_keys (alert_id) VALUES (new.id);
        INSERT INTO alert_envelopes (key, minx, maxx, miny, maxy, alert_id)
            VALUES (last_insert_rowid(), new.minx, new.maxx, new.miny, new.maxy, new.id);
    END""",
    """CREATE TRIGGER alert_envelopes_update AFTER UPDATE OF minx, maxx, miny, maxy ON alerts BEGIN
        UPDATE alert_envelopes SET minx = new.minx, maxx = new.maxx, miny = new.miny, maxy = new.maxy
            WHERE key = (SELECT key FROM alert_envelope_keys WHERE alert_id = new.id);
    END""",
    """CREATE TRIGGER alert_envelopes_delete AFTER DELETE ON alerts BEGIN
        DELETE FROM alert_envelopes WHERE key = (SELECT key FROM alert_envelope_keys WHERE alert_id = old.id);
        DELETE FROM alert_envelope_keys WHERE alert_id = old.id;
    END""",
)
#: Fills the index from alerts already stored (it starts empty).
BACKFILL = (
    "INSERT INTO alert_envelope_keys (alert_id) SELECT id FROM alerts ORDER BY id",
    "INSERT INTO alert_envelopes (key, minx, maxx, miny, maxy, alert_id) "
    "SELECT k.key, a.minx, a.maxx, a.miny, a.maxy, a.id FROM alerts a JOIN alert_envelope_keys k ON k.alert_id = a.id",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostGIS has its GiST index since 0001
    for statement in (*TABLES, *BACKFILL, *TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("alert_envelopes_insert", "alert_envelopes_update", "alert_envelopes_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS alert_envelopes")
    op.execute("DROP TABLE IF EXISTS alert_envelope_keys")
