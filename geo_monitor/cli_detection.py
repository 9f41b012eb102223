"""``geo-monitor detect`` and ``geo-monitor evaluate``: the detection pipeline and its scorecard.

Registered on the main group by :mod:`geo_monitor.cli`; the wiring of
settings, Dask, context layers, the alert store and the pipeline happens
here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click

from geo_monitor.cli import _echo_json, _scene_query, _settings, main
from geo_monitor.errors import InvalidInputError
from geo_monitor.validation import check_date_range, parse_date

log = logging.getLogger(__name__)

#: Default length of the baseline before the monitoring start.
BASELINE_DAYS = 365
#: Top-level member of detect's GeoJSON output that records the run's parameters.
RUN_MEMBER = "geo_monitor_run"


def _progress_printer(enabled: bool) -> Any:
    """A ``progress(stage, done, total)`` callback drawing one tqdm bar per stage."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if not enabled:
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="step", leave=True, file=sys.stderr)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return progress


def _compute_with_progress(client: Any, show: bool) -> Any:
    """Run a delayed graph on ``client``; on a terminal, a bar over its tasks."""
    from distributed import progress

    def compute(delayed: Any) -> Any:
        future = client.compute(delayed)
        if show:
            progress(future)
            click.echo("", err=True)
        return future.result()

    return compute


@main.command()
@click.option("--catalog", "stac_url", metavar="PATH|URL", help="Static STAC catalog or STAC API. [default: settings' stac_url, else the sample catalog]")
@click.option("--collection", metavar="ID", help="Collection. [default: settings' stac_collection]")
@click.option("--bbox", metavar="W,S,E,N", help="Area in lon/lat degrees, inside Ecuador.")
@click.option("--start", metavar="YYYY-MM-DD", help="Monitoring start: changes after this day raise alerts.")
@click.option("--end", metavar="YYYY-MM-DD", help="Last day of imagery to use.")
@click.option("--baseline-start", metavar="YYYY-MM-DD", help="First day of the baseline. [default: 12 months before --start]")
@click.option("--context", "context_dir", type=click.Path(file_okay=False, path_type=Path), help="Folder with concessions, protected_areas, indigenous_territories, rivers, provinces (.gpkg/.geojson). [default: settings' context layers]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the alerts as a GeoJSON FeatureCollection (EPSG:4326).")
@click.option("--max-cloud", type=click.FloatRange(0, 100), metavar="PERCENT", help="Skip scenes cloudier than this. [default: settings' max_cloud_cover]")
@click.option("--chunk-px", type=click.IntRange(128, 4096), default=1024, show_default=True, help="Dask chunk side in pixels: memory per task grows with its square.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
def detect(stac_url: str | None, collection: str | None, bbox: str | None, start: str | None, end: str | None,
           baseline_start: str | None, context_dir: Path | None, out: Path | None, max_cloud: float | None,
           chunk_px: int, as_json: bool) -> None:
    """Run the mining-change pipeline over an area and window; write alerts to the store (and --out).

    Over the sample catalog every option has a default: the sample's area, a
    monitoring start one year after its first scene, and its context layers.
    Reruns are incremental: scenes already applied are not read again.
    """
    from geo_monitor.context import ContextLayers
    from geo_monitor.dask_cluster import dask_client
    from geo_monitor.site_model import load_configured
    from geo_monitor.store import AlertStore
    from pipelines.mining_change import PIPELINE_NAME, PIPELINE_VERSION, DetectionRequest, MiningChangePipeline

    settings = _settings()
    given_start = parse_date(start, "--start") if start else None
    if baseline_start:
        search_from: str | None = parse_date(baseline_start, "--baseline-start").isoformat()
    else:
        search_from = (given_start - timedelta(days=BASELINE_DAYS)).isoformat() if given_start else None
    # The search spans baseline + monitoring; over the sample catalog, what is left out defaults to its extent.
    query = _scene_query(settings, stac_url=stac_url, collection=collection, bbox=bbox, start=search_from,
                         end=end, max_cloud=max_cloud)
    monitor_start = given_start or (query.start + timedelta(days=BASELINE_DAYS))
    base_start = query.start
    check_date_range(monitor_start, query.end)
    if base_start >= monitor_start:
        raise InvalidInputError(f"--baseline-start {base_start} must be before the monitoring start {monitor_start}")
    layers = ContextLayers.from_dir(context_dir) if context_dir else ContextLayers.from_settings(settings)
    show = sys.stderr.isatty() and not as_json
    request = DetectionRequest(stac_url=query.url, bbox=query.bbox, start=monitor_start, end=query.end,
                               baseline_start=base_start, collection=query.collection,
                               max_cloud_cover=query.max_cloud_cover, chunk_px=chunk_px)
    store = AlertStore.from_settings(settings)
    store.migrate()
    run_id = store.start_run(PIPELINE_NAME, PIPELINE_VERSION, parameters=_request_record(request))
    try:
        with dask_client(settings) as client:
            pipeline = MiningChangePipeline(settings.resolved_data_dir / "state", layers,
                                            progress=_progress_printer(show), compute=_compute_with_progress(client, show),
                                            model=load_configured(settings.models_dir, settings.model_file))
            result = pipeline.run(DetectionRequest(**{**request.__dict__, "job_id": run_id}))
        upsert = store.upsert_alerts(result.alerts, actor=f"pipeline:{PIPELINE_NAME}@{PIPELINE_VERSION}", run_id=run_id)
    except BaseException as exc:
        store.finish_run(run_id, "failed", {"error": str(exc)[:500]})
        raise
    if out:
        from geo_monitor.alerts import feature_collection

        out.parent.mkdir(parents=True, exist_ok=True)
        doc = feature_collection(result.alerts)
        # A foreign member (allowed by RFC 7946) so the file says what run made it; evaluate reads it.
        doc[RUN_MEMBER] = {"run_id": run_id, **_request_record(request)}
        out.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = _summary(result, upsert, run_id, out, settings, request)
    store.finish_run(run_id, "succeeded", summary)
    if as_json:
        _echo_json(summary)
    else:
        _echo_summary(summary)


def _request_record(request: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in request.__dict__.items()}


def _summary(result: Any, upsert: Any, run_id: str, out: Path | None, settings: Any,
             request: Any) -> dict[str, Any]:
    result_window = (request.start.isoformat(), request.baseline_start.isoformat(), request.end.isoformat())
    return {
        "run_id": run_id,
        "grid": {"epsg": result.grid.epsg, "width": result.grid.width, "height": result.grid.height},
        "scenes_found": result.scenes_found,
        "scenes_applied": len(result.scenes_applied),
        "scenes_already_applied": result.scenes_already_applied,
        "replayed": result.replayed,
        "skipped": [{"id": s.id, "reason": s.reason} for s in result.skipped],
        "sites_found": result.sites_found,
        "alerts": len(result.alerts),
        "alerts_new": upsert.new,
        "alerts_updated": upsert.updated,
        "alerts_unchanged": upsert.unchanged,
        "state_version": result.state_version,
        "monitor_start": result_window[0],
        "baseline_start": result_window[1],
        "end": result_window[2],
        "seconds": result.seconds,
        "store": settings.resolved_database_url,
        "geojson": str(out) if out else None,
    }


def _echo_summary(s: dict[str, Any]) -> None:
    click.echo(f"Window: baseline from {s['baseline_start']}, monitoring from {s['monitor_start']} to {s['end']}")
    click.echo(f"Scenes: {s['scenes_found']} found, {s['scenes_applied']} applied now, "
               f"{s['scenes_already_applied']} applied before, {len(s['skipped'])} skipped"
               + (" (late scene: state replayed)" if s["replayed"] else ""))
    for item in s["skipped"]:
        click.echo(f"  skipped {item['id']}: {item['reason']}")
    click.echo(f"Alerts: {s['alerts']} ({s['alerts_new']} new, {s['alerts_updated']} updated, "
               f"{s['alerts_unchanged']} unchanged) from {s['sites_found']} candidate sites")
    click.echo(f"Store: {s['store']}" + (f"; GeoJSON: {s['geojson']}" if s["geojson"] else ""))
    click.echo(f"Run {s['run_id']} in {s['seconds']:.1f} s")


@main.command()
@click.option("--alerts", "alerts_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Alerts GeoJSON (from detect --out).")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False, path_type=Path), help="Ground-truth GeoJSON (kind, start_date). [default: the sample area's truth.geojson]")
@click.option("--monitor-start", metavar="YYYY-MM-DD", help="Mining sites that started before this day are not expected as new. [default: the run's, recorded in the alerts file]")
@click.option("--catalog", metavar="PATH|URL", help="Imagery the alerts came from: also report the lag in clear looks (SCL over each site).")
@click.option("--clear-looks", is_flag=True, help="Like --catalog, with the catalog recorded in the alerts file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evaluate(alerts_path: Path, truth_path: Path | None, monitor_start: str | None, catalog: str | None,
             clear_looks: bool, as_json: bool) -> None:
    """Score alerts against ground truth: object precision/recall/F1, area IoU, lag, legality, decoys.

    Matching rules: docs/evaluation.md.
    """
    from geo_monitor.evaluation import evaluate as run_evaluation
    from geo_monitor.evaluation import load_alerts, load_truth

    settings = _settings()
    run = _recorded_run(alerts_path)
    if truth_path is None:
        truth_path = settings.resolved_sample_dir / "truth.geojson"
        if not truth_path.is_file():
            raise InvalidInputError("--truth is required (no sample area truth.geojson to default to)")
    if monitor_start is None:
        monitor_start = run.get("start")
    if clear_looks and not catalog:
        catalog = run.get("stac_url")
        if not catalog:
            raise InvalidInputError(f"{alerts_path} does not record its catalog; give --catalog")
    start = parse_date(monitor_start, "--monitor-start") if monitor_start else None
    truth = load_truth(truth_path)
    report = run_evaluation(load_alerts(alerts_path), truth, start)
    if catalog:
        from geo_monitor.clear_looks import add_clear_look_lags

        add_clear_look_lags(report, truth, catalog)
    if as_json:
        _echo_json(report.to_dict())
    else:
        click.echo(report.format_text())


def _recorded_run(alerts_path: Path) -> dict[str, Any]:
    """The run parameters ``detect --out`` recorded in the file ({} for other files)."""
    try:
        doc = json.loads(alerts_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # load_alerts reports unreadable files properly
    member = doc.get(RUN_MEMBER) if isinstance(doc, dict) else None
    return member if isinstance(member, dict) else {}


@main.command("train-score")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Where the model and its card go. [default: settings' models_dir]")
@click.option("--work", "work_dir", type=click.Path(file_okay=False, path_type=Path), help="Scratch folder for the training areas. [default: <data_dir>/training]")
@click.option("--seeds", metavar="N,N,...", help="Sample-area seeds to train on (never the evaluation seeds). [default: 101,202,303,404,505,606]")
def train_score(out_dir: Path | None, work_dir: Path | None, seeds: str | None) -> None:
    """Train the site model on SYNTHETIC sample areas; write models/mining_score_v1.json and its model card."""
    from pipelines.train_mining_score import TRAINING_SEEDS, train

    settings = _settings()
    try:
        chosen = tuple(int(s) for s in seeds.split(",")) if seeds else TRAINING_SEEDS
    except ValueError:
        raise InvalidInputError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    summary = train(out_dir or settings.models_dir, work_dir or settings.resolved_data_dir / "training", chosen,
                    settings.dask_workers)
    _echo_json(summary)
