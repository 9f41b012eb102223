"""Reprocessing jobs: checking requests (``params``), running them (``worker``, ``detect``).

The queue itself lives in the store (:mod:`geo_monitor.store.jobs`); this
package is what sits on either side of it: :func:`submit_job` checks a
request and queues it, a :class:`~geo_monitor.jobs.worker.Worker` claims and
runs jobs. Nothing here knows Flask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geo_monitor.jobs.params import DETECT_INPUTS, RETRAIN_INPUTS, check_job
from geo_monitor.settings import Settings
from geo_monitor.store.jobs import Job, JobQueue

#: The processes a job can run, with their inputs described (the jobs API lists them).
PROCESSES: dict[str, dict[str, Any]] = {
    "detect": {
        "title": "Detect mining change over an area and window",
        "description": "Runs the mining-change pipeline (as 'geo-monitor detect') and writes its alerts to the store.",
        "inputs": DETECT_INPUTS,
        "required": ("bbox", "start", "end"),
        "outputs": "alerts new / updated / unchanged (ids), scenes applied and skipped, sites found, state version",
    },
    "replay": {
        "title": "Replay the change state of an area and window from its baseline",
        "description": "Rebuilds the change state from the stored baseline by folding every monitoring scene again "
                       "from zero (a new state version, made current atomically), then writes the alerts as "
                       "'detect' does (same stable ids). Same inputs as 'detect'.",
        "inputs": DETECT_INPUTS,
        "required": ("bbox", "start", "end"),
        "outputs": "as detect's, with replayed: true",
    },
    "retrain": {
        "title": "Retrain the site model on SYNTHETIC sample areas",
        "description": "Runs the training pipeline and writes a NEW model version with its model card under "
                       "data_dir/models/ (the shipped model is never overwritten). Detection keeps its configured "
                       "model until the model_file setting points at the new one.",
        "inputs": RETRAIN_INPUTS,
        "required": (),
        "outputs": "the model and card paths, its version, seeds, preset, and leave-one-area-out accuracy, "
                   "precision and recall",
    },
}


def submit_job(queue: JobQueue, settings: Settings, kind: str, inputs: Mapping[str, Any] | object, user: str,
               idempotency_key: str | None = None) -> Job:
    """Check ``inputs`` for process ``kind`` and queue the job (the same key from ``user``: the same job)."""
    checked = check_job(kind, inputs, settings)
    return queue.submit(checked.kind, checked.parameters, user, idempotency_key=idempotency_key,
                        scope=checked.scope)


__all__ = ["PROCESSES", "submit_job"]
