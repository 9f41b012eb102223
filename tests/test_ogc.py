"""OGC API - Features at /ogc: the documents, paging by offset, and GDAL's OAPIF driver loading every alert."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyogrio
import pytest
from alert_samples import make_alert
from api_support import Api, LiveServer, api, live_server, problem  # noqa: F401  (fixtures)

PIPELINE = "pipeline:mining-change@1"
N_ALERTS = 23


def _seed(api: Api, n: int = N_ALERTS) -> None:
    api.store.upsert_alerts([make_alert(f"gm-{i:04d}", at=(-77.9 + i * 0.01, -1.0)) for i in range(n)], PIPELINE)


def test_landing_conformance_collections(api: Api) -> None:
    landing = api.get("/ogc").get_json()
    rels = {link["rel"]: link for link in landing["links"]}
    assert {"self", "conformance", "data", "service-desc", "service-doc"} <= set(rels)
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert api.get("/ogc/?f=json").status_code == 200
    conforms = api.get("/ogc/conformance").get_json()["conformsTo"]
    for cls in ("core", "geojson", "oas30"):
        assert f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{cls}" in conforms
    collections = api.get("/ogc/collections").get_json()["collections"]
    assert [c["id"] for c in collections] == ["alerts"]
    alerts = api.get("/ogc/collections/alerts").get_json()
    assert alerts["itemType"] == "feature"
    assert alerts["crs"] == ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"]
    assert len(alerts["extent"]["spatial"]["bbox"][0]) == 4
    assert "items" in {link["rel"] for link in alerts["links"]}
    queryables = api.get("/ogc/collections/alerts/queryables")
    assert queryables.mimetype == "application/schema+json"
    assert {"status", "priority", "province"} <= set(queryables.get_json()["properties"])
    problem(api.get("/ogc/collections/lakes"), 404)
    assert problem(api.get("/ogc/conformance?f=html"), 400)["parameter"] == "f"


def test_items_page_by_offset_with_next_and_prev(api: Api) -> None:
    _seed(api)
    first = api.get("/ogc/collections/alerts/items?limit=10")
    assert first.mimetype == "application/geo+json"
    body = first.get_json()
    assert body["numberMatched"] == N_ALERTS and body["numberReturned"] == 10
    assert body["timeStamp"].endswith("Z")
    rels = {link["rel"]: link["href"] for link in body["links"]}
    assert "next" in rels and "prev" not in rels
    seen = [f["id"] for f in body["features"]]
    last = api.get("/ogc/collections/alerts/items?limit=10&offset=20").get_json()
    rels = {link["rel"]: link["href"] for link in last["links"]}
    assert "next" not in rels and "offset=10" in rels["prev"]
    middle = api.get(api.get("/ogc/collections/alerts/items?limit=10").get_json()["links"][-1]["href"]).get_json()
    seen += [f["id"] for f in middle["features"]] + [f["id"] for f in last["features"]]
    assert sorted(seen) == [f"gm-{i:04d}" for i in range(N_ALERTS)]
    # OGC: a limit above the maximum is the maximum, not an error
    assert api.get("/ogc/collections/alerts/items?limit=100000").get_json()["numberReturned"] == N_ALERTS
    # a bbox away from Ecuador is an empty page (GIS clients send their view), a broken one is a 400
    assert api.get("/ogc/collections/alerts/items?bbox=10,40,11,41").get_json()["numberMatched"] == 0
    assert problem(api.get("/ogc/collections/alerts/items?bbox=nan,0,1,1"), 400)["parameter"] == "bbox"
    assert problem(api.get("/ogc/collections/alerts/items?offset=-3"), 400)["parameter"] == "offset"
    assert problem(api.get("/ogc/collections/alerts/items?sortby=id"), 400)["parameter"] == "sortby"


def test_items_filters_and_single_item(api: Api) -> None:
    _seed(api, 5)
    api.store.change_status("gm-0002", "under_review", "user:agent.napo")
    body = api.get("/ogc/collections/alerts/items?bbox=-77.905,-1.01,-77.885,-0.99&datetime=2024-02-01").get_json()
    assert [f["id"] for f in body["features"]] == ["gm-0000", "gm-0001"]
    body = api.get("/ogc/collections/alerts/items?status=under_review").get_json()
    assert [f["id"] for f in body["features"]] == ["gm-0002"]
    one = api.get("/ogc/collections/alerts/items/gm-0002").get_json()
    assert one["type"] == "Feature" and one["properties"]["status"] == "under_review"
    assert {"self", "collection"} <= {link["rel"] for link in one["links"]}
    problem(api.get("/ogc/collections/alerts/items/gm-none"), 404)


#: What GDAL does in its own process: pyogrio keeps the GIL while it reads features, so a
#: server thread in the test process could not answer it. Prints one JSON document.
GDAL_CLIENT = """
import json, sys
import pyogrio

url, header_file, out = sys.argv[1:4]
# GDAL_HTTP_HEADER_FILE, not GDAL_HTTP_HEADERS: the OAPIF driver sets its own Accept
# header, which replaces GDAL_HTTP_HEADERS (seen with GDAL 3.12).
pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": header_file, "GDAL_HTTP_MAX_RETRY": "0",
                                 "GDAL_HTTP_TIMEOUT": "60"})
source = "OAPIF:" + url + "/ogc"
layers = [str(name) for name, _ in pyogrio.list_layers(source)]
fields = [str(f) for f in pyogrio.read_info(source, layer="alerts")["fields"]]
frame = pyogrio.read_dataframe(source, layer="alerts")
pyogrio.write_dataframe(frame, out, layer="alerts")  # what ogr2ogr -f GPKG does
near = pyogrio.read_dataframe(source, layer="alerts", bbox=(-77.905, -1.01, -77.885, -0.99))
print(json.dumps({"layers": layers, "fields": fields, "ids": sorted(frame["id"]), "crs": frame.crs.to_string(),
                  "near": sorted(near["id"])}))
"""


@pytest.mark.slow
def test_gdal_oapif_driver_loads_every_alert(live_server: LiveServer, tmp_path: Path) -> None:
    """GDAL's OAPIF driver (what QGIS uses) lists the layer, reads every alert and copies them to a GeoPackage."""
    _seed(live_server.api)
    headers = tmp_path / "gdal-headers.txt"
    headers.write_text(f"X-API-Key: {live_server.api.keys['partner']}\n")
    out = tmp_path / "alerts.gpkg"
    result = subprocess.run([sys.executable, "-c", GDAL_CLIENT, live_server.url, str(headers), str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["layers"] == ["alerts"]
    assert {"status", "priority", "first_detected", "updated_at"} <= set(seen["fields"])
    assert seen["ids"] == [f"gm-{i:04d}" for i in range(N_ALERTS)]
    assert seen["crs"] in ("OGC:CRS84", "EPSG:4326")  # lon/lat either way
    assert sorted(pyogrio.read_dataframe(out)["id"]) == seen["ids"]
    # the spatial filter went to the server as bbox
    assert seen["near"] == ["gm-0000", "gm-0001"]


def test_gdal_without_a_key_is_refused(live_server: LiveServer) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import pyogrio, sys; pyogrio.list_layers('OAPIF:' + sys.argv[1] + '/ogc')",
         live_server.url], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "401" in result.stderr
