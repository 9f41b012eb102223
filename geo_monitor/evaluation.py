"""Object-level evaluation of alerts against ground truth (``geo-monitor evaluate``).

Accuracy is measured, not asserted (DESIGN.md, quality gates): this module
reads an alerts GeoJSON (the Alert contract) and a ground-truth GeoJSON (the
Ground truth contract), matches alert polygons to truth polygons and reports
object-level precision / recall / F1, area IoU, detection lag, legality
correctness and where the false positives fall. It is pure computation plus
file reading; the command line only formats what :func:`evaluate` returns.

The matching rules and the reasons for them are written down in
``docs/evaluation.md``; keep the two in step.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from os import PathLike
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from geo_monitor.errors import InvalidInputError

#: Truth kind of the sites an alert should find.
MINING: Final = "mining"
#: Truth kind of a scar mined before the imagery: stable, so an alert on it is always wrong.
OLD_MINING: Final = "old_mining"
#: ``false_positives_by_kind`` key of alerts that overlap no truth feature at all.
NO_MATCH: Final = "none"
#: An alert and a truth feature match when they share at least this share of the smaller one's area.
DEFAULT_MIN_OVERLAP: Final = 0.10

ALERT_FIELDS: Final = ("id", "first_detected", "legality")
TRUTH_FIELDS: Final = ("kind", "start_date")

# Outcomes of one alert.
TRUE_POSITIVE: Final = "true_positive"
FALSE_POSITIVE: Final = "false_positive"
EXCLUDED: Final = "excluded"

# Roles of one truth feature, in the order an alert's matches are ranked: an
# alert that matches a new site counts for it whatever else it touches.
_SITE, _PRE_WINDOW, _DECOY = 0, 1, 2
_OUTCOME_OF_ROLE: Final = {_SITE: TRUE_POSITIVE, _PRE_WINDOW: EXCLUDED, _DECOY: FALSE_POSITIVE}

_M2_PER_HA: Final = 10_000.0
_POLYGONAL: Final = ("Polygon", "MultiPolygon")


# -- results ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteResult:
    """How one new mining site of the truth was (or was not) detected."""

    name: str
    start_date: date
    area_ha: float
    alert_ids: list[str]
    #: IoU of the site with the union of its matching alerts; 0.0 when missed.
    iou: float
    #: Earliest ``first_detected`` of the matching alerts minus ``start_date``; None when missed.
    lag_days: int | None
    expected_legality: str | None
    #: Distinct ``legality`` values of the matching alerts (several when a split site disagrees with itself).
    legality_got: list[str]
    #: Clear looks at the site from its start to its detection, that one included (None: not measured);
    #: filled by :func:`geo_monitor.clear_looks.add_clear_look_lags` when imagery is at hand.
    lag_clear_looks: int | None = None

    @property
    def detected(self) -> bool:
        return bool(self.alert_ids)

    @property
    def legality_correct(self) -> bool | None:
        """True when every matching alert says what the truth expects; None when not checkable."""
        if not self.detected or self.expected_legality is None:
            return None
        return self.legality_got == [self.expected_legality]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start_date": self.start_date.isoformat(),
            "area_ha": round(self.area_ha, 4),
            "detected": self.detected,
            "alert_ids": list(self.alert_ids),
            "iou": round(self.iou, 4),
            "lag_days": self.lag_days,
            "expected_legality": self.expected_legality,
            "legality_got": list(self.legality_got),
            "legality_correct": self.legality_correct,
            "lag_clear_looks": self.lag_clear_looks,
        }


@dataclass(frozen=True)
class AlertResult:
    """What one alert was judged to be, and against which truth feature."""

    id: str
    #: ``true_positive``, ``false_positive`` or ``excluded`` (on a mining site older than the window).
    outcome: str
    #: Kind of the truth feature it counts under, or ``none``.
    kind: str
    truth_name: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome, "kind": self.kind, "truth_name": self.truth_name}


@dataclass
class EvaluationReport:
    """Everything ``geo-monitor evaluate`` prints. Rates are None where they are undefined (e.g. no alerts).

    ``true_positives`` counts detected *sites*, so that splitting one site into
    many alerts neither raises nor lowers ``precision``; ``alert_precision`` is
    the share of judged alerts that lie on a new site (what an agent in the
    field experiences).
    """

    monitor_start: date | None
    min_overlap: float
    crs: str | None
    n_alerts: int
    n_truth_sites: int
    true_positives: int
    false_positives: int
    false_negatives: int
    matched_alerts: int
    precision: float | None
    recall: float | None
    f1: float | None
    alert_precision: float | None
    area_iou: float | None
    median_lag_days: float | None
    legality_correct: int
    legality_checked: int
    false_positives_by_kind: dict[str, int]
    alerts_on_old_mining: int
    excluded_sites: list[str]
    alerts_on_excluded_sites: int
    sites: list[SiteResult] = field(default_factory=list)
    alerts: list[AlertResult] = field(default_factory=list)
    #: Median of the sites' ``lag_clear_looks`` (None: not measured).
    median_lag_clear_looks: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: dates as ISO strings, undefined rates as null, rates rounded to 4 decimals."""
        return {
            "monitor_start": self.monitor_start.isoformat() if self.monitor_start else None,
            "min_overlap": self.min_overlap,
            "crs": self.crs,
            "n_alerts": self.n_alerts,
            "n_truth_sites": self.n_truth_sites,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "matched_alerts": self.matched_alerts,
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "f1": _round(self.f1),
            "alert_precision": _round(self.alert_precision),
            "area_iou": _round(self.area_iou),
            "median_lag_days": self.median_lag_days,
            "median_lag_clear_looks": self.median_lag_clear_looks,
            "legality_correct": self.legality_correct,
            "legality_checked": self.legality_checked,
            "false_positives_by_kind": dict(self.false_positives_by_kind),
            "alerts_on_old_mining": self.alerts_on_old_mining,
            "excluded_sites": list(self.excluded_sites),
            "alerts_on_excluded_sites": self.alerts_on_excluded_sites,
            "sites": [s.to_dict() for s in self.sites],
            "alerts": [a.to_dict() for a in self.alerts],
        }

    def format_text(self) -> str:
        """A compact table for a terminal: the headline numbers, then one line per new mining site."""
        window = f"sites starting on/after {self.monitor_start}" if self.monitor_start else "every mining site"
        fp_kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.false_positives_by_kind.items())) or "-"
        looks = "" if self.median_lag_clear_looks is None else f" ({self.median_lag_clear_looks:g} clear looks)"
        lines = [
            f"evaluation: {window}; match = overlap >= {self.min_overlap:.0%} of the smaller polygon; "
            f"areas in {self.crs or 'n/a'}",
            f"alerts {self.n_alerts} (on new sites {self.matched_alerts}, false {self.false_positives}, "
            f"on older mining {self.alerts_on_excluded_sites}) | new mining sites {self.n_truth_sites} "
            f"(detected {self.true_positives}, missed {self.false_negatives}, "
            f"older excluded {len(self.excluded_sites)})",
            f"precision {_fmt(self.precision)}  recall {_fmt(self.recall)}  F1 {_fmt(self.f1)}  "
            f"alert precision {_fmt(self.alert_precision)}  area IoU {_fmt(self.area_iou)}",
            f"median lag {_fmt(self.median_lag_days, '.1f')} days{looks}  "
            f"legality {self.legality_correct}/{self.legality_checked} correct  "
            f"alerts on old mining {self.alerts_on_old_mining}",
            f"false positives by kind: {fp_kinds}",
        ]
        if self.sites:
            lines.append(_site_table(self.sites))
        return "\n".join(lines)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _site_table(sites: list[SiteResult]) -> str:
    header = ("site", "start", "alerts", "IoU", "lag", "legality expected -> got")
    rows = [header] + [
        (
            s.name,
            s.start_date.isoformat(),
            str(len(s.alert_ids)) if s.detected else "missed",
            f"{s.iou:.2f}",
            "-" if s.lag_days is None else f"{s.lag_days}d" + ("" if s.lag_clear_looks is None else f"/{s.lag_clear_looks}"),
            _legality_cell(s),
        )
        for s in sites
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def _legality_cell(site: SiteResult) -> str:
    if site.expected_legality is None:
        return "-"
    got = "/".join(site.legality_got) or "-"
    mark = {True: "ok", False: "WRONG", None: ""}[site.legality_correct]
    return f"{site.expected_legality} -> {got} {mark}".rstrip()


# -- reading and checking the inputs -------------------------------------------------------------------------------


def load_alerts(path: str | PathLike[str]) -> gpd.GeoDataFrame:
    """Read an alerts GeoJSON (``geo-monitor detect --out``) and check the fields evaluation needs.

    Raises :class:`InvalidInputError` with a one-line message for a missing or
    unreadable file, missing fields, bad dates or non-polygon geometries.
    """
    return prepare_alerts(_read_vector(path, "alerts"), f"alerts file {path}")


def load_truth(path: str | PathLike[str]) -> gpd.GeoDataFrame:
    """Read a ground-truth GeoJSON (``kind``, ``start_date``; optional ``name``, ``expected_legality``)."""
    return prepare_truth(_read_vector(path, "truth"), f"truth file {path}")


def _read_vector(path: str | PathLike[str], what: str) -> gpd.GeoDataFrame:
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{what} file not found: {p}")
    try:
        return gpd.read_file(p)
    except Exception as exc:  # pyogrio/GDAL raise several classes, all meaning "not a readable vector file"
        raise InvalidInputError(f"cannot read {what} file {p}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__


def prepare_alerts(frame: gpd.GeoDataFrame, source: str = "alerts") -> gpd.GeoDataFrame:
    """Normalise alerts: ``id`` as unique str, ``first_detected`` as :class:`date`, ``legality`` as str or None.

    Idempotent, so :func:`evaluate` can accept frames built in code as well as
    those from :func:`load_alerts`.
    """
    out = _prepare_frame(frame, source, ALERT_FIELDS)
    ids = [_text(v) for v in out["id"]]
    if any(i is None for i in ids):
        raise InvalidInputError(f"{source}: feature {ids.index(None)} has no id")
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise InvalidInputError(f"{source}: duplicate alert ids {', '.join(map(str, duplicates[:5]))}")
    out["id"] = pd.Series(ids, index=out.index, dtype=object)
    out["first_detected"] = _dates(out["first_detected"], "first_detected", source, required=True)
    out["legality"] = _texts(out["legality"])
    return out


def prepare_truth(frame: gpd.GeoDataFrame, source: str = "truth") -> gpd.GeoDataFrame:
    """Normalise ground truth: lower-case ``kind``, ``start_date`` as :class:`date`, ``name`` always set.

    ``start_date`` may be empty only for decoys: lag and the monitoring window
    need it for mining sites alone.
    """
    out = _prepare_frame(frame, source, TRUTH_FIELDS)
    kinds = [(_text(v) or "").lower() for v in out["kind"]]
    if "" in kinds:
        raise InvalidInputError(f"{source}: feature {kinds.index('')} has no kind")
    out["kind"] = pd.Series(kinds, index=out.index, dtype=object)
    is_mining = out["kind"] == MINING
    out["start_date"] = _dates(out["start_date"], "start_date", source, required=is_mining.to_numpy())
    names = _texts(out["name"]) if "name" in out else [None] * len(out)
    out["name"] = [n if n is not None else f"#{i}" for i, n in enumerate(names)]
    out["expected_legality"] = _texts(out["expected_legality"]) if "expected_legality" in out else None
    return out


def _prepare_frame(frame: gpd.GeoDataFrame, source: str, required: tuple[str, ...]) -> gpd.GeoDataFrame:
    """Checks common to alerts and truth: required columns, a CRS, polygon geometries."""
    if not isinstance(frame, gpd.GeoDataFrame):
        raise InvalidInputError(f"{source}: expected a GeoDataFrame, got {type(frame).__name__}")
    out = frame.copy()
    if len(out) == 0:  # an empty FeatureCollection has no property columns at all
        for name in required:
            if name not in out:
                out[name] = pd.Series(dtype=object)
    missing = [name for name in required if name not in out]
    if missing:
        raise InvalidInputError(f"{source}: features lack required field(s) {', '.join(missing)}")
    if out.crs is None:
        _check_lonlat(out, source)
        out = out.set_crs("EPSG:4326")  # GeoJSON (RFC 7946) is always lon/lat
    _check_polygons(out.geometry, source)
    return out.reset_index(drop=True)


def _check_lonlat(frame: gpd.GeoDataFrame, source: str) -> None:
    if len(frame) == 0 or frame.geometry.isna().all():
        return
    west, south, east, north = frame.total_bounds
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise InvalidInputError(f"{source}: no CRS given and the coordinates are not longitude/latitude")


def _check_polygons(geoms: gpd.GeoSeries, source: str) -> None:
    for i, geom in enumerate(geoms):
        if geom is None or geom.is_empty:
            raise InvalidInputError(f"{source}: feature {i} has no geometry")
        if geom.geom_type not in _POLYGONAL:
            raise InvalidInputError(f"{source}: feature {i} is a {geom.geom_type}; evaluation needs polygons")


def _text(value: Any) -> str | None:
    """A property as a stripped string; None for null, NaN or blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    return text or None


def _texts(values: pd.Series) -> pd.Series:
    return pd.Series([_text(v) for v in values], index=values.index, dtype=object)


def _dates(values: pd.Series, name: str, source: str, required: bool | np.ndarray) -> pd.Series:
    """Dates as :class:`datetime.date`, whatever pyogrio made of the ISO strings (datetime64, Timestamp, str)."""
    need = np.broadcast_to(np.asarray(required, dtype=bool), (len(values),))
    out = []
    for i, (value, needed) in enumerate(zip(values, need)):
        day = _as_date(value, name, f"{source}: feature {i}")
        if day is None and needed:
            raise InvalidInputError(f"{source}: feature {i} has no {name}")
        out.append(day)
    return pd.Series(out, index=values.index, dtype=object)


def _as_date(value: Any, name: str, where: str) -> date | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, datetime):  # pd.Timestamp is a datetime
        return None if pd.isna(value) else value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise InvalidInputError(f"{where}: {name} must be an ISO date YYYY-MM-DD; got {text!r}") from None


# -- evaluation --------------------------------------------------------------------------------------------------


def evaluate(
    alerts: gpd.GeoDataFrame,
    truth: gpd.GeoDataFrame,
    monitor_start: date | None = None,
    *,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
) -> EvaluationReport:
    """Match alerts to truth and score them (rules in ``docs/evaluation.md``).

    ``monitor_start``: mining sites that started before it are not new: they
    leave recall, and alerts on them are neither true nor false positives.
    ``old_mining`` features are decoys whatever their date. Without it every
    ``mining`` feature is a site to find.
    """
    if not 0 < min_overlap <= 1:
        raise InvalidInputError(f"min_overlap must be in (0, 1]; got {min_overlap}")
    alerts = prepare_alerts(alerts)
    truth = prepare_truth(truth)
    crs = _local_crs(alerts, truth)
    alert_geoms = _project(alerts, crs)
    truth_geoms = _project(truth, crs)
    roles = _roles(truth, monitor_start)
    pairs = _match(alert_geoms, truth_geoms, min_overlap)
    pairs["role"] = roles[pairs["truth"].to_numpy()]

    alert_results = _judge_alerts(alerts, truth, pairs)
    site_idx = np.flatnonzero(roles == _SITE)
    sites = [_site_result(i, alerts, truth, alert_geoms, truth_geoms, pairs) for i in site_idx]
    tp_alerts = [i for i, r in enumerate(alert_results) if r.outcome == TRUE_POSITIVE]
    return _report(
        monitor_start=monitor_start,
        min_overlap=min_overlap,
        crs=crs,
        alert_results=alert_results,
        sites=sites,
        excluded_sites=[str(n) for n in truth["name"].to_numpy()[roles == _PRE_WINDOW]],
        area_iou=_iou(_union(alert_geoms[tp_alerts]), _union(truth_geoms[site_idx])),
        alerts_on_old_mining=_alerts_on_kind(pairs, truth, OLD_MINING),
    )


def _local_crs(*frames: gpd.GeoDataFrame) -> CRS | None:
    """The UTM zone of the data's centre (326xx north / 327xx south): metres, so areas are in m².

    Every number derived from areas is a ratio, so the small scale error of
    UTM away from the central meridian cancels out. None when there is nothing.
    """
    geoms = [f.geometry.to_crs("EPSG:4326") for f in frames if len(f)]
    if not geoms:
        return None
    return gpd.GeoSeries(pd.concat(geoms, ignore_index=True), crs="EPSG:4326").estimate_utm_crs()


def _project(frame: gpd.GeoDataFrame, crs: CRS | None) -> np.ndarray:
    """Geometries in ``crs``, repaired (``make_valid``) and reduced to their polygon parts."""
    if crs is None or len(frame) == 0:
        return np.array([], dtype=object)
    projected = frame.geometry.to_crs(crs).to_numpy()
    repaired = shapely.make_valid(projected, method="structure", keep_collapsed=False)
    return np.array([_polygon_parts(g) for g in repaired], dtype=object)


def _polygon_parts(geom: BaseGeometry) -> BaseGeometry:
    if geom.geom_type in _POLYGONAL:
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL]
    return shapely.union_all(parts) if parts else Polygon()


def _roles(truth: gpd.GeoDataFrame, monitor_start: date | None) -> np.ndarray:
    """Per truth feature: a new site to find, a mining site older than the window, or a decoy."""
    is_mining = (truth["kind"] == MINING).to_numpy()
    old = np.array([monitor_start is not None and d is not None and d < monitor_start for d in truth["start_date"]],
                   dtype=bool)
    roles = np.full(len(truth), _DECOY, dtype=int)
    roles[is_mining & ~old] = _SITE
    roles[is_mining & old] = _PRE_WINDOW
    return roles


def _match(alert_geoms: np.ndarray, truth_geoms: np.ndarray, min_overlap: float) -> pd.DataFrame:
    """Every (alert, truth) pair sharing at least ``min_overlap`` of the smaller polygon's area (and some area)."""
    columns = ["alert", "truth", "overlap_m2"]
    if len(alert_geoms) == 0 or len(truth_geoms) == 0:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "overlap_m2" else int) for c in columns})
    tree = shapely.STRtree(truth_geoms)
    a_idx, t_idx = tree.query(alert_geoms, predicate="intersects")
    overlap = shapely.area(shapely.intersection(alert_geoms[a_idx], truth_geoms[t_idx]))
    smaller = np.minimum(shapely.area(alert_geoms[a_idx]), shapely.area(truth_geoms[t_idx]))
    keep = (overlap > 0) & (overlap >= min_overlap * smaller)
    return pd.DataFrame({"alert": a_idx[keep], "truth": t_idx[keep], "overlap_m2": overlap[keep]}, columns=columns)


def _judge_alerts(alerts: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, pairs: pd.DataFrame) -> list[AlertResult]:
    """Each alert counts under its best match: a new site first, then an older site, then the largest decoy."""
    best = pairs.sort_values(["alert", "role", "overlap_m2"], ascending=[True, True, False]).drop_duplicates("alert")
    best = best.set_index("alert")
    results = []
    for i, alert_id in enumerate(alerts["id"]):
        if i not in best.index:
            results.append(AlertResult(alert_id, FALSE_POSITIVE, NO_MATCH, None))
            continue
        t = int(best.at[i, "truth"])
        role = int(best.at[i, "role"])
        results.append(AlertResult(alert_id, _OUTCOME_OF_ROLE[role], truth["kind"].iat[t], truth["name"].iat[t]))
    return results


def _site_result(
    t: int,
    alerts: gpd.GeoDataFrame,
    truth: gpd.GeoDataFrame,
    alert_geoms: np.ndarray,
    truth_geoms: np.ndarray,
    pairs: pd.DataFrame,
) -> SiteResult:
    """One site: every alert that matches it (even one that also matches another site) detects it."""
    matched = sorted(pairs.loc[pairs["truth"] == t, "alert"].astype(int))
    start = truth["start_date"].iat[t]
    first = min((alerts["first_detected"].iat[a] for a in matched), default=None)
    site_geom = truth_geoms[t]
    return SiteResult(
        name=str(truth["name"].iat[t]),
        start_date=start,
        area_ha=float(site_geom.area) / _M2_PER_HA,
        alert_ids=[str(alerts["id"].iat[a]) for a in matched],
        iou=_iou(_union(alert_geoms[matched]), site_geom) or 0.0,
        lag_days=None if first is None else (first - start).days,
        expected_legality=truth["expected_legality"].iat[t],
        legality_got=sorted({alerts["legality"].iat[a] or "none" for a in matched}),
    )


def _union(geoms: np.ndarray) -> BaseGeometry:
    return shapely.union_all(geoms) if len(geoms) else Polygon()


def _iou(a: BaseGeometry, b: BaseGeometry) -> float | None:
    """Intersection over union of two areas; None when both are empty (nothing to compare)."""
    union = a.union(b).area
    return None if union == 0 else a.intersection(b).area / union


def _alerts_on_kind(pairs: pd.DataFrame, truth: gpd.GeoDataFrame, kind: str) -> int:
    """Alerts matching any feature of ``kind``, whatever else they match."""
    if pairs.empty:
        return 0
    on_kind = truth["kind"].to_numpy()[pairs["truth"].to_numpy()] == kind
    return int(pairs.loc[on_kind, "alert"].nunique())


def _report(
    *,
    monitor_start: date | None,
    min_overlap: float,
    crs: CRS | None,
    alert_results: list[AlertResult],
    sites: list[SiteResult],
    excluded_sites: list[str],
    area_iou: float | None,
    alerts_on_old_mining: int,
) -> EvaluationReport:
    """Counts and rates from the per-alert and per-site judgements."""
    outcomes = Counter(r.outcome for r in alert_results)
    tp = sum(s.detected for s in sites)
    fp = outcomes[FALSE_POSITIVE]
    matched = outcomes[TRUE_POSITIVE]
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, len(sites))
    lags = [s.lag_days for s in sites if s.lag_days is not None]
    checked = [s.legality_correct for s in sites if s.legality_correct is not None]
    return EvaluationReport(
        monitor_start=monitor_start,
        min_overlap=min_overlap,
        crs=crs.to_string() if crs is not None else None,
        n_alerts=len(alert_results),
        n_truth_sites=len(sites),
        true_positives=tp,
        false_positives=fp,
        false_negatives=len(sites) - tp,
        matched_alerts=matched,
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        alert_precision=_ratio(matched, matched + fp),
        area_iou=area_iou,
        median_lag_days=float(statistics.median(lags)) if lags else None,
        legality_correct=sum(checked),
        legality_checked=len(checked),
        false_positives_by_kind=dict(sorted(Counter(r.kind for r in alert_results if r.outcome == FALSE_POSITIVE).items())),
        alerts_on_old_mining=alerts_on_old_mining,
        excluded_sites=excluded_sites,
        alerts_on_excluded_sites=outcomes[EXCLUDED],
        sites=sites,
        alerts=alert_results,
    )


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
