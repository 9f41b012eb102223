"""A job worker: claims jobs from the store's queue and runs them, one at a time.

Several workers may run at once, on one host or many (the queue's claims and
leases keep them apart). Each job runs under a :class:`JobControl` whose
heartbeat renews the lease; the outcome is recorded with the claim's token,
so a worker that lost its lease cannot overwrite the job's new owner:

- finished → ``complete`` (``successful`` with the summary);
- a person cancelled → the Dask work is cancelled, ``dismiss``;
- SIGTERM/SIGINT → the Dask work is cancelled and the job ``release``d for
  another worker (if it was already writing its alerts, it finishes first:
  that takes a moment, not minutes), then the worker exits;
- bad inputs (:class:`InvalidInputError`) → ``failed`` at once, not retried;
- anything else → ``fail``: retried with backoff until ``max_attempts``.

A worker killed outright (``kill -9``, a lost host) stops heartbeating; its
lease expires and another worker takes the job over.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from geo_monitor.errors import InvalidInputError
from geo_monitor.jobs.control import CANCELLED, LEASE_LOST, JobAborted, JobControl
from geo_monitor.store.jobs import Claim, Job, JobQueue, LeaseLostError

log = logging.getLogger(__name__)

#: A job runner: takes the job and its control, returns the summary to store.
Runner = Callable[[Job, JobControl], dict[str, Any]]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Claims and runs jobs until stopped (or, with ``once``, until nothing is due)."""

    def __init__(self, queue: JobQueue, runners: dict[str, Runner], *, worker_id: str | None = None,
                 poll_s: float = 2.0, heartbeat_s: float | None = None) -> None:
        self.queue = queue
        self.runners = runners
        self.worker_id = worker_id or default_worker_id()
        self.poll_s = poll_s
        # Three or four heartbeats per lease: one lost beat (a busy database) does not lose the job.
        self.heartbeat_s = heartbeat_s or max(0.2, queue.policy.lease_s / 4)
        self.stopping = threading.Event()

    def stop(self, *_signal: Any) -> None:
        """Ask the worker to stop: the current job is released (or finished if nearly done), then it exits."""
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the worker cleanly instead of killing it mid-job."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stop)

    def run(self, once: bool = False) -> int:
        """Run jobs until :meth:`stop` (``once``: until none is due); return how many were run."""
        ran = 0
        log.info("job worker started", extra={"worker": self.worker_id, "kinds": sorted(self.runners)})
        while not self.stopping.is_set():
            try:
                claim = self.queue.claim(self.worker_id)
            except SQLAlchemyError as exc:  # the database restarting: wait and try again
                log.warning("cannot claim a job", extra={"worker": self.worker_id, "error": _first_line(exc)})
                self.stopping.wait(self.poll_s)
                continue
            if claim is None:
                if once:
                    break
                self.stopping.wait(self.poll_s)
                continue
            self.run_claimed(claim)
            ran += 1
        log.info("job worker stopped", extra={"worker": self.worker_id, "jobs": ran})
        return ran

    def run_claimed(self, claim: Claim) -> None:
        """Run one claimed job and record how it ended (never raises for the job's own failures)."""
        job = claim.job
        log.info("job started", extra={"job": job.id, "kind": job.kind, "attempt": claim.attempt, "worker": self.worker_id})
        runner = self.runners.get(job.kind)
        with JobControl(self.queue, claim, self.heartbeat_s, self.stopping) as control:
            try:
                if runner is None:
                    raise InvalidInputError(f"this worker cannot run {job.kind!r} jobs")
                summary = runner(job, control)
            except JobAborted as stop:
                self._record(self._aborted, claim, stop.why)
            except InvalidInputError as exc:
                self._record(self.queue.fail, job.id, claim.token, str(exc), retry=False)
            except Exception as exc:  # the job's failure, not the worker's: record it and go on
                log.warning("job attempt failed", extra={"job": job.id, "error": _first_line(exc),
                                                          "traceback": traceback.format_exc(limit=8)})
                self._record(self.queue.fail, job.id, claim.token, f"{type(exc).__name__}: {exc}")
            else:
                self._record(self.queue.complete, job.id, claim.token, summary)

    def _aborted(self, claim: Claim, why: str) -> None:
        if why == LEASE_LOST:
            log.warning("job lease lost; another worker owns it now", extra={"job": claim.job.id})
        elif why == CANCELLED:
            self.queue.dismiss(claim.job.id, claim.token, f"stopped by {self.worker_id} after a cancel request")
        else:
            self.queue.release(claim.job.id, claim.token, f"{self.worker_id} stopping")

    def _record(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Record an outcome; a lost lease means another worker owns the job now, which is no error of ours."""
        try:
            action(*args, **kwargs)
        except LeaseLostError as exc:
            log.warning("outcome not recorded: lease lost", extra={"error": str(exc)})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
