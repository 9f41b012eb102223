"""`geo-monitor serve` as a partner meets it: a real waitress process, and hostile input that must not hurt it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alert_samples import make_alert
from api_support import free_port

from geo_monitor.settings import load_settings
from geo_monitor.store import AlertStore
from geo_monitor.store.auth import Role


@dataclass
class Served:
    url: str
    agent_key: str



def _call(url: str, key: str | None = None, method: str = "GET", body: bytes | None = None,
          content_type: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if key:
        request.add_header("X-API-Key", key)
    if body is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = {**os.environ, "GEO_MONITOR_DATA_DIR": str(tmp_path / "var"), "GEO_MONITOR_LOG_FORMAT": "text"}
    env.pop("DATABASE_URL", None)
    env.pop("GEO_MONITOR_DATABASE_URL", None)
    store = AlertStore.from_settings(load_settings(data_dir=tmp_path / "var"))
    store.migrate()
    store.upsert_alerts([make_alert("gm-0000000000000001")], "pipeline:mining-change@1")
    _, key = store.create_api_key("field agent", Role.AGENT)
    store.dispose()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "geo_monitor.cli", "serve", "--port", str(port)], env=env,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if _call(f"{url}/api/docs")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            process.terminate()
            pytest.fail("geo-monitor serve did not start: " + process.communicate(timeout=10)[1].decode()[-2000:])
        yield Served(url=url, agent_key=key)
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.slow
def test_serve_answers_and_survives_hostile_input(served: Served) -> None:
    url, key = served.url, served.agent_key
    status, headers, body = _call(f"{url}/api/v1/alerts", key)
    assert status == 200 and json.loads(body)["numberMatched"] == 1
    assert headers["X-Content-Type-Options"] == "nosniff"

    started = time.monotonic()
    status, headers, body = _call(f"{url}/api/v1/alerts?bbox=NaN,-1,-77,0", key)
    assert status == 400 and headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["parameter"] == "bbox"

    # a 50 MB body and a polygon of a million vertices: refused before anything parses them
    status, headers, body = _call(f"{url}/api/v1/alerts/gm-0000000000000001", key, "PATCH", b"x" * 50_000_000)
    assert status == 413 and headers["Content-Type"] == "application/problem+json"
    ring = [[-77.6 + i * 1e-7, -1.0] for i in range(1_000_000)]
    polygon = json.dumps({"status": "under_review", "geometry": {"type": "Polygon", "coordinates": [ring]}})
    status, _, _ = _call(f"{url}/api/v1/alerts/gm-0000000000000001", key, "PATCH", polygon.encode())
    assert status == 413
    assert time.monotonic() - started < 30

    # and the server is still healthy, with the alert untouched
    status, _, body = _call(f"{url}/api/v1/alerts/gm-0000000000000001", key)
    assert status == 200 and json.loads(body)["properties"]["status"] == "new"
