"""``geo-monitor worker`` and ``geo-monitor jobs submit|list|show|cancel``: the job queue from the command line.

Registered on ``geo_monitor.cli.main`` on import. The worker wires the store,
the queue, the Dask client and the job runners together; the ``jobs``
commands are for operators and scripts (the web app offers the same through
its jobs API).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from geo_monitor.cli import _echo_json, _settings, main
from geo_monitor.errors import InvalidInputError


def _open() -> tuple[Any, Any]:
    from geo_monitor.store import AlertStore, JobPolicy, JobQueue

    settings = _settings()
    store = AlertStore.from_settings(settings)
    store.migrate()
    return store, JobQueue.from_store(store, JobPolicy.from_settings(settings))


@main.command()
@click.option("--once", is_flag=True, help="Run the jobs due now, then exit, instead of waiting for more.")
@click.option("--id", "worker_id", metavar="NAME", help="Name in job logs and leases. [default: host:pid]")
def worker(once: bool, worker_id: str | None) -> None:
    """Run reprocessing jobs from the queue (several workers may run at once, on several hosts).

    Jobs run on the Dask cluster of the settings (a LocalCluster, or
    DASK_SCHEDULER_ADDRESS). SIGTERM or Ctrl-C stops the current job's Dask
    work and gives the job back to the queue before exiting.
    """
    from geo_monitor.jobs.runners import JobRunners
    from geo_monitor.jobs.worker import Worker

    settings = _settings()
    store, queue = _open()
    runner = JobRunners(settings, store)
    job_worker = Worker(queue, runner.by_kind(), worker_id=worker_id, poll_s=settings.job_poll_s)
    job_worker.install_signal_handlers()
    try:
        ran = job_worker.run(once=once)
    finally:
        runner.close()
        store.dispose()
    click.echo(f"worker {job_worker.worker_id}: {ran} job(s) run", err=True)


@main.group()
def jobs() -> None:
    """Reprocessing jobs: submit, list, show, cancel."""


@jobs.command("submit")
@click.argument("process", metavar="PROCESS")
@click.option("--inputs", "inputs_json", required=True, metavar="JSON",
              help='Inputs as JSON, e.g. \'{"bbox": [-77.51, -1.0, -77.48, -0.98], "start": "2024-01-01", "end": "2024-06-30"}\'.')
@click.option("--user", required=True, help="Who asks (recorded on the job; idempotency keys are per user).")
@click.option("--idempotency-key", metavar="KEY", help="Submitting the same key again returns the same job.")
def jobs_submit(process: str, inputs_json: str, user: str, idempotency_key: str | None) -> None:
    """Check the inputs and queue a job of PROCESS (detect, replay, retrain); print it as JSON."""
    from geo_monitor.jobs import submit_job

    try:
        inputs = json.loads(inputs_json)
    except ValueError as exc:
        raise InvalidInputError(f"--inputs is not valid JSON: {exc}") from None
    store, queue = _open()
    with store:
        job = submit_job(queue, _settings(), process, inputs, user, idempotency_key)
    _echo_json(job.to_dict())


@jobs.command("list")
@click.option("--user", help="Only this user's jobs.")
@click.option("--state", "states", multiple=True, type=click.Choice(["accepted", "running", "successful", "failed", "dismissed"]))
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def jobs_list(user: str | None, states: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    store, queue = _open()
    with store:
        found = queue.list(requested_by=user, states=states or None, limit=limit)
    if as_json:
        _echo_json([job.to_dict() for job in found])
        return
    for job in found:
        click.echo(f"{job.id}  {job.kind:<7} {job.state:<10} {job.progress:>3}%  attempt {job.attempts}/"
                   f"{job.max_attempts}  {job.requested_by}  {job.message or ''}")


@jobs.command("show")
@click.argument("job_id")
def jobs_show(job_id: str) -> None:
    """Print a job and its log as JSON."""
    from geo_monitor.store import JobNotFoundError

    store, queue = _open()
    with store:
        job = queue.get(job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        _echo_json({**job.to_dict(), "log": queue.logs(job_id)})


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--user", required=True, help="Who cancels (recorded in the job's log).")
def jobs_cancel(job_id: str, user: str) -> None:
    """Cancel a job: dismissed at once if waiting; a running one is stopped by its worker."""
    store, queue = _open()
    with store:
        job = queue.cancel(job_id, user)
    click.echo(f"{job.id}: {job.state}" + (" (cancel requested)" if job.state == "running" else ""),
               file=sys.stdout)
