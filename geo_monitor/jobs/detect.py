"""The ``detect`` and ``replay`` jobs: the mining-change pipeline on the Dask cluster, stoppable, with progress.

A ``replay`` is a ``detect`` with ``DetectionRequest.replay`` set: the change
state is rebuilt from the stored baseline by folding every monitoring scene
again from zero, written as a new version made current atomically; its
alerts are upserted exactly as a detect's (same stable ids).

The heavy graphs (baseline, scene folds) are persisted on the cluster as
futures and waited for in short slices; between slices the job checks its
:class:`~geo_monitor.jobs.control.JobControl`, reports the share of finished
chunks as progress, and on a cancel request or SIGTERM cancels the futures
(tasks not started never run; the running ones finish their chunk and are
dropped) and stops. Stopping there is safe: the pipeline writes a state
version in full before making it current, and alerts are written after the
pipeline in one transaction, so the stores hold either the old or the new
result, never half of one.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import ExitStack
from datetime import date
from typing import Any

from geo_monitor.jobs.control import JobControl
from geo_monitor.jobs.params import check_detect
from geo_monitor.settings import Settings
from geo_monitor.store import AlertStore
from geo_monitor.store.jobs import Job

log = logging.getLogger(__name__)

#: Job progress (percent) at the start and end of each pipeline stage; the rest is site finding and writing.
STAGES: dict[str, tuple[int, int]] = {
    "checking scenes": (0, 10),
    "computing baseline": (10, 50),
    "updating change state": (50, 90),
}
WRITING_ALERTS = 95
#: How long one wait on the cluster lasts before the job looks at its flags again.
WAIT_SLICE_S = 0.25


class DetectJobRunner:
    """Runs ``detect`` and ``replay`` jobs; opens the Dask client on the first job and keeps it for the next ones."""

    def __init__(self, settings: Settings, store: AlertStore) -> None:
        self.settings = settings
        self.store = store
        self._exit = ExitStack()
        self._client: Any = None

    def close(self) -> None:
        self._exit.close()
        self._client = None

    def client(self) -> Any:
        if self._client is None or self._client.status not in ("running", "connecting"):
            from geo_monitor.dask_cluster import dask_client

            self.close()
            self._client = self._exit.enter_context(dask_client(self.settings))
        return self._client

    def __call__(self, job: Job, control: JobControl) -> dict[str, Any]:
        from geo_monitor.context import ContextLayers
        from geo_monitor.site_model import load_configured
        from pipelines.mining_change import PIPELINE_NAME, PIPELINE_VERSION, DetectionRequest, MiningChangePipeline

        # Checked again: the allowed roots may have changed since submission (InvalidInputError: not retried).
        params = check_detect(job.parameters, self.settings)
        layers = (ContextLayers.from_dir(params.context) if params.context
                  else ContextLayers.from_settings(self.settings))
        request = DetectionRequest(stac_url=params.catalog, bbox=params.bbox, start=params.start, end=params.end,
                                   baseline_start=params.baseline_start, collection=self.settings.stac_collection,
                                   max_cloud_cover=self.settings.max_cloud_cover, chunk_px=params.chunk_px,
                                   job_id=job.id, replay=job.kind == "replay")
        client = self.client()
        control.check()
        # One detection run per attempt (a released attempt's number comes round again: hence the suffix).
        run_id = self.store.start_run(PIPELINE_NAME, PIPELINE_VERSION, parameters=_record(request),
                                      run_id=f"{job.id}-{job.attempts}-{uuid.uuid4().hex[:8]}")
        try:
            tracker = _StageTracker(control)
            pipeline = MiningChangePipeline(self.settings.resolved_data_dir / "state", layers,
                                            progress=tracker.progress, compute=_stoppable_compute(client, control, tracker),
                                            model=load_configured(self.settings.models_dir, self.settings.model_file))
            result = pipeline.run(request)
            control.check()  # the last moment to stop with the alert store untouched
            control.report(WRITING_ALERTS, "writing alerts")
            upsert = self.store.upsert_alerts(result.alerts, actor=f"job:{job.id}", run_id=run_id)
        except BaseException as exc:
            self.store.finish_run(run_id, "failed", {"error": str(exc)[:500]})
            raise
        summary = {
            "run_id": run_id,
            # What the job changed in the store: alert ids by outcome (the job id is on the new and updated ones).
            "alerts": {"new": list(upsert.new_ids), "updated": list(upsert.updated_ids),
                       "unchanged": list(upsert.unchanged_ids)},
            "alert_counts": {"new": upsert.new, "updated": upsert.updated, "unchanged": upsert.unchanged},
            "scenes_found": result.scenes_found,
            "scenes_applied": result.scenes_applied,
            "scenes_already_applied": result.scenes_already_applied,
            "replay_requested": request.replay,
            "replayed": result.replayed,
            "skipped": [{"id": s.id, "reason": s.reason} for s in result.skipped],
            "sites_found": result.sites_found,
            "state_version": result.state_version,
            "seconds": result.seconds,
        }
        self.store.finish_run(run_id, "succeeded", {k: v for k, v in summary.items() if k != "run_id"})
        return summary


class _StageTracker:
    """Turns the pipeline's ``progress(stage, done, total)`` into job progress; checks the flags at every step."""

    def __init__(self, control: JobControl) -> None:
        self.control = control
        self.stage: str | None = None

    def progress(self, stage: str, done: int, total: int) -> None:
        self.stage = stage
        self.fraction(done / total if total else 1.0)
        self.control.check()

    def fraction(self, share: float) -> None:
        low, high = STAGES.get(self.stage or "", (0, 0))
        self.control.report(int(low + (high - low) * share), self.stage)


def _stoppable_compute(client: Any, control: JobControl, tracker: _StageTracker) -> Any:
    """A ``compute`` for the pipeline: the graph as futures on ``client``, cancelled when the job must stop."""
    from distributed import futures_of, wait

    def compute(collection: Any) -> Any:
        control.check()
        persisted = client.persist(collection)
        futures = futures_of(persisted)
        final = None
        try:
            while True:
                done = sum(f.done() for f in futures)
                tracker.fraction(done / len(futures) if futures else 1.0)
                if done == len(futures):
                    break
                control.check()
                try:
                    wait(futures, timeout=WAIT_SLICE_S)
                except TimeoutError:
                    pass
            final = client.compute(persisted)
            return final.result()
        except BaseException:
            pending = [f for f in [*futures, final] if f is not None and not f.done()]
            client.cancel([f for f in [*futures, final] if f is not None], force=True)
            log.info("dask work cancelled", extra={"job": control.job_id, "unfinished_tasks": len(pending)})
            raise

    return compute


def _record(request: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in request.__dict__.items()}
