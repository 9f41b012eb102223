"""Shared pieces of the API tests: the app on a real store (both back-ends), keys per role, a live server.

Import the fixtures into a test module (``from api_support import api``);
``alert_store`` comes from ``store_backends`` through conftest, so every
API test runs against SQLite and PostGIS.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from geo_monitor.settings import Settings, load_settings
from geo_monitor.store import AlertStore
from geo_monitor.store.auth import Role
from web import create_app

#: Keys made for every test app: name -> (role, provinces).
KEY_SPECS: dict[str, tuple[Role, frozenset[str] | None]] = {
    "agent": (Role.AGENT, None),
    "analyst": (Role.ANALYST, None),
    "admin": (Role.ADMIN, None),
    "partner": (Role.PARTNER, None),
    "napo": (Role.PARTNER, frozenset({"Napo"})),
}


@dataclass
class Api:
    """A test client of an app on a real store, with one key per role."""

    app: Flask
    client: FlaskClient
    store: AlertStore
    settings: Settings
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, *, key: str | None = "partner", **kwargs: Any) -> TestResponse:
        headers = dict(kwargs.pop("headers", {}) or {})
        if key is not None:
            headers["X-API-Key"] = self.keys.get(key, key)
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", path, **kwargs)


def free_port() -> int:
    """A loopback port nothing listens on now (for a server started in another process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "var", "rate_limit": "100000/minute"}
    values.update(overrides)
    return load_settings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def make_api(store: AlertStore, settings: Settings) -> Api:
    app = create_app(settings, store=store)
    api = Api(app=app, client=app.test_client(), store=store, settings=settings)
    for name, (role, provinces) in KEY_SPECS.items():
        key_id, secret = store.create_api_key(f"test-{name}", role, provinces=provinces)
        api.keys[name], api.key_ids[name] = secret, key_id
    return api


@pytest.fixture
def api(alert_store: AlertStore, tmp_path: Path) -> Api:
    """The app on a fresh store of the current back-end (sqlite | postgis)."""
    return make_api(alert_store, test_settings(tmp_path))


def problem(response: TestResponse, status: int) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem with ``status``; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json", response.mimetype
    body = response.get_json(force=True)
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert "Traceback" not in body["detail"]
    return body


@dataclass
class LiveServer:
    url: str
    api: Api


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` behind a real HTTP server on a free loopback port, in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def live_server(api: Api) -> Iterator[LiveServer]:
    """The test app on a real server (both back-ends)."""
    with serving(api.app) as url:
        yield LiveServer(url=url, api=api)
