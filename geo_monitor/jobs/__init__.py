"""Reprocessing jobs: checking requests (``params``), running them (``worker``, ``detect``).

The queue itself lives in the store (:mod:`geo_monitor.store.jobs`); this
package is what sits on either side of it: :func:`submit_job` checks a
request and queues it, a :class:`~geo_monitor.jobs.worker.Worker` claims and
runs jobs. Nothing here knows Flask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geo_monitor.jobs.params import DETECT_INPUTS, check_job
from geo_monitor.settings import Settings
from geo_monitor.store.jobs import Job, JobQueue

#: The processes a job can run, with their inputs described (the jobs API lists them).
PROCESSES: dict[str, dict[str, Any]] = {
    "detect": {
        "title": "Detect mining change over an area and window",
        "description": "Runs the mining-change pipeline (as 'geo-monitor detect') and writes its alerts to the store.",
        "inputs": DETECT_INPUTS,
    },
}


def submit_job(queue: JobQueue, settings: Settings, kind: str, inputs: Mapping[str, Any] | object, user: str,
               idempotency_key: str | None = None) -> Job:
    """Check ``inputs`` for process ``kind`` and queue the job (the same key from ``user``: the same job)."""
    checked = check_job(kind, inputs, settings)
    return queue.submit(checked.kind, checked.parameters, user, idempotency_key=idempotency_key,
                        scope=checked.scope)


__all__ = ["PROCESSES", "submit_job"]
