"""Job workers as real processes (`geo-monitor worker`) on the small SYNTHETIC sample area.

Crashes are real: `kill -9`, SIGTERM. Most workers here share one Dask
cluster started by the test (DASK_SCHEDULER_ADDRESS), which lets the tests
look at the scheduler after a cancel and spares each worker a cluster start;
the SIGTERM test runs the default LocalCluster inside the worker. Leases
are 2 s, so a dead worker's job is taken over within seconds. The store is
SQLite (the embedded default); the queue's own tests run on both back-ends.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT, cli
from geo_monitor.jobs import submit_job
from geo_monitor.settings import Settings, load_settings
from geo_monitor.store import AlertStore, Job, JobPolicy, JobQueue

#: Two chunks of 128 px over two of the sample's mines (a small, quick job).
SMALL = {"bbox": [-77.506, -0.990, -77.483, -0.983], "start": "2024-01-01", "end": "2024-10-28", "chunk_px": 128}
#: The three mines, six chunks: a job long enough to cancel in the middle.
LARGER = {"bbox": [-77.512, -0.997, -77.476, -0.978], "start": "2024-01-01", "end": "2024-10-28", "chunk_px": 128}
LEASE_S = 2


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.WARNING)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


class Site:
    """One deployment: a data dir, a SQLite store, its queue, and workers started as processes."""

    def __init__(self, root: Path, sample: Path, dask_address: str | None) -> None:
        self.root = root
        self.env = {
            "GEO_MONITOR_DATA_DIR": str(root / "data"),
            "GEO_MONITOR_SAMPLE_DIR": str(sample),
            "GEO_MONITOR_JOB_LEASE_S": str(LEASE_S),
            "GEO_MONITOR_JOB_POLL_S": "0.2",
            "GEO_MONITOR_JOB_BACKOFF_S": "0.5",
            "GEO_MONITOR_LOG_FORMAT": "text",
            "GEO_MONITOR_DASK_WORKERS": "2",
        }
        if dask_address:
            self.env["DASK_SCHEDULER_ADDRESS"] = dask_address
        self.settings: Settings = load_settings(data_dir=root / "data", sample_dir=sample, job_lease_s=LEASE_S,
                                                job_backoff_s=0.5)
        self.store = AlertStore.from_settings(self.settings)
        self.store.migrate()
        self.queue = JobQueue.from_store(self.store, JobPolicy.from_settings(self.settings))
        self.procs: list[subprocess.Popen[str]] = []

    def submit(self, inputs: dict[str, Any], user: str = "ana") -> Job:
        return submit_job(self.queue, self.settings, "detect", inputs, user)

    def start_worker(self, name: str, *args: str, dask: bool = True) -> subprocess.Popen[str]:
        env = {**os.environ, **self.env}
        if not dask:
            env.pop("DASK_SCHEDULER_ADDRESS", None)
        log = open(self.root / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "geo_monitor.cli", "worker", "--id", name, *args],
                                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc

    def wait_for(self, job_id: str, condition: Callable[[Job], bool], timeout: float, what: str) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.queue.get(job_id)
            assert job is not None
            if condition(job):
                return job
            time.sleep(0.1)
        raise AssertionError(f"{what} did not happen within {timeout} s: {self.queue.get(job_id)}; "
                             f"log: {self.queue.logs(job_id)}; workers: {self.worker_logs()}")

    def worker_logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in self.root.glob("*.log"))

    def alerts(self) -> dict[str, dict[str, Any]]:
        """Every alert as its GeoJSON feature, without what differs between two runs (job id, times)."""
        out = {}
        for alert in self.store.list_alerts(limit=1000):
            feature = alert.to_feature()
            for volatile in ("created_at", "updated_at"):
                feature["properties"].pop(volatile)
            feature["properties"]["provenance"].pop("job_id")
            out[alert.id] = feature
        return out

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        self.store.dispose()


@pytest.fixture
def make_site(tmp_path: Path, sample_area: Path) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def make(name: str, dask_address: str | None = None) -> Site:
        site = Site(tmp_path / name, sample_area, dask_address)
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.close()


def _in_dask_work(job: Job) -> bool:
    # Past the scene checks, the graphs on the cluster (the stage name travels with the heartbeat).
    return job.state == "running" and job.message in ("computing baseline", "updating change state")


def _done(job: Job) -> bool:
    return job.finished


def test_kill_9_mid_job_another_worker_takes_over_with_the_same_alerts(make_site: Callable[..., Site],
                                                                      dask_address: str) -> None:
    site = make_site("crash", dask_address)
    job = site.submit(SMALL)
    first = site.start_worker("w1")
    site.wait_for(job.id, _in_dask_work, 240, "the job reaching its Dask work")
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    assert site.queue.get(job.id).state == "running"  # nobody has noticed yet
    site.start_worker("w2")
    done = site.wait_for(job.id, _done, 240, "the takeover finishing the job")
    assert (done.state, done.attempts, done.lease_owner) == ("successful", 2, "w2"), site.worker_logs()
    assert any("lease of w1 expired" in line["message"] for line in site.queue.logs(job.id))
    crashed = site.alerts()
    # No duplicates: each alert once, written once (the killed attempt wrote nothing).
    assert crashed and site.store.count() == len(crashed)
    assert all(len(site.store.history(alert_id)) == 1 for alert_id in crashed)
    assert sorted(done.result["alerts"]["new"]) == sorted(crashed)
    assert all(site.store.get(a).provenance.job_id == job.id for a in crashed)

    reference = make_site("undisturbed", dask_address)
    ref_job = reference.submit(SMALL)
    run = reference.start_worker("ref", "--once")
    assert run.wait(timeout=240) == 0, reference.worker_logs()
    assert reference.queue.get(ref_job.id).state == "successful"
    assert reference.alerts() == crashed


def test_cancel_during_a_run_stops_the_dask_tasks_and_dismisses_the_job(make_site: Callable[..., Site],
                                                                        dask_address: str) -> None:
    from distributed import Client

    site = make_site("cancel", dask_address)
    job = site.submit(LARGER)
    worker = site.start_worker("w1")
    with Client(dask_address, timeout="30s") as client:
        def scheduler_tasks() -> int:
            return int(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))

        site.wait_for(job.id, _in_dask_work, 240, "the job reaching its Dask work")
        deadline = time.monotonic() + 60
        while not scheduler_tasks():  # the graph is being sent
            assert time.monotonic() < deadline, "no tasks reached the scheduler"
            time.sleep(0.05)
        asked = time.monotonic()
        site.queue.cancel(job.id, "luis")
        done = site.wait_for(job.id, _done, 30, "the worker dismissing the job")
        deadline = time.monotonic() + 15
        while scheduler_tasks() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert scheduler_tasks() == 0, "the cancelled graph is still on the scheduler"
        stopped_after = time.monotonic() - asked
    assert done.state == "dismissed" and done.result is None and stopped_after < 20
    assert any("after a cancel request" in line["message"] for line in site.queue.logs(job.id))
    # Stores consistent: no alerts, and no state version made current by the stopped run.
    assert site.store.count() == 0
    assert not list((site.root / "data" / "state").glob("*/CURRENT.json"))
    # The worker is still serving the queue, and stops cleanly on SIGTERM.
    assert worker.poll() is None
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, site.worker_logs()


def test_sigterm_releases_the_job_and_a_restarted_worker_finishes_the_queue(make_site: Callable[..., Site]) -> None:
    site = make_site("sigterm")  # workers run their own LocalCluster here
    first_job = site.submit(SMALL)
    second_job = site.submit({**SMALL, "start": "2024-02-01"})
    worker = site.start_worker("w1", dask=False)
    site.wait_for(first_job.id, _in_dask_work, 240, "the job reaching its Dask work")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=90) == 0, site.worker_logs()
    released = site.queue.get(first_job.id)
    assert released.state in ("accepted", "successful"), released  # released or finished, never left running
    if released.state == "accepted":
        assert released.attempts == 0 and any("released by w1" in line["message"]
                                              for line in site.queue.logs(first_job.id))
    assert site.queue.get(second_job.id).state == "accepted"
    again = site.start_worker("w2", "--once", dask=False)
    assert again.wait(timeout=300) == 0, site.worker_logs()
    assert [site.queue.get(j.id).state for j in (first_job, second_job)] == ["successful", "successful"]


def test_an_always_failing_job_is_retried_with_growing_gaps_then_fails(make_site: Callable[..., Site],
                                                                       dask_address: str) -> None:
    site = make_site("failing", dask_address)
    broken = site.root / "data" / "broken" / "catalog.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("this is not a STAC catalog")
    failing = site.submit({**SMALL, "catalog": str(broken)})
    # Another job behind it: its window has no scenes, a permanent error the worker reports at once.
    other = site.submit({**SMALL, "start": "2030-01-01", "end": "2030-02-01"})
    worker = site.start_worker("w1")
    final = site.wait_for(failing.id, _done, 240, "the failing job giving up")
    site.wait_for(other.id, _done, 60, "the other job being served")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, site.worker_logs()
    assert (final.state, final.attempts) == ("failed", 3) and "catalog" in (final.error or "").lower(), final
    served = site.queue.get(other.id)
    assert served.state == "failed" and served.attempts == 1 and "no usable scenes" in (served.error or "")
    log = site.queue.logs(failing.id)
    retries = [(line["at"], datetime.fromisoformat(line["message"].rsplit("retry at ", 1)[1]))
               for line in log if "retry at" in line["message"]]
    gaps = [(due - at).total_seconds() for at, due in retries]
    assert len(gaps) == 2 and 0.3 < gaps[0] < gaps[1] <= 1.0, gaps
    starts = [line["at"] for line in log if "started by" in line["message"]]
    assert all(start >= due for start, (_, due) in zip(starts[1:], retries))


def test_the_same_idempotency_key_from_the_command_line_gives_one_job(tmp_path: Path, sample_area: Path) -> None:
    env = {"GEO_MONITOR_DATA_DIR": str(tmp_path / "data"), "GEO_MONITOR_SAMPLE_DIR": str(sample_area)}
    inputs = '{"bbox": [-77.506, -0.99, -77.483, -0.983], "start": "2024-01-01", "end": "2024-10-28"}'
    ids = []
    for _ in range(2):
        run = cli("jobs", "submit", "detect", "--inputs", inputs, "--user", "ana", "--idempotency-key", "k-1", env=env)
        assert run.returncode == 0, run.stderr
        ids.append(__import__("json").loads(run.stdout)["id"])
    assert ids[0] == ids[1]
    bad = cli("jobs", "submit", "detect", "--inputs", '{"bbox": [-70, -1, -69.9, -0.9], "start": "2024-01-01", '
              '"end": "2024-10-28"}', "--user", "ana", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: input bbox") and "outside Ecuador" in bad.stderr
    listed = cli("jobs", "list", env=env)
    assert listed.stdout.count("accepted") == 1


# --- replay and retrain, run by the worker's own loop in this process (the real pipeline on a real cluster) ---


def _in_process(tmp_path: Path, sample: Path, dask_address: str) -> tuple[Settings, AlertStore, JobQueue]:
    settings = load_settings(data_dir=tmp_path / "data", sample_dir=sample, dask_scheduler_address=dask_address,
                             dask_workers=2)
    store = AlertStore.from_settings(settings)
    store.migrate()
    return settings, store, JobQueue.from_store(store, JobPolicy.from_settings(settings))


def _run_queue(settings: Settings, store: AlertStore, queue: JobQueue) -> int:
    from geo_monitor.jobs.runners import JobRunners
    from geo_monitor.jobs.worker import Worker

    runners = JobRunners(settings, store)
    try:
        return Worker(queue, runners.by_kind(), worker_id="inproc", poll_s=0.1).run(once=True)
    finally:
        runners.close()


def test_a_replay_job_rebuilds_the_same_state_and_alerts_from_the_stored_baseline(
        tmp_path: Path, sample_area: Path, dask_address: str) -> None:
    import numpy as np

    from geo_monitor.state_store import StateStore

    settings, store, queue = _in_process(tmp_path, sample_area, dask_address)
    try:
        detect = submit_job(queue, settings, "detect", SMALL, "ana")
        assert _run_queue(settings, store, queue) == 1
        detected = queue.get(detect.id)
        assert detected.state == "successful", queue.logs(detect.id)
        (grid_dir,) = (tmp_path / "data" / "state").iterdir()
        state = StateStore(grid_dir.parent, grid_dir.name)
        before_info = state.current()
        before = state.read_all(before_info)
        baseline_written = (state.baseline_path / "zarr.json").stat().st_mtime_ns
        alert_ids = sorted(a.id for a in store.list_alerts(limit=1000))
        assert alert_ids and sorted(detected.result["alerts"]["new"]) == alert_ids

        replay = submit_job(queue, settings, "replay", SMALL, "ana")
        assert _run_queue(settings, store, queue) == 1
        replayed = queue.get(replay.id)
        assert replayed.state == "successful" and replayed.progress == 100, queue.logs(replay.id)
        summary = replayed.result
        # Every monitoring scene folded again from zero, into a new version made current.
        assert summary["replay_requested"] and summary["replayed"]
        assert summary["scenes_already_applied"] == 0
        assert sorted(summary["scenes_applied"]) == sorted(detected.result["scenes_applied"])
        after_info = state.current()
        assert after_info.version == before_info.version + 1 == summary["state_version"]
        assert sorted(after_info.applied_scene_ids) == sorted(before_info.applied_scene_ids)
        # From the stored baseline (not recomputed), to the same arrays, the same alerts.
        assert (state.baseline_path / "zarr.json").stat().st_mtime_ns == baseline_written
        after = state.read_all(after_info)
        assert sorted(after) == sorted(before)
        for name in before:
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
        assert sorted(a.id for a in store.list_alerts(limit=1000)) == alert_ids
        assert summary["alerts"] == {"new": [], "updated": [], "unchanged": alert_ids}
        # Unchanged alerts keep the id of the job that last changed them (no wake-up for polling partners).
        assert {store.get(a).provenance.job_id for a in alert_ids} == {detect.id}
    finally:
        store.dispose()


@pytest.mark.slow
def test_a_retrain_job_writes_a_new_model_version_next_to_the_shipped_one(tmp_path: Path, dask_address: str) -> None:
    import hashlib

    from geo_monitor.errors import ConfigError
    from geo_monitor.site_model import MODEL_FILE, SiteModel, load_configured

    settings, store, queue = _in_process(tmp_path, tmp_path / "sample", dask_address)  # builds its own areas
    shipped = settings.models_dir / MODEL_FILE
    shipped_hash = hashlib.sha256(shipped.read_bytes()).hexdigest() if shipped.is_file() else None
    try:
        job = submit_job(queue, settings, "retrain", {"seeds": [101]}, "ana")
        assert _run_queue(settings, store, queue) == 1
        done = queue.get(job.id)
        assert done.state == "successful" and done.progress == 100, (done, queue.logs(job.id))
        summary = done.result
        model_path, card_path = Path(summary["model"]), Path(summary["card"])
        assert model_path.parent == tmp_path / "data" / "models" and model_path.is_file() and card_path.is_file()
        assert summary["version"] == f"logreg-1-{job.created_at:%Y%m%d}-{job.id[:8]}"
        assert model_path.name == f"mining_score_{summary['version']}.json"
        assert summary["seeds"] == [101] and summary["preset"] == "small" and summary["sites"] > 0
        # One training area: nothing to leave out, so no metric is claimed.
        assert summary["metrics"] == {"accuracy": None, "precision": None, "recall": None, "evaluated_sites": 0}
        assert "not measured" in card_path.read_text() and model_path.name in card_path.read_text()
        assert summary["in_use"] is False and f"GEO_MONITOR_MODEL_FILE={model_path}" in summary["how_to_use"]
        assert not (tmp_path / "data" / "training" / job.id).exists()  # scratch removed
        # The shipped model untouched; detection uses it until model_file points at the new one.
        assert (hashlib.sha256(shipped.read_bytes()).hexdigest() if shipped.is_file() else None) == shipped_hash
        new_model = SiteModel.load(model_path)
        assert new_model.version == summary["version"]
        configured = load_configured(settings.models_dir, settings.model_file)
        assert configured is None or configured.version == "logreg-1"
        switched = load_settings(data_dir=tmp_path / "data", model_file=model_path)
        assert load_configured(switched.models_dir, switched.model_file) == new_model
        with pytest.raises(ConfigError, match="does not exist"):
            load_configured(settings.models_dir, tmp_path / "nope.json")
    finally:
        store.dispose()
