"""Tables of the alert store, as typed SQLAlchemy 2 declarative models.

The schema is written for two back-ends from the start, so that PostGIS and
Alembic (issue 4) are additions, not rewrites:

- Every constraint and index has a deterministic name (``NAMING_CONVENTION``):
  Alembic autogenerate and hand-written migrations can refer to them, and
  SQLite's batch mode can rebuild tables without losing them.
- Enumerations are ``VARCHAR`` plus a ``CHECK`` constraint (``native_enum=False``)
  on every back-end, so adding a status later is a constraint change, not an
  ``ALTER TYPE`` on PostgreSQL only.
- JSON columns are ``JSON`` on SQLite and ``JSONB`` on PostgreSQL.
- Timestamps are timezone-aware UTC in Python on every back-end
  (:class:`UTCDateTime`); SQLite stores them as naive UTC text whose
  lexicographic order is chronological, so the ``updated_at`` index serves
  ordering and range queries.
- The geometry (EPSG:4326) is :data:`AlertGeometry`: a real PostGIS
  ``geometry(Geometry, 4326)`` column with a GiST index on PostgreSQL (bbox
  filters use ``ST_Intersects``), GeoJSON text on SQLite. Its bounding box is
  also kept in four indexed columns on both: the index SQLite filters with,
  and cheap envelopes for exports.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from enum import Enum
from typing import Any

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import base as postgresql_base
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, UserDefinedType

from geo_monitor.alerts import Confidence, Legality, Priority, Status

#: Deterministic constraint and index names (Alembic needs names to alter or drop them).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Longest alert / run id accepted (stable ids are ``gm-`` + 16 hex digits).
ID_LENGTH = 128


class HistoryKind(str, Enum):
    """What an ``alert_history`` row records."""

    DETECTION = "detection"  # created or updated by a pipeline run
    STATUS = "status"  # a human moved it through the workflow
    ASSIGNMENT = "assignment"  # a human (un)assigned it


class Role(str, Enum):
    """What an API key or user may do (the web layer enforces it per route).

    ``agent``: read, change alert status; ``analyst``: agent + jobs;
    ``admin``: keys and users too; ``partner``: read-only API, optionally
    limited to provinces.
    """

    AGENT = "agent"
    ANALYST = "analyst"
    ADMIN = "admin"
    PARTNER = "partner"


class RunStatus(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every back-end.

    SQLite has no timezone type; without this, values would come back naive
    and comparisons with aware datetimes would raise. Naive input is refused
    rather than guessed at, because a wrong guess silently breaks polling.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to a UTC column; attach a timezone")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class GeoJSONGeometry(TypeDecorator[BaseGeometry]):
    """A shapely geometry stored as GeoJSON text (EPSG:4326).

    ``json`` writes floats with ``repr``, so coordinates round-trip exactly.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: BaseGeometry | None, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(mapping(value), separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> BaseGeometry | None:
        # GEOS's GeoJSON reader: exact like json + shape(), at half the cost (this runs per row read).
        return None if value is None else shapely.from_geojson(value)


class PostGISGeometry(UserDefinedType[BaseGeometry]):
    """A shapely geometry in a PostGIS ``geometry(Geometry, 4326)`` column.

    Travels as WKB both ways (``ST_GeomFromWKB`` / ``ST_AsBinary``): exact
    doubles, so coordinates round-trip bit for bit, and no text parsing.
    """

    cache_ok = True
    srid = 4326

    def __init__(self, *_reflected_modifiers: Any) -> None:
        # Reflection passes the column's type modifiers; the store only ever uses (Geometry, 4326).
        super().__init__()

    def get_col_spec(self, **_kw: Any) -> str:
        return f"geometry(Geometry,{self.srid})"

    def bind_expression(self, bindvalue: Any) -> ColumnElement[Any]:
        return func.ST_GeomFromWKB(bindvalue, self.srid, type_=self)

    def column_expression(self, colexpr: Any) -> ColumnElement[Any]:
        return func.ST_AsBinary(colexpr, type_=self)

    def bind_processor(self, dialect: Dialect) -> Any:
        def process(value: BaseGeometry | None) -> bytes | None:
            return None if value is None else shapely.to_wkb(value)

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        def process(value: bytes | memoryview | None) -> BaseGeometry | None:
            return None if value is None else shapely.from_wkb(bytes(value))

        return process


# Reflection (Alembic's schema comparison) then knows PostGIS columns instead of warning about them.
postgresql_base.ischema_names.setdefault("geometry", PostGISGeometry)

#: The alert geometry column type: PostGIS geometry on PostgreSQL, GeoJSON text elsewhere.
AlertGeometry = GeoJSONGeometry().with_variant(PostGISGeometry(), "postgresql")

#: JSON documents: JSONB on PostgreSQL; Python ``None`` is SQL NULL, not the JSON text ``null``.
JSONDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _enum_type(enum_cls: type[Enum], name: str) -> SAEnum:
    """VARCHAR + named CHECK constraint holding the enum's *values* (what the API shows)."""
    return SAEnum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base of every store table; its ``metadata`` is Alembic's ``target_metadata``."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONDocument}


class AlertRow(Base):
    """One alert: the detection fields the pipeline owns plus the workflow fields people own."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    # detection fields: written by upserts only
    geometry: Mapped[BaseGeometry] = mapped_column(AlertGeometry)
    minx: Mapped[float] = mapped_column(Float, index=True)
    miny: Mapped[float] = mapped_column(Float, index=True)
    maxx: Mapped[float] = mapped_column(Float, index=True)
    maxy: Mapped[float] = mapped_column(Float, index=True)
    area_ha: Mapped[float] = mapped_column(Float)
    pond_area_ha: Mapped[float] = mapped_column(Float)
    first_detected: Mapped[date] = mapped_column(index=True)
    last_observed: Mapped[date]
    confirmed_at: Mapped[date | None]
    confidence: Mapped[Confidence] = mapped_column(_enum_type(Confidence, "confidence"))
    score: Mapped[float] = mapped_column(Float)
    legality: Mapped[Legality] = mapped_column(_enum_type(Legality, "legality"))
    priority: Mapped[Priority] = mapped_column(_enum_type(Priority, "priority"), index=True)
    signature: Mapped[dict[str, Any]]
    context: Mapped[dict[str, Any]]
    provenance: Mapped[dict[str, Any]]
    extra: Mapped[dict[str, Any]]
    province: Mapped[str | None] = mapped_column(String(200), index=True)  # copy of context.province
    # workflow fields: written by people through the workflow methods only
    status: Mapped[Status] = mapped_column(_enum_type(Status, "status"), index=True)
    assignee: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    # bookkeeping
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The alert as GeoJSON Feature text (geo_monitor.store.features.feature_text), rewritten in the
    # same transaction as every change above: API pages are joins of these. Deferred: rows loaded
    # as objects (exports, workflow changes) never need it.
    feature: Mapped[str] = mapped_column(Text, deferred=True)

    __table_args__ = (
        # The polling order: (updated_at, id) is unique, so keyset pagination never skips or repeats.
        Index(None, "updated_at", "id"),
        # The spatial index bbox queries use on PostGIS (SQLite uses the envelope columns).
        Index(None, "geometry", postgresql_using="gist").ddl_if(dialect="postgresql"),
    )


class AlertHistoryRow(Base):
    """One change to an alert: who or what, when, which fields old -> new, and why."""

    __tablename__ = "alert_history"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[HistoryKind] = mapped_column(_enum_type(HistoryKind, "kind"))
    changes: Mapped[dict[str, Any]]
    note: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("detection_runs.id", ondelete="SET NULL"), index=True
    )

    # Declared so the unit of work inserts the alert (and run) before its history
    # rows; never loaded implicitly.
    alert: Mapped[AlertRow] = relationship(lazy="raise")
    run: Mapped[DetectionRunRow | None] = relationship(lazy="raise")


class DetectionRunRow(Base):
    """One pipeline run that wrote alerts: what ran, with which parameters, and how it ended."""

    __tablename__ = "detection_runs"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    pipeline: Mapped[str] = mapped_column(String(200))
    pipeline_version: Mapped[str] = mapped_column(String(100))
    parameters: Mapped[dict[str, Any]]
    summary: Mapped[dict[str, Any] | None]
    status: Mapped[RunStatus] = mapped_column(_enum_type(RunStatus, "run_status"))


class ApiKeyRow(Base):
    """An API key: who holds it and what it may do. Only a hash of the key is stored, never the key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public; embedded in the key itself
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum_type(Role, "role"))
    provinces: Mapped[list[str] | None] = mapped_column(JSONDocument)  # None: every province
    secret_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the whole key
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class UserRow(Base):
    """A person who logs in to the web application with a password (stored as a salted scrypt hash)."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum_type(Role, "role"))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class DeliveryStatus(str, Enum):
    PENDING = "pending"  # waiting for its next attempt (or being attempted under a lease)
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # gave up after the maximum number of attempts


class WebhookSubscriptionRow(Base):
    """A partner's request to be told about alert changes matching its filters, at its URL."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    owner_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    # Signing secret ("whsec_<base64>"): kept as is because every delivery is signed with it.
    secret: Mapped[str] = mapped_column(String(200))
    filters: Mapped[dict[str, Any]]  # AlertQuery filter fields, JSON-ready (see webhooks.filters_to_query)
    event_types: Mapped[list[str] | None] = mapped_column(JSONDocument)  # None: every event type
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class WebhookDeliveryRow(Base):
    """One event for one subscription: the outbox row a dispatcher sends, retries and logs."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)  # the webhook-id header ("msg_...")
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    payload: Mapped[dict[str, Any]]
    status: Mapped[DeliveryStatus] = mapped_column(_enum_type(DeliveryStatus, "delivery_status"))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    response_code: Mapped[int | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        # What a dispatcher claims: pending rows whose time has come, oldest first.
        Index(None, "status", "next_attempt_at"),
    )


class JobKind(str, Enum):
    """What a reprocessing job does (the process ids of the jobs API)."""

    DETECT = "detect"  # the mining-change pipeline over an area and window
    REPLAY = "replay"  # the same, recomputing the change state from the baseline on
    RETRAIN = "retrain"  # train the site model again


class JobState(str, Enum):
    """A job's life, with the status names of OGC API - Processes."""

    ACCEPTED = "accepted"  # waiting for a worker (first time, after a retry delay, or released)
    RUNNING = "running"  # a worker holds the lease
    SUCCESSFUL = "successful"
    FAILED = "failed"  # gave up: a permanent error, or max_attempts reached
    DISMISSED = "dismissed"  # cancelled by a person


#: States a job never leaves.
FINAL_JOB_STATES: frozenset[JobState] = frozenset({JobState.SUCCESSFUL, JobState.FAILED, JobState.DISMISSED})


class JobRow(Base):
    """One reprocessing job: what to run, who asked, and where it is in the queue.

    A running job is leased: ``lease_token`` names the claim that may
    heartbeat, finish or release it, until ``lease_expires_at``; after that
    another worker may take it over (with a new token), and the old token is
    refused. ``scope`` is a key of what the job writes (the change state of
    one area and window): two jobs with the same scope never run at once.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    kind: Mapped[JobKind] = mapped_column(_enum_type(JobKind, "job_kind"))
    parameters: Mapped[dict[str, Any]]
    state: Mapped[JobState] = mapped_column(_enum_type(JobState, "job_state"))
    progress: Mapped[int] = mapped_column(default=0)  # 0..100
    message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)  # claims counted, releases not
    max_attempts: Mapped[int]
    next_attempt_at: Mapped[datetime]  # an accepted job is claimable from then on
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    cancel_requested_by: Mapped[str | None] = mapped_column(String(200))
    scope: Mapped[str | None] = mapped_column(String(128), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    result: Mapped[dict[str, Any] | None]  # the summary of a successful job
    error: Mapped[str | None] = mapped_column(Text)  # why the last attempt failed

    __table_args__ = (
        # Same key from the same user = the same job (NULL keys never collide).
        UniqueConstraint("requested_by", "idempotency_key"),
        # What claims look for: accepted jobs that are due, running jobs whose lease ran out.
        Index(None, "state", "next_attempt_at"),
        Index(None, "state", "lease_expires_at"),
    )


class JobLogRow(Base):
    """One line of a job's log: what happened to it and when (claims, retries, progress stages, the end)."""

    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)

    # Declared so the unit of work inserts a new job before its first log line; never loaded implicitly.
    job: Mapped[JobRow] = relationship(lazy="raise")
