"""Checking job inputs at submission: bbox, dates, and catalog/context confined to the allowed roots and prefixes."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from geo_monitor.errors import InvalidInputError
from geo_monitor.jobs import submit_job
from geo_monitor.jobs.params import bbox_area_km2, check_detect, check_job
from geo_monitor.settings import Settings, load_settings
from geo_monitor.store import AlertStore, JobQueue

BBOX = [-77.506, -0.99, -77.483, -0.983]


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    """A data dir with a catalog and context folder, a sample dir, and a folder outside both."""
    data, sample, outside = tmp_path / "data", tmp_path / "sample", tmp_path / "outside"
    for folder in (data / "catalogs", sample / "catalog", sample / "context", outside):
        folder.mkdir(parents=True)
    (sample / "catalog" / "catalog.json").write_text("{}")
    (data / "catalogs" / "napo.json").write_text("{}")
    (outside / "catalog.json").write_text("{}")
    return {"data": data, "sample": sample, "outside": outside}


@pytest.fixture
def settings(roots: dict[str, Path]) -> Settings:
    return load_settings(data_dir=roots["data"], sample_dir=roots["sample"],
                         job_allowed_url_prefixes=["https://stac.example.org/api/v1"])


def _inputs(**changes: object) -> dict[str, object]:
    inputs: dict[str, object] = {"bbox": BBOX, "start": "2024-01-01", "end": "2024-06-30"}
    inputs.update(changes)
    return {k: v for k, v in inputs.items() if v is not None}


def test_defaults_are_filled_in_and_paths_resolved(settings: Settings, roots: dict[str, Path]) -> None:
    params = check_detect(_inputs(), settings)
    assert params.catalog == str(roots["sample"] / "catalog" / "catalog.json")  # the configured catalog
    assert params.baseline_start == date(2023, 1, 1) and params.context is None and params.chunk_px == 1024
    given = check_detect(_inputs(catalog=str(roots["data"] / "catalogs" / "napo.json"),
                                 context=str(roots["sample"] / "context"), baseline_start="2023-06-01"), settings)
    assert given.catalog == str((roots["data"] / "catalogs" / "napo.json").resolve())
    assert given.context == str((roots["sample"] / "context").resolve())
    assert check_detect(_inputs(catalog="https://stac.example.org/api/v1/search"), settings).catalog.startswith("https://")


def test_the_scope_names_the_area_and_window_not_the_catalog(settings: Settings, roots: dict[str, Path]) -> None:
    a = check_detect(_inputs(), settings)
    b = check_detect(_inputs(catalog=str(roots["data"] / "catalogs" / "napo.json")), settings)
    c = check_detect(_inputs(start="2024-02-01"), settings)
    assert a.scope == b.scope != c.scope


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bbox": [-70.0, -1.0, -69.9, -0.9]}, "input bbox .* is outside Ecuador"),
        ({"bbox": [-78.0, -2.0, -77.0, -1.0]}, "more than one job may"),
        ({"bbox": [-77.4, -1.0, -77.5, -0.9]}, "W < E"),
        ({"bbox": [-77.5, -1.0, -77.4]}, "four numbers"),
        ({"bbox": [True, -1.0, -77.4, -0.9]}, "four numbers"),
        ({"bbox": "everything"}, "four numbers"),
        ({"bbox": [10**400, -1.0, -77.4, -0.9]}, "degrees"),
        ({"start": "2024-07-01"}, "start date 2024-07-01 is after end date 2024-06-30"),
        ({"start": "yesterday"}, "input start must be an ISO date"),
        ({"end": 20240630}, "input end must be a date"),
        ({"baseline_start": "2024-03-01"}, "baseline_start 2024-03-01 must be before start"),
        ({"chunk_px": 64}, "chunk_px must be an integer 128..4096"),
        ({"stac_url": "x"}, "unknown input"),
        ({"bbox": None}, "input bbox is required"),
    ],
)
def test_bad_inputs_are_refused_naming_the_input(settings: Settings, changes: dict[str, object], message: str) -> None:
    inputs = _inputs(**changes)
    if "bbox" in changes and changes["bbox"] is None:
        inputs.pop("bbox", None)
    with pytest.raises(InvalidInputError, match=message):
        check_detect(inputs, settings)


def test_catalogs_outside_the_allowed_roots_are_refused_before_opening(settings: Settings, roots: dict[str, Path]) -> None:
    outside = roots["outside"] / "catalog.json"
    escape = f"{roots['data']}/../outside/catalog.json"
    link = roots["data"] / "link.json"
    os.symlink(outside, link)  # inside by name, outside in fact
    dir_link = roots["sample"] / "elsewhere"
    os.symlink(roots["outside"], dir_link)
    cases = {
        str(outside): "not under an allowed folder",
        escape: "must not contain '..'",
        str(link): "not under an allowed folder",
        str(dir_link / "catalog.json"): "not under an allowed folder",
        f"file://{outside}": "not under an allowed folder",
        "catalog.json": "must be an absolute path",
        "/etc/passwd": "not under an allowed folder",
        str(roots["data"] / "missing.json"): "no such file",
        "s3://bucket/catalog.json": "local path or an http",
        "https://stac.example.org.evil.net/api/v1": "not under an allowed URL prefix",
        "https://stac.example.org/api/v10": "not under an allowed URL prefix",
        "https://stac.example.org/api/v1/../../admin": "must not contain '..'",
        "https://user:pw@stac.example.org/api/v1": "no credentials",
        "http://stac.example.org/api/v1": "not under an allowed URL prefix",
        "": "must be a path or URL",
    }
    for catalog, message in cases.items():
        with pytest.raises(InvalidInputError, match=message):
            check_detect(_inputs(catalog=catalog), settings)
    with pytest.raises(InvalidInputError, match="context must be a local folder"):
        check_detect(_inputs(context="https://stac.example.org/api/v1/context"), settings)
    with pytest.raises(InvalidInputError, match="no such folder"):
        check_detect(_inputs(context=str(roots["sample"] / "catalog" / "catalog.json")), settings)


def test_url_prefixes_are_refused_unless_configured(roots: dict[str, Path]) -> None:
    plain = load_settings(data_dir=roots["data"], sample_dir=roots["sample"])
    with pytest.raises(InvalidInputError, match="none are allowed"):
        check_detect(_inputs(catalog="https://earth-search.aws.element84.com/v1"), plain)


def test_replay_takes_the_detect_inputs_and_scope(settings: Settings) -> None:
    detect, replay = check_job("detect", _inputs(), settings), check_job("replay", _inputs(), settings)
    assert replay.kind.value == "replay" and replay.parameters == detect.parameters and replay.scope == detect.scope
    with pytest.raises(InvalidInputError, match="outside Ecuador"):
        check_job("replay", _inputs(bbox=[-70.0, -1.0, -69.9, -0.9]), settings)


def test_retrain_inputs_are_checked_against_the_settings_limits(roots: dict[str, Path]) -> None:
    settings = load_settings(data_dir=roots["data"], sample_dir=roots["sample"], job_retrain_max_seeds=3)
    default = check_job("retrain", {}, settings)
    assert default.parameters == {"seeds": [101, 202, 303], "preset": "small"} and default.scope is None
    assert check_job("retrain", {"seeds": [5], "preset": "small"}, settings).parameters["seeds"] == [5]
    cases: dict[str, object] = {
        "non-empty list": [], "integers": ["101"], "0..": [-1], "more than one job": [1, 2, 3, 4],
        "distinct": [3, 3], "evaluation": [20240607],
    }
    for message, seeds in cases.items():
        with pytest.raises(InvalidInputError, match=message):
            check_job("retrain", {"seeds": seeds}, settings)
    with pytest.raises(InvalidInputError, match="integers"):
        check_job("retrain", {"seeds": [True]}, settings)
    with pytest.raises(InvalidInputError, match="preset must be one of small"):
        check_job("retrain", {"preset": "full"}, settings)
    with pytest.raises(InvalidInputError, match="unknown input"):
        check_job("retrain", {"seeds": [1], "out": "/models"}, settings)
    both = load_settings(data_dir=roots["data"], sample_dir=roots["sample"], job_retrain_presets=["small", "full"])
    assert check_job("retrain", {"preset": "full"}, both).parameters["preset"] == "full"
    with pytest.raises(InvalidInputError, match="preset must be one of small, full"):
        check_job("retrain", {"preset": "huge"}, both)


def test_other_processes_are_refused(settings: Settings) -> None:
    with pytest.raises(InvalidInputError, match="unknown process"):
        check_job("rm", {}, settings)
    with pytest.raises(InvalidInputError, match="inputs must be an object"):
        check_job("detect", ["bbox"], settings)


def test_the_area_limit_is_in_square_kilometres() -> None:
    assert bbox_area_km2((-78.0, -1.0, -77.0, 0.0)) == pytest.approx(12_307, rel=0.01)


def test_a_refused_request_queues_nothing(settings: Settings, alert_store: AlertStore) -> None:
    queue = JobQueue.from_store(alert_store)
    with pytest.raises(InvalidInputError):
        submit_job(queue, settings, "detect", _inputs(start="2025-01-01"), "ana")
    job = submit_job(queue, settings, "detect", _inputs(), "ana", idempotency_key="k1")
    assert submit_job(queue, settings, "detect", _inputs(), "ana", idempotency_key="k1").id == job.id
    assert [j.id for j in queue.list()] == [job.id] and job.scope and job.scope.startswith("state:")
