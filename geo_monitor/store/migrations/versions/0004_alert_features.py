"""Pre-rendered features: ``alerts.feature`` holds each alert as GeoJSON Feature text.

API pages are joins of these texts (see ``geo_monitor.store.features``);
the store rewrites an alert's text in the same transaction as every change
to it. Existing alerts are rendered here, with the code's rendering of
today.

SQLite cannot add a NOT NULL column without a default (or without rebuilding
the table, which would drop revision 0003's R*Tree triggers and the CHECK
constraints batch mode does not reflect), so the column is added with the
default ``''`` there, filled, and keeps that default; the store never relies
on it, it writes the text itself. PostgreSQL drops the default after filling.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

from geo_monitor.store.alert_store import rewrite_features

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("feature", sa.Text(), nullable=False, server_default=sa.text("''")))
    with Session(bind=op.get_bind()) as session:  # joins the migration's transaction
        rewrite_features(session)
        session.flush()
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("alerts", "feature", server_default=None)


def downgrade() -> None:
    # Plain ALTER TABLE on both (SQLite >= 3.35): a batch rebuild would drop 0003's triggers.
    op.execute("ALTER TABLE alerts DROP COLUMN feature")
