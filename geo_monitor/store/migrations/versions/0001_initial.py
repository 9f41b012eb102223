"""Initial schema: alerts, history, detection runs, API keys, users, webhook subscriptions and deliveries.

Column types are spelled out here rather than imported from the models, so
this revision creates the same tables whatever the models become later. The
PostGIS geometry column and its GiST index exist on PostgreSQL only; SQLite
stores GeoJSON text and filters with the envelope columns.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import UserDefinedType

from geo_monitor.store.migrate import ensure_postgis

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class _PostGISGeometry(UserDefinedType[Any]):
    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "geometry(Geometry,4326)"


GEOMETRY = sa.Text().with_variant(_PostGISGeometry(), "postgresql")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        ensure_postgis(op.get_bind())
    op.create_table(
        'alerts',
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('geometry', GEOMETRY, nullable=False),
        sa.Column('minx', sa.Float(), nullable=False),
        sa.Column('miny', sa.Float(), nullable=False),
        sa.Column('maxx', sa.Float(), nullable=False),
        sa.Column('maxy', sa.Float(), nullable=False),
        sa.Column('area_ha', sa.Float(), nullable=False),
        sa.Column('pond_area_ha', sa.Float(), nullable=False),
        sa.Column('first_detected', sa.Date(), nullable=False),
        sa.Column('last_observed', sa.Date(), nullable=False),
        sa.Column('confirmed_at', sa.Date(), nullable=True),
        sa.Column('confidence', sa.Enum('low', 'nominal', 'high', name='confidence', native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('legality', sa.Enum('probably_illegal', 'inside_concession', 'unknown', name='legality', native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column('priority', sa.Enum('critical', 'high', 'medium', 'low', name='priority', native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column('signature', JSON, nullable=False),
        sa.Column('context', JSON, nullable=False),
        sa.Column('provenance', JSON, nullable=False),
        sa.Column('extra', JSON, nullable=False),
        sa.Column('province', sa.String(length=200), nullable=True),
        sa.Column('status', sa.Enum('new', 'under_review', 'confirmed', 'dismissed', 'actioned', name='status', native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column('assignee', sa.String(length=200), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('updated_at', TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index(op.f('ix_alerts_first_detected'), 'alerts', ['first_detected'], unique=False)
    op.create_index(op.f('ix_alerts_maxx'), 'alerts', ['maxx'], unique=False)
    op.create_index(op.f('ix_alerts_maxy'), 'alerts', ['maxy'], unique=False)
    op.create_index(op.f('ix_alerts_minx'), 'alerts', ['minx'], unique=False)
    op.create_index(op.f('ix_alerts_miny'), 'alerts', ['miny'], unique=False)
    op.create_index(op.f('ix_alerts_priority'), 'alerts', ['priority'], unique=False)
    op.create_index(op.f('ix_alerts_province'), 'alerts', ['province'], unique=False)
    op.create_index(op.f('ix_alerts_status'), 'alerts', ['status'], unique=False)
    op.create_index(op.f('ix_alerts_updated_at_id'), 'alerts', ['updated_at', 'id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(op.f('ix_alerts_geometry'), 'alerts', ['geometry'], unique=False, postgresql_using='gist')
    op.create_table(
        'api_keys',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('role', sa.Enum('agent', 'analyst', 'admin', 'partner', name='role', native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column('provinces', JSON, nullable=True),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('expires_at', TIMESTAMP, nullable=True),
        sa.Column('revoked_at', TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys'))
    )
    op.create_table(
        'detection_runs',
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('started_at', TIMESTAMP, nullable=False),
        sa.Column('finished_at', TIMESTAMP, nullable=True),
        sa.Column('pipeline', sa.String(length=200), nullable=False),
        sa.Column('pipeline_version', sa.String(length=100), nullable=False),
        sa.Column('parameters', JSON, nullable=False),
        sa.Column('summary', JSON, nullable=True),
        sa.Column('status', sa.Enum('running', 'succeeded', 'failed', name='run_status', native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_detection_runs'))
    )
    op.create_index(op.f('ix_detection_runs_started_at'), 'detection_runs', ['started_at'], unique=False)
    op.create_table(
        'users',
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('role', sa.Enum('agent', 'analyst', 'admin', 'partner', name='role', native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('disabled_at', TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint('username', name=op.f('pk_users'))
    )
    op.create_table(
        'alert_history',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('alert_id', sa.String(length=128), nullable=False),
        sa.Column('at', TIMESTAMP, nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.Enum('detection', 'status', 'assignment', name='kind', native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column('changes', JSON, nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('run_id', sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_history_alert_id_alerts'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['run_id'], ['detection_runs.id'], name=op.f('fk_alert_history_run_id_detection_runs'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_history'))
    )
    op.create_index(op.f('ix_alert_history_alert_id'), 'alert_history', ['alert_id'], unique=False)
    op.create_index(op.f('ix_alert_history_run_id'), 'alert_history', ['run_id'], unique=False)
    op.create_table(
        'webhook_subscriptions',
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('owner_key_id', sa.String(length=32), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('secret', sa.String(length=200), nullable=False),
        sa.Column('filters', JSON, nullable=False),
        sa.Column('event_types', JSON, nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(['owner_key_id'], ['api_keys.id'], name=op.f('fk_webhook_subscriptions_owner_key_id_api_keys'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions'))
    )
    op.create_index(op.f('ix_webhook_subscriptions_owner_key_id'), 'webhook_subscriptions', ['owner_key_id'], unique=False)
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('subscription_id', sa.String(length=128), nullable=False),
        sa.Column('event_type', sa.String(length=64), nullable=False),
        sa.Column('alert_id', sa.String(length=128), nullable=True),
        sa.Column('payload', JSON, nullable=False),
        sa.Column('status', sa.Enum('pending', 'delivered', 'failed', name='delivery_status', native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', TIMESTAMP, nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('response_code', sa.Integer(), nullable=True),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('updated_at', TIMESTAMP, nullable=False),
        sa.Column('delivered_at', TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_deliveries_subscription_id_webhook_subscriptions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    op.create_index(op.f('ix_webhook_deliveries_status_next_attempt_at'), 'webhook_deliveries', ['status', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_webhook_deliveries_subscription_id'), 'webhook_deliveries', ['subscription_id'], unique=False)



def downgrade() -> None:
    # Dropping a table drops its indexes; children before parents for the foreign keys.
    for table in ("webhook_deliveries", "webhook_subscriptions", "alert_history", "users", "detection_runs",
                  "api_keys", "alerts"):
        op.drop_table(table)
