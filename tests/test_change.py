"""The per-pixel change state: baseline, own cloud guard, anomalies, confirmation, withdrawal, replay."""

from __future__ import annotations

import numpy as np

from geo_monitor import change
from geo_monitor.bands import SCL

FOREST = np.array([0.025, 0.042, 0.023, 0.284, 0.147, 0.062], np.float32)
SOIL = np.array([0.098, 0.137, 0.166, 0.215, 0.234, 0.154], np.float32)
POND = np.array([0.078, 0.102, 0.107, 0.072, 0.057, 0.042], np.float32)
PASTURE = np.array([0.071, 0.093, 0.085, 0.264, 0.193, 0.122], np.float32)
CLOUD = np.array([0.46, 0.45, 0.45, 0.47, 0.36, 0.24], np.float32)
SHAPE = (4, 4)


def obs(spectrum: np.ndarray, scl: int = SCL.VEGETATION) -> change.Observation:
    refl = np.broadcast_to(spectrum[:, None, None], (6, *SHAPE)).astype(np.float32).copy()
    return change.Observation.from_stack(refl, np.full(SHAPE, scl, np.uint8))


def forest_baseline(n: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return change.compute_baseline([obs(FOREST * rng.uniform(0.95, 1.05)) for _ in range(n)])


def run(observations: list[tuple[np.ndarray, int]], baseline=None, start_day: int = 3300):
    baseline = baseline or forest_baseline()
    state = change.empty_state(SHAPE)
    for k, (spectrum, scl) in enumerate(observations):
        change.apply_observation(state, change.classify(obs(spectrum, scl), baseline), start_day + 5 * k)
    return state


def test_forest_baseline_is_eligible_and_bare_field_baseline_is_not() -> None:
    assert change.eligible(forest_baseline()).all()
    cycling = change.compute_baseline([obs(FOREST), obs(SOIL), obs(PASTURE), obs(SOIL), obs(FOREST), obs(FOREST)])
    assert not change.eligible(cycling).any()
    too_few = change.compute_baseline([obs(FOREST), obs(FOREST)])
    assert not change.eligible(too_few).any()


def test_clouded_baseline_observations_do_not_count() -> None:
    base = change.compute_baseline([obs(CLOUD, SCL.CLOUD_HIGH_PROBABILITY)] * 5 + [obs(FOREST)] * 4)
    assert (base["base_n_obs"] == 4).all()
    assert np.allclose(base["base_nir"], FOREST[3])


def test_soil_and_pond_are_anomalies_pasture_is_not() -> None:
    base = forest_baseline()
    for spectrum, expected in ((SOIL, True), (POND, True), (PASTURE, False), (FOREST, False)):
        c = change.classify(obs(spectrum), base)
        assert c.clear.all()
        assert c.anomaly.all() == expected, spectrum
    pond = change.classify(obs(POND), base)
    assert pond.water.all() and pond.turbid.all() and pond.strict.all()


def test_half_soil_pixel_is_an_anomaly_but_not_strict() -> None:
    c = change.classify(obs(0.5 * SOIL + 0.5 * FOREST), forest_baseline())
    assert c.anomaly.all() and not c.strict.any()


def test_own_guard_catches_what_scl_missed() -> None:
    base = forest_baseline()
    thin_cloud = 0.85 * FOREST + 0.15 * CLOUD  # SCL said vegetation
    haze = FOREST + np.array([0.04, 0.031, 0.023, 0.013, 0.003, 0.001], np.float32)
    shadow = FOREST * 0.3
    for spectrum in (thin_cloud, haze, shadow, CLOUD):
        c = change.classify(obs(spectrum, SCL.VEGETATION), base)
        assert not c.clear.any() and not c.anomaly.any(), spectrum
    hazy_soil = SOIL + np.array([0.02, 0.016, 0.012, 0.006, 0.002, 0.0], np.float32)
    assert change.classify(obs(hazy_soil), base).anomaly.all(), "soil under light haze is still soil"


def test_scl_never_evidence_classes_are_masked() -> None:
    base = forest_baseline()
    for cls in (SCL.NO_DATA, SCL.SATURATED_OR_DEFECTIVE, SCL.CLOUD_SHADOW, SCL.CLOUD_MEDIUM_PROBABILITY,
                SCL.CLOUD_HIGH_PROBABILITY, SCL.THIN_CIRRUS):
        assert not change.classify(obs(SOIL, cls), base).clear.any()
    assert change.classify(obs(SOIL, SCL.UNCLASSIFIED), base).anomaly.all()


def test_confirmation_needs_consecutive_looks_and_clouds_do_not_break_a_run() -> None:
    cloudy = (CLOUD, SCL.CLOUD_HIGH_PROBABILITY)
    s = run([(FOREST, 4), (SOIL, 5), cloudy, cloudy])
    assert (s["confirmed_at"] == 0).all() and (s["consec"] == 1).all()
    s = run([(FOREST, 4), (SOIL, 5), cloudy, (SOIL, 5)])
    assert (s["confirmed_at"] == 3300 + 15).all()
    assert (s["first_detected"] == 3300 + 5).all()
    assert (s["high_at"] == 0).all()
    s = run([(FOREST, 4), (SOIL, 5), cloudy, (SOIL, 5), (POND, 6)])
    assert (s["high_at"] == 3300 + 20).all() and (s["n_water"] == 1).all() and (s["n_bare"] == 2).all()


def test_one_normal_look_resets_the_run_before_confirmation() -> None:
    s = run([(SOIL, 5), (FOREST, 4), (SOIL, 5)])
    assert (s["confirmed_at"] == 0).all() and (s["run_start"] == 3300 + 10).all()


def test_regrowth_withdraws_a_confirmation() -> None:
    s = run([(SOIL, 5), (SOIL, 5), (FOREST, 4)])
    assert (s["confirmed_at"] > 0).all()
    s = run([(SOIL, 5), (SOIL, 5), (FOREST, 4), (FOREST, 4)])
    assert (s["confirmed_at"] == 0).all() and (s["n_anom"] == 0).all()


def test_folding_in_two_batches_equals_one_pass() -> None:
    looks = [(FOREST, 4), (SOIL, 5), (CLOUD, 9), (SOIL, 5), (POND, 6), (FOREST, 4), (SOIL, 5)]
    base = forest_baseline()
    whole = run(looks, base)
    state = change.empty_state(SHAPE)
    for k, (spectrum, scl) in enumerate(looks):
        if k == 4:  # persist and reload between batches, as incremental runs do
            state = {name: np.array(a, copy=True) for name, a in state.items()}
        change.apply_observation(state, change.classify(obs(spectrum, scl), base), 3300 + 5 * k)
    for name in change.STATE_VARS:
        np.testing.assert_array_equal(state[name], whole[name], err_msg=name)


def test_day_index_round_trips() -> None:
    from datetime import date

    d = date(2024, 2, 29)
    assert change.day_from_index(change.day_index(d)) == d
    assert change.day_index(change.EPOCH) == 0
