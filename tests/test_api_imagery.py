"""Imagery over HTTP on both store back-ends, against the small sample area's real COGs: tiles, the score layer,
scenes, chips, the evidence sheet and the GPX export; validation, province limits and caching headers."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import date
from pathlib import Path
from urllib.parse import quote

import morecantile
import numpy as np
import pyogrio
import pytest
from alert_samples import PIPELINE, make_alert
from api_support import Api, make_api, problem, test_settings
from imagery_support import catalog_path, decode_png, truth_site

from geo_monitor.alerts import Context, Priority
from geo_monitor.imagery import SCORE_ALPHA, score_color
from geo_monitor.store import AlertStore

TMS = morecantile.tms.get("WebMercatorQuad")
NAPO_SITE, ORELLANA_SITE = "new-mine-2-open", "new-mine-1-protected"
NAPO_ID, ORELLANA_ID = "gm-00000000000000a1", "gm-00000000000000a2"


@pytest.fixture
def api(alert_store: AlertStore, tmp_path: Path, sample_area: Path) -> Api:
    """The app on a fresh store, imagery from the sample catalog, two alerts on real mining sites."""
    alerts = []
    for alert_id, site, province, score, priority in ((NAPO_ID, NAPO_SITE, "Napo", 0.9, Priority.CRITICAL),
                                                      (ORELLANA_ID, ORELLANA_SITE, "Orellana", 0.55, Priority.MEDIUM)):
        geometry, start = truth_site(sample_area, site)
        alerts.append(make_alert(alert_id, geometry=geometry, first_detected=start, last_observed=date(2024, 10, 28),
                                 context=Context(province=province, nearest_river="Río Punino", river_distance_m=60.0),
                                 score=score, priority=priority))
    alert_store.upsert_alerts(alerts, PIPELINE)
    return make_api(alert_store, test_settings(tmp_path, stac_url=catalog_path(sample_area)))


def _scene_ids(api: Api) -> list[str]:
    return [s["id"] for s in api.get("/api/v1/scenes?limit=1000").get_json()["scenes"]]


def _tile_over(geometry, z: int) -> tuple[int, int, int]:
    c = geometry.centroid
    t = TMS.tile(c.x, c.y, z)
    return t.z, t.x, t.y


# --------------------------------------------------------------------------- scene tiles


def test_scene_tiles_render_both_renders_with_cache_headers(api: Api, sample_area: Path) -> None:
    scene = _scene_ids(api)[0]
    geometry, _ = truth_site(sample_area, NAPO_SITE)
    z, x, y = _tile_over(geometry, 15)
    url = f"/tiles/{scene}/{z}/{x}/{y}.png"
    true_colour = api.get(url)
    assert true_colour.status_code == 200 and true_colour.mimetype == "image/png"
    assert true_colour.headers["Cache-Control"] == "private, max-age=86400"
    etag = true_colour.headers["ETag"]
    swir = api.get(url + "?render=swir")
    big = api.get(url + "?render=swir&tilesize=512&rescale=0,0.3")
    rgba_tc, rgba_sw, rgba_big = decode_png(true_colour.data), decode_png(swir.data), decode_png(big.data)
    assert rgba_tc.shape == rgba_sw.shape == (4, 256, 256) and rgba_big.shape == (4, 512, 512)
    assert (rgba_tc[3] == 255).mean() > 0.5
    assert np.abs(rgba_tc[:3].astype(int) - rgba_sw[:3].astype(int)).mean() > 20
    assert swir.headers["ETag"] != etag != big.headers["ETag"]
    again = api.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.data and again.headers["ETag"] == etag
    assert api.get(url + "?render=truecolor").headers["ETag"] == etag  # the default, spelled out


@pytest.mark.parametrize("path, parameter", [
    ("/tiles/{scene}/15/1/2.png?render=ndvi", "render"),
    ("/tiles/{scene}/15/1/2.png?tilesize=300", "tilesize"),
    ("/tiles/{scene}/15/1/2.png?rescale=1,0", "rescale"),
    ("/tiles/{scene}/15/1/2.png?rescale=0,1&rescale=0,1", "rescale"),
    ("/tiles/{scene}/15/1/2.png?expression=b1", "expression"),
    ("/tiles/{scene}/25/1/2.png", "z"),
    ("/tiles/{scene}/3/8/2.png", "x"),
    ("/tiles/{scene}/3/2/8.png", "y"),
    ("/tiles/{scene}/-1/0/0.png", "z"),
    ("/tiles/{scene}/a/0/0.png", "z"),
    ("/tiles/{scene}/99999999999999999999/0/0.png", "z"),
    ("/tiles/change/3/9/0.png", "x"),
    ("/tiles/change/14/1/1.png?priority=urgent", "priority"),
])
def test_bad_tile_requests_are_400_naming_the_parameter(api: Api, path: str, parameter: str) -> None:
    body = problem(api.get(path.format(scene=_scene_ids(api)[0])), 400)
    assert body["parameter"] == parameter


def test_only_catalog_scenes_are_served_and_no_path_or_url_reaches_gdal(api: Api, sample_area: Path) -> None:
    scene = _scene_ids(api)[0]
    href = next((sample_area / "catalog" / "sentinel-2-l2a" / scene).glob("*_red.tif"))
    for bad in ("nope", quote(str(href), safe=""), quote("../" + scene, safe=""), "..",
                quote("http://127.0.0.1:9/x.tif", safe=""), quote("/vsicurl/http://127.0.0.1:9/x.tif", safe=""),
                scene.lower(), "x" * 300):
        response = api.get(f"/tiles/{bad}/15/1/2.png")
        assert response.status_code == 404, (bad, response.status_code)
        assert response.mimetype == "application/problem+json"


def test_imagery_needs_a_key_or_session(api: Api) -> None:
    scene = _scene_ids(api)[0]
    for path in (f"/tiles/{scene}/15/1/2.png", "/tiles/change/15/1/2.png", "/api/v1/scenes",
                 f"/api/v1/alerts/{NAPO_ID}/chips", f"/api/v1/alerts/{NAPO_ID}/chips/before.png",
                 f"/alerts/{NAPO_ID}/sheet"):
        problem(api.get(path, key=None), 401)
        problem(api.get(path, key="gm_not_a_key"), 401)


def test_unreadable_catalog_is_a_503_without_internals(alert_store: AlertStore, tmp_path: Path) -> None:
    missing = tmp_path / "no-catalog" / "catalog.json"
    api = make_api(alert_store, test_settings(tmp_path, stac_url=str(missing)))
    for path in ("/api/v1/scenes", "/tiles/SOME_SCENE/10/1/1.png"):
        body = problem(api.get(path), 503)
        assert str(tmp_path) not in json.dumps(body)


# --------------------------------------------------------------------------- score layer


def test_change_tiles_draw_alert_scores_within_the_callers_provinces(api: Api, sample_area: Path) -> None:
    napo_geometry, _ = truth_site(sample_area, NAPO_SITE)
    orellana_geometry, _ = truth_site(sample_area, ORELLANA_SITE)
    z, x, y = _tile_over(napo_geometry, 13)
    assert _tile_over(orellana_geometry, 13) == (z, x, y)
    url = f"/tiles/change/{z}/{x}/{y}.png"

    def colours(response) -> set[tuple[int, ...]]:
        assert response.status_code == 200 and response.mimetype == "image/png"
        rgba = decode_png(response.data)
        return {tuple(int(v) for v in rgba[:, r, c]) for r, c in zip(*np.nonzero(rgba[3]))}

    def near(found: set[tuple[int, ...]], score: float) -> bool:
        return any(max(abs(a - b) for a, b in zip(px, (*score_color(score), SCORE_ALPHA))) <= 2 for px in found)

    everything = colours(api.get(url))  # both sites lie on this tile
    assert near(everything, 0.9) and near(everything, 0.55)
    napo_only = colours(api.get(url, key="napo"))
    assert near(napo_only, 0.9) and not near(napo_only, 0.55)
    assert colours(api.get(url + "?priority=critical")) == napo_only
    assert colours(api.get(url + "?province=Orellana", key="napo")) == set()
    assert colours(api.get(url + "?datetime=2020-01-01/2020-12-31")) == set()
    low_zoom = TMS.tile(napo_geometry.centroid.x, napo_geometry.centroid.y, 7)
    assert colours(api.get(f"/tiles/change/7/{low_zoom.x}/{low_zoom.y}.png")) == set()
    response = api.get(url)
    assert response.headers["Cache-Control"] == "private, max-age=60"
    assert response.headers["ETag"].strip('"') == hashlib.sha256(response.data).hexdigest()[:32]
    assert api.get(url, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    # a status change does not move the footprint; a dismissed alert is filtered out by status
    assert colours(api.get(url + "?status=dismissed")) == set()


# --------------------------------------------------------------------------- scenes


def test_scenes_list_newest_first_with_filters(api: Api) -> None:
    body = api.get("/api/v1/scenes").get_json()
    assert body["numberMatched"] > 100 and body["numberReturned"] == 100
    dates = [s["date"] for s in body["scenes"]]
    assert dates == sorted(dates, reverse=True)
    first = body["scenes"][0]
    assert set(first) >= {"id", "datetime", "date", "cloud_cover", "bbox", "tiles"}
    assert first["tiles"]["swir"].endswith(f"/tiles/{first['id']}/{{z}}/{{x}}/{{y}}.png?render=swir")
    assert set(body["renders"]) == {"truecolor", "swir"}
    june = api.get("/api/v1/scenes?datetime=2024-06-01/2024-06-30&bbox=-77.51,-0.99,-77.49,-0.98").get_json()
    assert june["scenes"] and all(s["date"].startswith("2024-06") for s in june["scenes"])
    clear = api.get("/api/v1/scenes?max_cloud_cover=20&limit=1000").get_json()["scenes"]
    assert clear and all(s["cloud_cover"] <= 20 for s in clear)
    assert api.get("/api/v1/scenes?limit=3").get_json()["numberReturned"] == 3
    assert api.get("/api/v1/scenes?bbox=-79.9,-2.3,-79.8,-2.2").get_json()["scenes"] == []
    for bad, parameter in (("bbox=10,10,11,11", "bbox"), ("datetime=2024-13-01", "datetime"),
                           ("limit=0", "limit"), ("limit=5000", "limit"), ("max_cloud_cover=nan", "max_cloud_cover"),
                           ("max_cloud_cover=101", "max_cloud_cover"), ("cloud=1", "cloud")):
        assert problem(api.get(f"/api/v1/scenes?{bad}"), 400)["parameter"] == parameter


# --------------------------------------------------------------------------- chips


def test_chips_document_and_images(api: Api, sample_area: Path) -> None:
    _, first_detected = truth_site(sample_area, NAPO_SITE)
    body = api.get(f"/api/v1/alerts/{NAPO_ID}/chips").get_json()
    assert body["alert_id"] == NAPO_ID and body["first_detected"] == first_detected.isoformat()
    before, after = body["before"], body["after"]
    assert date.fromisoformat(before["date"]) < first_detected < date.fromisoformat(after["date"])
    assert 0 < before["clear_fraction"] <= 1 and 0 < after["clear_fraction"] <= 1
    assert before["scene_id"] in _scene_ids(api)
    for side, info in (("before", before), ("after", after)):
        assert info["href"].endswith(f"/api/v1/alerts/{NAPO_ID}/chips/{side}.png")
        response = api.get(f"/api/v1/alerts/{NAPO_ID}/chips/{side}.png")
        assert response.status_code == 200 and response.headers["Cache-Control"] == "private, max-age=86400"
        rgba = decode_png(response.data)
        assert rgba.shape == (4, 320, 320)
        assert (np.all(rgba[:3] == np.array([255, 221, 0])[:, None, None], axis=0)).sum() > 200  # the outline
        assert api.get(f"/api/v1/alerts/{NAPO_ID}/chips/{side}.png",
                       headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    swir = api.get(f"/api/v1/alerts/{NAPO_ID}/chips/after.png?render=swir")
    assert swir.status_code == 200 and swir.headers["ETag"] != api.get(
        f"/api/v1/alerts/{NAPO_ID}/chips/after.png").headers["ETag"]
    assert problem(api.get(f"/api/v1/alerts/{NAPO_ID}/chips/after.png?render=x"), 400)["parameter"] == "render"


def test_chip_without_any_scene_on_that_side_is_404(api: Api) -> None:
    early = make_alert("gm-00000000000000b1", at=(-77.50, -0.99), first_detected=date(2021, 6, 1))
    api.store.upsert_alerts([early], PIPELINE)  # 19 months before the imagery starts: nothing within a year either side
    body = api.get("/api/v1/alerts/gm-00000000000000b1/chips").get_json()
    assert body["before"] is None and body["after"] is None
    assert "no scene" in problem(api.get("/api/v1/alerts/gm-00000000000000b1/chips/before.png"), 404)["detail"]


def test_province_limited_partners_get_404_for_alerts_they_cannot_see(api: Api) -> None:
    for path in (f"/api/v1/alerts/{ORELLANA_ID}/chips", f"/api/v1/alerts/{ORELLANA_ID}/chips/before.png",
                 f"/api/v1/alerts/{ORELLANA_ID}/chips/after.png", f"/alerts/{ORELLANA_ID}/sheet"):
        problem(api.get(path, key="napo"), 404)
        assert api.get(path, key="partner").status_code == 200
    assert api.get(f"/api/v1/alerts/{NAPO_ID}/chips", key="napo").status_code == 200
    problem(api.get("/api/v1/alerts/gm-ffffffffffffffff/chips"), 404)


# --------------------------------------------------------------------------- evidence sheet


def test_evidence_sheet_is_self_contained_printable_html(api: Api) -> None:
    changed = api.patch(f"/api/v1/alerts/{NAPO_ID}", key="agent", json={"status": "under_review",
                                                                      "note": "Patrulla enviada al río"})
    assert changed.status_code == 200
    response = api.get(f"/alerts/{NAPO_ID}/sheet")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<html lang="es">' in html and "Hoja de evidencia" in html and NAPO_ID in html
    assert "crítica" in html and "en revisión" in html and "Patrulla enviada al río" in html
    assert "@page" in html and "@media print" in html
    images = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)"', html)
    assert len(images) == 3  # overview, before, after
    assert all(base64.b64decode(i)[:3] == b"\xff\xd8\xff" for i in images)
    assert "DATOS SINTÉTICOS" in html  # the sample's scenes say they are synthetic
    assert re.search(r"18M \d{6} \d{7}", html) and "geo:-0.98" in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    # The page's own policy allows exactly its inline style (by hash) and inline images
    csp = response.headers["Content-Security-Policy"]
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp and "img-src data:" in csp and "default-src 'none'" in csp
    english = api.get(f"/alerts/{NAPO_ID}/sheet?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in english and "Evidence sheet" in english and "under review" in english
    assert problem(api.get(f"/alerts/{NAPO_ID}/sheet?lang=fr"), 400)["parameter"] == "lang"


# --------------------------------------------------------------------------- GPX export


def test_gpx_export_of_the_filtered_alerts(api: Api, tmp_path: Path) -> None:
    response = api.get("/api/v1/alerts/export?format=gpx", key="napo")
    assert response.status_code == 200 and response.mimetype == "application/gpx+xml"
    assert 'filename="alerts.gpx"' in response.headers["Content-Disposition"]
    path = tmp_path / "field.gpx"
    path.write_bytes(response.data)
    waypoints = pyogrio.read_dataframe(path, layer="waypoints")
    assert waypoints["name"].tolist() == [NAPO_ID]  # the partner's province only
    assert waypoints["type"].tolist() == ["critical"]
    everything = api.get("/api/v1/alerts/export?format=gpx&priority=medium")
    path.write_bytes(everything.data)
    assert pyogrio.read_dataframe(path, layer="waypoints")["name"].tolist() == [ORELLANA_ID]


def test_tiles_have_their_own_rate_limit(alert_store: AlertStore, tmp_path: Path, sample_area: Path) -> None:
    api = make_api(alert_store, test_settings(tmp_path, stac_url=catalog_path(sample_area), rate_limit="3/minute",
                                              tile_rate_limit="6/minute"))
    codes = [api.get("/tiles/change/3/1/1.png").status_code for _ in range(7)]
    assert codes == [200] * 6 + [429]  # more than the general 3/minute, then its own limit
    assert [api.get("/api/v1/scenes?limit=1", key="agent").status_code for _ in range(4)] == [200] * 3 + [429]
