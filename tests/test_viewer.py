"""The map viewer's routes without a browser: page, points, panel, status form, languages, CSP, vendor files.

Runs on both store back-ends (the ``api`` fixture), with real session logins
(CSRF tokens read from the login form, as a browser would).
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from alert_samples import make_alert
from api_support import Api, api, make_api, problem, test_settings  # noqa: F401  (api: fixture)
from geo_monitor.alerts import Confidence, Legality, Priority
from geo_monitor.errors import ConfigError
from geo_monitor.settings import load_settings
from geo_monitor.store import AlertStore
from web.i18n import compile_catalogs

PASSWORD = "correct horse battery"


def alerts() -> list:
    """Five alerts in two provinces, every priority."""
    return [
        make_alert("gm-a", priority=Priority.CRITICAL, score=0.95),
        make_alert("gm-b", at=(-77.5, -1.1), priority=Priority.HIGH, score=0.9),
        make_alert("gm-c", at=(-77.4, -1.2), priority=Priority.MEDIUM, score=0.7,
                   confidence=Confidence.NOMINAL, legality=Legality.INSIDE_CONCESSION),
        make_alert("gm-d", at=(-78.9, -3.9), priority=Priority.LOW, score=0.4,
                   context=make_alert().context.__class__(province="Zamora Chinchipe")),
        make_alert("gm-e", at=(-77.3, -1.3), priority=Priority.HIGH, score=0.99),
    ]


@pytest.fixture
def viewer(api: Api) -> Api:
    api.store.upsert_alerts(alerts(), "pipeline:mining-change@1")
    for name, role in (("ana", "agent"), ("pedro", "partner")):
        api.store.create_user(name, PASSWORD, role)
    return api


def login(client: FlaskClient, username: str) -> str:
    """Log ``client`` in through the form; return the session's CSRF token."""
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    response = client.post("/login", data={"csrf_token": token, "username": username, "password": PASSWORD,
                                           "next": "/"})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    return page_config(client.get("/").get_data(as_text=True))["csrfToken"]  # a new session, a new token


def page_config(html: str) -> dict:
    block = re.search(r'<script type="application/json" id="viewer-config">(.*?)</script>', html, re.DOTALL)
    assert block, "no configuration block in the page"
    return json.loads(block.group(1))


# --- the page ----------------------------------------------------------------------------


def test_anonymous_reader_is_sent_to_login_keeping_the_shared_link(viewer: Api) -> None:
    response = viewer.client.get("/?priority=critical&alert=gm-a")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/?priority%3Dcritical%26alert%3Dgm-a"


def test_public_read_deployment_shows_the_map_without_login(alert_store: AlertStore, tmp_path: Path) -> None:
    api = make_api(alert_store, test_settings(tmp_path, public_read=True))
    response = api.client.get("/")
    assert response.status_code == 200
    config = page_config(response.get_data(as_text=True))
    assert config["canEdit"] is False and config["csrfToken"] is None


def test_page_is_spanish_by_default_with_its_config(viewer: Api) -> None:
    login(viewer.client, "ana")
    response = viewer.client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"})  # the browser's wish is ignored
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and '<html lang="es">' in html
    assert "mapa de alertas de minería" in html and "Filtros y capas" in html
    config = page_config(html)
    assert config["lang"] == "es" and config["canEdit"] is True and config["csrfToken"]
    assert config["labels"]["priority"]["critical"] == "crítica"
    assert config["strings"]["loading"] == "Cargando alertas…"
    assert config["basemap"] is None  # offline basemap unless settings name one
    # no inline code anywhere: every <script> is a file or a JSON data block
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'src="' in tag or 'type="application/json"' in tag, tag
    assert "<style" not in html and " style=" not in html


def test_config_block_cannot_be_broken_out_of(alert_store: AlertStore, tmp_path: Path) -> None:
    settings = test_settings(tmp_path, basemap_url="https://tiles.example.org/{z}/{x}/{y}.png",
                             basemap_attribution="</script><script>alert(1)</script>")
    api = make_api(alert_store, settings)
    api.store.create_user("ana", PASSWORD, "agent")
    login(api.client, "ana")
    html = api.client.get("/").get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert page_config(html)["basemap"]["attribution"] == "</script><script>alert(1)</script>"


def test_language_switch_sets_a_cookie_and_returns(viewer: Api) -> None:
    login(viewer.client, "ana")
    response = viewer.client.get("/lang/en?next=/%3Fpriority%3Dhigh")
    assert response.status_code == 303 and response.headers["Location"] == "/?priority=high"
    assert "geo_monitor_lang=en" in response.headers["Set-Cookie"]
    html = viewer.client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in html and "Filters and layers" in html
    assert page_config(html)["labels"]["priority"]["critical"] == "critical"


def test_login_page_is_spanish_by_default_and_english_on_request(viewer: Api) -> None:
    response = viewer.client.get("/login?next=/%3Fpriority%3Dhigh")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and '<html lang="es">' in html
    assert "geo-monitor: iniciar sesión" in html and "Contraseña" in html and ">Entrar<" in html
    assert 'name="next" value="/?priority=high"' in html
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'")
    assert "<style" not in html and " style=" not in html and "<script" not in html
    switch = viewer.client.get("/lang/en?next=/login%3Fnext%3D/")
    assert switch.status_code == 303 and switch.headers["Location"] == "/login?next=/"
    english = viewer.client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in english and "Password" in english and ">Log in<" in english


def test_wrong_password_in_a_browser_gets_the_form_back_with_the_reason(viewer: Api) -> None:
    form = viewer.client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    response = viewer.client.post("/login", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
                                  data={"csrf_token": token, "username": "ana", "password": "wrong one",
                                        "next": "/?priority=high"})
    html = response.get_data(as_text=True)
    assert response.status_code == 401 and response.mimetype == "text/html"
    assert "Usuario o contraseña incorrectos." in html
    assert 'value="ana"' in html and "wrong one" not in html  # the user is kept, the password never echoed
    assert 'name="next" value="/?priority=high"' in html
    # an API client (no HTML in Accept) still gets an RFC 9457 problem
    problem(viewer.client.post("/login", data={"csrf_token": token, "username": "ana", "password": "wrong one"}), 401)


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_language_switch_is_no_open_redirect(viewer: Api, target: str) -> None:
    response = viewer.client.get("/lang/en", query_string={"next": target})
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_unknown_language_is_a_404_problem(viewer: Api) -> None:
    problem(viewer.client.get("/lang/fr"), 404)


# --- points ------------------------------------------------------------------------------


def test_points_are_every_match_most_urgent_first(viewer: Api) -> None:
    body = viewer.get("/map/points.json").get_json()
    assert body["count"] == 5 and body["ids"] == ["gm-a", "gm-e", "gm-b", "gm-c", "gm-d"]
    codes = body["codes"]
    assert [codes["priority"][p] for p in body["priority"]] == ["critical", "high", "high", "medium", "low"]
    assert body["provinces"][body["province"][-1]] == "Zamora Chinchipe"
    # the point is the centre of the alert's envelope (make_alert squares are 0.002 degrees)
    assert body["lon"][0] == pytest.approx(-77.619) and body["lat"][0] == pytest.approx(-1.019)


def decode_binary_points(data: bytes) -> dict:
    """/map/points.bin read as web/static/points.js reads it (header, then 4-byte aligned little-endian columns)."""
    assert data[:4] == b"GMP1"
    length = int.from_bytes(data[4:8], "little")
    header = json.loads(data[8:8 + length])
    start = (8 + length + 3) // 4 * 4
    kinds = {"i4": "<i4", "u1": "u1", "i2": "<i2", "u2": "<u2", "f4": "<f4"}
    columns = {name: np.frombuffer(data, dtype=kinds[kind], count=size // np.dtype(kinds[kind]).itemsize,
                                   offset=start + offset)
               for name, kind, offset, size in header["columns"]}
    assert all(offset % 4 == 0 for _, _, offset, _ in header["columns"])
    return {**header, **columns}


def test_binary_points_are_the_json_points(viewer: Api) -> None:
    response = viewer.get("/map/points.bin?priority=critical,high,medium,low")
    assert response.status_code == 200 and response.mimetype == "application/octet-stream"
    binary = decode_binary_points(response.data)
    body = viewer.get("/map/points.json?priority=critical,high,medium,low").get_json()
    assert binary["count"] == body["count"] == 5 and binary["ids"] == body["ids"]
    assert binary["provinces"] == body["provinces"] and binary["codes"] == body["codes"]
    for name in ("priority", "confidence", "status", "legality", "province"):
        assert binary[name].tolist() == body[name], name
    assert (binary["lon"] / binary["coordScale"]).tolist() == pytest.approx(body["lon"], abs=1e-9)
    assert (binary["lat"] / binary["coordScale"]).tolist() == pytest.approx(body["lat"], abs=1e-9)
    days = [(date.fromisoformat(d) - date(1970, 1, 1)).days for d in body["first_detected"]]
    assert binary["first_detected"].tolist() == days
    assert binary["area_ha"].tolist() == pytest.approx(body["area_ha"], rel=1e-6)
    assert binary["score"].tolist() == pytest.approx(body["score"], rel=1e-6)
    problem(viewer.get("/map/points.bin?priority=urgent"), 400)
    problem(viewer.get("/map/points.bin", key=None), 401)


def test_no_alerts_is_an_empty_binary_point_set(viewer: Api) -> None:
    binary = decode_binary_points(viewer.get("/map/points.bin?province=Nowhere").data)
    assert binary["count"] == 0 and binary["ids"] == [] and len(binary["lon"]) == 0


def test_points_take_the_api_filters_and_agree_with_it(viewer: Api) -> None:
    query = "priority=high,critical&legality=probably_illegal&datetime=2024-01-01/.."
    points = viewer.get(f"/map/points.json?{query}").get_json()
    listed = viewer.get(f"/api/v1/alerts?{query}").get_json()
    assert points["count"] == listed["numberMatched"] == 3
    assert sorted(points["ids"]) == sorted(f["id"] for f in listed["features"])


def test_points_respect_a_keys_province_scope(viewer: Api) -> None:
    body = viewer.get("/map/points.json", key="napo").get_json()
    assert "gm-d" not in body["ids"] and body["count"] == 4
    assert viewer.get("/map/points.json?province=Zamora%20Chinchipe", key="napo").get_json()["count"] == 0


@pytest.mark.parametrize("query", ["priority=urgent", "bbox=1,2,3", "datetime=2024-13-01/..", "colour=red"])
def test_bad_point_filters_are_400_problems(viewer: Api, query: str) -> None:
    problem(viewer.get(f"/map/points.json?{query}"), 400)


def test_points_need_a_credential(viewer: Api) -> None:
    problem(viewer.get("/map/points.json", key=None), 401)


def test_points_are_gzipped_and_revalidated(viewer: Api) -> None:
    viewer.store.upsert_alerts([make_alert(f"gm-x{i:03d}", at=(-77.0 - i / 1000, -1.5)) for i in range(40)], "pipeline:t")
    response = viewer.get("/map/points.json", headers={"Accept-Encoding": "gzip, deflate"})
    assert response.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in response.headers["Vary"]
    assert json.loads(gzip.decompress(response.data))["count"] == 45
    plain = viewer.get("/map/points.json")  # no Accept-Encoding: plain JSON
    assert "Content-Encoding" not in plain.headers and plain.get_json()["count"] == 45
    etag = response.headers["ETag"]
    assert viewer.get("/map/points.json", headers={"If-None-Match": etag}).status_code == 304
    viewer.store.change_status("gm-a", "under_review", "user:test")  # the store changed: a new point set
    again = viewer.get("/map/points.json", headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag
    assert again.get_json()["codes"]["status"][again.get_json()["status"][0]] == "under_review"


# --- the panel and the status form -----------------------------------------------------------


def test_panel_shows_the_alerts_fields_coordinates_chips_and_history(viewer: Api) -> None:
    login(viewer.client, "ana")
    html = viewer.client.get("/map/alerts/gm-a/panel").get_data(as_text=True)
    for text in ("Río Punino (140 m)", "Napo", "probablemente ilegal", "crítica", "4,8 ha",  # Spanish number format
                 "1 feb 2024", "18M ", "geo:-1.0", "/api/v1/alerts/gm-a/chips/before.png",
                 "/api/v1/alerts/gm-a/chips/after.png", "primera detección", 'name="csrf_token"'):
        assert text in html, text


def test_partner_sees_the_panel_without_the_form(viewer: Api) -> None:
    login(viewer.client, "pedro")
    html = viewer.client.get("/map/alerts/gm-a/panel").get_data(as_text=True)
    assert "gm-a" in html and "status-form" not in html


def test_panel_of_an_unknown_or_hidden_alert_is_404(viewer: Api) -> None:
    problem(viewer.get("/map/alerts/gm-nope/panel"), 404)
    problem(viewer.get("/map/alerts/gm-d/panel", key="napo"), 404)


def test_agent_changes_status_with_a_note_and_it_is_in_the_history(viewer: Api) -> None:
    token = login(viewer.client, "ana")
    response = viewer.client.post("/map/alerts/gm-a/status", headers={"X-Fragment": "1"},
                                  data={"csrf_token": token, "status": "under_review", "note": "patrulla el lunes"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Estado guardado." in html and "en revisión" in html and "patrulla el lunes" in html
    stored = viewer.get("/api/v1/alerts/gm-a").get_json()
    assert stored["properties"]["status"] == "under_review"
    last = stored["history"][-1]
    assert (last["actor"], last["changes"], last["note"]) == ("user:ana", {"status": ["new", "under_review"]},
                                                              "patrulla el lunes")


def test_plain_form_post_redirects_back_to_the_alert_on_the_map(viewer: Api) -> None:
    token = login(viewer.client, "ana")
    response = viewer.client.post("/map/alerts/gm-b/status", data={"csrf_token": token, "status": "under_review"})
    assert response.status_code == 303 and response.headers["Location"] == "/?alert=gm-b"


def test_status_form_needs_the_csrf_token(viewer: Api) -> None:
    login(viewer.client, "ana")
    problem(viewer.client.post("/map/alerts/gm-a/status", data={"status": "under_review"}), 403)
    assert viewer.store.get_stored("gm-a").status.value == "new"  # type: ignore[union-attr]


def test_partner_may_not_change_status(viewer: Api) -> None:
    token = login(viewer.client, "pedro")
    problem(viewer.client.post("/map/alerts/gm-a/status", data={"csrf_token": token, "status": "under_review"}), 403)


@pytest.mark.parametrize(
    ("status", "note", "code", "message"),
    [
        ("confirmed", "", 409, "Este estado no puede seguir al actual."),  # new -> confirmed skips review
        ("dismissed", "  ", 422, "Para descartar una alerta hace falta una nota"),
        ("vanished", "", 422, "Elija un estado."),
        ("under_review", "x" * 2001, 422, "La nota es demasiado larga"),
    ],
)
def test_refused_status_changes_say_why_and_change_nothing(viewer: Api, status: str, note: str, code: int,
                                                           message: str) -> None:
    token = login(viewer.client, "ana")
    response = viewer.client.post("/map/alerts/gm-a/status", headers={"X-Fragment": "1"},
                                  data={"csrf_token": token, "status": status, "note": note})
    assert response.status_code == code and message in response.get_data(as_text=True)
    assert viewer.store.get_stored("gm-a").status.value == "new"  # type: ignore[union-attr]
    assert len(viewer.store.history("gm-a")) == 1


# --- security headers, vendor files, context layers ------------------------------------------


@pytest.mark.parametrize("path", ["/", "/static/map.js", "/static/map.css", "/vendor/maplibre-gl/maplibre-gl-csp.js",
                                  "/vendor/maplibre-gl/maplibre-gl.css", "/map/alerts/gm-a/panel", "/map/points.json"])
def test_viewer_csp_on_pages_fragments_data_and_static_files(viewer: Api, path: str) -> None:
    login(viewer.client, "ana")
    response = viewer.client.get(path)
    assert response.status_code == 200, path
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'" and directives["connect-src"] == "'self'"
    assert "unsafe" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_csp_allows_the_configured_basemap_origin_only(alert_store: AlertStore, tmp_path: Path) -> None:
    api = make_api(alert_store, test_settings(tmp_path, basemap_url="https://tile.example.org:8443/osm/{z}/{x}/{y}.png"))
    csp = api.get("/static/map.js").headers["Content-Security-Policy"]
    assert "img-src 'self' data: blob: https://tile.example.org:8443;" in csp
    assert "connect-src 'self' https://tile.example.org:8443;" in csp


@pytest.mark.parametrize("url", ["ftp://x.org/{z}/{x}/{y}.png", "https://x.org/tiles.png", "https://{s}.x.org/{z}/{x}/{y}",
                                 "https://x.org/{z}/{x}/{y}.png'; script-src *"])
def test_bad_basemap_urls_are_refused_at_start_up(url: str) -> None:
    with pytest.raises(ConfigError, match="basemap_url"):
        load_settings(basemap_url=url)


def test_vendor_files_are_an_allow_list(viewer: Api) -> None:
    problem(viewer.get("/vendor/maplibre-gl/package.json"), 404)
    problem(viewer.get("/vendor/maplibre-gl/..%2F..%2Fpackage.json"), 404)


def test_missing_npm_install_is_a_clear_503(alert_store: AlertStore, tmp_path: Path) -> None:
    api = make_api(alert_store, test_settings(tmp_path, frontend_dir=tmp_path / "nothing"))
    body = problem(api.get("/vendor/maplibre-gl/maplibre-gl-csp.js"), 503)
    assert "make install" in body["detail"]


def test_context_layer_in_any_crs_is_served_in_lon_lat(alert_store: AlertStore, tmp_path: Path) -> None:
    folder = tmp_path / "context"
    folder.mkdir()
    # A province square in UTM 18S (EPSG:32718) around the Río Punino.
    x, y = 208_000.0, 9_887_000.0
    square = [[x, y], [x + 5000, y], [x + 5000, y + 5000], [x, y + 5000], [x, y]]
    (folder / "provinces.geojson").write_text(json.dumps({
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32718"}},
        "features": [{"type": "Feature", "properties": {"name": "Napo"},
                      "geometry": {"type": "Polygon", "coordinates": [square]}}],
    }))
    api = make_api(alert_store, test_settings(tmp_path, context_dir=folder))
    api.store.create_user("ana", PASSWORD, "agent")
    login(api.client, "ana")
    assert page_config(api.client.get("/").get_data(as_text=True))["contextLayers"] == ["provinces"]
    body = api.get("/map/context/provinces.geojson").get_json()
    (feature,) = body["features"]
    assert feature["properties"] == {"name": "Napo"}
    lon, lat = feature["geometry"]["coordinates"][0][0]
    assert -77.7 < lon < -77.5 and -1.1 < lat < -0.9
    problem(api.get("/map/context/rivers.geojson"), 404)  # no file for it
    problem(api.get("/map/context/secrets.geojson"), 404)


# --- translations ---------------------------------------------------------------------------


def test_every_string_of_the_viewer_has_a_spanish_translation() -> None:
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parents[1]
    with (root / "web/translations/es/LC_MESSAGES/messages.po").open("rb") as handle:
        catalog = read_po(handle)
    method_map = [("web/**.py", "python"), ("web/templates/**.html", "jinja2")]
    found = {message[2] if isinstance(message[2], str) else message[2][0]
             for message in extract_from_dir(str(root), method_map)}
    assert found, "nothing extracted: the extraction itself is broken"
    untranslated = sorted(m for m in found if not (catalog.get(m) and catalog.get(m).string))
    assert untranslated == [], "run `make messages` and translate these"


def test_catalogs_are_compiled_when_the_po_is_newer(tmp_path: Path) -> None:
    po = tmp_path / "es" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid ""\nmsgstr "Content-Type: text/plain; charset=utf-8\\n"\n\nmsgid "Map"\nmsgstr "Mapa"\n',
                  encoding="utf-8")
    assert compile_catalogs(tmp_path) == [po.with_suffix(".mo")]
    assert compile_catalogs(tmp_path) == []  # up to date: not written again
    import gettext

    with po.with_suffix(".mo").open("rb") as handle:
        assert gettext.GNUTranslations(handle).gettext("Map") == "Mapa"


def test_demo_login_is_created_then_given_a_fresh_password(alert_store: AlertStore) -> None:
    from geo_monitor.cli_web import _demo_login

    first = _demo_login(alert_store, "demo")
    principal = alert_store.verify_user("demo", first)
    assert principal is not None and principal.role.value == "agent"
    second = _demo_login(alert_store, "demo")  # a second `make demo`: same user, new password
    assert second != first
    assert alert_store.verify_user("demo", first) is None and alert_store.verify_user("demo", second) is not None
