"""The job queue: reprocessing jobs kept in the store, claimed by workers under leases.

No broker: the queue is two tables (``jobs``, ``job_logs``) in the same
database as the alerts, so the embedded default needs nothing else and a job
survives any restart of the web server or the workers.

- **Claims are atomic.** PostgreSQL picks due rows with ``FOR UPDATE SKIP
  LOCKED`` (workers never wait for, nor take, a row another worker is
  claiming); SQLite's ``BEGIN IMMEDIATE`` serialises claims.
- **A running job is leased.** The claim returns a token and a lease end;
  the worker renews it with :meth:`JobQueue.heartbeat`. Once it has expired,
  the next claim takes the job over with a new token, and the old token is
  refused everywhere (:class:`LeaseLostError`): a stale worker's late
  completion cannot overwrite the new worker's.
- **Failures retry** after ``backoff_s × 2^(attempt-1)`` (capped, with a
  little jitter) until ``max_attempts``; then the job stays ``failed`` with
  the reason. A release (a worker stopping on SIGTERM) gives the attempt back.
- **Cancelling** an accepted job dismisses it at once; a running job gets a
  cancel request its worker sees at the next heartbeat, and the worker
  stops its work and marks it ``dismissed``.
- **Scopes.** A job may name a scope (what it writes: the change state of
  one area and window); a job is not claimed while another job of the same
  scope holds a live lease, so two jobs never write one state at once.
- **Idempotency.** The same idempotency key from the same user returns the
  first job instead of queuing another.

Times come from the caller's clock (hosts running workers must keep their
clocks in sync, as NTP does; leases are tens of seconds).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Self

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from geo_monitor.errors import GeoMonitorError, InvalidInputError
from geo_monitor.store.engine import make_engine, writer
from geo_monitor.store.records import coerce_enum, json_ready
from geo_monitor.store.schema import FINAL_JOB_STATES, JobKind, JobLogRow, JobRow, JobState

#: Longest error / message text kept per job.
TEXT_LENGTH = 2000
#: Longest idempotency key accepted (as the IETF Idempotency-Key draft suggests: a UUID fits easily).
KEY_LENGTH = 255
#: Due rows looked at per claim (expired ones may be settled on the way).
CLAIM_BATCH = 20
#: Log levels of job log lines.
LEVELS = ("debug", "info", "warning", "error")


class JobNotFoundError(InvalidInputError, LookupError):
    """No job has that id."""


class JobConflictError(InvalidInputError):
    """The request does not fit the job's state (cancelling a finished job, reusing a key for other inputs)."""


class LeaseLostError(GeoMonitorError):
    """The caller's lease token is no longer the job's: it expired and another worker took over, or the job ended."""


@dataclass(frozen=True)
class JobPolicy:
    """Leases and retries (settings ``job_*``)."""

    lease_s: float = 60.0
    max_attempts: int = 3
    backoff_s: float = 30.0
    backoff_max_s: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Any) -> JobPolicy:
        return cls(lease_s=settings.job_lease_s, max_attempts=settings.job_max_attempts,
                   backoff_s=settings.job_backoff_s, backoff_max_s=settings.job_backoff_max_s)

    def delay(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """Wait after ``attempts`` failed tries: cap = backoff × 2^(attempts-1), then a random 75-100 % of it.

        The jitter keeps jobs that failed together (an outage) from retrying in
        lockstep, and is small enough that each gap is still longer than the last.
        """
        cap = min(self.backoff_max_s, self.backoff_s * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=cap * (rng or random).uniform(0.75, 1.0))


@dataclass(frozen=True)
class Job:
    """A job as the queue shows it (never the lease token)."""

    id: str
    kind: str
    parameters: dict[str, Any]
    state: str
    progress: int
    message: str | None
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    requested_by: str
    idempotency_key: str | None
    scope: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    result: dict[str, Any] | None
    error: str | None

    @property
    def finished(self) -> bool:
        return JobState(self.state) in FINAL_JOB_STATES

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Claim:
    """A job a worker now holds: the token proves it on every later call."""

    job: Job
    token: str
    lease_expires_at: datetime

    @property
    def attempt(self) -> int:
        return self.job.attempts


@dataclass(frozen=True)
class Heartbeat:
    """What a heartbeat tells the worker: stop because of a cancel request, or because the job is not its any more."""

    cancel_requested: bool
    lease_lost: bool
    lease_expires_at: datetime | None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class JobQueue:
    """Reprocessing jobs in one SQL database (the alert store's); safe for several processes and hosts."""

    def __init__(self, engine: Engine, policy: JobPolicy | None = None, *,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.engine = engine
        self.policy = policy or JobPolicy()
        self._clock = clock
        self._reading = sessionmaker(engine, expire_on_commit=False)
        self._writing = sessionmaker(writer(engine), expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, policy: JobPolicy | None = None, **kwargs: Any) -> Self:
        return cls(make_engine(url), policy, **kwargs)

    @classmethod
    def from_store(cls, store: Any, policy: JobPolicy | None = None, **kwargs: Any) -> Self:
        """A queue on an :class:`~geo_monitor.store.AlertStore`'s database (same engine and pool)."""
        return cls(store.engine, policy, **kwargs)

    # --- asking for work -----------------------------------------------------------

    def submit(self, kind: JobKind | str, parameters: Mapping[str, Any], user: str, *,
               idempotency_key: str | None = None, scope: str | None = None,
               max_attempts: int | None = None) -> Job:
        """Queue a job as ``accepted``; the same ``idempotency_key`` from ``user`` returns the first job.

        ``parameters`` must already be validated for ``kind`` (``geo_monitor.jobs.params``);
        here they are only required to be JSON. Reusing a key for a different
        kind or different parameters is a :class:`JobConflictError`.
        """
        job_kind = coerce_enum(JobKind, kind, "job kind")
        params = json_ready(dict(parameters), "parameters")
        user = _check_name(user, "user")
        key = _check_key(idempotency_key)
        attempts = self.policy.max_attempts if max_attempts is None else max_attempts
        if not isinstance(attempts, int) or attempts < 1:
            raise InvalidInputError(f"max_attempts must be a positive integer; got {max_attempts!r}")
        try:
            with self._write() as session:
                if key is not None and (row := _by_key(session, user, key)) is not None:
                    return _same_request(row, job_kind, params)
                now = self._clock()
                row = JobRow(id=uuid.uuid4().hex, kind=job_kind, parameters=params, state=JobState.ACCEPTED,
                             progress=0, message="waiting for a worker", attempts=0, max_attempts=attempts,
                             next_attempt_at=now, scope=scope, idempotency_key=key, requested_by=user,
                             created_at=now, updated_at=now)
                session.add(row)
                _log(session, row.id, now, "info", f"submitted by {user}")
                return _job(row)
        except IntegrityError:
            # The same key submitted at the same moment by another request (PostgreSQL): that one won.
            with self._read() as session:
                row = _by_key(session, user, key) if key is not None else None
                if row is None:
                    raise
                return _same_request(row, job_kind, params)

    def cancel(self, job_id: str, user: str) -> Job:
        """Dismiss an accepted job now; ask a running one to stop (its worker dismisses it).

        Cancelling a dismissed job again changes nothing; a successful or failed
        job cannot be cancelled (:class:`JobConflictError`).
        """
        user = _check_name(user, "user")
        with self._write() as session:
            row = _locked(session, job_id)
            now = self._clock()
            if row.state is JobState.DISMISSED:
                return _job(row)
            if row.state in FINAL_JOB_STATES:
                raise JobConflictError(f"job {job_id} is already {row.state.value}; there is nothing to cancel")
            if row.cancel_requested_at is None:
                row.cancel_requested_at, row.cancel_requested_by = now, user
            if row.state is JobState.ACCEPTED or (row.lease_expires_at is not None and row.lease_expires_at <= now):
                # Nobody is working on it (or its worker is gone): dismissed at once.
                _finish(session, row, now, JobState.DISMISSED, f"cancelled by {user}")
            else:
                row.message, row.updated_at = f"cancel requested by {user}", now
                _log(session, row.id, now, "info", f"cancel requested by {user}; waiting for {row.lease_owner} to stop")
            return _job(row)

    # --- doing the work (workers) --------------------------------------------------

    def claim(self, worker_id: str, lease_s: float | None = None) -> Claim | None:
        """Lease the oldest due job to ``worker_id`` (None when nothing is due).

        Due: accepted jobs whose ``next_attempt_at`` has come, and running jobs
        whose lease expired (their worker died or hung). An expired job is
        dismissed if a cancel was asked for, failed if it had used its last
        attempt, else taken over. A job waits while another of its scope runs.
        """
        worker_id = _check_name(worker_id, "worker id")
        lease = timedelta(seconds=self.policy.lease_s if lease_s is None else lease_s)
        with self._write() as session:
            now = self._clock()
            for row in session.scalars(_due(now, session.get_bind().dialect.name == "postgresql")).all():
                if row.state is JobState.RUNNING and not _settle_expired(session, row, now):
                    continue
                if row.scope is not None and not _scope_free(session, row, now):
                    continue
                return _take(session, row, worker_id, now, lease)
        return None

    def heartbeat(self, job_id: str, token: str, progress: int | None = None, message: str | None = None,
                  lease_s: float | None = None) -> Heartbeat:
        """Renew the lease and record progress (0-100) and a message; say whether to stop.

        Never raises for a lost lease: the answer says so (``lease_lost``), so a
        heartbeat thread can tell the worker to stop.
        """
        if progress is not None and (isinstance(progress, bool) or not isinstance(progress, int)
                                     or not 0 <= progress <= 100):
            raise InvalidInputError(f"progress must be an integer 0..100; got {progress!r}")
        with self._write() as session:
            row = _locked(session, job_id)
            cancel = row.cancel_requested_at is not None
            if row.state is not JobState.RUNNING or row.lease_token != token:
                return Heartbeat(cancel, True, None)
            now = self._clock()
            row.lease_expires_at = now + timedelta(seconds=self.policy.lease_s if lease_s is None else lease_s)
            row.updated_at = now
            if progress is not None:
                row.progress = progress
            if message is not None and message != row.message and not cancel:
                row.message = _clip(message)
                _log(session, row.id, now, "info", row.message)
            return Heartbeat(cancel, False, row.lease_expires_at)

    def complete(self, job_id: str, token: str, summary: Mapping[str, Any]) -> Job:
        """Finish a held job as ``successful`` with its summary; :class:`LeaseLostError` if not held."""
        result = json_ready(dict(summary), "summary")
        with self._write() as session:
            row = _held(session, job_id, token)
            now = self._clock()
            row.result, row.progress, row.error = result, 100, None
            late = " (a cancel request came too late: the work was done)" if row.cancel_requested_at else ""
            _finish(session, row, now, JobState.SUCCESSFUL, f"successful on attempt {row.attempts}{late}")
            return _job(row)

    def fail(self, job_id: str, token: str, reason: str, *, retry: bool = True) -> Job:
        """Record a failed attempt: retried after a backoff while attempts remain (and ``retry``), else ``failed``."""
        reason = _clip(str(reason).strip() or "unknown error")
        with self._write() as session:
            row = _held(session, job_id, token)
            now = self._clock()
            row.error = reason
            if row.cancel_requested_at is not None:
                _finish(session, row, now, JobState.DISMISSED, f"stopped after a cancel request ({reason})")
            elif retry and row.attempts < row.max_attempts:
                wait = self.policy.delay(row.attempts)
                _requeue(row, now, now + wait, f"attempt {row.attempts} failed; retry in {wait.total_seconds():.1f} s")
                _log(session, row.id, now, "warning",
                     f"attempt {row.attempts} of {row.max_attempts} failed: {reason}; retry at {row.next_attempt_at.isoformat()}")
            else:
                why = "(not retried)" if not retry else f"after {row.attempts} attempt(s)"
                _finish(session, row, now, JobState.FAILED, f"failed {why}: {reason}", level="error")
            return _job(row)

    def dismiss(self, job_id: str, token: str, note: str = "stopped after a cancel request") -> Job:
        """A worker's acknowledgement that it stopped a job whose cancel was requested."""
        with self._write() as session:
            row = _held(session, job_id, token)
            _finish(session, row, self._clock(), JobState.DISMISSED, _clip(note))
            return _job(row)

    def release(self, job_id: str, token: str, reason: str = "worker stopping") -> Job:
        """Give a held job back (``accepted``, due now, the attempt not counted): a worker shutting down."""
        with self._write() as session:
            row = _held(session, job_id, token)
            now = self._clock()
            if row.cancel_requested_at is not None:
                _finish(session, row, now, JobState.DISMISSED, f"stopped after a cancel request ({reason})")
            else:
                row.attempts -= 1
                _requeue(row, now, now, f"released: {reason}")
                _log(session, row.id, now, "info", f"released by {row.lease_owner}: {reason}")
            return _job(row)

    def log(self, job_id: str, message: str, level: str = "info") -> None:
        """Add a line to a job's log."""
        if level not in LEVELS:
            raise InvalidInputError(f"level must be one of {', '.join(LEVELS)}; got {level!r}")
        with self._write() as session:
            _locked(session, job_id)
            _log(session, job_id, self._clock(), level, _clip(message))

    # --- reading -------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        with self._read() as session:
            row = session.get(JobRow, job_id) if isinstance(job_id, str) else None
            return None if row is None else _job(row)

    def list(self, *, requested_by: str | None = None, states: Collection[JobState | str] | None = None,
             limit: int = 100) -> list[Job]:
        """Jobs, newest first; optionally only one user's, or only some states."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInputError(f"limit must be an integer 1..1000; got {limit!r}")
        stmt = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
        if requested_by is not None:
            stmt = stmt.where(JobRow.requested_by == requested_by)
        if states is not None:
            stmt = stmt.where(JobRow.state.in_([coerce_enum(JobState, s, "state") for s in states]))
        with self._read() as session:
            return [_job(row) for row in session.scalars(stmt)]

    def logs(self, job_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """A job's log, oldest first: at, level, message."""
        stmt = (select(JobLogRow).where(JobLogRow.job_id == job_id)
                .order_by(JobLogRow.at, JobLogRow.id).limit(limit))
        with self._read() as session:
            return [{"at": r.at, "level": r.level, "message": r.message} for r in session.scalars(stmt)]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        with self._read() as session:
            rows = session.execute(select(JobRow.state, func.count()).group_by(JobRow.state))
            found = {state.value: int(n) for state, n in rows}
        return {state.value: found.get(state.value, 0) for state in JobState}

    # --- internals -----------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._reading.begin() as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        # Row locks suffice on PostgreSQL (no alert-writer advisory lock: the queue never touches alerts).
        with self._writing.begin() as session:
            yield session


# --- helpers (session-level) ------------------------------------------------------------


def _due(now: datetime, postgresql: bool) -> Any:
    stmt = (
        select(JobRow)
        .where(or_(and_(JobRow.state == JobState.ACCEPTED, JobRow.next_attempt_at <= now),
                   and_(JobRow.state == JobState.RUNNING, JobRow.lease_expires_at <= now)))
        .order_by(JobRow.created_at, JobRow.id)
        .limit(CLAIM_BATCH)
    )
    # Rows other workers are claiming (or a person is cancelling) right now are skipped, not waited for.
    return stmt.with_for_update(skip_locked=True) if postgresql else stmt


def _settle_expired(session: Session, row: JobRow, now: datetime) -> bool:
    """A running job whose lease ran out: dismiss or fail it, or say it may be taken over (True)."""
    owner = row.lease_owner
    if row.cancel_requested_at is not None:
        _finish(session, row, now, JobState.DISMISSED, f"lease of {owner} expired after a cancel request")
        return False
    if row.attempts >= row.max_attempts:
        row.error = f"worker {owner} stopped answering (lease expired) on the last attempt"
        _finish(session, row, now, JobState.FAILED, f"failed after {row.attempts} attempt(s): {row.error}",
                level="error")
        return False
    _log(session, row.id, now, "warning", f"lease of {owner} expired (attempt {row.attempts}); taking the job over")
    return True


def _scope_free(session: Session, row: JobRow, now: datetime) -> bool:
    """No other job of ``row``'s scope holds a live lease (and, on PostgreSQL, none is being claimed now)."""
    if session.get_bind().dialect.name == "postgresql":
        # Claimers of one scope queue here; a claimer that cannot get it at once skips the job (no deadlock).
        # The check below runs after the lock, so it sees a rival claim committed meanwhile.
        if not session.scalar(select(func.pg_try_advisory_xact_lock(_scope_lock_key(row.scope or "")))):
            return False
    rival = session.scalar(
        select(JobRow.id).where(JobRow.scope == row.scope, JobRow.id != row.id, JobRow.state == JobState.RUNNING,
                                JobRow.lease_expires_at > now).limit(1)
    )
    return rival is None


def _scope_lock_key(scope: str) -> int:
    """A signed 64-bit advisory lock key for a scope."""
    return int.from_bytes(hashlib.sha256(b"gm-job-scope:" + scope.encode()).digest()[:8], "big", signed=True)


def _take(session: Session, row: JobRow, worker_id: str, now: datetime, lease: timedelta) -> Claim:
    token = uuid.uuid4().hex
    row.state = JobState.RUNNING
    row.attempts += 1
    row.lease_owner, row.lease_token, row.lease_expires_at = worker_id, token, now + lease
    row.started_at = row.started_at or now
    row.progress, row.message, row.updated_at = 0, f"running on {worker_id}", now
    _log(session, row.id, now, "info", f"attempt {row.attempts} of {row.max_attempts} started by {worker_id}")
    return Claim(_job(row), token, row.lease_expires_at)


def _requeue(row: JobRow, now: datetime, due: datetime, message: str) -> None:
    row.state, row.next_attempt_at = JobState.ACCEPTED, due
    row.lease_token = row.lease_expires_at = None
    row.progress, row.message, row.updated_at = 0, message, now


def _finish(session: Session, row: JobRow, now: datetime, state: JobState, message: str, level: str = "info") -> None:
    row.state, row.finished_at, row.updated_at = state, now, now
    row.lease_token = row.lease_expires_at = None
    row.message = _clip(message)
    _log(session, row.id, now, level, row.message)


def _held(session: Session, job_id: str, token: str) -> JobRow:
    """The job row, locked, if ``token`` is its current lease; else :class:`LeaseLostError`."""
    row = _locked(session, job_id)
    if row.state is not JobState.RUNNING or not isinstance(token, str) or row.lease_token != token:
        now_held = f"held by {row.lease_owner}" if row.state is JobState.RUNNING else row.state.value
        raise LeaseLostError(f"job {job_id}: this worker's lease is no longer current (the job is {now_held})")
    return row


def _locked(session: Session, job_id: str) -> JobRow:
    row = session.get(JobRow, job_id, with_for_update=True) if isinstance(job_id, str) else None
    if row is None:
        raise JobNotFoundError(f"no job with id {job_id!r}")
    return row


def _by_key(session: Session, user: str, key: str) -> JobRow | None:
    return session.scalar(select(JobRow).where(JobRow.requested_by == user, JobRow.idempotency_key == key))


def _same_request(row: JobRow, kind: JobKind, params: dict[str, Any]) -> Job:
    if row.kind is not kind or row.parameters != params:
        raise JobConflictError(
            f"idempotency key {row.idempotency_key!r} was already used for job {row.id} with other inputs; "
            "use a new key for a new request"
        )
    return _job(row)


def _log(session: Session, job_id: str, at: datetime, level: str, message: str) -> None:
    session.add(JobLogRow(job_id=job_id, at=at, level=level, message=message))


def _job(row: JobRow) -> Job:
    return Job(
        id=row.id, kind=row.kind.value, parameters=dict(row.parameters), state=row.state.value,
        progress=row.progress, message=row.message, attempts=row.attempts, max_attempts=row.max_attempts,
        next_attempt_at=row.next_attempt_at, lease_owner=row.lease_owner, lease_expires_at=row.lease_expires_at,
        cancel_requested=row.cancel_requested_at is not None, requested_by=row.requested_by,
        idempotency_key=row.idempotency_key, scope=row.scope, created_at=row.created_at,
        started_at=row.started_at, finished_at=row.finished_at, updated_at=row.updated_at,
        result=None if row.result is None else dict(row.result), error=row.error,
    )


def _check_name(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise InvalidInputError(f"{name} must be a non-empty string of at most 200 characters; got {value!r}")
    return value.strip()


def _check_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > KEY_LENGTH or not key.isprintable():
        raise InvalidInputError(f"idempotency key must be 1..{KEY_LENGTH} printable characters")
    return key.strip()


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LENGTH else text[: TEXT_LENGTH - 1] + "…"


__all__ = [
    "Claim",
    "Heartbeat",
    "Job",
    "JobConflictError",
    "JobNotFoundError",
    "JobPolicy",
    "JobQueue",
    "LeaseLostError",
]
