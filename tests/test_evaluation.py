"""Object-level evaluation of alerts against ground truth, on hand-built polygons with known answers.

Polygons are rectangles drawn in UTM 18S metres (the zone the evaluator picks
for them) and handed over in EPSG:4326, as files carry them, so areas and IoUs
have exact expected values.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from shapely.geometry import MultiPolygon, Polygon, box, mapping

from geo_monitor.alerts import Alert, Confidence, Context, Legality, Priority, Provenance, Signature, feature_collection
from geo_monitor.errors import InvalidInputError
from geo_monitor.evaluation import (
    EvaluationReport,
    evaluate,
    load_alerts,
    load_truth,
)

UTM_18S = "EPSG:32718"
X0, Y0 = 180_000.0, 9_890_000.0  # near Río Punino, Napo
START = date(2024, 2, 1)
MONITOR = date(2024, 1, 1)


def rect(x: float, y: float, w: float = 100.0, h: float = 100.0) -> Polygon:
    """A w × h m rectangle whose lower-left corner is (x, y) m from the test origin."""
    return box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)


def alert(id: str, geom: Any, first_detected: date = START, legality: str = "probably_illegal") -> dict[str, Any]:
    return {"id": id, "geometry": geom, "first_detected": first_detected, "legality": legality}


def site(name: str, geom: Any, kind: str = "mining", start_date: date = START,
         expected_legality: str | None = "probably_illegal") -> dict[str, Any]:
    return {"name": name, "kind": kind, "geometry": geom, "start_date": start_date,
            "expected_legality": expected_legality}


def frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> gpd.GeoDataFrame:
    """Rows drawn in UTM metres, returned in lon/lat like a GeoJSON file."""
    data = {c: [r[c] for r in rows] for c in columns}
    return gpd.GeoDataFrame(data, geometry=[r["geometry"] for r in rows], crs=UTM_18S).to_crs("EPSG:4326")


def alerts_of(*rows: dict[str, Any]) -> gpd.GeoDataFrame:
    return frame(list(rows), ("id", "first_detected", "legality"))


def truth_of(*rows: dict[str, Any]) -> gpd.GeoDataFrame:
    return frame(list(rows), ("name", "kind", "start_date", "expected_legality"))


def run(alerts: list[dict[str, Any]], truth: list[dict[str, Any]], **kwargs: Any) -> EvaluationReport:
    return evaluate(alerts_of(*alerts), truth_of(*truth), **kwargs)


# -- matching and counting ---------------------------------------------------------------------------------------


def test_perfect_match() -> None:
    r = run([alert("a1", rect(0, 0))], [site("s1", rect(0, 0))], monitor_start=MONITOR)
    assert (r.n_alerts, r.n_truth_sites, r.true_positives, r.false_positives, r.false_negatives) == (1, 1, 1, 0, 0)
    assert r.precision == r.recall == r.f1 == r.alert_precision == 1.0
    assert r.area_iou == pytest.approx(1.0)
    assert r.median_lag_days == 0
    assert (r.legality_correct, r.legality_checked) == (1, 1)
    assert r.false_positives_by_kind == {}
    assert r.crs == UTM_18S
    [s] = r.sites
    assert (s.name, s.alert_ids, s.lag_days, s.legality_correct) == ("s1", ["a1"], 0, True)
    assert s.area_ha == pytest.approx(1.0)


def test_split_site_counts_once_and_does_not_inflate_precision() -> None:
    halves = [alert("a1", rect(0, 0, 50)), alert("a2", rect(50, 0, 50))]
    r = run(halves + [alert("fp", rect(1000, 1000))], [site("s1", rect(0, 0))])
    assert (r.true_positives, r.matched_alerts, r.false_positives, r.false_negatives) == (1, 2, 1, 0)
    assert r.recall == 1.0
    assert r.precision == pytest.approx(0.5)  # one site found, one false alarm: fragments add nothing
    assert r.alert_precision == pytest.approx(2 / 3)  # what an agent driving to each alert sees
    assert r.sites[0].alert_ids == ["a1", "a2"]
    assert r.sites[0].iou == pytest.approx(1.0)


def test_false_positives_counted_under_the_decoy_kind() -> None:
    truth = [site("s1", rect(0, 0)), site("field", rect(500, 0), kind="agriculture", expected_legality=None),
             site("road", rect(0, 500, 300, 20), kind="road", expected_legality=None)]
    alerts = [
        alert("on-field", rect(510, 10, 50, 50)),
        alert("on-road", rect(0, 500, 300, 20)),
        alert("nowhere", rect(2000, 2000)),
        alert("site-and-field", rect(50, 0, 500)),  # touches both: the mining site wins
    ]
    r = run(alerts, truth)
    assert r.false_positives_by_kind == {"agriculture": 1, "none": 1, "road": 1}
    assert (r.true_positives, r.false_positives) == (1, 3)
    outcome = {a.id: (a.outcome, a.kind, a.truth_name) for a in r.alerts}
    assert outcome["site-and-field"] == ("true_positive", "mining", "s1")
    assert outcome["on-field"] == ("false_positive", "agriculture", "field")
    assert outcome["nowhere"] == ("false_positive", "none", None)


def test_alert_on_old_mining_is_a_false_positive_whatever_the_window() -> None:
    old = site("scar", rect(0, 0), kind="old_mining", start_date=date(2019, 6, 1), expected_legality=None)
    for monitor_start in (None, MONITOR):
        r = run([alert("a1", rect(10, 10, 50, 50))], [old], monitor_start=monitor_start)
        assert r.alerts_on_old_mining == 1
        assert r.false_positives_by_kind == {"old_mining": 1}
        assert r.n_truth_sites == 0 and r.excluded_sites == []


def test_alerts_on_old_mining_counts_true_positives_touching_the_scar_too() -> None:
    truth = [site("s1", rect(0, 0)), site("scar", rect(100, 0), kind="old_mining", expected_legality=None)]
    r = run([alert("a1", rect(50, 0))], truth)
    assert r.alerts[0].outcome == "true_positive"
    assert r.alerts_on_old_mining == 1
    assert r.false_positives_by_kind == {}


def test_missed_site() -> None:
    r = run([alert("a1", rect(0, 0))], [site("found", rect(0, 0)), site("missed", rect(1000, 0))])
    assert (r.true_positives, r.false_negatives) == (1, 1)
    assert r.recall == 0.5 and r.precision == 1.0
    assert r.f1 == pytest.approx(2 / 3)
    missed = r.sites[1]
    assert (missed.detected, missed.alert_ids, missed.iou, missed.lag_days) == (False, [], 0.0, None)
    assert missed.legality_correct is None and r.legality_checked == 1


def test_lag_is_from_the_earliest_matching_alert_and_median_over_sites() -> None:
    alerts = [
        alert("late", rect(0, 0, 50), START + timedelta(days=30)),
        alert("early", rect(50, 0, 50), START + timedelta(days=20)),
        alert("b", rect(1000, 0), START + timedelta(days=10)),
        alert("c", rect(2000, 0), START + timedelta(days=45)),
        alert("d", rect(3000, 0), START - timedelta(days=5)),  # an alert may predate the truth start
    ]
    truth = [site(n, rect(x, 0)) for n, x in (("a", 0), ("b", 1000), ("c", 2000), ("d", 3000))]
    r = run(alerts, truth)
    assert [s.lag_days for s in r.sites] == [20, 10, 45, -5]
    assert r.median_lag_days == 15.0  # even count: mean of 10 and 20


def test_legality_mismatch_and_unchecked_sites() -> None:
    truth = [site("illegal", rect(0, 0)), site("legal", rect(1000, 0), expected_legality="inside_concession"),
             site("unknown", rect(2000, 0), expected_legality=None), site("split", rect(3000, 0))]
    alerts = [
        alert("a", rect(0, 0), legality="inside_concession"),
        alert("b", rect(1000, 0), legality="inside_concession"),
        alert("c", rect(2000, 0), legality="unknown"),
        alert("d1", rect(3000, 0, 50), legality="probably_illegal"),
        alert("d2", rect(3050, 0, 50), legality="unknown"),
    ]
    r = run(alerts, truth)
    assert (r.legality_correct, r.legality_checked) == (1, 3)
    by_name = {s.name: s for s in r.sites}
    assert by_name["illegal"].legality_got == ["inside_concession"] and by_name["illegal"].legality_correct is False
    assert by_name["legal"].legality_correct is True
    assert by_name["unknown"].legality_correct is None
    assert by_name["split"].legality_got == ["probably_illegal", "unknown"]
    assert by_name["split"].legality_correct is False  # every alert of a site must say it right
    assert "WRONG" in r.format_text()


def test_monitor_start_excludes_older_mining_sites() -> None:
    truth = [site("new", rect(0, 0)), site("older", rect(1000, 0), start_date=date(2023, 6, 1))]
    alerts = [alert("a1", rect(0, 0)), alert("a2", rect(1000, 0))]
    r = run(alerts, truth, monitor_start=MONITOR)
    assert r.n_truth_sites == 1 and [s.name for s in r.sites] == ["new"]
    assert r.excluded_sites == ["older"] and r.alerts_on_excluded_sites == 1
    assert (r.true_positives, r.false_positives, r.false_negatives) == (1, 0, 0)
    assert r.precision == 1.0 and r.recall == 1.0
    assert {a.id: a.outcome for a in r.alerts} == {"a1": "true_positive", "a2": "excluded"}

    without = run(alerts, truth)
    assert without.n_truth_sites == 2 and without.true_positives == 2 and without.excluded_sites == []


def test_area_iou_exact_on_rectangles() -> None:
    # site 100x100, alert shifted 50 m: intersection 5000 m², union 15000 m²
    r = run([alert("a1", rect(50, 0))], [site("s1", rect(0, 0))])
    assert r.sites[0].iou == pytest.approx(1 / 3, abs=1e-6)
    assert r.area_iou == pytest.approx(1 / 3, abs=1e-6)

    # global IoU: the matched alert against the union of all new sites, missed one included; FPs left out
    r = run([alert("a1", rect(0, 0, 100, 50)), alert("fp", rect(5000, 0))],
            [site("s1", rect(0, 0)), site("s2", rect(1000, 0))])
    assert r.area_iou == pytest.approx(5000 / 20000, abs=1e-6)


@pytest.mark.parametrize(("width", "matched"), [(1.0, False), (3.0, True)])
def test_min_overlap_is_a_share_of_the_smaller_polygon(width: float, matched: bool) -> None:
    # a 20x100 m alert reaching `width` m into a large site: overlap = width/20 of the alert (5 % or 15 %)
    r = run([alert("a1", rect(-20 + width, 0, 20))], [site("s1", rect(0, 0, 1000, 1000))])
    assert r.sites[0].detected is matched
    assert r.false_positives == (0 if matched else 1)


def test_touching_polygons_do_not_match() -> None:
    r = run([alert("a1", rect(100, 0))], [site("s1", rect(0, 0))])
    assert r.true_positives == 0 and r.false_positives_by_kind == {"none": 1}


def test_min_overlap_must_be_a_share() -> None:
    with pytest.raises(InvalidInputError, match="min_overlap"):
        run([], [], min_overlap=0.0)


# -- edge cases --------------------------------------------------------------------------------------------------


def test_no_alerts_gives_undefined_precision_not_one() -> None:
    r = run([], [site("s1", rect(0, 0))])
    assert r.precision is None and r.f1 is None and r.alert_precision is None
    assert r.recall == 0.0 and r.area_iou == 0.0 and r.median_lag_days is None
    d = r.to_dict()
    assert d["precision"] is None
    json.dumps(d)
    assert "precision n/a" in r.format_text()


def test_no_truth_sites_gives_undefined_recall() -> None:
    r = run([alert("a1", rect(0, 0))], [site("field", rect(500, 0), kind="agriculture", expected_legality=None)])
    assert r.recall is None and r.precision == 0.0 and r.f1 is None and r.area_iou is None
    r = run([], [])
    assert r.n_alerts == r.n_truth_sites == 0 and r.crs is None and r.precision is None


def test_invalid_and_multipart_geometries() -> None:
    bow_tie = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100), (X0, Y0)])
    two_parts = MultiPolygon([rect(1000, 0), rect(1200, 0)])
    r = run([alert("bow", bow_tie), alert("multi", two_parts)],
            [site("s1", rect(0, 0)), site("s2", rect(1000, 0, 300))])
    assert r.recall == 1.0 and r.precision == 1.0
    assert [s.alert_ids for s in r.sites] == [["bow"], ["multi"]]
    assert r.sites[0].iou == pytest.approx(0.5)  # the bow tie repaired into its two triangles
    assert r.sites[1].iou == pytest.approx(2 / 3)


def test_missing_crs_is_taken_as_lon_lat() -> None:
    alerts = alerts_of(alert("a1", rect(0, 0))).set_crs(None, allow_override=True)
    r = evaluate(alerts, truth_of(site("s1", rect(0, 0))))
    assert r.true_positives == 1

    in_metres = gpd.GeoDataFrame({"id": ["a1"], "first_detected": [START], "legality": ["unknown"]},
                                 geometry=[rect(0, 0)])
    with pytest.raises(InvalidInputError, match="longitude/latitude"):
        evaluate(in_metres, truth_of(site("s1", rect(0, 0))))


def test_utm_zone_follows_the_data() -> None:
    nangaritza = gpd.GeoDataFrame(geometry=[box(-78.66, -4.25, -78.65, -4.24)], crs="EPSG:4326")
    truth = nangaritza.assign(kind="mining", start_date=START, name="s1", expected_legality=None)
    alerts = nangaritza.assign(id="a1", first_detected=START, legality="unknown")
    r = evaluate(alerts, truth)
    assert r.crs == "EPSG:32717" and r.area_iou == pytest.approx(1.0)


def test_report_outputs() -> None:
    r = run([alert("a1", rect(0, 0)), alert("fp", rect(5000, 0))], [site("s1", rect(0, 0))], monitor_start=MONITOR)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["monitor_start"] == "2024-01-01" and d["precision"] == 0.5 and d["recall"] == 1.0
    assert d["sites"][0] == {
        "name": "s1", "start_date": "2024-02-01", "area_ha": 1.0, "detected": True, "alert_ids": ["a1"],
        "iou": 1.0, "lag_days": 0, "expected_legality": "probably_illegal", "legality_got": ["probably_illegal"],
        "legality_correct": True, "lag_clear_looks": None,
    }
    assert d["median_lag_clear_looks"] is None  # needs imagery: evaluate --catalog
    assert {a["id"]: a["outcome"] for a in d["alerts"]} == {"a1": "true_positive", "fp": "false_positive"}
    text = r.format_text()
    assert "precision 0.500" in text and "s1" in text and "probably_illegal -> probably_illegal ok" in text


# -- files -------------------------------------------------------------------------------------------------------


def write_fc(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def feature(geom: Any, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": mapping(geom), "properties": props}


LONLAT_BOX = box(-77.51, -0.99, -77.50, -0.98)


def test_load_files_and_normalise_dates(tmp_path: Path) -> None:
    truth = load_truth(write_fc(tmp_path / "truth.geojson", [
        feature(LONLAT_BOX, kind="Mining", start_date="2024-02-01", name="s1", expected_legality="probably_illegal"),
        feature(LONLAT_BOX.buffer(0.02), kind="flood", start_date=None),
    ]))
    assert truth["start_date"].tolist() == [START, None]
    assert truth["kind"].tolist() == ["mining", "flood"]
    assert truth["name"].tolist() == ["s1", "#1"]
    alerts = load_alerts(write_fc(tmp_path / "alerts.geojson", [
        feature(LONLAT_BOX, id="gm-1", first_detected="2024-02-11", legality="probably_illegal",
                signature={"water": 0.2}, context={"province": "Napo"}),
    ]))
    assert alerts["first_detected"].tolist() == [date(2024, 2, 11)]
    r = evaluate(alerts, truth, MONITOR)
    assert r.sites[0].lag_days == 10 and r.alerts_on_excluded_sites == 0


def test_empty_alerts_file(tmp_path: Path) -> None:
    alerts = load_alerts(write_fc(tmp_path / "alerts.geojson", []))
    assert len(alerts) == 0
    truth = load_truth(write_fc(tmp_path / "truth.geojson", [feature(LONLAT_BOX, kind="mining", start_date="2024-02-01")]))
    r = evaluate(alerts, truth)
    assert r.n_alerts == 0 and r.false_negatives == 1


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "not found"),
        ("{not json", "cannot read"),
        ([feature(LONLAT_BOX, start_date="2024-02-01")], "kind"),
        ([feature(LONLAT_BOX, kind="mining")], "start_date"),
        ([feature(LONLAT_BOX, kind="mining", start_date=None)], "feature 0 has no start_date"),
        ([feature(LONLAT_BOX, kind="mining", start_date="last spring")], "ISO date"),
        ([feature(LONLAT_BOX.centroid, kind="mining", start_date="2024-02-01")], "Point"),
    ],
)
def test_bad_truth_files(tmp_path: Path, content: Any, match: str) -> None:
    path = tmp_path / "truth.geojson"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        write_fc(path, content)
    with pytest.raises(InvalidInputError, match=match) as caught:
        load_truth(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("features", "match"),
    [
        ([feature(LONLAT_BOX, first_detected="2024-02-01", legality="unknown")], "id"),
        ([feature(LONLAT_BOX, id="a", legality="unknown")], "first_detected"),
        ([feature(LONLAT_BOX, id="a", first_detected="2024-02-01")], "legality"),
        ([feature(LONLAT_BOX, id="a", first_detected="2024-02-01", legality="unknown")] * 2, "duplicate alert ids a"),
    ],
)
def test_bad_alert_files(tmp_path: Path, features: list[dict[str, Any]], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        load_alerts(write_fc(tmp_path / "alerts.geojson", features))


# -- the sample area ---------------------------------------------------------------------------------------------


def _alert_from_truth(row: Any) -> Alert:
    """A perfect alert for one truth site, in the real Alert format."""
    return Alert(
        id=f"truth-{row['name']}", geometry=row.geometry, area_ha=0.0, pond_area_ha=0.0,
        first_detected=row["start_date"], last_observed=row["start_date"], confirmed_at=None,
        confidence=Confidence.HIGH, score=1.0, signature=Signature(1.0, 1.0, 0.1, 1.0), context=Context(),
        legality=Legality(row["expected_legality"]), priority=Priority.HIGH,
        provenance=Provenance("truth-as-alerts", "0", None, []),
    )


def test_truth_against_itself_on_the_sample_area(sample_area: Path, tmp_path: Path) -> None:
    truth = load_truth(sample_area / "truth.geojson")
    monitor_start = date.fromisoformat(json.loads((sample_area / "manifest.json").read_text())["spec"]["monitor_start"])
    mining = truth[truth["kind"] == "mining"]
    path = tmp_path / "alerts.geojson"
    path.write_text(json.dumps(feature_collection([_alert_from_truth(row) for _, row in mining.iterrows()])))

    r = evaluate(load_alerts(path), truth, monitor_start)
    assert r.n_truth_sites == len(mining) >= 2
    assert r.precision == r.recall == 1.0
    assert r.area_iou == pytest.approx(1.0, abs=1e-6)
    assert r.median_lag_days == 0
    assert r.legality_correct == r.legality_checked == len(mining)
    assert r.alerts_on_old_mining == 0 and r.false_positives == 0
