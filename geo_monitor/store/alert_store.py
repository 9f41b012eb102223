"""The alert store: upserts by stable id, the human workflow, history and detection runs.

Every public method is one transaction: it either happens completely or not
at all, so a failure halfway through a batch of alerts leaves nothing
half-written. Writes take the write lock at the start (``BEGIN IMMEDIATE`` on
SQLite; a transaction-level advisory lock, :data:`ALERT_WRITE_LOCK`, on
PostgreSQL, then ``SELECT ... FOR UPDATE`` of the rows a workflow change
reads), so a check such as "may this alert move to confirmed?" is made
against the state the change is applied to.

``updated_at`` drives partners' incremental polling, so it is kept strictly
increasing from one write transaction to the next (see :meth:`AlertStore._write_time`).
All alerts written by one transaction share its timestamp; the polling order
``(updated_at, id)`` is unique and breaks those ties. Writers are serialised
on both back-ends (SQLite's write lock; the advisory lock on PostgreSQL,
taken before any row lock so the two can never deadlock), so timestamps are
in commit order: a poller resuming after the last ``(updated_at, id)`` it saw
cannot miss an alert committed later with a smaller timestamp.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from itertools import islice
from typing import Any, Self

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, load_only, sessionmaker

from geo_monitor.alerts import STATUS_TRANSITIONS, Alert, Status
from geo_monitor.errors import InvalidInputError, NotFoundError
from geo_monitor.settings import Settings
from geo_monitor.store import auth, map_points, migrate, outbox
from geo_monitor.store.alert_index import AlertIndex, IndexOrderError, IndexSnapshot, from_us
from geo_monitor.store.auth import Principal, Role
from geo_monitor.store.engine import make_engine, writer
from geo_monitor.store.features import DIGEST_SIZE, feature_text
from geo_monitor.store.index_reads import RawReader
from geo_monitor.store.records import (
    check_alert_id,
    coerce_enum,
    detection_values,
    diff_detection,
    is_update,
    json_ready,
    row_to_alert,
    row_values,
)
from geo_monitor.store.query import (
    AlertPage,
    AlertQuery,
    FeaturePage,
    StoredAlert,
    StoredFeature,
    feature_page,
    iter_stored,
    query_page,
    stored_alert,
    stored_feature,
)
from geo_monitor.store.schema import AlertHistoryRow, AlertRow, DetectionRunRow, HistoryKind, RunStatus
from geo_monitor.types import BBox

log = logging.getLogger(__name__)

#: Key of the PostgreSQL advisory lock that serialises alert writers (any fixed 64-bit number; "gm-alert").
ALERT_WRITE_LOCK = 0x676D2D616C657274
#: Alerts loaded and flushed together in an upsert: bounds memory and SQL parameter counts.
UPSERT_CHUNK = 500
#: The columns a feature is rendered from (``features.alert_feature``): what :func:`rewrite_features` loads.
RENDERED_COLUMNS = (
    "id", "geometry", "area_ha", "pond_area_ha", "first_detected", "last_observed", "confirmed_at", "confidence",
    "score", "signature", "context", "legality", "priority", "provenance", "extra", "status", "assignee", "note",
    "created_at", "updated_at",
)


class AlertNotFoundError(NotFoundError):
    """No alert has the given id."""


@dataclass(frozen=True)
class UpsertResult:
    """How many alerts of a batch were inserted, changed, or already up to date."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    #: The alert ids behind each count, in batch order (not part of equality: counts compare as before).
    new_ids: tuple[str, ...] = field(default=(), compare=False)
    updated_ids: tuple[str, ...] = field(default=(), compare=False)
    unchanged_ids: tuple[str, ...] = field(default=(), compare=False)

    @property
    def total(self) -> int:
        return self.new + self.updated + self.unchanged


@dataclass(frozen=True)
class Workflow:
    """The human side of an alert, which :class:`Alert` does not carry (yet)."""

    status: Status
    assignee: str | None
    note: str | None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class AlertStore:
    """Alerts, their history and the detection runs that wrote them, in one SQL database."""

    def __init__(
        self, engine: Engine, *, clock: Callable[[], datetime] = utc_now, alert_index: bool = True
    ) -> None:
        """``alert_index``: answer feature pages from an in-memory index (``alert_index``) instead of SQL."""
        self.engine = engine
        self._clock = clock
        self._reading = sessionmaker(engine, expire_on_commit=False)
        self._writing = sessionmaker(writer(engine), expire_on_commit=False)
        self._raw = RawReader(engine)
        self._index = AlertIndex() if alert_index else None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Self:
        """A store on the SQLAlchemy ``url`` (``sqlite:///path`` or ``postgresql://...``)."""
        return cls(make_engine(url), **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Self:
        """The store the settings name (default: a SQLite file in ``data_dir``)."""
        kwargs.setdefault("alert_index", settings.alert_index)
        return cls.from_url(settings.resolved_database_url, **kwargs)

    def migrate(self) -> None:
        """Bring the database schema up to date (Alembic ``upgrade head``; idempotent).

        One write transaction, so processes starting together upgrade once.
        On PostgreSQL the PostGIS extension is created when missing (or a
        :class:`~geo_monitor.errors.ConfigError` says what to install).
        """
        migrate.upgrade(self.engine)

    def schema_revision(self) -> str | None:
        """The migration revision the database is at (None: never migrated)."""
        return migrate.current_revision(self.engine)

    def dispose(self) -> None:
        """Close pooled connections (end of a process or a test)."""
        self._raw.dispose()
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()

    # --- detection -------------------------------------------------------

    def upsert_alerts(self, alerts: Iterable[Alert], actor: str, run_id: str | None = None) -> UpsertResult:
        """Insert new alerts and update the detection fields of known ones, by id, in one transaction.

        New alerts start as ``new``. A known alert is written only when a
        detection field really changed (floats within a relative 1e-6 are
        equal), so a rerun over the same inputs changes nothing and leaves
        ``updated_at`` alone. Status, assignee and note are never touched:
        they belong to people. Each insert or update adds one ``detection``
        history row with the changed fields old -> new. Any invalid alert
        aborts the whole batch.
        """
        actor = _check_actor(actor)
        ids: dict[str, list[str]] = {"new": [], "updated": [], "unchanged": []}
        seen: set[str] = set()
        with self._write() as session:
            if run_id is not None:
                self._run_row(session, run_id)
            now = self._write_time(session)
            for chunk in _chunks(alerts, UPSERT_CHUNK):
                existing = _rows_by_id(session, {alert.id for alert in chunk if isinstance(alert.id, str)})
                events: list[outbox.Event] = []
                for alert in chunk:
                    values = detection_values(alert)  # validates the id too
                    _check_unique(alert.id, seen)
                    outcome, event = _upsert_one(session, alert.id, values, existing.get(alert.id), now, actor, run_id)
                    ids[outcome].append(alert.id)
                    if event is not None:
                        events.append(event)
                session.flush()
                outbox.enqueue(session, events, now)  # webhooks: committed with the alerts or not at all
                session.flush()
                session.expunge_all()  # keep memory flat over large batches
        return UpsertResult(**{k: len(v) for k, v in ids.items()}, **{f"{k}_ids": tuple(v) for k, v in ids.items()})

    # --- reading ---------------------------------------------------------

    def get(self, alert_id: str) -> Alert | None:
        with self._read() as session:
            row = session.get(AlertRow, alert_id)
            return None if row is None else row_to_alert(row)

    def workflow(self, alert_id: str) -> Workflow | None:
        """Status, assignee and note of an alert."""
        with self._read() as session:
            row = session.get(AlertRow, alert_id)
            return None if row is None else Workflow(row.status, row.assignee, row.note)

    def history(self, alert_id: str) -> list[dict[str, Any]]:
        """Every change to an alert, oldest first: id, alert_id, at, actor, kind, changes, note, run_id."""
        stmt = (
            select(AlertHistoryRow)
            .where(AlertHistoryRow.alert_id == alert_id)
            .order_by(AlertHistoryRow.at, AlertHistoryRow.id)
        )
        with self._read() as session:
            return [_history_dict(row) for row in session.scalars(stmt)]

    def query_alerts(self, query: AlertQuery) -> AlertPage:
        """One page of the alerts matching ``query``, in polling order ``(updated_at, id)``.

        ``number_matched`` counts every match (ignoring paging) and
        ``next_after`` is the keyset to pass as ``after`` for the next page
        (None on the last page).
        """
        with self._read() as session:
            return query_page(session, query)

    def feature_page(self, query: AlertQuery) -> FeaturePage:
        """Like :meth:`query_alerts`, but the page as the stored GeoJSON Feature texts (what the APIs serve).

        Answered from the in-memory index when the store has one (brought up
        to date first, so it holds every commit made before the request),
        else in SQL. Both give one consistent snapshot.
        """
        index = self._index  # another thread may switch it off meanwhile
        if index is not None:
            try:
                return self._index_page(index, query)
            except IndexOrderError:
                log.exception("the in-memory alert index is out of order; this store answers in SQL from now on")
                self._index = None
        with self._read() as session:
            return feature_page(session, query)

    def index_snapshot(self) -> IndexSnapshot | None:
        """The in-memory index brought up to date (None: this store has none)."""
        index = self._index
        if index is None:
            return None
        return self._refresh_index(index)

    def get_stored(self, alert_id: str) -> StoredAlert | None:
        """An alert with its workflow (status, assignee, note) and timestamps."""
        with self._read() as session:
            row = session.get(AlertRow, alert_id)
            return None if row is None else stored_alert(row)

    def get_feature(self, alert_id: str) -> StoredFeature | None:
        """One alert's stored GeoJSON Feature text, with its province (for scope checks)."""
        with self._read() as session:
            return stored_feature(session, alert_id)

    def refresh_features(self) -> int:
        """Render every alert's stored feature text again; returns how many were rewritten.

        Needed only after the rendering itself changed (a new property, say)
        or rows were written around the store (seed SQL): the store keeps the
        texts current on every change it makes. ``updated_at`` is left alone:
        the alerts did not change, only how they are written out.
        """
        with self._write() as session:
            return rewrite_features(session)

    def iter_alerts(self, query: AlertQuery) -> Iterator[StoredAlert]:
        """Every alert matching ``query`` (its ``limit`` ignored), streamed page by page, for exports.

        All pages come from one snapshot (REPEATABLE READ on PostgreSQL; a
        read transaction is a snapshot on SQLite), so an alert updated during
        a long export appears once, as it was when the export started.
        """
        engine = self.engine
        if engine.dialect.name == "postgresql":
            engine = engine.execution_options(isolation_level="REPEATABLE READ")
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield from iter_stored(session, query)

    def list_alerts(
        self,
        bbox: BBox | None = None,
        status: Status | str | Collection[Status | str] | None = None,
        updated_since: datetime | None = None,
        limit: int = 100,
        *,
        after: tuple[datetime, str] | None = None,
    ) -> list[Alert]:
        """Alerts in polling order ``(updated_at, id)``: a shorthand for :meth:`query_alerts`.

        ``bbox`` (W, S, E, N in degrees) keeps alerts whose geometry
        intersects it. ``updated_since`` is inclusive (a poller never misses
        the boundary, and may see it twice); ``after`` is the exclusive keyset
        ``(updated_at, id)`` of the last alert already seen, for cursors.
        """
        statuses = None if status is None else ([status] if isinstance(status, (str, Status)) else list(status))
        query = AlertQuery(
            bbox=bbox,
            statuses=statuses,  # type: ignore[arg-type]  # normalised to a frozenset by AlertQuery
            updated_since=updated_since,
            limit=limit,
            after=after,
        )
        return [item.alert for item in self.query_alerts(query).items]

    def count(self) -> int:
        with self._read() as session:
            return int(session.scalar(select(func.count()).select_from(AlertRow)) or 0)

    def map_points(self, query: AlertQuery) -> map_points.MapPoints:
        """Every alert matching ``query``'s filters as compact points, most urgent first (the map's layer)."""
        with self._read() as session:
            return map_points.map_points(session, query)

    def version(self) -> map_points.StoreVersion:
        """Alert count and latest ``updated_at``: changes whenever any alert does (a cache key)."""
        with self._read() as session:
            return map_points.store_version(session)

    # --- human workflow --------------------------------------------------

    def change_status(self, alert_id: str, new_status: Status | str, actor: str, note: str | None = None) -> Alert:
        """Move an alert along the workflow (``STATUS_TRANSITIONS``); ``dismissed`` needs a note.

        The note, when given, becomes the alert's current note. Raises
        :class:`InvalidInputError` for a transition the workflow does not allow.
        """
        target = coerce_enum(Status, new_status, "status")
        note = _clean_text(note)
        if target is Status.DISMISSED and note is None:
            raise InvalidInputError("dismissing an alert needs a note saying why")
        actor = _check_actor(actor)
        with self._write() as session:
            row = _locked_alert(session, alert_id)
            _check_transition(row.status, target)
            changes = {"status": [row.status.value, target.value]}
            row.status = target
            if note is not None:
                row.note = note
            now = self._record_workflow_change(session, row, HistoryKind.STATUS, changes, actor, note)
            outbox.enqueue(session, [outbox.Event("alert.status_changed", row, changes)], now)
            return row_to_alert(row)

    def assign(self, alert_id: str, assignee: str | None, actor: str, note: str | None = None) -> Workflow:
        """Give an alert to someone (``None``: to nobody); a no-op when nothing changes."""
        assignee = _clean_text(assignee)
        note = _clean_text(note)
        actor = _check_actor(actor)
        with self._write() as session:
            row = _locked_alert(session, alert_id)
            if row.assignee != assignee:
                changes = {"assignee": [row.assignee, assignee]}
                row.assignee = assignee
                self._record_workflow_change(session, row, HistoryKind.ASSIGNMENT, changes, actor, note)
            return Workflow(row.status, row.assignee, row.note)

    # --- API keys and users ----------------------------------------------

    def create_api_key(
        self,
        name: str,
        role: Role | str,
        *,
        provinces: Collection[str] | None = None,
        expires_at: datetime | date | None = None,
    ) -> tuple[str, str]:
        """A new API key as ``(key_id, key)``: show the key once, only its hash is kept.

        ``provinces`` limits what a (partner) key sees; ``expires_at`` (a date
        means 00:00 UTC that day) must be in the future.
        """
        with self._write() as session:
            return auth.create_api_key(session, name, role, self._clock(), provinces=provinces, expires_at=expires_at)

    def verify_api_key(self, key: str) -> Principal | None:
        """Who holds ``key``; None when it is malformed, unknown, revoked or expired (constant-time).

        Reads the key's row on every call (one primary-key lookup, no cache):
        a key revoked by any process stops working on its next request.
        """
        return auth.check_api_key(key, self._raw.api_key_record, self._clock())

    def revoke_api_key(self, key_id: str) -> None:
        """Revoke a key for good; :class:`ApiKeyNotFoundError` for an unknown id."""
        with self._write() as session:
            auth.revoke_api_key(session, key_id, self._clock())

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Every key (id, name, role, provinces, created/expires/revoked, active); never a secret or hash."""
        with self._read() as session:
            return auth.list_api_keys(session, self._clock())

    def create_user(self, username: str, password: str, role: Role | str) -> None:
        """A web user; the password is kept as a salted scrypt hash."""
        with self._write() as session:
            auth.create_user(session, username, password, role, self._clock())

    def set_password(self, username: str, password: str) -> None:
        """Give an existing user a new password (``geo-monitor serve --demo-user`` resets its demo login)."""
        with self._write(serialise=False) as session:
            auth.set_password(session, username, password)

    def verify_user(self, username: str, password: str) -> Principal | None:
        """The user's principal when the password matches; None otherwise."""
        with self._read() as session:
            return auth.verify_user(session, username, password)

    # --- webhooks ----------------------------------------------------------

    def create_subscription(
        self,
        owner_key_id: str,
        url: str,
        *,
        filters: AlertQuery | dict[str, Any] | None = None,
        event_types: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """Subscribe ``url`` to alert events matching ``filters`` (AlertQuery's filter fields).

        Returns the subscription with its signing ``secret`` (``whsec_...``):
        the only time it is returned. ``event_types``: some of
        ``outbox.EVENT_TYPES`` (None: all).
        """
        with self._write(serialise=False) as session:
            return outbox.create_subscription(
                session, owner_key_id, url, self._clock(), filters=filters, event_types=event_types
            )

    def list_subscriptions(self, owner: str | None) -> list[dict[str, Any]]:
        """The subscriptions of API key ``owner`` (None: all, for admins), without secrets."""
        with self._read() as session:
            return outbox.list_subscriptions(session, owner)

    def delete_subscription(self, subscription_id: str, owner: str | None) -> None:
        """Delete a subscription of ``owner`` (None: any) and its delivery log."""
        with self._write(serialise=False) as session:
            outbox.delete_subscription(session, subscription_id, owner)

    def deliveries(self, subscription_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """A subscription's delivery log, newest first: status, attempts, last error, response code."""
        with self._read() as session:
            return outbox.deliveries(session, subscription_id, limit)

    def claim_deliveries(self, policy: outbox.RetryPolicy, limit: int = 20) -> list[outbox.ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries for sending (see ``outbox.claim_due``)."""
        with self._write(serialise=False) as session:
            return outbox.claim_due(session, self._clock(), policy, limit)

    def record_delivery(
        self, delivery_id: str, policy: outbox.RetryPolicy, *, response_code: int | None, error: str | None
    ) -> str | None:
        """Record a send's outcome (``error`` None: delivered); returns the delivery's new status."""
        with self._write(serialise=False) as session:
            return outbox.record_outcome(
                session, delivery_id, self._clock(), policy, response_code=response_code, error=error
            )

    # --- detection runs --------------------------------------------------

    def start_run(
        self,
        pipeline: str,
        pipeline_version: str,
        parameters: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record a pipeline run as ``running`` and return its id (a new UUID unless given)."""
        run_id = check_alert_id(run_id) if run_id is not None else uuid.uuid4().hex
        with self._write() as session:
            if session.get(DetectionRunRow, run_id) is not None:
                raise InvalidInputError(f"detection run {run_id!r} already exists")
            session.add(
                DetectionRunRow(
                    id=run_id,
                    started_at=self._clock(),
                    pipeline=_check_actor(pipeline),
                    pipeline_version=_check_actor(pipeline_version),
                    parameters=json_ready(dict(parameters or {}), "parameters"),
                    status=RunStatus.RUNNING,
                )
            )
        return run_id

    def finish_run(self, run_id: str, status: RunStatus | str, summary: Mapping[str, Any] | None = None) -> None:
        """Close a running run as ``succeeded`` or ``failed`` with its summary."""
        final = coerce_enum(RunStatus, status, "run status")
        if final is RunStatus.RUNNING:
            raise InvalidInputError("a run finishes as succeeded or failed, not running")
        with self._write() as session:
            row = self._run_row(session, run_id)
            if row.status is not RunStatus.RUNNING:
                raise InvalidInputError(f"detection run {run_id!r} already finished as {row.status.value}")
            row.status = final
            row.finished_at = self._clock()
            row.summary = json_ready(dict(summary or {}), "summary")

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self._read() as session:
            row = session.get(DetectionRunRow, run_id)
            return None if row is None else _run_dict(row)

    # --- internals -------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._reading.begin() as session:
            yield session

    @contextmanager
    def _write(self, *, serialise: bool = True) -> Iterator[Session]:
        """One write transaction: committed if the block ends normally, rolled back otherwise.

        On PostgreSQL it first takes :data:`ALERT_WRITE_LOCK` (released at
        commit), which serialises writers as SQLite's ``BEGIN IMMEDIATE`` does.
        Writes that never touch alerts (webhook delivery bookkeeping) pass
        ``serialise=False`` and rely on row locks alone.
        """
        with self._writing.begin() as session:
            if serialise and session.get_bind().dialect.name == "postgresql":
                session.execute(select(func.pg_advisory_xact_lock(ALERT_WRITE_LOCK)))
            yield session

    def _index_page(self, index: AlertIndex, query: AlertQuery) -> FeaturePage:
        """The page from the index, refreshed first: ids, count and texts all from one snapshot."""
        page = self._refresh_index(index).page(query)
        shown = min(len(page.ids), query.limit)
        if not shown:
            return FeaturePage(number_matched=page.number_matched)
        return FeaturePage(
            features=page.features[:shown],
            digests=page.digests[: shown * DIGEST_SIZE],
            number_matched=page.number_matched,
            last=(from_us(page.stamps_us[shown - 1]), page.ids[shown - 1]),
            more=len(page.ids) > query.limit,
        )

    def _refresh_index(self, index: AlertIndex) -> IndexSnapshot:
        """Bring the index up to date with one read of the rows stamped after its newest."""

        def refresh(connection: Any) -> IndexSnapshot:
            with index.lock:  # a retry on a new connection goes on from the batches already applied
                for rows, latest in self._raw.new_index_rows(connection, index.latest):
                    index.apply(rows, latest)
                return index.snapshot()

        return self._raw.read(refresh)

    def _write_time(self, session: Session) -> datetime:
        """Now, but strictly after every ``updated_at`` already stored.

        Keeps ``updated_at`` increasing across transactions even if the clock
        stalls or steps back, so "updated since my last poll" is trustworthy.
        Called inside the write transaction, which already holds the write
        lock on SQLite.
        """
        now = self._clock()
        with session.no_autoflush:  # pending changes go out once, with their updated_at
            latest = session.scalar(select(func.max(AlertRow.updated_at)))
        if latest is not None and now <= latest:
            now = latest + timedelta(microseconds=1)
        return now

    def _record_workflow_change(
        self,
        session: Session,
        row: AlertRow,
        kind: HistoryKind,
        changes: dict[str, Any],
        actor: str,
        note: str | None,
    ) -> datetime:
        now = self._write_time(session)
        row.updated_at = now
        render_feature(row)  # after the last change to the row, in this transaction
        session.add(AlertHistoryRow(alert_id=row.id, at=now, actor=actor, kind=kind, changes=changes, note=note))
        return now

    @staticmethod
    def _run_row(session: Session, run_id: str) -> DetectionRunRow:
        row = session.get(DetectionRunRow, run_id)
        if row is None:
            raise InvalidInputError(f"no detection run {run_id!r}; start it with start_run first")
        return row


# --- helpers (module level: pure or session-only) -----------------------------


def _upsert_one(
    session: Session,
    alert_id: str,
    values: dict[str, Any],
    row: AlertRow | None,
    now: datetime,
    actor: str,
    run_id: str | None,
) -> tuple[str, outbox.Event | None]:
    """Insert or update one alert's detection ``values``: ("new" | "updated" | "unchanged", its webhook event)."""
    changes = diff_detection(None if row is None else row_values(row), values)
    if row is None:
        row = AlertRow(id=alert_id, status=Status.NEW, created_at=now, updated_at=now, **values)
        session.add(row)
        outcome, event_type = "new", "alert.created"
    elif is_update(changes):
        for field, value in values.items():
            setattr(row, field, value)
        row.updated_at = now
        outcome, event_type = "updated", "alert.updated"
    else:
        return "unchanged", None
    render_feature(row)
    session.add(
        AlertHistoryRow(
            alert_id=alert_id, at=now, actor=actor, kind=HistoryKind.DETECTION, changes=changes, run_id=run_id
        )
    )
    return outcome, outbox.Event(event_type, row, changes)


def render_feature(row: AlertRow) -> None:
    """Write the row's feature text from its current values (call after its last change, before commit)."""
    row.feature = feature_text(stored_alert(row))


def rewrite_features(session: Session, batch: int = 1000) -> int:
    """Render every alert's feature text again in ``session``'s transaction; returns how many.

    Loads only :data:`RENDERED_COLUMNS` (so migration 0004 can call it on a
    schema that later revisions extend), a batch at a time in id order.
    """
    done, last = 0, None
    columns = [getattr(AlertRow, name) for name in RENDERED_COLUMNS]
    while True:
        stmt = select(AlertRow).options(load_only(*columns)).order_by(AlertRow.id).limit(batch)
        if last is not None:
            stmt = stmt.where(AlertRow.id > last)
        rows = list(session.scalars(stmt))
        for row in rows:
            render_feature(row)
        session.flush()
        session.expunge_all()
        done += len(rows)
        if len(rows) < batch:
            return done
        last = rows[-1].id


def _rows_by_id(session: Session, ids: set[str]) -> dict[str, AlertRow]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(AlertRow).where(AlertRow.id.in_(ids)))}


def _check_unique(alert_id: str, seen: set[str]) -> None:
    if alert_id in seen:
        raise InvalidInputError(f"alert {alert_id!r} appears twice in one batch")
    seen.add(alert_id)


def _locked_alert(session: Session, alert_id: str) -> AlertRow:
    """The alert row, locked for this transaction on back-ends with row locks."""
    row = session.get(AlertRow, alert_id, with_for_update=True)
    if row is None:
        raise AlertNotFoundError(f"no alert with id {alert_id!r}")
    return row


def _check_transition(current: Status, target: Status) -> None:
    allowed = STATUS_TRANSITIONS[current]
    if target in allowed:
        return
    if not allowed:
        raise InvalidInputError(f"an alert that is {current.value} cannot change status any more")
    choices = " or ".join(sorted(s.value for s in allowed))
    raise InvalidInputError(f"an alert that is {current.value} can move to {choices}, not {target.value}")


def _check_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidInputError("actor must name who or what makes the change, e.g. 'pipeline:mining-change@1'")
    return actor.strip()


def _clean_text(text: str | None) -> str | None:
    """Blank text counts as none: a whitespace note does not explain a dismissal."""
    if text is None:
        return None
    return text.strip() or None


def _chunks(items: Iterable[Alert], size: int) -> Iterator[list[Alert]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _history_dict(row: AlertHistoryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "alert_id": row.alert_id,
        "at": row.at,
        "actor": row.actor,
        "kind": row.kind.value,
        "changes": row.changes,
        "note": row.note,
        "run_id": row.run_id,
    }


def _run_dict(row: DetectionRunRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "pipeline": row.pipeline,
        "pipeline_version": row.pipeline_version,
        "parameters": row.parameters,
        "status": row.status.value,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "summary": row.summary,
    }
