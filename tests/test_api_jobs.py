"""The jobs API (OGC API - Processes shape) and the analyst's jobs page, on both back-ends.

Submission, idempotency, validation (4xx at submission, nothing queued),
roles, CSRF for sessions, dismissal, links to the alerts a job produced; and,
once, the whole loop over real HTTP with `geo-monitor serve` and its embedded worker on the sample.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, make_api, problem, test_settings

from conftest import REPO_ROOT
from geo_monitor.store import AlertStore, JobQueue
from geo_monitor.store.auth import Role

INPUTS = {"bbox": [-77.506, -0.99, -77.483, -0.983], "start": "2024-01-01", "end": "2024-10-28"}
EXECUTE = "/api/v1/processes/detect/execution"


@pytest.fixture
def api(alert_store: AlertStore, tmp_path: Path) -> Api:
    """The app with a catalog inside the allowed roots (the sample dir) so detect inputs can pass."""
    settings = test_settings(tmp_path)
    catalog = settings.resolved_sample_dir / "catalog" / "catalog.json"
    catalog.parent.mkdir(parents=True)
    catalog.write_text("{}")
    return make_api(alert_store, settings)


def _execute(api: Api, inputs: dict[str, Any] | None = None, key: str = "analyst", **kwargs: Any):
    return api.request("POST", EXECUTE, key=key, json={"inputs": inputs or INPUTS}, **kwargs)


def _queue(api: Api) -> JobQueue:
    return JobQueue.from_store(api.store)


def test_only_analysts_and_admins_use_jobs(api: Api) -> None:
    for path in ("/api/v1/processes", "/api/v1/processes/detect", "/api/v1/jobs"):
        for key in ("agent", "partner", "napo"):
            problem(api.get(path, key=key), 403)
        problem(api.get(path, key=None), 401)
        assert api.get(path, key="analyst").status_code == 200
        assert api.get(path, key="admin").status_code == 200
    problem(_execute(api, key="agent"), 403)
    assert _queue(api).list() == []


def test_processes_describe_their_inputs(api: Api) -> None:
    listed = api.get("/api/v1/processes", key="analyst").get_json()
    assert [p["id"] for p in listed["processes"]] == ["detect", "replay", "retrain"]
    detect_inputs = {"catalog", "bbox", "start", "end", "baseline_start", "context", "chunk_px"}
    for process in ("detect", "replay"):
        described = api.get(f"/api/v1/processes/{process}", key="analyst").get_json()
        assert set(described["inputs"]) == detect_inputs
        assert described["inputs"]["bbox"]["minOccurs"] == 1 and described["inputs"]["context"]["minOccurs"] == 0
        assert "async-execute" in described["jobControlOptions"]
    retrain = api.get("/api/v1/processes/retrain", key="analyst").get_json()
    assert set(retrain["inputs"]) == {"seeds", "preset"}
    assert all(i["minOccurs"] == 0 for i in retrain["inputs"].values())
    assert retrain["inputs"]["seeds"]["schema"]["type"] == "array" and "model" in retrain["outputs"]["summary"]["description"]
    problem(api.get("/api/v1/processes/train", key="analyst"), 404)
    problem(api.request("POST", "/api/v1/processes/nope/execution", key="analyst", json={"inputs": INPUTS}), 404)


def test_execution_answers_201_with_the_job_and_its_location(api: Api) -> None:
    created = _execute(api)
    assert created.status_code == 201, created.get_data(as_text=True)
    job = created.get_json()
    assert job["status"] == "accepted" and job["processID"] == "detect" and job["type"] == "process"
    assert job["requested_by"] == f"key:{api.key_ids['analyst']}" and job["inputs"]["bbox"] == INPUTS["bbox"]
    location = created.headers["Location"]
    assert location.endswith(f"/api/v1/jobs/{job['jobID']}")
    shown = api.get(location.removeprefix("http://localhost"), key="admin").get_json()
    assert shown["jobID"] == job["jobID"] and shown["log"][0]["message"].startswith("submitted by key:")
    listed = api.get("/api/v1/jobs", key="analyst").get_json()
    assert [j["jobID"] for j in listed["jobs"]] == [job["jobID"]]


def test_the_same_idempotency_key_gives_the_same_job(api: Api) -> None:
    first = _execute(api, headers={"Idempotency-Key": "form-7"})
    again = _execute(api, headers={"Idempotency-Key": "form-7"})
    assert first.status_code == again.status_code == 201
    assert first.get_json()["jobID"] == again.get_json()["jobID"] and len(_queue(api).list()) == 1
    problem(_execute(api, {**INPUTS, "end": "2024-06-30"}, headers={"Idempotency-Key": "form-7"}), 409)
    problem(_execute(api, headers={"Idempotency-Key": "x" * 300}), 400)
    # Another caller's key space is its own.
    assert _execute(api, key="admin", headers={"Idempotency-Key": "form-7"}).get_json()["jobID"] != \
        first.get_json()["jobID"]


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({**INPUTS, "bbox": [-70.0, -1.0, -69.9, -0.9]}, "outside Ecuador"),
        ({**INPUTS, "bbox": [-78.5, -2.0, -77.0, -0.5]}, "more than one job may"),
        ({**INPUTS, "start": "2024-12-01"}, "after end date"),
        ({**INPUTS, "catalog": "/etc/passwd"}, "not under an allowed folder"),
        ({**INPUTS, "catalog": "https://evil.example/stac"}, "not under an allowed URL prefix"),
        ({**INPUTS, "context": "../../etc"}, "absolute path"),
        ({"bbox": INPUTS["bbox"], "start": "2024-01-01"}, "input end is required"),
        ({**INPUTS, "turbo": True}, "unknown input"),
    ],
)
def test_bad_inputs_are_4xx_at_submission_and_queue_nothing(api: Api, inputs: dict[str, Any], fragment: str) -> None:
    body = problem(_execute(api, inputs), 400)
    assert fragment in body["detail"]
    assert _queue(api).list() == []


def test_replay_and_retrain_are_queued_with_checked_inputs(api: Api) -> None:
    replay = api.request("POST", "/api/v1/processes/replay/execution", key="analyst", json={"inputs": INPUTS})
    assert replay.status_code == 201, replay.get_data(as_text=True)
    assert replay.get_json()["processID"] == "replay" and replay.get_json()["inputs"]["bbox"] == INPUTS["bbox"]
    retrain = api.request("POST", "/api/v1/processes/retrain/execution", key="analyst",
                          json={"inputs": {"seeds": [101, 202]}})
    assert retrain.status_code == 201, retrain.get_data(as_text=True)
    assert retrain.get_json()["inputs"] == {"seeds": [101, 202], "preset": "small"}
    assert {j.kind for j in _queue(api).list()} == {"replay", "retrain"}
    for inputs, fragment in [({"seeds": [7]}, "evaluation"), ({"seeds": list(range(1, 20))}, "job_retrain_max_seeds"),
                             ({"preset": "full"}, "preset must be one of small"), ({"seeds": []}, "non-empty"),
                             ({"seeds": [1, 1]}, "distinct"), ({"epochs": 3}, "unknown input")]:
        body = problem(api.request("POST", "/api/v1/processes/retrain/execution", key="analyst",
                                   json={"inputs": inputs}), 400)
        assert fragment in body["detail"], body
    problem(api.request("POST", "/api/v1/processes/replay/execution", key="analyst",
                        json={"inputs": {**INPUTS, "start": "2024-12-01"}}), 400)
    assert len(_queue(api).list()) == 2
    document = api.get("/api/v1/openapi.json", key=None).get_json()
    assert {"DetectInputs", "RetrainInputs"} <= set(document["components"]["schemas"])


def test_malformed_requests_are_refused(api: Api) -> None:
    problem(api.request("POST", EXECUTE, key="analyst", data="bbox=1", content_type="text/plain"), 415)
    problem(api.request("POST", EXECUTE, key="analyst", json=[1, 2]), 400)
    problem(api.request("POST", EXECUTE, key="analyst", json={"inputs": "all of Ecuador"}), 400)
    problem(api.request("POST", EXECUTE, key="analyst", json={"inputs": INPUTS, "response": "raw"}), 422)
    problem(api.get("/api/v1/jobs?status=done", key="analyst"), 400)
    problem(api.get("/api/v1/jobs?limit=0", key="analyst"), 400)
    problem(api.get("/api/v1/jobs?order=random", key="analyst"), 400)
    assert _queue(api).list() == []


def test_delete_dismisses_and_finished_jobs_cannot_be_cancelled(api: Api) -> None:
    waiting = _execute(api).get_json()["jobID"]
    dismissed = api.request("DELETE", f"/api/v1/jobs/{waiting}", key="analyst")
    assert dismissed.status_code == 200 and dismissed.get_json()["status"] == "dismissed"
    assert api.request("DELETE", f"/api/v1/jobs/{waiting}", key="admin").get_json()["status"] == "dismissed"
    problem(api.request("DELETE", "/api/v1/jobs/no-such-job", key="analyst"), 404)
    problem(api.get("/api/v1/jobs/no-such-job", key="analyst"), 404)
    # A running job is asked to stop; a finished one cannot be cancelled.
    queue = _queue(api)
    running = _execute(api, {**INPUTS, "start": "2024-02-01"}).get_json()["jobID"]
    claim = queue.claim("worker-a")
    assert claim is not None and claim.job.id == running
    asked = api.request("DELETE", f"/api/v1/jobs/{running}", key="analyst").get_json()
    assert asked["status"] == "running" and asked["cancel_requested"]
    queue.dismiss(running, claim.token)
    done = _execute(api, {**INPUTS, "start": "2024-03-01"}).get_json()["jobID"]
    claim = queue.claim("worker-a")
    assert claim is not None
    queue.complete(done, claim.token, {"alerts": {"new": ["gm-0000000000000001"], "updated": [], "unchanged": []},
                                       "alert_counts": {"new": 1, "updated": 0, "unchanged": 0}})
    problem(api.request("DELETE", f"/api/v1/jobs/{done}", key="analyst"), 409)
    shown = api.get(f"/api/v1/jobs/{done}", key="analyst").get_json()
    assert shown["status"] == "successful" and shown["progress"] == 100
    assert any(link["rel"] == "related" and link["href"].endswith("/api/v1/alerts/gm-0000000000000001")
               for link in shown["links"])
    states = {j["jobID"]: j["status"] for j in api.get("/api/v1/jobs?status=dismissed,successful",
                                                       key="analyst").get_json()["jobs"]}
    assert states == {waiting: "dismissed", running: "dismissed", done: "successful"}


def _login(api: Api, username: str, role: Role) -> str:
    api.store.create_user(username, "una clave larga y segura", role)
    page = api.client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    ok = api.client.post("/login", data={"username": username, "password": "una clave larga y segura",
                                         "csrf_token": token, "next": "/jobs"})
    assert ok.status_code == 303 and ok.headers["Location"] == "/jobs"
    return api.client.get("/api/v1/me").get_json()["csrf_token"]


def test_session_users_need_the_csrf_token_to_submit(api: Api) -> None:
    csrf = _login(api, "ana", Role.ANALYST)
    problem(api.request("POST", EXECUTE, key=None, json={"inputs": INPUTS}), 403)
    created = api.request("POST", EXECUTE, key=None, json={"inputs": INPUTS}, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201 and created.get_json()["requested_by"] == "user:ana"


def test_the_analyst_page_submits_lists_and_cancels(api: Api) -> None:
    anonymous = api.client.get("/jobs")
    assert anonymous.status_code == 303 and anonymous.headers["Location"] == "/login?next=/jobs"
    csrf = _login(api, "ana", Role.ANALYST)
    page = api.client.get("/jobs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    form = {"csrf_token": csrf, "idempotency_key": key, "west": "-77.506", "south": "-0.99", "east": "-77.483",
            "north": "-0.983", "start": "2024-01-01", "end": "2024-10-28", "baseline_start": ""}
    assert api.client.post("/jobs", data=form).status_code == 303
    assert api.client.post("/jobs", data=form).status_code == 303  # the form sent twice: still one job
    (job,) = _queue(api).list()
    assert job.kind == "detect" and job.requested_by == "user:ana" and job.parameters["bbox"] == [-77.506, -0.99, -77.483, -0.983]
    listed = api.client.get("/jobs").get_data(as_text=True)
    assert f'data-job="{job.id}"' in listed and "en cola / queued" in listed
    bad = api.client.post("/jobs", data={**form, "idempotency_key": "k2", "west": "-70", "east": "-69.9"})
    assert bad.status_code == 400 and "outside Ecuador" in bad.get_data(as_text=True)
    assert api.client.post("/jobs", data={k: v for k, v in form.items() if k != "csrf_token"}).status_code == 403
    replay = api.client.post("/jobs", data={**form, "idempotency_key": "k3", "process": "replay"})
    assert replay.status_code == 303 and [j.kind for j in _queue(api).list()] == ["replay", "detect"]
    assert "replay: -77.506" in api.client.get("/jobs").get_data(as_text=True)
    odd = api.client.post("/jobs", data={**form, "idempotency_key": "k4", "process": "retrain"})
    assert odd.status_code == 400 and len(_queue(api).list()) == 2
    cancelled = api.client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": csrf})
    assert cancelled.status_code == 303 and _queue(api).get(job.id).state == "dismissed"
    assert api.client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": csrf}).status_code == 303
    assert api.client.get("/static/jobs.js").status_code == 200


def test_agents_do_not_get_the_analyst_page(api: Api) -> None:
    _login(api, "agente", Role.AGENT)
    problem(api.client.get("/jobs"), 403)


@pytest.mark.slow
def test_serve_runs_jobs_with_its_embedded_worker_and_stops_cleanly(tmp_path: Path, sample_area: Path) -> None:
    """`geo-monitor serve` alone (the one-command demo), over real HTTP: a job posted to it runs, its status links
    the alerts it made (which name the job); SIGTERM ends the server with code 0."""
    import socket

    settings = test_settings(tmp_path, sample_dir=sample_area)
    with AlertStore.from_settings(settings) as store:
        store.migrate()
        _, key = store.create_api_key("analyst", Role.ANALYST)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "GEO_MONITOR_DATA_DIR": str(settings.resolved_data_dir),
           "GEO_MONITOR_SAMPLE_DIR": str(sample_area), "GEO_MONITOR_LOG_FORMAT": "text",
           "GEO_MONITOR_JOB_POLL_S": "0.5"}
    for name in ("DASK_SCHEDULER_ADDRESS", "DATABASE_URL", "GEO_MONITOR_DATABASE_URL"):
        env.pop(name, None)
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "geo_monitor.cli", "serve", "--port", str(port)], env=env,
                              cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(url + path, method=method, headers={"X-API-Key": key,
                                         "Content-Type": "application/json"},
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                call("GET", "/api/v1/processes")
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(0.2)
        job = call("POST", EXECUTE, {"inputs": {**INPUTS, "chunk_px": 128}})
        deadline = time.monotonic() + 300
        while (shown := call("GET", f"/api/v1/jobs/{job['jobID']}"))["status"] in ("accepted", "running"):
            assert time.monotonic() < deadline, shown
            time.sleep(0.5)
        assert shown["status"] == "successful" and shown["worker"].startswith("serve@"), shown
        new = shown["summary"]["alerts"]["new"]
        assert new and shown["progress"] == 100 and shown["summary"]["alert_counts"]["new"] == len(new)
        related = [link["href"] for link in shown["links"] if link["rel"] == "related"]
        assert len(related) == len(new)
        alert = call("GET", related[0].removeprefix(url))
        assert alert["properties"]["provenance"]["job_id"] == job["jobID"]
    finally:
        server.terminate()
        code = server.wait(timeout=90)
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]


@pytest.mark.slow
def test_generated_job_requests_never_get_a_5xx(api: Api) -> None:
    """schemathesis on the jobs operations with an analyst key (the alerts-wide run uses an agent key, which
    only ever gets 403 here): every generated request is answered as the document says, never with a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from test_api_schemathesis import CHECKS

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api.app)
    headers = {"X-API-Key": api.keys["analyst"]}
    operations = [op for op in (result.ok() for result in schema.get_all_operations())
                  if op.path.startswith(("/api/v1/processes", "/api/v1/jobs"))]
    assert len(operations) == 6
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
