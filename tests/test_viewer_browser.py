"""The map viewer in headless Debian chromium (Playwright), against a real server on loopback.

The store is filled by the real pipeline: ``geo-monitor detect`` over the
small SYNTHETIC sample area, and the app serves the sample's context layers.
Every page here runs with all non-loopback requests aborted, as on a
machine without internet. Screenshots go to docs/img/ (docs/viewer.md).
"""

from __future__ import annotations

import json
import random
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alert_samples import make_alert
from api_support import serving
from browser_support import browser, log_in, screenshot, wait_drawn, watch  # noqa: F401  (browser: fixture)
from conftest import cli
from geo_monitor.alerts import Priority
from geo_monitor.settings import Settings, load_settings
from geo_monitor.store import AlertStore
from web import create_app

pytestmark = pytest.mark.slow

AGENT, PASSWORD = "ana.agente", "clave-de-prueba-1"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
OUTSIDE_BASEMAP = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"


@dataclass
class Site:
    url: str
    store: AlertStore
    settings: Settings
    key: str  # an agent API key, to check through the API what the browser did

    def api(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"X-API-Key": self.key})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)


@pytest.fixture(scope="module")
def detected(sample_area: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder whose store holds the alerts of a real detection run over the small sample."""
    data = tmp_path_factory.mktemp("viewer") / "data"
    env = {"GEO_MONITOR_DATA_DIR": str(data), "GEO_MONITOR_SAMPLE_DIR": str(sample_area),
           "GEO_MONITOR_DASK_WORKERS": "2"}
    run = cli("detect", "--chunk-px", "256", "--json", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["alerts"] > 0
    return data


def _site(detected: Path, sample_area: Path, **overrides: Any) -> Iterator[Site]:
    settings = load_settings(data_dir=detected, sample_dir=sample_area, rate_limit="100000/minute", **overrides)
    store = AlertStore.from_settings(settings)
    store.migrate()
    if store.verify_user(AGENT, PASSWORD) is None:
        store.create_user(AGENT, PASSWORD, "agent")
    _, key = store.create_api_key("browser tests", "agent")
    with serving(create_app(settings, store=store)) as url:
        yield Site(url=url, store=store, settings=settings, key=key)
    store.dispose()


@pytest.fixture(scope="module")
def site(detected: Path, sample_area: Path) -> Iterator[Site]:
    """The viewer with the default, offline basemap."""
    yield from _site(detected, sample_area)


@pytest.fixture(scope="module")
def site_with_outside_basemap(detected: Path, sample_area: Path) -> Iterator[Site]:
    """The viewer configured with an internet basemap (which the tests make unreachable)."""
    yield from _site(detected, sample_area, basemap_url=OUTSIDE_BASEMAP)


@pytest.fixture(scope="module")
def site_with_many_alerts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """3,000 SYNTHETIC alerts scattered over the Amazon: enough for the map to cluster them."""
    rng = random.Random(5)
    store_dir = tmp_path_factory.mktemp("many") / "data"
    settings = load_settings(data_dir=store_dir, rate_limit="100000/minute")
    store = AlertStore.from_settings(settings)
    store.migrate()
    priorities = list(Priority)
    store.upsert_alerts([make_alert(f"gm-{i:016x}", at=(rng.uniform(-79.0, -76.0), rng.uniform(-4.5, 0.0)),
                                    priority=rng.choice(priorities), score=round(rng.random(), 3))
                         for i in range(3000)], "pipeline:synthetic")
    store.create_user(AGENT, PASSWORD, "agent")
    _, key = store.create_api_key("browser tests", "agent")
    with serving(create_app(settings, store=store)) as url:
        yield Site(url=url, store=store, settings=settings, key=key)
    store.dispose()


#: Every alert feature the page handed MapLibre, as (count it stands for, priority rank) pairs.
SOURCE_FEATURES = """async () => (await window.geoMonitor.map.getSource('alerts').getData()).features
    .map(f => [f.properties.point_count || 1, f.properties.point_count ? f.properties.maxp : f.properties.p])"""


def until(page: Any, expression: str, timeout_s: float = 30) -> None:
    """Poll ``expression`` from here: Playwright's own polling evaluates strings in the page, which its CSP forbids."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {expression}"
        page.wait_for_timeout(100)


def rendered(page: Any, *layers: str) -> int:
    """Features MapLibre has actually drawn on the canvas in ``layers``."""
    return int(page.evaluate("(layers) => window.geoMonitor.map.queryRenderedFeatures({layers}).length", list(layers)))


def open_first_alert_by_clicking_the_map(page: Any) -> str:
    """Zoom to the most urgent alert and click its point on the canvas; return its id."""
    alert = page.evaluate("""async () => {
        const p = await (await fetch('/map/points.json')).json();
        return {id: p.ids[0], lon: p.lon[0], lat: p.lat[0]};
    }""")
    page.evaluate("(a) => window.geoMonitor.map.jumpTo({center: [a.lon, a.lat], zoom: 11})", alert)
    until(page, "window.geoMonitor.map.loaded() && !window.geoMonitor.map.isMoving()")
    until(page, "window.geoMonitor.map.queryRenderedFeatures({layers: ['alert-points']}).length > 0")
    point = page.evaluate("(a) => window.geoMonitor.map.project([a.lon, a.lat])", alert)
    box = page.locator("#map canvas").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    page.wait_for_selector(f"#panel .alert-panel[data-alert-id='{alert['id']}']")
    return str(alert["id"])


def test_map_loads_and_draws_the_sample_alerts_without_errors(browser: Any, site: Site) -> None:
    page = browser.new_page(viewport=DESKTOP)
    seen = watch(page)
    log_in(page, site.url, AGENT, PASSWORD)
    drawn = wait_drawn(page)
    assert drawn == site.store.count() > 0
    until(page, "window.geoMonitor.map.loaded()")
    assert rendered(page, "alert-points", "alert-clusters") > 0
    # every context layer of the sample is on the map
    layers = page.evaluate("JSON.parse(document.getElementById('viewer-config').textContent).contextLayers")
    assert set(layers) == {"concessions", "protected_areas", "indigenous_territories", "rivers", "provinces"}
    for layer in layers:
        assert rendered(page, f"ctx-{layer}") > 0, layer
    assert page.locator(".alert-row").count() == drawn  # the list beside the map
    seen.assert_clean(page)
    assert seen.outside_requests == []  # the offline basemap asks no outside server for anything
    screenshot(page, "map.png")
    page.close()


def test_many_alerts_are_clustered_and_every_one_is_counted(browser: Any, site_with_many_alerts: Site) -> None:
    site = site_with_many_alerts
    page = browser.new_page(viewport=DESKTOP)
    seen = watch(page)
    log_in(page, site.url, AGENT, PASSWORD, path="/#map=6/-2.2/-77.5")
    assert wait_drawn(page) == 3000
    until(page, "window.geoMonitor.map.loaded()")
    features = page.evaluate(SOURCE_FEATURES)
    # zoomed out, MapLibre gets a few clusters, not 3,000 points, and they stand for every alert once
    assert 0 < len(features) < 300
    assert sum(n for n, _ in features) == 3000
    assert max(p for n, p in features if n > 1) == 3  # a cluster holding a critical alert says so
    assert rendered(page, "alert-clusters") > 0 and rendered(page, "alert-counts") > 0
    screenshot(page, "clusters.png")
    # a click on a cluster zooms in: smaller clusters, still every alert of the covered area counted once
    cluster = page.evaluate("window.geoMonitor.map.queryRenderedFeatures({layers: ['alert-clusters']})"
                            ".map(f => ({c: f.geometry.coordinates, n: f.properties.point_count}))"
                            ".sort((a, b) => b.n - a.n)[0]")
    zoom = page.evaluate("window.geoMonitor.map.getZoom()")
    point = page.evaluate("(c) => window.geoMonitor.map.project(c)", cluster["c"])
    box = page.locator("#map canvas").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    until(page, f"window.geoMonitor.map.getZoom() >= {zoom + 1} && !window.geoMonitor.map.isMoving()"
                " && window.geoMonitor.map.loaded()")
    closer = page.evaluate(SOURCE_FEATURES)
    covered = int(page.evaluate("document.documentElement.dataset.alertsCovered"))
    assert sum(n for n, _ in closer) == covered
    assert max(n for n, _ in closer) < cluster["n"]
    # close up, the alerts are single points (what a click opens), no clusters
    page.evaluate("(c) => window.geoMonitor.map.jumpTo({center: c, zoom: 12})", cluster["c"])
    until(page, "window.geoMonitor.map.getZoom() === 12 && window.geoMonitor.map.loaded()")
    assert all(n == 1 for n, _ in page.evaluate(SOURCE_FEATURES))
    seen.assert_clean(page)
    page.close()


def test_clicking_an_alert_opens_its_panel_with_chips_and_coordinates(browser: Any, site: Site) -> None:
    page = browser.new_page(viewport=DESKTOP)
    seen = watch(page)
    log_in(page, site.url, AGENT, PASSWORD)
    alert_id = open_first_alert_by_clicking_the_map(page)
    panel = page.locator("#panel")
    assert panel.is_visible()
    text = panel.inner_text()
    for label in ("Área", "Primera detección", "Confianza", "Legalidad", "Prioridad", "Provincia", "Río más cercano",
                  "Concesión minera", "Área protegida", "Territorio indígena", "Historial", "UTM"):
        assert label in text, label
    assert re.search(r"-?\d+\.\d{6}, -?\d+\.\d{6}", text)  # decimal degrees
    assert re.search(r"\d+°\d{2}'\d{2}\.\d\"[NS] \d+°\d{2}'\d{2}\.\d\"[EW]", text)  # DMS
    assert re.search(r"\b1[78][MN] \d{6} \d{7}\b", text)  # UTM zone + band, as GPS units show it
    assert page.locator("#panel a.geo-link").get_attribute("href").startswith("geo:")  # type: ignore[union-attr]
    # the chips the chips document offers are asked for; a side no scene shows is a note, never a 404
    page.wait_for_selector("#panel .chips[data-state=settled]", state="attached")
    offered = site.api(f"/api/v1/alerts/{alert_id}/chips")
    sources = page.evaluate("[...document.querySelectorAll('#panel img.chip')].map(i => i.getAttribute('src'))")
    assert sources == [f"/api/v1/alerts/{alert_id}/chips/{side}.png" for side in ("before", "after") if offered[side]]
    assert page.locator("#panel .chip-missing").count() == 2 - len(sources)
    assert f"alert={alert_id}" in page.url  # the selection is in the link
    seen.assert_clean(page)
    page.wait_for_timeout(300)
    screenshot(page, "panel.png")
    page.close()


def test_before_and_after_chips_show_images(browser: Any, site: Site) -> None:
    page = browser.new_page(viewport=DESKTOP)
    seen = watch(page)
    log_in(page, site.url, AGENT, PASSWORD)
    open_first_alert_by_clicking_the_map(page)
    until(page, "[...document.querySelectorAll('#panel img.chip')].filter(i => i.naturalWidth > 0).length == 2")
    seen.assert_clean(page)
    page.close()


def test_agent_changes_status_and_it_is_in_the_api_and_the_history(browser: Any, site: Site) -> None:
    page = browser.new_page(viewport=DESKTOP)
    seen = watch(page)
    log_in(page, site.url, AGENT, PASSWORD)
    row = page.locator(".alert-row").last
    alert_id = row.get_attribute("data-alert-id")
    assert site.api(f"/api/v1/alerts/{alert_id}")["properties"]["status"] == "new"
    row.click()
    form = page.locator("#panel form.status-form")
    form.locator("select[name=status]").select_option("under_review")
    form.locator("textarea[name=note]").fill("Patrulla programada para el lunes")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#panel .message.ok")
    assert page.locator("#panel .message.ok").inner_text() == "Estado guardado."
    stored = site.api(f"/api/v1/alerts/{alert_id}")
    assert stored["properties"]["status"] == "under_review"
    last = stored["history"][-1]
    assert last["actor"] == f"user:{AGENT}" and last["changes"] == {"status": ["new", "under_review"]}
    assert last["note"] == "Patrulla programada para el lunes"
    history = page.locator("#panel .history li[data-kind=status]").first.inner_text()
    assert "nueva → en revisión" in history and "Patrulla programada" in history
    # the list is refreshed from the store: the row shows the new status
    until(page, f"!!document.querySelector(`.alert-row[data-alert-id='{alert_id}']`)"
                "?.textContent.includes('en revisión')")
    seen.assert_clean(page)
    page.close()


def test_switching_to_english_changes_the_strings_and_formats(browser: Any, site: Site) -> None:
    page = browser.new_page(viewport=DESKTOP, locale="en-US")  # the browser's language does not decide
    seen = watch(page)
    log_in(page, site.url, AGENT, PASSWORD)
    assert page.locator("html").get_attribute("lang") == "es"
    assert page.title() == "geo-monitor: mapa de alertas de minería"
    spanish_row = page.locator(".alert-row").first.inner_text()
    page.click("#lang-en")
    wait_drawn(page)
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.title() == "geo-monitor: mining alerts map"
    assert page.locator("#toggle-filters").inner_text() == "Filters and layers"
    assert "alerts in view" in page.locator("#list-summary").inner_text()
    english_row = page.locator(".alert-row").first.inner_text()
    assert english_row != spanish_row
    # dates and numbers in the reader's locale: "20 jul 2024" / "2,2 ha" against "Jul 20, 2024" / "2.2 ha"
    assert re.search(r"\d{1,2} [a-z]{3,4}\.? \d{4}", spanish_row) and re.search(r"\d,\d ha", spanish_row)
    assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d{4}", english_row) and re.search(r"\d\.\d ha", english_row)
    seen.assert_clean(page)
    page.close()


def test_phone_sized_viewport_is_usable(browser: Any, site: Site) -> None:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    seen = watch(page)
    log_in(page, site.url, AGENT, PASSWORD)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing sticks out sideways
    map_box = page.locator("#map").bounding_box()
    assert map_box["width"] == PHONE["width"] and map_box["height"] > PHONE["height"] * 0.7
    assert not page.locator("#list").is_visible()  # the map has the screen; the list is one tap away
    page.tap("#toggle-list")
    assert page.locator("#list").is_visible()
    page.locator(".alert-row").first.tap()
    page.wait_for_selector("#panel .alert-panel")
    assert not page.locator("#list").is_visible()
    panel = page.locator("#panel").bounding_box()
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= PHONE["width"]
    shrunk = page.locator("#map").bounding_box()  # the map stays live above the panel, not hidden under it
    assert shrunk["height"] > 200 and shrunk["y"] + shrunk["height"] <= panel["y"] + 1
    close = page.locator("#panel button.close").bounding_box()
    assert close["width"] >= 36 and close["height"] >= 36  # big enough for a thumb
    page.wait_for_timeout(300)
    screenshot(page, "phone.png")
    page.tap("#panel button.close")
    assert not page.locator("#panel").is_visible()
    seen.assert_clean(page)
    context.close()


def test_offline_basemap_works_with_every_outside_host_unreachable(browser: Any,
                                                                   site_with_outside_basemap: Site) -> None:
    site = site_with_outside_basemap
    page = browser.new_page(viewport=DESKTOP)
    seen = watch(page, block_outside=True)
    log_in(page, site.url, AGENT, PASSWORD)
    assert wait_drawn(page) == site.store.count()
    page.wait_for_selector("html[data-basemap=offline]", state="attached")
    assert "mapa sin conexión" in page.locator("#notice").inner_text()
    assert any(url.startswith("https://tile.openstreetmap.org/") for url in seen.outside_requests)
    until(page, "window.geoMonitor.map.loaded()")
    assert rendered(page, "alert-points", "alert-clusters") > 0
    assert rendered(page, "ctx-rivers") > 0 and rendered(page, "ctx-protected_areas") > 0
    # the only errors are the aborted basemap tiles themselves
    seen.assert_clean(page, allow_console=("tile.openstreetmap.org",))
    page.close()


def test_map_state_is_in_the_url_and_a_shared_link_restores_it(browser: Any, site: Site) -> None:
    page = browser.new_page(viewport=DESKTOP)
    seen = watch(page)
    log_in(page, site.url, AGENT, PASSWORD, path="/?priority=critical")
    expected = site.api("/api/v1/alerts?priority=critical")["numberMatched"]
    assert wait_drawn(page) == expected
    assert page.locator("input[name=priority][value=critical]").is_checked()
    page.click("#toggle-filters")
    page.check("input[name=confidence][value=high]")
    until(page, "location.search.includes('confidence=high')")
    wait_drawn(page)
    if page.locator(".alert-row").count():
        page.locator(".alert-row").first.click()
        page.wait_for_selector("#panel .alert-panel")
    shared = page.url
    assert "priority=critical" in shared and "#map=" in shared
    other = browser.new_page(viewport=DESKTOP)
    other_seen = watch(other)
    other.context.add_cookies(page.context.cookies())
    other.goto(shared)
    wait_drawn(other)
    assert other.locator("input[name=priority][value=critical]").is_checked()
    assert other.locator("input[name=confidence][value=high]").is_checked()
    if "alert=" in shared:
        alert_id = re.search(r"alert=([^&#]+)", shared).group(1)  # type: ignore[union-attr]
        other.wait_for_selector(f"#panel .alert-panel[data-alert-id='{alert_id}']")
    assert other.url.split("#map=")[1].split("/")[0] == shared.split("#map=")[1].split("/")[0]  # same zoom
    seen.assert_clean(page)
    other_seen.assert_clean(other)
    page.close()
    other.close()
