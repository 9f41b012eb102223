"""A tiny static STAC catalog of real COGs, built in a temporary folder, and loopback servers for it.

The catalog mimics what geo-monitor meets in the wild: Earth Search v1 and
Planetary Computer asset keys side by side, ``raster:bands`` scale/offset on
some items and only ``s2:processing_baseline`` on others, an item missing a
band, items linked out of date order, a nested sub-catalog, a second
collection and a scene in the other UTM zone of Ecuador.

Pixel values are chosen so tests can predict them: in a 10 m band the DN of
column ``j`` is ``base + j`` (the top ``NODATA_ROWS_10M`` rows are 0 =
nodata); in a 20 m band the DN of 20 m column ``J`` is ``base + J``.

Pytest fixtures (import them into a test module; they are session-scoped so
the COGs are written once): ``static_catalog``, ``catalog_http_url``
(the folder over loopback HTTP, with byte ranges so GDAL can read the COGs)
and ``stac_api`` (see ``stac_api_server.py``).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from affine import Affine

#: Area of interest (lon/lat) inside the 18S items' footprint, near Río Punino.
AOI_BBOX = (-77.402, -0.902, -77.398, -0.898)
#: 640 m x 640 m footprint of the 18S items: top-left corner, EPSG:32718 metres.
ORIGIN_18S = (232560.0, 9900760.0)
ORIGIN_17S = (722000.0, 9668520.0)
SIZE_10M = 64
NODATA_ROWS_10M = 4
COLLECTION = "sentinel-2-l2a"
OTHER_COLLECTION = "other-l2a"

_ES_KEYS = {"blue": "blue", "green": "green", "red": "red", "nir": "nir", "swir16": "swir16", "swir22": "swir22", "scl": "scl"}
_PC_KEYS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12", "scl": "SCL"}
#: DN base added to the item's ``base`` per band.
BAND_BASE_STEP = {"blue": 0, "green": 100, "red": 200, "nir": 300, "swir16": 400, "swir22": 500}
SCL_CLOUD_COLS_20M = 8  # 20 m columns 0..7 are cloud (9), the rest vegetation (4)


@dataclass(frozen=True)
class ItemSpec:
    """How one fixture item is written and what a reader should get from it."""

    id: str
    datetime: str
    convention: str  # "earth-search" | "planetary-computer"
    base: int  # DN of column 0 of blue
    cloud_cover: float | None
    baseline: str | None
    raster_scale_offset: tuple[float, float] | None  # written into raster:bands when set
    boa_offset_applied: bool | None = None
    missing: tuple[str, ...] = ()
    zone: int = 18
    collection: str = COLLECTION
    expected_offset: float = -0.1

    @property
    def epsg(self) -> int:
        return 32700 + self.zone

    def dn(self, band: str, col_10m: int) -> int:
        """Expected DN (after nearest resampling to 10 m) at 10 m column ``col_10m`` of a valid row."""
        if band in ("swir16", "swir22"):
            return self.base + BAND_BASE_STEP[band] + col_10m // 2
        return self.base + BAND_BASE_STEP[band] + col_10m

    def reflectance(self, band: str, col_10m: int) -> float:
        scale = self.raster_scale_offset[0] if self.raster_scale_offset else 0.0001
        return self.dn(band, col_10m) * scale + self.expected_offset


ITEMS: dict[str, ItemSpec] = {
    s.id: s
    for s in [
        # Earth Search, raster:bands scale/offset -0.1, current baseline.
        ItemSpec("S2A_18MTV_20240105_0_L2A", "2024-01-05T15:32:10Z", "earth-search", 2000, 12.5, "05.10", (0.0001, -0.1)),
        # Same timestamp as the one above (overlapping product): must not be merged.
        # raster:bands says offset 0 although the baseline would imply -0.1: raster:bands wins.
        # No eo:cloud_cover: kept by any cloud filter.
        ItemSpec(
            "S2A_18MTV_20240105_1_L2A", "2024-01-05T15:32:10Z", "earth-search", 1200, None, "05.10", (0.0001, 0.0),
            expected_offset=0.0,
        ),
        # Planetary Computer keys, no raster:bands: offset from the baseline (-0.1).
        ItemSpec(
            "S2B_MSIL2A_20240110T153619_R068_T18MTV_20240110T201500", "2024-01-10T15:36:19Z", "planetary-computer",
            2500, 30.0, "05.10", None,
        ),
        # Missing swir22: skipped with a reason.
        ItemSpec("S2B_18MTV_20240115_0_L2A", "2024-01-15T15:32:00Z", "earth-search", 2000, 5.0, "05.10", (0.0001, -0.1), missing=("swir22",)),
        # Cloudy; baseline 04.00 but the provider already removed the offset.
        ItemSpec(
            "S2A_18MTV_20240120_0_L2A", "2024-01-20T15:32:00Z", "earth-search", 1500, 80.0, "04.00", None,
            boa_offset_applied=True, expected_offset=0.0,
        ),
        # UTM zone 17S, far away (El Oro): outside the AOI.
        ItemSpec("S2A_17MPS_20240125_0_L2A", "2024-01-25T15:40:00Z", "earth-search", 2000, 10.0, "05.10", (0.0001, -0.1), zone=17),
        # Old baseline in another collection, same place and time window.
        ItemSpec(
            "OTHER_18MTV_20240112_0_L2A", "2024-01-12T15:30:00Z", "planetary-computer", 900, 20.0, "03.01", None,
            collection=OTHER_COLLECTION, expected_offset=0.0,
        ),
    ]
}
#: Items of COLLECTION linked straight from the collection, deliberately not in date order;
#: the rest of COLLECTION sits in a nested sub-catalog.
DIRECT_LINK_ORDER = [
    "S2A_18MTV_20240120_0_L2A",
    "S2A_18MTV_20240105_1_L2A",
    "S2A_17MPS_20240125_0_L2A",
    "S2B_MSIL2A_20240110T153619_R068_T18MTV_20240110T201500",
]
SUBCATALOG_ITEMS = ["S2B_18MTV_20240115_0_L2A", "S2A_18MTV_20240105_0_L2A"]


@dataclass
class FixtureCatalog:
    """Where the catalog was written and what is in it."""

    root: Path
    catalog_json: Path
    items: dict[str, ItemSpec] = field(default_factory=lambda: dict(ITEMS))

    def item_json(self, item_id: str) -> Path:
        spec = self.items[item_id]
        return self.root / spec.collection / item_id / f"{item_id}.json"


# --- rasters -----------------------------------------------------------------------


def _origin(spec: ItemSpec) -> tuple[float, float]:
    return ORIGIN_18S if spec.zone == 18 else ORIGIN_17S


def _band_array(spec: ItemSpec, band: str) -> tuple[np.ndarray, int]:
    res = 20 if band in ("swir16", "swir22", "scl") else 10
    size = SIZE_10M * 10 // res
    nodata_rows = NODATA_ROWS_10M * 10 // res
    cols = np.broadcast_to(np.arange(size), (size, size))
    if band == "scl":
        data = np.where(cols < SCL_CLOUD_COLS_20M, 9, 4).astype("uint8")
    else:
        data = (spec.base + BAND_BASE_STEP[band] + cols).astype("uint16")
    data = data.copy()
    data[:nodata_rows, :] = 0
    return data, res


def _write_cog(path: Path, data: np.ndarray, res: int, spec: ItemSpec) -> dict[str, Any]:
    x0, y0 = _origin(spec)
    transform = Affine(res, 0.0, x0, 0.0, -res, y0)
    profile = dict(
        driver="COG", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name,
        crs=f"EPSG:{spec.epsg}", transform=transform, nodata=0, blocksize=32, compress="deflate",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return {"proj:shape": list(data.shape), "proj:transform": list(transform)[:6]}


def _footprint(spec: ItemSpec) -> tuple[dict[str, Any], list[float]]:
    x0, y0 = _origin(spec)
    size = SIZE_10M * 10
    to_ll = Transformer.from_crs(spec.epsg, 4326, always_xy=True)
    corners = [(x0, y0), (x0 + size, y0), (x0 + size, y0 - size), (x0, y0 - size)]
    ring = [list(to_ll.transform(x, y)) for x, y in corners]
    ring.append(ring[0])
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return {"type": "Polygon", "coordinates": [ring]}, [min(lons), min(lats), max(lons), max(lats)]


# --- STAC JSON -----------------------------------------------------------------------

_PROJ_V2 = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
_PROJ_V11 = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
_RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
_EO = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
_COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def _write_item(folder: Path, spec: ItemSpec) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    keys = _ES_KEYS if spec.convention == "earth-search" else _PC_KEYS
    pc = spec.convention == "planetary-computer"
    assets: dict[str, Any] = {}
    for band, key in keys.items():
        if band in spec.missing:
            continue
        data, res = _band_array(spec, band)
        asset: dict[str, Any] = {"href": f"./{key}.tif", "type": _COG, "roles": ["data"], "gsd": res}
        asset.update(_write_cog(folder / f"{key}.tif", data, res, spec))
        if not pc:
            asset["proj:code"] = f"EPSG:{spec.epsg}"
        rb: dict[str, Any] = {"nodata": 0, "data_type": data.dtype.name, "spatial_resolution": res}
        if spec.raster_scale_offset and band != "scl":
            rb["scale"], rb["offset"] = spec.raster_scale_offset
        if not pc:
            asset["raster:bands"] = [rb]
        assets[key] = asset
    # Assets geo-monitor must ignore.
    assets["thumbnail"] = {"href": "./thumbnail.jpg", "type": "image/jpeg", "roles": ["thumbnail"]}
    assets["granule_metadata" if not pc else "granule-metadata"] = {
        "href": "./metadata.xml", "type": "application/xml", "roles": ["metadata"],
    }
    geometry, bbox = _footprint(spec)
    props: dict[str, Any] = {"datetime": spec.datetime, "platform": "sentinel-2a" if "S2A" in spec.id else "sentinel-2b"}
    if spec.cloud_cover is not None:
        props["eo:cloud_cover"] = spec.cloud_cover
    if spec.baseline is not None:
        props["s2:processing_baseline"] = spec.baseline
    if spec.boa_offset_applied is not None:
        props["earthsearch:boa_offset_applied"] = spec.boa_offset_applied
    if pc:
        props["proj:epsg"] = spec.epsg
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [_PROJ_V11 if pc else _PROJ_V2, _EO] + ([] if pc else [_RASTER]),
        "id": spec.id,
        "collection": spec.collection,
        "geometry": geometry,
        "bbox": bbox,
        "properties": props,
        "assets": assets,
        "links": [
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
        ],
    }
    _dump(folder / f"{spec.id}.json", item)


def _dump(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def _collection(cid: str, links: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": cid,
        "description": f"{cid} test fixture (synthetic pixels)",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[-81.2, -5.2, -75.0, 1.7]]},
            "temporal": {"interval": [["2024-01-01T00:00:00Z", None]]},
        },
        "links": [{"rel": "root", "href": "../catalog.json"}, {"rel": "parent", "href": "../catalog.json"}, *links],
    }


def build_catalog(root: Path) -> FixtureCatalog:
    """Write the fixture catalog (JSON + COGs, about 50 small files) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for spec in ITEMS.values():
        _write_item(root / spec.collection / spec.id, spec)
    # The sub-catalog lives in sentinel-2-l2a/2024-01/, its items one level up.
    sub_links = [{"rel": "item", "href": f"../{i}/{i}.json"} for i in SUBCATALOG_ITEMS]
    _dump(
        root / COLLECTION / "2024-01" / "catalog.json",
        {
            "type": "Catalog", "stac_version": "1.0.0", "id": "2024-01", "description": "January 2024",
            "links": [{"rel": "root", "href": "../../catalog.json"}, {"rel": "parent", "href": "../collection.json"}, *sub_links],
        },
    )
    s2_links = [{"rel": "item", "href": f"./{i}/{i}.json"} for i in DIRECT_LINK_ORDER]
    s2_links.append({"rel": "child", "href": "./2024-01/catalog.json"})
    _dump(root / COLLECTION / "collection.json", _collection(COLLECTION, s2_links))
    other = [i for i, s in ITEMS.items() if s.collection == OTHER_COLLECTION]
    _dump(root / OTHER_COLLECTION / "collection.json", _collection(OTHER_COLLECTION, [{"rel": "item", "href": f"./{i}/{i}.json"} for i in other]))
    catalog = {
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": "geo-monitor-test",
        "description": "Test fixture: synthetic Sentinel-2 L2A COGs near Río Punino",
        "links": [
            {"rel": "root", "href": "./catalog.json"},
            {"rel": "child", "href": f"./{OTHER_COLLECTION}/collection.json"},
            {"rel": "child", "href": f"./{COLLECTION}/collection.json"},
        ],
    }
    _dump(root / "catalog.json", catalog)
    return FixtureCatalog(root, root / "catalog.json")


def copy_catalog(src: FixtureCatalog, dst: Path) -> FixtureCatalog:
    """A private copy (for tests that break files on purpose)."""
    shutil.copytree(src.root, dst)
    return FixtureCatalog(dst, dst / "catalog.json")


# --- loopback HTTP for the static folder -------------------------------------------------

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single byte-range support (GDAL's /vsicurl/ needs 206 answers)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        return None

    def send_head(self):  # type: ignore[no-untyped-def]
        match = _RANGE.match(self.headers.get("Range", "").strip())
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first_text, last_text = match.groups()
        if first_text == "":  # suffix range: last N bytes
            first, last = max(0, size - int(last_text or 0)), size - 1
        else:
            first, last = int(first_text), min(int(last_text) if last_text else size - 1, size - 1)
        if first >= size:
            self.send_error(416, "Requested Range Not Satisfiable")
            return None
        handle = path.open("rb")
        handle.seek(first)
        self._remaining = last - first + 1
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(self._remaining))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return handle

    def copyfile(self, source, outputfile):  # type: ignore[no-untyped-def]
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(remaining))
        self._remaining = None
        return None


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (port chosen by the OS) that stops cleanly."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_folder(folder: Path) -> LoopbackServer:
    """Serve ``folder`` read-only over loopback HTTP (use as a context manager)."""
    handler = functools.partial(_RangeHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return LoopbackServer(server)


def closed_port_url() -> str:
    """An http URL on a loopback port where nothing listens (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/catalog.json"


# --- pytest fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def static_catalog(tmp_path_factory: pytest.TempPathFactory) -> FixtureCatalog:
    """The fixture catalog, written once per test session."""
    return build_catalog(tmp_path_factory.mktemp("stac") / "catalog")


@pytest.fixture(scope="session")
def catalog_http_url(static_catalog: FixtureCatalog) -> Iterator[str]:
    """URL of the fixture's catalog.json served over loopback HTTP."""
    with serve_folder(static_catalog.root) as server:
        yield f"{server.url}/catalog.json"


@pytest.fixture(scope="session")
def stac_api(static_catalog: FixtureCatalog) -> Iterator[Any]:
    """A running test STAC API serving the fixture's items (see ``stac_api_server.py``)."""
    from stac_api_server import StacApiServer

    with StacApiServer.from_folder(static_catalog.root) as server:
        yield server

