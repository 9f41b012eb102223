"""The line between a running job and the queue: heartbeats, progress, and the reasons to stop.

A :class:`JobControl` renews the job's lease from a background thread and
carries the latest progress there; it raises :class:`JobAborted` in the
job's own thread (from :meth:`JobControl.check`, called between Dask waits
and at every pipeline progress step) as soon as one of three things happens:
a person asked to cancel, the lease was lost (another worker owns the job
now), or the worker is stopping (SIGTERM).
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from geo_monitor.store.jobs import Claim, JobQueue

log = logging.getLogger(__name__)

CANCELLED: Final[str] = "cancelled"
LEASE_LOST: Final[str] = "lease lost"
STOPPING: Final[str] = "worker stopping"


class JobAborted(Exception):
    """The job must stop now; ``why`` is :data:`CANCELLED`, :data:`LEASE_LOST` or :data:`STOPPING`.

    Deliberately not an OSError/RuntimeError: the pipeline retries those, and this must get through.
    """

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class JobControl:
    """Heartbeats for one claimed job, and the flags its work checks."""

    def __init__(self, queue: JobQueue, claim: Claim, interval_s: float, stopping: threading.Event) -> None:
        self.queue = queue
        self.claim = claim
        self.interval_s = interval_s
        self.stopping = stopping
        self.cancelled = threading.Event()
        self.lease_lost = threading.Event()
        self._progress = 0
        self._message: str | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat_until_done, name=f"heartbeat-{claim.job.id[:8]}", daemon=True)

    @property
    def job_id(self) -> str:
        return self.claim.job.id

    def __enter__(self) -> JobControl:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=30)

    def report(self, progress: int, message: str | None = None) -> None:
        """Record progress (0-100, never going back within an attempt) and a message; sent with the next heartbeat."""
        with self._lock:
            self._progress = max(self._progress, min(100, max(0, int(progress))))
            if message is not None:
                self._message = message

    def check(self) -> None:
        """Raise :class:`JobAborted` if the job must stop."""
        if self.lease_lost.is_set():
            raise JobAborted(LEASE_LOST)
        if self.cancelled.is_set():
            raise JobAborted(CANCELLED)
        if self.stopping.is_set():
            raise JobAborted(STOPPING)

    def should_stop(self) -> bool:
        return self.lease_lost.is_set() or self.cancelled.is_set() or self.stopping.is_set()

    def beat(self) -> None:
        """One heartbeat now: renew the lease, send progress, learn about cancel requests and lost leases."""
        with self._lock:
            progress, message = self._progress, self._message
        try:
            answer = self.queue.heartbeat(self.job_id, self.claim.token, progress, message)
        except SQLAlchemyError as exc:  # the database is briefly away: the lease has slack, try again next beat
            log.warning("heartbeat failed", extra={"job": self.job_id, "error": str(exc).splitlines()[0]})
            return
        if answer.cancel_requested:
            self.cancelled.set()
        if answer.lease_lost:
            self.lease_lost.set()

    def _beat_until_done(self) -> None:
        while not self._done.wait(self.interval_s):
            self.beat()
