"""Keys, roles, sessions with CSRF, rate limits, security headers and the one error format."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alert_samples import make_alert
from api_support import Api, api, make_api, problem, test_settings  # noqa: F401  (fixture)
from sqlalchemy import text

from geo_monitor.store import AlertStore
from geo_monitor.store.auth import Role
from web import create_app

PIPELINE = "pipeline:mining-change@1"


@pytest.mark.parametrize("path", ["/api/v1/alerts", "/api/v1/alerts/gm-x", "/api/v1/alerts/export",
                                  "/ogc", "/ogc/collections/alerts/items", "/api/v1/me"])
def test_reads_need_a_key(api: Api, path: str) -> None:
    body = problem(api.get(path, key=None), 401)
    assert "X-API-Key" in body["detail"]
    problem(api.get(path, key="not-a-key"), 401)
    problem(api.get(path, key="x" * 5000), 401)


def test_docs_and_openapi_are_public(api: Api) -> None:
    assert api.get("/api/v1/openapi.json", key=None).status_code == 200
    assert api.get("/api/docs", key=None).status_code == 200
    assert api.get("/ogc/api", key=None).status_code == 200


def test_revoked_and_expired_keys_get_401(api: Api) -> None:
    assert api.get("/api/v1/alerts", key="partner").status_code == 200
    api.store.revoke_api_key(api.key_ids["partner"])
    assert "revoked" in problem(api.get("/api/v1/alerts", key="partner"), 401)["detail"]
    soon = datetime.now(timezone.utc) + timedelta(days=1)
    _, expiring = api.store.create_api_key("visiting", Role.PARTNER, expires_at=soon)
    assert api.get("/api/v1/alerts", key=expiring).status_code == 200
    # the same database two days later
    later = AlertStore(api.store.engine, clock=lambda: datetime.now(timezone.utc) + timedelta(days=2))
    app = create_app(api.settings, store=later)
    problem(app.test_client().get("/api/v1/alerts", headers={"X-API-Key": expiring}), 401)
    assert app.test_client().get("/api/v1/alerts", headers={"X-API-Key": api.keys["agent"]}).status_code == 200


def test_key_table_holds_no_plaintext(api: Api) -> None:
    with api.store.engine.connect() as conn:
        tables = [t for t in api.store.engine.dialect.get_table_names(conn) if "key" in t]
        assert tables
        dump = " ".join(str(row) for table in tables for row in conn.execute(text(f'SELECT * FROM "{table}"')))
    for secret in api.keys.values():
        assert secret not in dump


def test_roles(api: Api) -> None:
    api.store.upsert_alerts([make_alert("gm-1")], PIPELINE)
    for name in ("agent", "analyst", "admin", "partner", "napo"):
        assert api.get("/api/v1/alerts/gm-1", key=name).status_code == 200
        me = api.get("/api/v1/me", key=name).get_json()
        assert me["role"] == {"napo": "partner"}.get(name, name)
    assert api.get("/api/v1/me", key="napo").get_json()["provinces"] == ["Napo"]
    problem(api.patch("/api/v1/alerts/gm-1", key="napo", json={"status": "under_review"}), 403)


def test_public_read_lets_anonymous_read_but_not_write(alert_store: AlertStore, tmp_path: Path) -> None:
    open_data = make_api(alert_store, test_settings(tmp_path, public_read=True))
    open_data.store.upsert_alerts([make_alert("gm-1")], PIPELINE)
    assert open_data.get("/api/v1/alerts", key=None).get_json()["numberMatched"] == 1
    assert open_data.get("/ogc/collections/alerts/items", key=None).status_code == 200
    problem(open_data.patch("/api/v1/alerts/gm-1", key=None, json={"status": "under_review"}), 401)
    problem(open_data.get("/api/v1/alerts", key="wrong"), 401)  # a broken key is reported even here


def _csrf(api: Api, path: str = "/login") -> str:
    page = api.client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_session_login_csrf_and_logout(api: Api) -> None:
    api.store.upsert_alerts([make_alert("gm-1")], PIPELINE)
    api.store.create_user("agente.napo", "una clave larga y segura", Role.AGENT)
    client = api.client
    # no CSRF token, wrong password: refused
    problem(client.post("/login", data={"username": "agente.napo", "password": "una clave larga y segura"}), 403)
    token = _csrf(api)
    problem(client.post("/login", data={"username": "agente.napo", "password": "nope", "csrf_token": token}), 401)
    ok = client.post("/login", data={"username": "agente.napo", "password": "una clave larga y segura",
                                     "csrf_token": token, "next": "https://evil.example/"})
    assert ok.status_code == 303 and ok.headers["Location"] == "/api/docs"  # no open redirect
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # the session reads like a key
    me = client.get("/api/v1/me").get_json()
    assert me["kind"] == "user" and me["role"] == "agent"
    assert client.get("/api/v1/alerts").status_code == 200
    # writes need the session's CSRF token
    problem(client.patch("/api/v1/alerts/gm-1", json={"status": "under_review"}), 403)
    changed = client.patch("/api/v1/alerts/gm-1", json={"status": "under_review"},
                           headers={"X-CSRF-Token": me["csrf_token"]})
    assert changed.status_code == 200
    assert changed.get_json()["history"][-1]["actor"] == "user:agente.napo"
    problem(client.post("/logout"), 403)
    assert client.post("/logout", headers={"X-CSRF-Token": me["csrf_token"]}).status_code == 204
    problem(client.get("/api/v1/alerts"), 401)


def test_key_requests_carry_no_session(api: Api) -> None:
    """A partner's request neither gets a session cookie nor varies on one (as with Flask's own sessions, which web.sessions shortcuts)."""
    page = api.get("/api/v1/alerts")
    assert page.status_code == 200
    assert "Set-Cookie" not in page.headers and "Cookie" not in page.headers.get("Vary", "")
    # a stale session cookie beside a key changes nothing either (the key decides who calls)
    api.client.set_cookie("geo_monitor_session", "not-a-signed-session")
    again = api.get("/api/v1/alerts")
    assert again.status_code == 200 and "Set-Cookie" not in again.headers


def test_rate_limit_is_per_key_with_retry_after(alert_store: AlertStore, tmp_path: Path) -> None:
    limited = make_api(alert_store, test_settings(tmp_path, rate_limit="3/minute"))
    for _ in range(3):
        assert limited.get("/api/v1/alerts", key="partner").status_code == 200
    body = problem(limited.get("/api/v1/alerts", key="partner"), 429)
    response = limited.get("/api/v1/alerts", key="partner")
    assert int(response.headers["Retry-After"]) > 0
    assert "rate limit" in body["detail"]
    assert limited.get("/api/v1/alerts", key="agent").status_code == 200  # another key has its own budget


def test_login_attempts_are_limited_per_address(api: Api) -> None:
    """10 tries a minute whatever the general limit: password guessing slows down to that."""
    codes = [api.client.post("/login", data={"username": "x", "password": "y", "csrf_token": "z"}).status_code
             for _ in range(11)]
    assert codes == [403] * 10 + [429]


def test_security_headers_everywhere(api: Api) -> None:
    for response in (api.get("/api/v1/alerts"), api.get("/nowhere"), api.get("/api/docs", key=None)):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_flask_errors_are_problems(api: Api) -> None:
    problem(api.get("/nowhere"), 404)
    body = problem(api.request("DELETE", "/api/v1/alerts"), 405)
    assert body["title"] == "Method Not Allowed"
    big = api.patch("/api/v1/alerts/gm-1", key="agent", data=b"x" * 2_000_000, content_type="application/json")
    problem(big, 413)


def test_unexpected_errors_are_500_problems_without_internals(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(api.store, "feature_page", broken)
    body = problem(api.get("/api/v1/alerts"), 500)
    assert "hunter2" not in body["detail"] and "RuntimeError" not in body["detail"]
    assert api.get("/api/v1/openapi.json", key=None).status_code == 200  # and the server goes on
