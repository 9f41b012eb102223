"""Reprocessing jobs: the queue (jobs) and each job's log (job_logs).

Column types are spelled out, as in 0001, so this revision creates the same
tables whatever the models become later.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.Enum("detect", "replay", "retrain", name="job_kind", native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("state", sa.Enum("accepted", "running", "successful", "failed", "dismissed", name="job_state", native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("cancel_requested_at", TIMESTAMP, nullable=True),
        sa.Column("cancel_requested_by", sa.String(length=200), nullable=True),
        sa.Column("scope", sa.String(length=128), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("requested_by", "idempotency_key", name=op.f("uq_jobs_requested_by_idempotency_key")),
    )
    op.create_index(op.f("ix_jobs_created_at"), "jobs", ["created_at"], unique=False)
    op.create_index(op.f("ix_jobs_scope"), "jobs", ["scope"], unique=False)
    op.create_index(op.f("ix_jobs_state_lease_expires_at"), "jobs", ["state", "lease_expires_at"], unique=False)
    op.create_index(op.f("ix_jobs_state_next_attempt_at"), "jobs", ["state", "next_attempt_at"], unique=False)
    op.create_table(
        "job_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_logs_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_logs")),
    )
    op.create_index(op.f("ix_job_logs_job_id"), "job_logs", ["job_id"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; the log before the jobs it points at.
    op.drop_table("job_logs")
    op.drop_table("jobs")
