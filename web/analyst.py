"""The analyst's jobs page at ``/jobs``: a form to reprocess an area and window, the job list, cancel.

Plain server-rendered HTML (Spanish first, English after the slash, as the
login form), usable without JavaScript; a small same-origin script
(``static/jobs.js``) polls ``GET /api/v1/jobs`` every few seconds to move the
progress bars. Forms carry the session's CSRF token, and each rendered form
carries a fresh idempotency key, so a double click or a resent form queues
one job. The map issue will integrate this; the mechanism stays.
"""

from __future__ import annotations

import secrets
from html import escape
from typing import Any

from flask import Blueprint, Response, g, redirect, request, url_for

from geo_monitor.errors import InvalidInputError
from geo_monitor.jobs import submit_job
from geo_monitor.store import JobConflictError, JobNotFoundError
from geo_monitor.store.jobs import Job
from web.auth import CSRF_FIELD, actor_name, check_access, csrf_token, current_principal
from web.jobs import JOB_ROLES, job_queue
from web.responses import context

analyst = Blueprint("analyst", __name__)

#: This page runs its own same-origin script and fetches the jobs API; everything else stays as strict as the app's.
PAGE_CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
JOBS_SHOWN = 50
FIELDS = ("west", "south", "east", "north", "start", "end", "baseline_start")
#: The processes the form offers (both take an area and dates; ``retrain`` is for the API and the command line).
PAGE_PROCESSES = ("detect", "replay")
STATE_LABELS = {"accepted": "en cola / queued", "running": "en curso / running", "successful": "terminado / done",
                "failed": "fallido / failed", "dismissed": "cancelado / cancelled"}

_STYLE = """body{font-family:system-ui,sans-serif;max-width:64rem;margin:auto;padding:1rem;line-height:1.4}
fieldset{border:1px solid #ccc;margin-bottom:1rem}label{display:inline-block;margin:.2rem .6rem .2rem 0}
input{max-width:9rem}table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.25rem .4rem;
text-align:left;vertical-align:top}.error{color:#a00;font-weight:bold}progress{width:6rem}code{font-size:.85em}"""

_PAGE = """<!doctype html>
<html lang="es"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>geo-monitor: reprocesar / reprocessing jobs</title><style>{style}</style></head>
<body><main><h1>Reprocesar un área / Reprocess an area</h1>
<p>Conectado como / signed in as <b>{who}</b>. Documentación / docs: <a href="/api/docs">API</a></p>
{error}
<form method="post" action="/jobs">
<input type="hidden" name="{csrf_field}" value="{csrf}">
<input type="hidden" name="idempotency_key" value="{key}">
<fieldset><legend>Área (grados, WGS84) / Area (degrees)</legend>
<label>Oeste / West <input name="west" type="number" step="any" required value="{west}"></label>
<label>Sur / South <input name="south" type="number" step="any" required value="{south}"></label>
<label>Este / East <input name="east" type="number" step="any" required value="{east}"></label>
<label>Norte / North <input name="north" type="number" step="any" required value="{north}"></label>
</fieldset>
<fieldset><legend>Fechas / Dates</legend>
<label>Inicio del monitoreo / Monitoring start <input name="start" type="date" required value="{start}"></label>
<label>Fin / End <input name="end" type="date" required value="{end}"></label>
<label>Inicio de la línea base / Baseline start (opcional) <input name="baseline_start" type="date" value="{baseline_start}"></label>
</fieldset>
<fieldset><legend>Proceso / Process</legend>
<label><input type="radio" name="process" value="detect"{detect_checked}> Detectar (escenas nuevas) / Detect (new scenes)</label>
<label><input type="radio" name="process" value="replay"{replay_checked}> Rehacer desde la línea base / Replay from the baseline</label>
</fieldset>
<p><button type="submit">Reprocesar / Run</button></p>
</form>
<h2>Trabajos / Jobs</h2>
<noscript><p>Recargue la página para ver el avance / reload the page to see progress.</p></noscript>
<table id="jobs"><tr><th>trabajo / job</th><th>área y fechas / area and dates</th><th>estado / state</th>
<th>avance / progress</th><th>mensaje / message</th><th>resultado / outcome</th><th></th></tr>
{rows}
</table></main>
<script src="{script}"></script>
</body></html>"""


def _page_principal() -> Any:
    """The caller, who must be an analyst or admin; None means "not logged in" (the view redirects)."""
    if current_principal() is None and not g.get("auth_error"):
        return None
    return check_access(JOB_ROLES)


def _login_redirect() -> Response:
    return redirect(f"/login?next={request.path}", code=303)  # type: ignore[return-value]


@analyst.get("/jobs")
def jobs_page() -> Response:
    principal = _page_principal()
    if principal is None:
        return _login_redirect()
    return _render(principal)


@analyst.post("/jobs")
def submit_from_form() -> Response:
    principal = _page_principal()
    if principal is None:
        return _login_redirect()
    values = {name: request.form.get(name, "").strip()[:100] for name in FIELDS}
    process = request.form.get("process", "detect")
    try:
        if process not in PAGE_PROCESSES:
            raise InvalidInputError(f"process must be one of {', '.join(PAGE_PROCESSES)}")
        values["process"] = process
        inputs = _inputs(values)
        submit_job(job_queue(), context().settings, process, inputs, actor_name(principal),
                   request.form.get("idempotency_key") or None)
    except InvalidInputError as exc:
        return _render(principal, error=str(exc), values=values, status=400)
    return redirect("/jobs", code=303)  # type: ignore[return-value]


@analyst.post("/jobs/<job_id>/cancel")
def cancel_from_form(job_id: str) -> Response:
    principal = _page_principal()
    if principal is None:
        return _login_redirect()
    try:
        job_queue().cancel(job_id[:128], actor_name(principal))
    except (JobNotFoundError, JobConflictError) as exc:
        return _render(principal, error=str(exc), status=404 if isinstance(exc, JobNotFoundError) else 409)
    return redirect("/jobs", code=303)  # type: ignore[return-value]


def _inputs(values: dict[str, str]) -> dict[str, Any]:
    """The form's strings as the ``detect`` inputs (the checks themselves are the API's)."""
    try:
        bbox = [float(values[name]) for name in ("west", "south", "east", "north")]
    except ValueError:
        raise InvalidInputError("west, south, east and north must be numbers (degrees)") from None
    inputs: dict[str, Any] = {"bbox": bbox, "start": values["start"], "end": values["end"]}
    if values["baseline_start"]:
        inputs["baseline_start"] = values["baseline_start"]
    return inputs


def _render(principal: Any, *, error: str | None = None, values: dict[str, str] | None = None,
            status: int = 200) -> Response:
    values = values or {}
    found = job_queue().list(limit=JOBS_SHOWN)
    html = _PAGE.format(
        style=_STYLE,
        who=escape(f"{principal.name} ({principal.role.value})"),
        error=f'<p class="error" role="alert">{escape(error)}</p>' if error else "",
        csrf_field=CSRF_FIELD,
        csrf=escape(csrf_token()) if principal.kind == "user" else "",
        key=secrets.token_urlsafe(18),
        rows="\n".join(_row(job, principal) for job in found) or '<tr><td colspan="7">ninguno / none</td></tr>',
        script=escape(url_for("viewer.static", filename="jobs.js")),
        **{name: escape(values.get(name, "")) for name in FIELDS},
        detect_checked="" if values.get("process") == "replay" else " checked",
        replay_checked=" checked" if values.get("process") == "replay" else "",
    )
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


def _row(job: Job, principal: Any) -> str:
    params = job.parameters
    if job.kind == "retrain":
        where = (f"{escape(job.kind)}: semillas / seeds {escape(', '.join(map(str, params.get('seeds', []))))}"
                 f" ({escape(str(params.get('preset')))})")
    else:
        bbox = ", ".join(f"{v:g}" for v in params.get("bbox", []))
        where = (f"{escape(job.kind)}: {bbox}<br>{escape(str(params.get('start')))} – "
                 f"{escape(str(params.get('end')))}")
    label = STATE_LABELS.get(job.state, job.state) + (" (cancelando / cancelling)" if job.cancel_requested
                                                      and job.state == "running" else "")
    cancel = ""
    if not job.finished:
        token = escape(csrf_token()) if principal.kind == "user" else ""
        cancel = (f'<form class="cancel" method="post" action="/jobs/{escape(job.id)}/cancel">'
                  f'<input type="hidden" name="{CSRF_FIELD}" value="{token}">'
                  '<button type="submit">Cancelar / Cancel</button></form>')
    return (f'<tr data-job="{escape(job.id)}"><td><a href="/api/v1/jobs/{escape(job.id)}"><code>{escape(job.id[:8])}</code>'
            f'</a><br>{escape(job.requested_by)}</td><td>{where}</td><td class="status">{escape(label)}</td>'
            f'<td><progress max="100" value="{job.progress}"></progress> <span class="pct">{job.progress}%</span></td>'
            f'<td class="message">{escape(job.message or "")}</td><td class="outcome">{escape(outcome(job))}</td>'
            f"<td>{cancel}</td></tr>")


def outcome(job: Job) -> str:
    """One line saying what a finished job changed, or why it failed."""
    if job.state == "successful" and job.result and job.kind == "retrain":
        return f"modelo / model {job.result.get('version', '')}: {job.result.get('model', '')}"
    if job.state == "successful" and job.result:
        counts = job.result.get("alert_counts", {})
        return (f"{counts.get('new', 0)} nuevas / new, {counts.get('updated', 0)} actualizadas / updated, "
                f"{counts.get('unchanged', 0)} sin cambios / unchanged")
    if job.state == "failed":
        return job.error or ""
    return ""
