"""Rule score, site model and their combination on hand-made site features."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from geo_monitor.errors import ConfigError
from geo_monitor.scoring import REPORT_THRESHOLD, evidence, rule_score
from geo_monitor.site_model import FEATURES, combined_score, feature_vector, load_configured, load_default
from geo_monitor.sites import SiteFeatures
from pipelines.train_mining_score import LabelledSite, fit, leave_one_area_out

MINE = SiteFeatures(area_ha=3.5, core_px=300, pond_px=30, bare_share=1.0, water_share=0.1, strict_share=0.9,
                    ndvi_drop=0.6, river_distance_m=80, river_contact_share=0.0, river_extension_share=0.0,
                    growth_days=120, elongation=2.2, fill=0.55, confirming_obs=4)
LANDSLIDE = replace(MINE, pond_px=0, water_share=0.0, river_distance_m=2500, elongation=5.0, growth_days=10)
MEANDER = replace(MINE, pond_px=0, water_share=0.9, river_extension_share=0.9, river_distance_m=10, elongation=5.5)
CLEARING = replace(MINE, pond_px=0, water_share=0.0, river_distance_m=1500, elongation=1.4, growth_days=20)
SETTLEMENT = replace(MINE, pond_px=0, water_share=0.0, strict_share=0.45, river_distance_m=150)


def test_mines_score_high_and_every_decoy_low() -> None:
    assert rule_score(MINE) > 0.9
    for decoy in (LANDSLIDE, MEANDER, CLEARING, SETTLEMENT):
        assert rule_score(decoy) < REPORT_THRESHOLD, decoy


def test_each_piece_of_evidence_moves_the_score_the_right_way() -> None:
    assert rule_score(replace(MINE, pond_px=0)) < rule_score(MINE)
    assert rule_score(replace(MINE, river_distance_m=5000)) < rule_score(MINE)
    assert rule_score(replace(MINE, strict_share=0.5)) < rule_score(MINE)
    assert rule_score(replace(MINE, river_extension_share=0.8)) < rule_score(MINE)
    assert set(evidence(MINE)) >= {"soil", "ponds", "river", "river_change", "linear", "growth"}


def test_feature_vector_matches_the_model_inputs() -> None:
    assert tuple(feature_vector(MINE)) == FEATURES


def _rows() -> list[LabelledSite]:
    rows = []
    for area in range(4):
        for k, (f, label) in enumerate(((MINE, 1), (LANDSLIDE, 0), (MEANDER, 0), (CLEARING, 0), (SETTLEMENT, 0))):
            wiggle = replace(f, bare_share=f.bare_share * (0.9 + 0.02 * area), growth_days=f.growth_days + 7 * k)
            rows.append(LabelledSite(f"a{area}", feature_vector(wiggle), label, "mining" if label else "decoy"))
    return rows


def test_model_fits_saves_and_loads(tmp_path: Path) -> None:
    model = fit(_rows())
    assert model.probability(MINE) > 0.5 > model.probability(LANDSLIDE)
    path = tmp_path / "mining_score_v1.json"
    path.write_text(json.dumps(model.to_json()))
    again = load_default(tmp_path)
    assert again is not None and again.probability(MINE) == pytest.approx(model.probability(MINE))
    cv = leave_one_area_out(_rows())
    assert cv["sites"] == 20 and cv["accuracy"] == 1.0


def test_the_configured_model_file_wins_only_when_set(tmp_path: Path) -> None:
    shipped, retrained = tmp_path / "models", tmp_path / "data" / "models"
    for folder, name, version in ((shipped, "mining_score_v1.json", "logreg-1"),
                                  (retrained, "mining_score_logreg-1-x.json", "logreg-1-x")):
        folder.mkdir(parents=True)
        (folder / name).write_text(json.dumps({**fit(_rows()).to_json(), "version": version}))
    assert load_configured(shipped, None).version == "logreg-1"
    assert load_configured(shipped, retrained / "mining_score_logreg-1-x.json").version == "logreg-1-x"
    with pytest.raises(ConfigError, match="does not exist"):
        load_configured(shipped, retrained / "missing.json")  # never a silent fall-back to rules alone


def test_combined_score_is_rules_alone_without_a_model() -> None:
    model = fit(_rows())
    assert combined_score(0.7, None, MINE) == 0.7
    assert combined_score(0.7, model, MINE) == pytest.approx((0.7 * model.probability(MINE)) ** 0.5)
    assert combined_score(0.2, model, MINE) < 0.5, "a confident model cannot lift a site the rules reject"


def test_a_model_for_other_features_is_refused(tmp_path: Path) -> None:
    doc = fit(_rows()).to_json()
    doc["features"] = ["something_else"] * len(FEATURES)
    (tmp_path / "mining_score_v1.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError):
        load_default(tmp_path)
    assert load_default(tmp_path / "nowhere") is None


def test_the_shipped_model_loads_and_agrees_with_the_rules_on_clear_cases() -> None:
    model = load_default(Path(__file__).resolve().parents[1] / "models")
    if model is None:
        pytest.skip("no trained model in models/ (run geo-monitor train-score)")
    assert model.probability(MINE) > 0.5
    assert combined_score(rule_score(LANDSLIDE), model, LANDSLIDE) < REPORT_THRESHOLD
