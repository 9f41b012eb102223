"""Benchmark: from navigation to alerts drawn in the map viewer, with 100,000 alerts in the store.

Fills a SQLite store with SYNTHETIC alerts (small squares scattered over the
Ecuadorian Amazon and southern Andes, every priority/confidence/status),
serves the app on loopback (waitress, as ``geo-monitor serve``) and loads
``/`` in headless Debian chromium (Playwright, as the browser tests),
logged in. It times, per page load, navigation start -> the page's
``alerts-drawn`` mark (MapLibre idle with every alert of the view on the map:
the clusters and single points web/static/clusters.js makes of the point set):

1. **baseline**: the same page with a filter that matches no alert (MapLibre,
   context layers, an empty point set): the floor of loading the map at all;
2. **cold**: all alerts, first load after a store change (the server builds
   and caches the point set; the page's own request starts that build);
3. **warm**: all alerts again, point set cached on the server, the browser's
   HTTP cache off (every byte sent again, as on a phone that evicted it).

It also reports the size of the point set the page reads (``/map/points.bin``:
plain, gzipped as a fresh set is sent at level 1, and as later requests get it
at level 6), the server's time to
build and send a fresh set, and the load average before and after. Alert ids
are shaped as the pipeline's (``gm-`` + 16 hex digits), which gzip cannot
shrink much.
Target: warm and cold <= 2 s. Usage::

    .venv/bin/python benchmarks/viewer_load.py [--alerts 100000] [--runs 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from shapely.geometry import box  # noqa: E402

from geo_monitor.alerts import Alert, Confidence, Context, Legality, Priority, Provenance, Signature  # noqa: E402
from geo_monitor.settings import load_settings  # noqa: E402
from geo_monitor.store import AlertStore  # noqa: E402

PROVINCES = ["Napo", "Orellana", "Sucumbíos", "Zamora Chinchipe", "Morona Santiago", "Pastaza", "El Oro", "Azuay"]
USER, PASSWORD = "bench", "benchmark-password-1"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def bench_id(i: int) -> str:
    """Ids shaped as the pipeline's (``gm-`` + 16 hex digits of a hash): they compress as badly as real ones."""
    return "gm-" + hashlib.sha256(f"benchmark-{i}".encode()).hexdigest()[:16]


def synthetic_alerts(count: int, first_id: int = 0) -> list[Alert]:
    rng = random.Random(first_id)
    alerts = []
    for i in range(first_id, first_id + count):
        lon, lat = rng.uniform(-79.5, -75.5), rng.uniform(-4.8, 0.3)
        size = rng.uniform(0.0005, 0.004)
        first = date(2024, 1, 1) + timedelta(days=rng.randrange(300))
        alerts.append(Alert(
            id=bench_id(i),
            geometry=box(lon, lat, lon + size, lat + size),
            area_ha=round(size * size * 1.2e6, 2),
            pond_area_ha=0.1,
            first_detected=first,
            last_observed=first + timedelta(days=20),
            confirmed_at=None,
            confidence=rng.choice(list(Confidence)),
            score=round(rng.random(), 3),
            signature=Signature(vegetation_loss=0.4, bare_soil=0.5, water=0.1, turbidity=1.0),
            context=Context(province=rng.choice(PROVINCES), nearest_river="Río X", river_distance_m=120.0),
            legality=rng.choice(list(Legality)),
            priority=rng.choice(list(Priority)),
            provenance=Provenance(pipeline="benchmark", pipeline_version="0", model_version=None,
                                  scene_ids=["SYNTHETIC"]),
        ))
    return alerts


def fill_store(store: AlertStore, count: int) -> float:
    started = time.perf_counter()
    batch = 5000
    for start in range(0, count, batch):
        store.upsert_alerts(synthetic_alerts(min(batch, count - start), first_id=start), "pipeline:benchmark")
    return time.perf_counter() - started


def serve(app: Any) -> tuple[str, Any]:
    import waitress.server

    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    return f"http://127.0.0.1:{server.effective_port}", server


def load_time(browser: Any, cookies: list[dict[str, Any]], url: str) -> tuple[float, int, float]:
    """Seconds to the page's alerts-drawn mark, alerts drawn, seconds to points-parsed: a fresh context each."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_cookies(cookies)
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if "127.0.0.1" in route.request.url else route.abort())
    page.goto(url)
    page.wait_for_selector("html[data-alerts-state=drawn]", state="attached", timeout=120_000)
    marks = page.evaluate("['points-parsed', 'alerts-drawn'].map(n => performance.getEntriesByName(n)[0].startTime)")
    drawn = int(page.evaluate("document.documentElement.dataset.alertsDrawn"))
    context.close()
    return float(marks[1]) / 1000, drawn, float(marks[0]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from web import create_app

    work = args.work or Path(tempfile.mkdtemp(prefix="gm-viewer-bench-"))
    settings = load_settings(data_dir=work / "var", rate_limit="1000000/minute", log_level="WARNING")
    store = AlertStore.from_settings(settings)
    store.migrate()
    if store.count() != args.alerts:
        fill_seconds = fill_store(store, args.alerts)
        print(f"store filled with {store.count():,} alerts in {fill_seconds:.1f} s", file=sys.stderr)
    try:
        store.create_user(USER, PASSWORD, "agent")
    except Exception:  # noqa: BLE001  (kept from an earlier run in --work)
        pass
    base, server = serve(create_app(settings, store=store))

    _, key = store.create_api_key("benchmark", "agent")

    def fetch_points() -> bytes:
        request = urllib.request.Request(base + "/map/points.bin", headers={"X-API-Key": key,
                                                                           "Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=300) as response:
            return bytes(response.read())

    started = time.perf_counter()
    fast = fetch_points()  # a fresh set: built, encoded and sent at gzip level 1
    server_cold = time.perf_counter() - started
    plain = gzip.decompress(fast)
    assert json.loads(plain[8:8 + int.from_bytes(plain[4:8], "little")])["count"] == args.alerts  # GMP1 header
    deadline = time.monotonic() + 30
    packed = fast
    while packed == fast and time.monotonic() < deadline:  # the level-6 copy, made in the background
        time.sleep(0.2)
        packed = fetch_points()

    results: dict[str, Any] = {"alerts": args.alerts, "runs": args.runs, "load_average_start": os.getloadavg(),
                               "points_bin_bytes": len(plain), "points_gzip_bytes": len(packed),
                               "points_gzip_fast_bytes": len(fast),
                               "points_server_cold_s": round(server_cold, 3)}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(base + "/")  # sent to the login form, and back to the map after it
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("html[data-alerts-state=drawn]", state="attached", timeout=120_000)
        cookies = page.context.cookies()
        page.close()

        baseline = [load_time(browser, cookies, base + "/?province=Nowhere#map=6/-1.8/-78")[0] for _ in range(args.runs)]
        store.assign(bench_id(0), f"bench-{time.time():.0f}", "user:bench")  # a store change: the cached point set goes
        cold, drawn, cold_parsed = load_time(browser, cookies, base + "/#map=6/-1.8/-78")
        assert drawn == args.alerts, drawn
        runs = [load_time(browser, cookies, base + "/#map=6/-1.8/-78") for _ in range(args.runs)]
        warm = [r[0] for r in runs]
        parsed = [r[2] for r in runs]
        browser.close()
    server.close()
    results.update({
        "load_average_end": os.getloadavg(),
        "cold_points_parsed_s": round(cold_parsed, 3),
        "baseline_median_s": round(statistics.median(baseline), 3),
        "cold_s": round(cold, 3),
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_max_s": round(max(warm), 3),
        "warm_points_parsed_median_s": round(statistics.median(parsed), 3),
        "warm_over_baseline": round(statistics.median(warm) / statistics.median(baseline), 2),
    })
    print(json.dumps(results, indent=2))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
