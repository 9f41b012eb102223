"""Checking a job's inputs when it is submitted, before anything opens them.

A bad request must be refused at submission with a message naming the
input (the web layer answers 4xx), not become a failed job an hour later.
And a job's ``catalog`` and ``context`` are places the worker will read:
they must lie under the folders or URL prefixes the operator allowed in
settings (``job_allowed_roots``, ``job_allowed_url_prefixes``), checked on
the resolved path (no ``..``, symlinks followed) so that no spelling reaches
outside them. Pure functions of the inputs and the settings; the only file
system access is resolving the path and asking whether it exists.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from geo_monitor.errors import InvalidInputError
from geo_monitor.settings import Settings
from geo_monitor.store.schema import JobKind
from geo_monitor.types import BBox
from geo_monitor.validation import check_bbox_in_ecuador, check_date_range, parse_bbox, parse_date

#: Default baseline length before the monitoring start (as ``geo-monitor detect``).
BASELINE_DAYS: Final[int] = 365
DEFAULT_CHUNK_PX: Final[int] = 1024
CHUNK_PX_RANGE: Final[tuple[int, int]] = (128, 4096)
#: Longest catalog/context string accepted.
LOCATION_LENGTH: Final[int] = 2000
#: Kilometres per degree of latitude, and of longitude at the equator (WGS84, rounded).
KM_PER_DEG_LAT: Final[float] = 110.57
KM_PER_DEG_LON: Final[float] = 111.32

DETECT_INPUTS: Final[dict[str, str]] = {
    "catalog": "static STAC catalog (path or URL) or STAC API URL, under the allowed roots/prefixes "
               "(default: the configured catalog)",
    "bbox": "[west, south, east, north] in degrees, inside Ecuador, at most job_max_area_km2",
    "start": "monitoring start YYYY-MM-DD: changes after this day raise alerts",
    "end": "last day of imagery YYYY-MM-DD (on or after start)",
    "baseline_start": "first day of the baseline YYYY-MM-DD, before start (default: 365 days before start)",
    "context": "folder of context layers under the allowed roots (default: the configured layers)",
    "chunk_px": f"Dask chunk side in pixels, {CHUNK_PX_RANGE[0]}..{CHUNK_PX_RANGE[1]} (default {DEFAULT_CHUNK_PX})",
}


@dataclass(frozen=True)
class DetectParams:
    """Checked inputs of a ``detect`` job (what ``geo-monitor detect`` takes as options)."""

    catalog: str
    bbox: BBox
    start: date
    end: date
    baseline_start: date
    context: str | None
    chunk_px: int

    def to_json(self) -> dict[str, Any]:
        return {"catalog": self.catalog, "bbox": list(self.bbox), "start": self.start.isoformat(),
                "end": self.end.isoformat(), "baseline_start": self.baseline_start.isoformat(),
                "context": self.context, "chunk_px": self.chunk_px}

    @property
    def scope(self) -> str:
        """What the job writes: the change state of this area and window (the pipeline's state key inputs)."""
        doc = json.dumps([[round(v, 6) for v in self.bbox], self.baseline_start.isoformat(), self.start.isoformat()])
        return "state:" + hashlib.sha256(doc.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CheckedJob:
    """What the queue stores for a request: its kind, JSON parameters and scope."""

    kind: JobKind
    parameters: dict[str, Any]
    scope: str | None


#: Inputs of a ``retrain`` job.
RETRAIN_INPUTS: Final[dict[str, str]] = {
    "seeds": "sample-area seeds to train on: distinct integers 0..2^31-1, at most job_retrain_max_seeds, never the "
             "evaluation's (20240607, 7) (default: the shipped model's six training seeds, cut to the limit)",
    "preset": "sample-area preset of the training areas, one of job_retrain_presets (default: small)",
}
SEED_MAX: Final[int] = 2**31 - 1


@dataclass(frozen=True)
class RetrainParams:
    """Checked inputs of a ``retrain`` job."""

    seeds: tuple[int, ...]
    preset: str

    def to_json(self) -> dict[str, Any]:
        return {"seeds": list(self.seeds), "preset": self.preset}


def check_job(kind: str, inputs: object, settings: Settings) -> CheckedJob:
    """Check a request for a job of ``kind``; :class:`InvalidInputError` naming the first bad input."""
    if kind in (JobKind.DETECT.value, JobKind.REPLAY.value):
        # A replay rebuilds the same change state a detect writes: same inputs, same scope.
        params = check_detect(inputs, settings)
        return CheckedJob(JobKind(kind), params.to_json(), params.scope)
    if kind == JobKind.RETRAIN.value:
        # Each retrain writes its own model version and works in its own folder: no scope to share.
        return CheckedJob(JobKind.RETRAIN, check_retrain(inputs, settings).to_json(), None)
    raise InvalidInputError(f"unknown process {kind!r}; available: {', '.join(k.value for k in JobKind)}")


def check_retrain(inputs: object, settings: Settings) -> RetrainParams:
    """The inputs of a ``retrain`` job, checked against the limits in settings, defaults filled in."""
    from pipelines.train_mining_score import EVALUATION_SEEDS, TRAINING_SEEDS
    from sample_data import PRESETS

    if not isinstance(inputs, Mapping):
        raise InvalidInputError("inputs must be an object with seeds and preset")
    unknown = sorted(set(map(str, inputs)) - set(RETRAIN_INPUTS))
    if unknown:
        raise InvalidInputError(f"unknown input(s) {', '.join(unknown)}; allowed: {', '.join(RETRAIN_INPUTS)}")
    limit = settings.job_retrain_max_seeds
    seeds = inputs.get("seeds")
    if seeds is None:
        seeds = list(TRAINING_SEEDS[:limit])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= SEED_MAX for v in seeds)):
        raise InvalidInputError(f"input seeds must be a non-empty list of integers 0..{SEED_MAX}; got {seeds!r}"[:300])
    if len(seeds) > limit:
        raise InvalidInputError(f"input seeds: {len(seeds)} training areas, more than one job may build ({limit}, "
                                "setting job_retrain_max_seeds)")
    if len(set(seeds)) != len(seeds):
        raise InvalidInputError("input seeds must be distinct")
    evaluation = sorted(set(seeds) & set(EVALUATION_SEEDS))
    if evaluation:
        raise InvalidInputError(f"input seeds {evaluation} are the evaluation's; training on them would inflate "
                                "its accuracy")
    preset = inputs.get("preset", "small")
    allowed = [p for p in settings.job_retrain_presets if p in PRESETS]
    if not isinstance(preset, str) or preset not in allowed:
        raise InvalidInputError(f"input preset must be one of {', '.join(allowed) or '(none allowed)'}; "
                                f"got {preset!r}"[:300])
    return RetrainParams(tuple(seeds), preset)


def check_detect(inputs: object, settings: Settings) -> DetectParams:
    """The inputs of a ``detect`` job, checked and with defaults filled in."""
    if not isinstance(inputs, Mapping):
        raise InvalidInputError("inputs must be an object with catalog, bbox, start, end, baseline_start, context")
    unknown = sorted(set(map(str, inputs)) - set(DETECT_INPUTS))
    if unknown:
        raise InvalidInputError(f"unknown input(s) {', '.join(unknown)}; allowed: {', '.join(DETECT_INPUTS)}")
    for required in ("bbox", "start", "end"):
        if inputs.get(required) is None:
            raise InvalidInputError(f"input {required} is required")
    bbox = check_job_bbox(inputs["bbox"], settings.job_max_area_km2)
    start = _date(inputs["start"], "start")
    end = _date(inputs["end"], "end")
    check_date_range(start, end)
    given_baseline = inputs.get("baseline_start")
    baseline_start = _date(given_baseline, "baseline_start") if given_baseline is not None else start - timedelta(days=BASELINE_DAYS)
    if baseline_start >= start:
        raise InvalidInputError(f"baseline_start {baseline_start} must be before start {start}")
    catalog = inputs.get("catalog")
    checked_catalog = (settings.resolved_stac_url if catalog is None
                       else check_location(catalog, "catalog", settings, expect="file"))
    context = inputs.get("context")
    checked_context = None if context is None else check_location(context, "context", settings, expect="dir",
                                                                   urls=False)
    return DetectParams(checked_catalog, bbox, start, end, baseline_start, checked_context,
                        _chunk_px(inputs.get("chunk_px", DEFAULT_CHUNK_PX)))


def check_job_bbox(value: object, max_area_km2: float) -> BBox:
    """A W,S,E,N box of plain numbers, inside Ecuador, not larger than ``max_area_km2``."""
    if isinstance(value, (list, tuple)):
        if len(value) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise InvalidInputError(f"input bbox must be four numbers [west, south, east, north]; got {value!r}")
    elif not isinstance(value, str):
        raise InvalidInputError(f"input bbox must be four numbers [west, south, east, north]; got {value!r}")
    try:
        bbox = check_bbox_in_ecuador(parse_bbox(value))  # type: ignore[arg-type]
    except InvalidInputError as exc:
        raise InvalidInputError(f"input {exc}") from None
    except OverflowError:  # an integer too large for a float (JSON allows any)
        raise InvalidInputError("input bbox values must be longitudes and latitudes in degrees") from None
    area = bbox_area_km2(bbox)
    if area > max_area_km2:
        raise InvalidInputError(f"input bbox covers {area:,.0f} km², more than one job may ({max_area_km2:,.0f} km²); "
                                "split the area into several jobs")
    return bbox


def bbox_area_km2(bbox: BBox) -> float:
    """Area of a lon/lat box, near enough for a limit (a sphere-like scale by the middle latitude)."""
    west, south, east, north = bbox
    mid = math.radians((south + north) / 2)
    return (east - west) * KM_PER_DEG_LON * math.cos(mid) * (north - south) * KM_PER_DEG_LAT


def check_location(value: object, name: str, settings: Settings, *, expect: str, urls: bool = True) -> str:
    """A path under ``settings.resolved_job_roots`` (resolved, existing) or an http(s) URL under an allowed prefix.

    ``expect`` is ``"file"`` or ``"dir"`` for local paths. The returned
    string is what the worker will open: the resolved path, or the URL as given.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > LOCATION_LENGTH or "\x00" in value:
        raise InvalidInputError(f"input {name} must be a path or URL of at most {LOCATION_LENGTH} characters")
    value = value.strip()
    if value == settings.resolved_stac_url and name == "catalog":
        return value  # the operator's own catalog
    scheme = urlsplit(value).scheme.lower() if "://" in value else ""
    if scheme in ("http", "https"):
        if not urls:
            raise InvalidInputError(f"input {name} must be a local folder under the allowed roots, not a URL")
        return _check_url(value, name, settings.job_allowed_url_prefixes)
    if scheme == "file":
        value = unquote(urlsplit(value).path)
    elif scheme:
        raise InvalidInputError(f"input {name} must be a local path or an http(s) URL; got a {scheme}:// URL")
    return str(_check_path(value, name, settings.resolved_job_roots, expect))


def _check_path(value: str, name: str, roots: list[Path], expect: str) -> Path:
    path = Path(value)
    if not path.is_absolute():
        raise InvalidInputError(f"input {name} must be an absolute path; got {value!r}")
    if ".." in path.parts:
        raise InvalidInputError(f"input {name} must not contain '..'; got {value!r}")
    resolved = path.resolve()  # symlinks followed: a link inside a root pointing outside is outside
    if not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise InvalidInputError(f"input {name} {value!r} is not under an allowed folder ({allowed})")
    if expect == "file" and not resolved.is_file():
        raise InvalidInputError(f"input {name} {value!r}: no such file")
    if expect == "dir" and not resolved.is_dir():
        raise InvalidInputError(f"input {name} {value!r}: no such folder")
    return resolved


def _check_url(value: str, name: str, prefixes: list[str]) -> str:
    parts = urlsplit(value)
    if not parts.hostname or parts.username or parts.password:
        raise InvalidInputError(f"input {name} must be an http(s) URL with a host and no credentials")
    if ".." in PurePosixPath(unquote(parts.path)).parts:
        raise InvalidInputError(f"input {name} must not contain '..'; got {value!r}")
    if not any(_under_prefix(parts, urlsplit(prefix)) for prefix in prefixes):
        allowed = ", ".join(prefixes) or "none are allowed (setting job_allowed_url_prefixes)"
        raise InvalidInputError(f"input {name} {value!r} is not under an allowed URL prefix: {allowed}")
    return value


def _under_prefix(url: Any, prefix: Any) -> bool:
    """Same scheme, host and port, and the path at or below the prefix's (on a segment boundary)."""
    if (url.scheme.lower(), url.hostname, url.port) != (prefix.scheme.lower(), prefix.hostname, prefix.port):
        return False
    base = prefix.path.rstrip("/")
    return url.path == base or url.path.startswith(base + "/")


def _date(value: object, name: str) -> date:
    if not isinstance(value, str):
        raise InvalidInputError(f"input {name} must be a date YYYY-MM-DD; got {value!r}")
    return parse_date(value, f"input {name}")


def _chunk_px(value: object) -> int:
    low, high = CHUNK_PX_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"input chunk_px must be an integer {low}..{high}; got {value!r}")
    return value
