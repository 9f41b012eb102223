"""The ``geo-monitor`` command line: the one place that wires settings, sources and sample data together.

Every error a user can cause (bad settings, a bad option, a missing or
malformed catalog, a bbox outside Ecuador, dates the wrong way round) ends as
exactly one line ``error: <message>`` on stderr and exit code 2, never a
traceback. A check that finds problems (``sample-data --verify``) exits 1.
Results go to stdout; logs (JSON lines by default) go to stderr.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import click

from geo_monitor import __version__
from geo_monitor.errors import CatalogError, GeoMonitorError, InvalidInputError
from geo_monitor.logs import configure_logging
from geo_monitor.settings import CONTEXT_LAYERS, Settings, load_settings
from geo_monitor.types import BBox
from geo_monitor.validation import check_bbox_in_ecuador, check_date_range, parse_bbox, parse_date

log = logging.getLogger(__name__)

#: Exit codes. 2: the user can fix the input (same code click uses for usage errors).
EXIT_BAD_INPUT = 2
#: 1: a check found problems, or geo-monitor itself failed unexpectedly.
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

#: Distributions whose versions ``info`` reports (GDAL and Python are added separately).
VERSIONED_DISTRIBUTIONS: tuple[str, ...] = (
    "geo-monitor",
    "rasterio",
    "numpy",
    "xarray",
    "dask",
    "distributed",
    "odc-stac",
    "pystac",
    "pystac-client",
    "shapely",
    "pyproj",
    "geopandas",
    "pyogrio",
)
RASTER_DRIVERS: tuple[str, ...] = ("COG", "GTiff")
VECTOR_DRIVERS: tuple[str, ...] = ("GPKG", "GeoJSON")


# --- errors --------------------------------------------------------------------------


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit: the only way a run ends in error."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


def _usage_message(exc: click.UsageError) -> str:
    """Click's message plus where to read the usage, on one line instead of click's three."""
    message = exc.format_message()
    if exc.ctx is not None:
        message += f" (see '{exc.ctx.command_path} --help')"
    return message


class _Main(click.Group):
    """A click group whose failures end as one ``error:`` line instead of click's block or a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:  # type: ignore[override]
        kwargs["standalone_mode"] = False  # we print errors ourselves
        try:
            result = super().main(*args, **kwargs)
        except click.UsageError as exc:
            _fail(_usage_message(exc))
        except click.ClickException as exc:
            _fail(exc.format_message())
        except GeoMonitorError as exc:
            _fail(str(exc))
        except OSError as exc:  # a path the user gave: unwritable folder, full disk, ...
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}")
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", EXIT_INTERRUPTED)
        except Exception as exc:  # a bug: keep the traceback in the log, still end with one error line
            log.error("unexpected failure", exc_info=True)
            _fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_FAILED)
        # With standalone_mode off, click returns the exit code of --help/ctx.exit(), or the command's None.
        sys.exit(result if isinstance(result, int) else 0)


def _settings() -> Settings:
    """Settings of this run, loaded and validated once, with logging set up from them.

    Loaded by each command rather than by the group, so that ``--help`` works
    even when the settings are broken.
    """
    root = click.get_current_context().find_root()
    if not isinstance(root.obj, Settings):
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        root.obj = settings
    return root.obj


@click.group(
    cls=_Main,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="geo-monitor")
@click.pass_context
def main(ctx: click.Context) -> None:
    """geo-monitor: watches Ecuador from Sentinel-2 imagery for new illegal gold-mining scars.

    Settings come from GEO_MONITOR_* environment variables (plus DATABASE_URL
    and DASK_SCHEDULER_ADDRESS), then geo-monitor.toml (or the file named by
    GEO_MONITOR_CONFIG); 'geo-monitor info' shows what is in force. Bad input
    ends with one 'error:' line on stderr and exit code 2.
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


# --- output helpers ---------------------------------------------------------------------


def _echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, default=str, ensure_ascii=False))


def _echo_section(title: str, rows: Mapping[str, Any]) -> None:
    """A titled block of ``key  value`` rows for people (``--json`` is for machines)."""
    click.echo(title)
    width = max((len(key) for key in rows), default=0)
    for key, value in rows.items():
        click.echo(f"  {key:<{width}}  {value}")
    click.echo()


def _sample_catalog(settings: Settings) -> Path:
    """Where the sample area's catalog is: what ``stac_url`` means when it is not set."""
    return Path(settings.model_copy(update={"stac_url": None}).resolved_stac_url)


def _path_state(path: Path | None) -> dict[str, Any]:
    return {"path": None if path is None else str(path), "exists": path is not None and path.exists()}


# --- info ------------------------------------------------------------------------------


def _versions() -> dict[str, str | None]:
    """Versions of Python, GDAL and the distributions that decide what geo-monitor computes."""
    found: dict[str, str | None] = {"python": platform.python_version(), "gdal": None}
    try:
        import rasterio

        found["gdal"] = rasterio.__gdal_version__
    except ImportError:
        pass
    for name in VERSIONED_DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _drivers() -> dict[str, dict[str, bool]]:
    """Whether GDAL can write COGs/GeoTIFFs and OGR read GeoPackage/GeoJSON: what sample data and context need."""
    raster: set[str] = set()
    vector: set[str] = set()
    try:
        import rasterio

        with rasterio.Env() as env:
            raster = set(env.drivers())
    except ImportError:
        pass
    try:
        import pyogrio

        vector = set(pyogrio.list_drivers())
    except ImportError:
        pass
    return {
        "raster": {name: name in raster for name in RASTER_DRIVERS},
        "vector": {name: name in vector for name in VECTOR_DRIVERS},
    }


def _data_locations(settings: Settings) -> dict[str, Any]:
    """Where data lives, and whether it is there yet."""
    return {
        "data_dir": _path_state(settings.resolved_data_dir),
        "sample_dir": _path_state(settings.resolved_sample_dir),
        "sample_catalog": _path_state(_sample_catalog(settings)),
        "stac_url": settings.resolved_stac_url,
        "database_url": settings.public_view()["database_url"],
        "context_layers": {layer: _path_state(settings.context_layer_path(layer)) for layer in CONTEXT_LAYERS},
        "models_dir": _path_state(settings.models_dir),
    }


def _describe(state: Mapping[str, Any]) -> str:
    if state["path"] is None:
        return "not found"
    return state["path"] + ("" if state["exists"] else "  (missing)")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def info(as_json: bool) -> None:
    """Show settings, versions, GDAL/OGR drivers and where data lives."""
    settings = _settings()
    report = {
        "geo_monitor": __version__,
        "settings": settings.public_view(),
        "versions": _versions(),
        "drivers": _drivers(),
        "data": _data_locations(settings),
    }
    if as_json:
        _echo_json(report)
        return
    click.echo(f"geo-monitor {__version__}\n")
    _echo_section("Settings", report["settings"])
    _echo_section("Versions", {k: v or "not installed" for k, v in report["versions"].items()})
    drivers = report["drivers"]
    _echo_section(
        "Drivers",
        {f"{kind} {name}": "yes" if ok else "NO" for kind in ("raster", "vector") for name, ok in drivers[kind].items()},
    )
    data = report["data"]
    rows = {key: _describe(value) for key, value in data.items() if isinstance(value, Mapping) and "path" in value}
    rows["stac_url"] = data["stac_url"]
    rows["database_url"] = data["database_url"]
    rows.update({f"context: {layer}": _describe(state) for layer, state in data["context_layers"].items()})
    _echo_section("Data", rows)
    if not data["sample_catalog"]["exists"]:
        click.echo("The sample area is not built yet: run 'geo-monitor sample-data' (or 'make demo').")


# --- scenes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneQuery:
    """A validated ``scenes`` request."""

    url: str
    collection: str
    bbox: BBox
    start: date
    end: date
    max_cloud_cover: float


@dataclass(frozen=True)
class CollectionExtent:
    """A collection's advertised extent: the ``scenes`` defaults over the sample catalog."""

    bbox: BBox
    start: date
    end: date


def _is_sample_catalog(settings: Settings, url: str) -> bool:
    from geo_monitor.sources import normalize_href

    return normalize_href(url) == normalize_href(str(_sample_catalog(settings)))


def _extent_date(value: Any, href: str) -> date | None:
    if value is None:
        return None
    try:
        return parse_date(str(value)[:10])
    except InvalidInputError:
        raise CatalogError(f"{href}: unreadable temporal extent {value!r}") from None


def _collection_extent(catalog_href: str, collection: str) -> CollectionExtent:
    """Extent of ``collection``: the catalog itself or one of its direct children.

    An open-ended temporal extent ends today (UTC).
    """
    import pystac.utils

    from geo_monitor.sources import read_json

    root = read_json(catalog_href)
    candidates: list[tuple[str, Any]] = [(catalog_href, root)]
    links = root.get("links") if isinstance(root, dict) else None
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("rel") == "child" and link.get("href"):
            href = pystac.utils.make_absolute_href(str(link["href"]), catalog_href)
            candidates.append((href, read_json(href)))
    for href, doc in candidates:
        if isinstance(doc, dict) and doc.get("type") == "Collection" and doc.get("id") == collection:
            try:
                bbox = parse_bbox(doc["extent"]["spatial"]["bbox"][0])
                first, last = doc["extent"]["temporal"]["interval"][0]
            except (KeyError, IndexError, TypeError, ValueError):
                raise CatalogError(f"{href}: collection {collection!r} has no usable extent") from None
            start = _extent_date(first, href)
            if start is None:
                raise CatalogError(f"{href}: collection {collection!r} has an open start date")
            return CollectionExtent(bbox, start, _extent_date(last, href) or datetime.now(timezone.utc).date())
    raise CatalogError(f"{catalog_href}: no collection {collection!r} in this catalog")


def _scene_query(
    settings: Settings,
    *,
    stac_url: str | None,
    collection: str | None,
    bbox: str | None,
    start: str | None,
    end: str | None,
    max_cloud: float | None,
) -> SceneQuery:
    """Validate the options of ``scenes`` and fill in defaults (settings, then the sample collection)."""
    url = stac_url or settings.resolved_stac_url
    collection = collection or settings.stac_collection
    # Parse what was given before touching any file, so typos fail first.
    given_bbox = parse_bbox(bbox) if bbox else None
    given_start = parse_date(start, "--start") if start else None
    given_end = parse_date(end, "--end") if end else None
    is_sample = _is_sample_catalog(settings, url)
    if is_sample and not Path(url).is_file():
        raise CatalogError(f"{url}: no such file; build the sample area with 'geo-monitor sample-data' or give --stac-url")
    if given_bbox is None or given_start is None or given_end is None:
        if not is_sample:
            missing = [name for name, v in (("--bbox", bbox), ("--start", start), ("--end", end)) if not v]
            raise InvalidInputError(f"{', '.join(missing)} required: defaults exist only for the sample catalog")
        extent = _collection_extent(url, collection)
        given_bbox = given_bbox or extent.bbox
        given_start = given_start or extent.start
        given_end = given_end or extent.end
    check_bbox_in_ecuador(given_bbox)
    check_date_range(given_start, given_end)
    cloud = settings.max_cloud_cover if max_cloud is None else max_cloud
    return SceneQuery(url, collection, given_bbox, given_start, given_end, cloud)


def _scene_row(scene: Any) -> dict[str, Any]:
    blue = scene.assets["blue"]
    return {
        "id": scene.id,
        "datetime": scene.datetime.isoformat().replace("+00:00", "Z"),
        "platform": scene.platform,
        "cloud_cover": scene.cloud_cover,
        "epsg": scene.epsg,
        "processing_baseline": scene.processing_baseline,
        "scale": blue.scale,
        "offset": blue.offset,
    }


def _scene_line(row: Mapping[str, Any], id_width: int) -> str:
    cloud = "   n/a" if row["cloud_cover"] is None else f"{row['cloud_cover']:5.1f}%"
    epsg = f"EPSG:{row['epsg']}" if row["epsg"] else "EPSG:?"
    baseline = row["processing_baseline"] or "?"
    return (
        f"{row['id']:<{id_width}}  {row['datetime']}  cloud {cloud}  {epsg}  "
        f"baseline {baseline}  reflectance = DN*{row['scale']:g}{row['offset']:+g}"
    )


def _query_summary(query: SceneQuery) -> str:
    w, s, e, n = query.bbox
    return (
        f"collection {query.collection} in {query.url}, bbox {w:g},{s:g},{e:g},{n:g}, "
        f"{query.start}..{query.end}, cloud <= {query.max_cloud_cover:g}%"
    )


@main.command()
@click.option("--stac-url", metavar="URL|PATH", help="STAC API URL, or static catalog path/URL. [default: settings' stac_url, else the sample catalog]")
@click.option("--collection", metavar="ID", help="Collection to search. [default: settings' stac_collection]")
@click.option("--bbox", metavar="W,S,E,N", help="Area in lon/lat degrees, inside Ecuador.")
@click.option("--start", metavar="YYYY-MM-DD", help="First day (UTC, inclusive).")
@click.option("--end", metavar="YYYY-MM-DD", help="Last day (UTC, inclusive).")
@click.option("--max-cloud", type=click.FloatRange(0, 100), metavar="PERCENT", help="Largest eo:cloud_cover kept; scenes without one are kept. [default: settings' max_cloud_cover]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def scenes(as_json: bool, **options: Any) -> None:
    """List the Sentinel-2 L2A scenes a source has over an area and dates.

    One line per usable scene (id, time, cloud cover, UTM EPSG, processing
    baseline, DN-to-reflectance rule), then the matching items that cannot be
    used and why, then a total.

    --bbox, --start and --end are required, except over the sample catalog
    (the source when neither --stac-url nor the stac_url setting names
    another): there each one left out is taken from the sample collection's
    extent, so 'geo-monitor scenes' alone lists the whole sample area.
    """
    from geo_monitor.sources import open_source

    query = _scene_query(_settings(), **options)
    log.debug("searching scenes", extra={"query": _query_summary(query)})
    result = open_source(query.url, query.collection).search(query.bbox, query.start, query.end, query.max_cloud_cover)
    rows = [_scene_row(scene) for scene in result.scenes]
    skipped = [{"id": item.id, "reason": item.reason} for item in result.skipped]
    if as_json:
        _echo_json({"query": asdict(query), "scenes": rows, "skipped": skipped, "total": len(rows)})
        return
    id_width = max((len(row["id"]) for row in rows), default=0)
    for row in rows:
        click.echo(_scene_line(row, id_width))
    for item in skipped:
        click.echo(f"skipped {item['id']}: {item['reason']}")
    click.echo(f"{len(rows)} scene(s), {len(skipped)} skipped; {_query_summary(query)}")


# --- sample-data -------------------------------------------------------------------------


def _pick(kind: str, key: str, options: Mapping[str, Any]) -> Any:
    if key not in options:
        raise InvalidInputError(f"unknown {kind} {key!r}; choose one of {', '.join(sorted(options))}")
    return options[key]


def _echo_build_report(report: Any, spec: Any, region_title: str, settings: Settings) -> None:
    """Tell where everything went, and that it is synthetic."""
    what = f"the sample area '{spec.name}' over {region_title} (seed {spec.seed})"
    if getattr(report, "reused", False):
        click.echo(f"Kept {what}: already built and matching its manifest (--force rebuilds it).")
    else:
        click.echo(f"Built {what} in {report.seconds:.1f} s.")
    _echo_section(
        "Where the results are",
        {
            "folder": report.out_dir,
            "STAC catalog": f"{report.catalog_path}  ({report.n_items} scenes)",
            "context layers": report.context_dir,
            "ground truth": report.truth_path,
            "files written": report.n_files,
        },
    )
    click.echo("These data are SYNTHETIC: simulated Sentinel-2 L2A scenes, sites and context over a real place,")
    click.echo("not observations. See docs/sample-area.md.")
    if Path(report.out_dir).resolve() != settings.resolved_sample_dir:
        click.echo(f"To use this folder as the sample area: export GEO_MONITOR_SAMPLE_DIR={report.out_dir}")


def _echo_problems(problems: Iterable[str], out: Path) -> None:
    problems = list(problems)
    if not problems:
        click.echo(f"OK: every file in {out} matches its manifest")
        return
    for problem in problems:
        click.echo(problem)
    _fail(f"{len(problems)} problem(s) in the sample area at {out}; rebuild it with 'geo-monitor sample-data'", EXIT_FAILED)


@main.command("sample-data")
@click.option("--preset", default="full", show_default=True, metavar="full|small", help="Area size: 'full' for the demo, 'small' for fast tests.")
@click.option("--region", metavar="punino|nangaritza", help="Real region to place the area over. [default: the preset's]")
@click.option("--seed", type=click.IntRange(min=0), help="Random seed; the same seed gives byte-identical files. [default: the preset's]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder to build into or verify. [default: settings' sample_dir, <data_dir>/sample]")
@click.option("--workers", type=click.IntRange(1, 64), help="Processes writing COGs. [default: settings' dask_workers]")
@click.option("--force", is_flag=True, help="Rebuild even when the folder already holds this very area, intact.")
@click.option("--verify", is_flag=True, help="Check an existing build against its manifest (sha256 of every file) instead of building; exit 1 on differences.")
def sample_data(
    preset: str,
    region: str | None,
    seed: int | None,
    out: Path | None,
    workers: int | None,
    force: bool,
    verify: bool,
) -> None:
    """Build (or --verify) the SYNTHETIC sample area: STAC catalog of COGs, context layers, ground truth.

    An area already built from the same preset, region and seed, whose files
    all match its manifest, is kept as it is (so 'make demo' twice builds once).
    """
    settings = _settings()
    from sample_data import PRESETS, REGIONS, build_sample_area, verify_sample_area

    out_dir = (out or settings.resolved_sample_dir).expanduser().resolve()
    if verify:
        _echo_problems(verify_sample_area(out_dir), out_dir)
        return
    spec = _pick("preset", preset, PRESETS)
    if region is not None:
        _pick("region", region, REGIONS)
        spec = replace(spec, region=region, name=f"{region}-{preset}")
    if seed is not None:
        spec = spec.with_seed(seed)
    report = build_sample_area(spec, out_dir, workers=workers or settings.dask_workers, progress=True, force=force)
    _echo_build_report(report, spec, REGIONS[spec.region].title, settings)


def _register_commands() -> None:
    """Commands that live in their own modules add themselves to ``main`` on import."""
    import geo_monitor.cli_detection  # noqa: F401
    import geo_monitor.cli_jobs  # noqa: F401
    import geo_monitor.cli_store  # noqa: F401
    import geo_monitor.cli_web  # noqa: F401


_register_commands()

if __name__ == "__main__":
    # Run the importable module's group (the one the other modules registered on), not __main__'s copy.
    from geo_monitor.cli import main as _main

    _main()
