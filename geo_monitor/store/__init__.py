"""The alert store: alerts, their history and the detection runs that wrote them.

SQLAlchemy 2 on SQLite (the embedded default, tuned for several processes) or
PostgreSQL. ``schema`` holds the tables (``Base.metadata`` is what Alembic
will migrate), ``engine`` the back-end tuning, ``records`` the Alert <-> row
conversion and change diff, ``query`` the typed filters and paging the API
reads with, ``features`` the one GeoJSON rendering of an alert (stored with
each row), ``alert_store`` the transactions, ``jobs`` the reprocessing job queue.
"""

from geo_monitor.store.alert_store import AlertNotFoundError, AlertStore, UpsertResult, Workflow
from geo_monitor.store.auth import ApiKeyNotFoundError, Principal, Role
from geo_monitor.store.engine import BUSY_TIMEOUT_MS, make_engine
from geo_monitor.store.jobs import Claim, Heartbeat, Job, JobConflictError, JobNotFoundError, JobPolicy, JobQueue, LeaseLostError
from geo_monitor.store.query import MAX_LIMIT, AlertPage, AlertQuery, FeaturePage, StoredAlert, StoredFeature
from geo_monitor.store.schema import (
    AlertHistoryRow,
    AlertRow,
    Base,
    DetectionRunRow,
    HistoryKind,
    JobKind,
    JobState,
    RunStatus,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MAX_LIMIT",
    "AlertPage",
    "AlertQuery",
    "StoredAlert",
    "FeaturePage",
    "StoredFeature",
    "AlertHistoryRow",
    "ApiKeyNotFoundError",
    "Principal",
    "Role",
    "AlertNotFoundError",
    "Claim",
    "Heartbeat",
    "Job",
    "JobConflictError",
    "JobKind",
    "JobNotFoundError",
    "JobPolicy",
    "JobQueue",
    "JobState",
    "LeaseLostError",
    "AlertRow",
    "AlertStore",
    "Base",
    "DetectionRunRow",
    "HistoryKind",
    "RunStatus",
    "UpsertResult",
    "Workflow",
    "make_engine",
]
