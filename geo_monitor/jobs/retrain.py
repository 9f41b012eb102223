"""The ``retrain`` job: the site-model training pipeline, writing a NEW model version with its card.

The shipped model (``models_dir/mining_score_v1.json``) is never touched: a
retrain writes ``<data_dir>/models/mining_score_<version>.json`` and its card
``.md`` next to it, the version naming the job (``logreg-1-<day>-<job id>``),
so a retried or taken-over attempt rewrites its own files and no other.
Detection keeps using the configured model until an operator points the
``model_file`` setting at the new file (``GEO_MONITOR_MODEL_FILE``).

The pipeline runs of the training areas go to the Dask cluster through the
same stoppable ``compute`` as a ``detect`` job, so a cancel or SIGTERM stops
their graphs; building a training area (the sample generator, its own worker
processes) is not interruptible, and a stop lands when it finishes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from geo_monitor.jobs.control import JobControl
from geo_monitor.jobs.detect import _stoppable_compute
from geo_monitor.jobs.params import check_retrain
from geo_monitor.settings import Settings
from geo_monitor.store.jobs import Job

#: Progress (percent) when every training area is done; the rest is fitting and writing.
AREAS_DONE = 90
MODELS_SUBDIR = "models"


def model_version(job: Job) -> str:
    """The new model's version: the training method's, the day the job was asked for, and the job."""
    from pipelines.train_mining_score import MODEL_VERSION

    return f"{MODEL_VERSION}-{job.created_at:%Y%m%d}-{job.id[:8]}"


class RetrainJobRunner:
    """Runs ``retrain`` jobs on the Dask client ``client()`` gives (shared with the detect runner)."""

    def __init__(self, settings: Settings, client: Callable[[], Any]) -> None:
        self.settings = settings
        self.client = client

    def __call__(self, job: Job, control: JobControl) -> dict[str, Any]:
        from pipelines.train_mining_score import train

        params = check_retrain(job.parameters, self.settings)  # the limits may have changed since submission
        version = model_version(job)
        out_dir = self.settings.resolved_data_dir / MODELS_SUBDIR
        work_dir = self.settings.resolved_data_dir / "training" / job.id
        client = self.client()
        control.check()
        tracker = _TrainingTracker(control)
        summary = train(out_dir, work_dir, params.seeds, self.settings.dask_workers, preset=params.preset,
                        version=version, model_file=f"mining_score_{version}.json",
                        compute=_stoppable_compute(client, control, tracker), progress=tracker.progress)
        control.report(100, "model written")
        shutil.rmtree(work_dir, ignore_errors=True)  # the training areas are scratch; the card describes them
        return {**summary, "in_use": False,
                "how_to_use": f"set GEO_MONITOR_MODEL_FILE={summary['model']} (setting model_file) and restart "
                              "the workers and the server"}


class _TrainingTracker:
    """Turns ``progress(area, areas, stage)`` and Dask shares into job progress; checks the flags at every step."""

    def __init__(self, control: JobControl) -> None:
        self.control = control
        self.index, self.total = 0, 1

    def progress(self, index: int, total: int, stage: str) -> None:
        self.index, self.total = index, max(total, 1)
        self.control.report(AREAS_DONE * index // self.total, stage)
        self.control.check()

    def fraction(self, share: float) -> None:
        # Within one area's Dask graph: up to half of that area's share (building it was the other half).
        self.control.report(int(AREAS_DONE * (self.index + 0.5 * share) / self.total))
