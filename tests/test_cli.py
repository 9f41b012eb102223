"""The command line, run as a user runs it (a subprocess): info, scenes, and one-line errors for bad input.

Every bad input must end with exit code 2 and exactly one line on stderr,
``error: <message>``, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geo_monitor.settings import CONTEXT_LAYERS, ENV_PREFIX

from stac_fixtures import AOI_BBOX, FixtureCatalog, static_catalog  # noqa: F401  (pytest fixture)

AOI = ",".join(str(v) for v in AOI_BBOX)
JAN = ["--start", "2024-01-01", "--end", "2024-01-31"]
#: The fixture's usable January scenes of its main collection over the AOI, any cloud cover, in time order.
JAN_SCENES = [
    "S2A_18MTV_20240105_0_L2A",
    "S2A_18MTV_20240105_1_L2A",
    "S2B_MSIL2A_20240110T153619_R068_T18MTV_20240110T201500",
    "S2A_18MTV_20240120_0_L2A",
]
BROKEN = "S2B_18MTV_20240115_0_L2A"


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m geo_monitor.cli ARGS`` in ``cwd`` with only the given settings variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) and k not in ("DATABASE_URL", "DASK_SCHEDULER_ADDRESS")}
    clean.update({"GEO_MONITOR_DATA_DIR": str(cwd / "data"), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "geo_monitor.cli", *args],
        cwd=cwd, env=clean, capture_output=True, text=True, timeout=120, check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for part in expected:
        assert part in lines[0]
    return lines[0]


@pytest.fixture
def sample_like(static_catalog: FixtureCatalog, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    """Settings under which the fixture catalog is the default (sample) catalog."""
    assert static_catalog.catalog_json == static_catalog.root.parent / "catalog" / "catalog.json"
    return {"GEO_MONITOR_SAMPLE_DIR": str(static_catalog.root.parent)}


# --- help and info ---------------------------------------------------------------------------


def test_help_lists_commands(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("info", "sample-data", "scenes"):
        assert command in result.stdout


def test_help_works_with_broken_settings(tmp_path: Path) -> None:
    result = run_cli("scenes", "--help", cwd=tmp_path, env={"GEO_MONITOR_DASK_WORKERS": "0"})
    assert result.returncode == 0
    assert "sample collection's extent" in result.stdout


def test_info_text(tmp_path: Path) -> None:
    result = run_cli("info", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for heading in ("Settings", "Versions", "Drivers", "Data"):
        assert f"\n{heading}\n" in result.stdout
    assert str(tmp_path / "data") in result.stdout
    assert "gdal" in result.stdout and "raster COG" in result.stdout
    assert "geo-monitor sample-data" in result.stdout  # the sample is not built in a fresh data dir


def test_info_json(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "rivers.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    result = run_cli("info", "--json", cwd=tmp_path, env={"GEO_MONITOR_CONTEXT_DIR": str(context)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["settings"]["data_dir"] == str(tmp_path / "data")
    versions = report["versions"]
    for name in ("python", "gdal", "geo-monitor", "rasterio", "numpy", "xarray", "dask", "odc-stac", "pystac", "shapely", "pyproj", "geopandas"):
        assert versions[name], name
    assert report["drivers"] == {"raster": {"COG": True, "GTiff": True}, "vector": {"GPKG": True, "GeoJSON": True}}
    data = report["data"]
    assert data["sample_catalog"] == {"path": str(tmp_path / "data" / "sample" / "catalog" / "catalog.json"), "exists": False}
    assert set(data["context_layers"]) == set(CONTEXT_LAYERS)
    assert data["context_layers"]["rivers"] == {"path": str(context / "rivers.geojson"), "exists": True}
    assert data["context_layers"]["provinces"] == {"path": None, "exists": False}


# --- scenes ----------------------------------------------------------------------------------


def test_scenes_lists_scenes_skips_and_total(static_catalog: FixtureCatalog, tmp_path: Path) -> None:  # noqa: F811
    result = run_cli("scenes", "--stac-url", str(static_catalog.catalog_json), "--bbox", AOI, *JAN, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[: len(JAN_SCENES)]] == JAN_SCENES
    assert "EPSG:32718" in lines[0] and "12.5%" in lines[0] and "DN*0.0001-0.1" in lines[0]
    assert lines[len(JAN_SCENES)].startswith(f"skipped {BROKEN}: ") and "swir22" in lines[len(JAN_SCENES)]
    assert lines[-1].startswith("4 scene(s), 1 skipped")


def test_scenes_json_with_cloud_filter(static_catalog: FixtureCatalog, tmp_path: Path) -> None:  # noqa: F811
    result = run_cli(
        "scenes", "--stac-url", str(static_catalog.root), "--bbox", AOI, *JAN, "--max-cloud", "50", "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [s["id"] for s in doc["scenes"]] == JAN_SCENES[:3]
    assert doc["total"] == 3
    assert doc["skipped"] == [{"id": BROKEN, "reason": f"scene {BROKEN}: missing asset(s) swir22"}]
    assert doc["query"]["max_cloud_cover"] == 50.0
    assert doc["scenes"][0]["epsg"] == 32718


def test_scenes_defaults_from_the_sample_collection(sample_like: dict[str, str], tmp_path: Path) -> None:
    """Over the sample catalog, bbox and dates default to the collection's extent (open end: today)."""
    result = run_cli("scenes", "--json", cwd=tmp_path, env=sample_like)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["query"]["bbox"] == [-81.2, -5.2, -75.0, 1.7]
    assert doc["query"]["start"] == "2024-01-01"
    assert doc["total"] == len(JAN_SCENES) + 1  # and the 17S scene far away


def test_scenes_given_options_win_over_sample_defaults(sample_like: dict[str, str], tmp_path: Path) -> None:
    result = run_cli("scenes", "--bbox", AOI, "--end", "2024-01-10", "--json", cwd=tmp_path, env=sample_like)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [s["id"] for s in doc["scenes"]] == JAN_SCENES[:3]


# --- bad input: one line, exit 2, no traceback ----------------------------------------------------


def test_missing_catalog(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "catalog.json"
    result = run_cli("scenes", "--stac-url", str(missing), "--bbox", AOI, *JAN, cwd=tmp_path)
    assert_one_line_error(result, str(missing), "no such file")


def test_missing_sample_catalog_says_how_to_build_it(tmp_path: Path) -> None:
    result = run_cli("scenes", cwd=tmp_path)
    assert_one_line_error(result, "catalog.json", "geo-monitor sample-data")


def test_malformed_catalog(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.json"
    bad.write_text('{"type": "Catalog", "links": [', encoding="utf-8")
    result = run_cli("scenes", "--stac-url", str(bad), "--bbox", AOI, *JAN, cwd=tmp_path)
    assert_one_line_error(result, str(bad), "invalid JSON")


def test_json_that_is_not_a_catalog(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.json"
    bad.write_text("[1, 2, 3]", encoding="utf-8")
    result = run_cli("scenes", "--stac-url", str(bad), "--bbox", AOI, *JAN, cwd=tmp_path)
    assert_one_line_error(result, "not a STAC catalog")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--bbox", "2.3,48.8,2.4,48.9", *JAN], ["outside Ecuador"], id="bbox-outside-ecuador"),
        pytest.param(["--bbox", AOI, "--start", "2024-02-01", "--end", "2024-01-01"], ["start date 2024-02-01 is after end date 2024-01-01"], id="start-after-end"),
        pytest.param(["--bbox", "-77.6,-1.1,-77.4", *JAN], ["bbox must be four numbers"], id="bbox-three-numbers"),
        pytest.param(["--bbox", "a,b,c,d", *JAN], ["bbox must be four numbers"], id="bbox-not-numbers"),
        pytest.param(["--bbox", AOI, "--start", "2024-02-30", "--end", "2024-03-01"], ["--start must be an ISO date"], id="bad-date"),
        pytest.param(["--bbox", AOI, *JAN, "--max-cloud", "150"], ["--max-cloud", "scenes --help"], id="cloud-out-of-range"),
        pytest.param(["--bbox", AOI, *JAN, "--bogus"], ["--bogus"], id="unknown-option"),
    ],
)
def test_bad_scene_options(static_catalog: FixtureCatalog, tmp_path: Path, args: list[str], expected: list[str]) -> None:  # noqa: F811
    result = run_cli("scenes", "--stac-url", str(static_catalog.catalog_json), *args, cwd=tmp_path)
    assert_one_line_error(result, *expected)


def test_bbox_required_outside_the_sample(static_catalog: FixtureCatalog, tmp_path: Path) -> None:  # noqa: F811
    result = run_cli("scenes", "--stac-url", str(static_catalog.catalog_json), cwd=tmp_path)
    assert_one_line_error(result, "--bbox", "required")


@pytest.mark.parametrize("command", [["info"], ["scenes", "--bbox", AOI, *JAN], ["sample-data", "--verify"]])
def test_invalid_settings(tmp_path: Path, command: list[str]) -> None:
    result = run_cli(*command, cwd=tmp_path, env={"GEO_MONITOR_DASK_WORKERS": "0"})
    assert_one_line_error(result, "invalid settings", "dask_workers")


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("info", cwd=tmp_path, env={"GEO_MONITOR_CONFIG": str(tmp_path / "site.toml")})
    assert_one_line_error(result, "site.toml", "not a file")


def test_unknown_command(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("scan", cwd=tmp_path), "No such command")
