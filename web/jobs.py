"""Reprocessing jobs at ``/api/v1``, shaped like OGC API - Processes: processes, execution, jobs, dismiss.

Processes: ``detect``, ``replay`` (the same inputs, the change state rebuilt
from its baseline) and ``retrain`` (a new site-model version).

Analysts and admins only. ``POST /processes/detect/execution`` checks the
inputs at once (a bad bbox, reversed dates or a catalog outside the allowed
roots is a 400, never a failed job later) and answers ``201`` with the job's
status and its ``Location``; an ``Idempotency-Key`` header makes a repeated
request (a double click, a client retrying after a timeout) return the same
job. Execution is always asynchronous: a worker (``geo-monitor worker``, or
the one embedded in ``geo-monitor serve``) runs it. ``DELETE /jobs/<id>``
dismisses a waiting job at once and asks a running one to stop.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from geo_monitor.jobs import PROCESSES, submit_job
from geo_monitor.jobs.params import SEED_MAX
from geo_monitor.store import JobPolicy, JobQueue, JobState
from geo_monitor.store.auth import Role
from geo_monitor.store.jobs import Job
from web.auth import actor_name, current_principal, require
from web.features import iso
from web.params import ParameterError, check_known, single
from web.problems import Problem
from web.responses import context, json_response, link, request_args

jobs = Blueprint("jobs", __name__)

#: Who may run and see jobs.
JOB_ROLES: frozenset[Role] = frozenset({Role.ANALYST, Role.ADMIN})
IDEMPOTENCY_HEADER = "Idempotency-Key"
EXECUTE_FIELDS = frozenset({"inputs"})
LIST_PARAMS = ("status", "limit")
DEFAULT_JOB_LIMIT = 50
#: Log lines shown with one job.
LOG_LINES = 200
PROCESS_VERSION = "1"


def job_queue() -> JobQueue:
    ctx = context()
    return JobQueue.from_store(ctx.store, JobPolicy.from_settings(ctx.settings))


# --- processes ---------------------------------------------------------------------


def process_summary(process_id: str) -> dict[str, Any]:
    process = PROCESSES[process_id]
    base = f"{request.host_url}api/v1/processes/{process_id}"
    return {
        "id": process_id,
        "title": process["title"],
        "description": process["description"],
        "version": PROCESS_VERSION,
        "jobControlOptions": ["async-execute", "dismiss"],
        "links": [link(base, "self", title="process description"),
                  link(f"{base}/execution", "http://www.opengis.net/def/rel/ogc/1.0/execute", title="execute")],
    }


def process_description(process_id: str) -> dict[str, Any]:
    process = PROCESSES[process_id]
    inputs = {}
    for name, meaning in process["inputs"].items():
        inputs[name] = {"title": name, "description": meaning, "minOccurs": 1 if name in process["required"] else 0,
                        "maxOccurs": 1, "schema": INPUT_SCHEMAS.get(name, {"type": "string"})}
    return {
        **process_summary(process_id),
        "inputs": inputs,
        "outputs": {"summary": {"title": "summary", "description": process["outputs"], "schema": {"type": "object"}}},
    }


#: JSON Schema of each input (the checks themselves are geo_monitor.jobs.params).
INPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
    "start": {"type": "string", "format": "date"},
    "end": {"type": "string", "format": "date"},
    "baseline_start": {"type": "string", "format": "date"},
    "catalog": {"type": "string", "maxLength": 2000},
    "context": {"type": "string", "maxLength": 2000},
    "chunk_px": {"type": "integer", "minimum": 128, "maximum": 4096},
    "seeds": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": SEED_MAX}, "minItems": 1,
              "uniqueItems": True},
    "preset": {"type": "string"},
}


def _process_id(process_id: str) -> str:
    if process_id not in PROCESSES:
        raise Problem(404, f"no process {process_id[:100]!r}; available: {', '.join(PROCESSES)}")
    return process_id


@jobs.get("/processes")
@require(JOB_ROLES)
def list_processes() -> Response:
    check_known(request_args(), ())
    return json_response({"processes": [process_summary(p) for p in PROCESSES],
                          "links": [link(request.base_url, "self")]})


@jobs.get("/processes/<process_id>")
@require(JOB_ROLES)
def describe_process(process_id: str) -> Response:
    check_known(request_args(), ())
    return json_response(process_description(_process_id(process_id)))


@jobs.post("/processes/<process_id>/execution")
@require(JOB_ROLES)
def execute(process_id: str) -> Response:
    check_known(request_args(), ())
    _process_id(process_id)
    inputs = _execute_body()
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and (not key.strip() or len(key) > 255 or not key.isprintable()):
        raise Problem(400, f"{IDEMPOTENCY_HEADER} must be 1..255 printable characters", parameter=IDEMPOTENCY_HEADER)
    ctx = context()
    job = submit_job(job_queue(), ctx.settings, process_id, inputs, actor_name(current_principal()), key)
    response = json_response(status_info(job, detail=False), status=201)
    response.headers["Location"] = job_url(job.id)
    return response


def _execute_body() -> dict[str, Any]:
    if not request.is_json:
        raise Problem(415, 'send the request as JSON (Content-Type: application/json): {"inputs": {...}}')
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, 'the body must be a JSON object: {"inputs": {"bbox": [...], "start": ..., "end": ...}}')
    unknown = sorted(set(body) - EXECUTE_FIELDS)
    if unknown:
        raise Problem(422, f"unknown field(s) {', '.join(unknown)}; the body holds only 'inputs' "
                      "(execution is always asynchronous)")
    inputs = body.get("inputs")
    if not isinstance(inputs, dict):
        raise Problem(400, '"inputs" must be an object, e.g. {"bbox": [w, s, e, n], "start": "2024-01-01", '
                      '"end": "2024-06-30"}')
    return inputs


# --- jobs --------------------------------------------------------------------------


def job_url(job_id: str) -> str:
    return f"{request.host_url}api/v1/jobs/{job_id}"


def status_info(job: Job, *, detail: bool = True) -> dict[str, Any]:
    """A job as OGC API - Processes' ``statusInfo``, with this service's extra members."""
    links = [link(job_url(job.id), "self", title="job status"),
             link(f"{request.host_url}api/v1/processes/{job.kind}", "up", title="process")]
    summary = job.result or {}
    changed = summary.get("alerts", {}) if isinstance(summary.get("alerts"), dict) else {}
    for outcome in ("new", "updated"):
        for alert_id in changed.get(outcome, [])[:100]:
            links.append(link(f"{request.host_url}api/v1/alerts/{alert_id}", "related", "application/geo+json",
                              title=f"{outcome} alert {alert_id}"))
    info: dict[str, Any] = {
        "jobID": job.id,
        "processID": job.kind,
        "type": "process",
        "status": job.state,
        "message": job.message,
        "progress": job.progress,
        "created": iso(job.created_at),
        "started": iso(job.started_at) if job.started_at else None,
        "finished": iso(job.finished_at) if job.finished_at else None,
        "updated": iso(job.updated_at),
        "inputs": job.parameters,
        "requested_by": job.requested_by,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "next_attempt_at": iso(job.next_attempt_at) if job.state == JobState.ACCEPTED.value else None,
        "worker": job.lease_owner,
        "cancel_requested": job.cancel_requested,
        "error": job.error,
        "summary": job.result,
        "links": links,
    }
    if detail:
        info["log"] = [{"at": iso(line["at"]), "level": line["level"], "message": line["message"]}
                       for line in job_queue().logs(job.id, LOG_LINES)]
    return info


def _visible_job(job_id: str) -> Job:
    job = job_queue().get(job_id[:128])
    if job is None:
        raise Problem(404, f"no job {job_id[:128]!r}")
    return job


@jobs.get("/jobs")
@require(JOB_ROLES)
def list_jobs() -> Response:
    args = request_args()
    check_known(args, LIST_PARAMS)
    states = None
    if "status" in args:
        states = [s.strip() for s in (single(args, "status") or "").split(",") if s.strip()]
        allowed = [s.value for s in JobState]
        bad = [s for s in states if s not in allowed]
        if bad or not states:
            raise ParameterError("status", f"must be some of {', '.join(allowed)}, comma-separated")
    limit = DEFAULT_JOB_LIMIT
    if "limit" in args:
        raw = single(args, "limit") or ""
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise ParameterError("limit", "must be an integer 1..1000")
        limit = int(raw)
    found = job_queue().list(states=states, limit=limit)
    return json_response({"jobs": [status_info(job, detail=False) for job in found],
                          "links": [link(request.url, "self")]})


@jobs.get("/jobs/<job_id>")
@require(JOB_ROLES)
def get_job(job_id: str) -> Response:
    check_known(request_args(), ())
    return json_response(status_info(_visible_job(job_id)))


@jobs.delete("/jobs/<job_id>")
@require(JOB_ROLES)
def dismiss_job(job_id: str) -> Response:
    """Cancel: a waiting job is dismissed now; a running one is asked to stop (its worker dismisses it)."""
    check_known(request_args(), ())
    job = _visible_job(job_id)
    cancelled = job_queue().cancel(job.id, actor_name(current_principal()))
    return json_response(status_info(cancelled))
