"""Train the site model (geo_monitor.site_model) on SYNTHETIC sample areas and write it with its card.

Steps: build small sample areas for the training seeds (never the seeds the
method is evaluated on), run the mining-change pipeline on each, label every
candidate site by the ground truth (a new mining site = 1; any decoy, old
scar or nothing = 0), fit a standardised, L2-regularised logistic regression
on the physical features, estimate its accuracy by leaving one area out at a
time, and write ``models/mining_score_v1.json`` plus ``models/mining_score_v1.md``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from collections.abc import Callable
from typing import Any, Final

import geopandas as gpd
import numpy as np

from geo_monitor.errors import InvalidInputError
from geo_monitor.site_model import FEATURES, MODEL_FILE, SiteModel, feature_vector

log = logging.getLogger(__name__)

MODEL_VERSION: Final[str] = "logreg-1"
#: Seeds the model is trained on. The evaluation uses the sample's default seed and seed 7: never these.
TRAINING_SEEDS: Final[tuple[int, ...]] = (101, 202, 303, 404, 505, 606)
#: Regularisation: strong, because a handful of synthetic areas must not decide fine weights.
C_REGULARISATION: Final[float] = 0.3


@dataclass
class LabelledSite:
    area: str
    features: dict[str, float]
    label: int
    kind: str


def label_sites(candidates: list[Any], truth_path: Path, epsg: int, monitor_start: date, area: str) -> list[LabelledSite]:
    """Label each candidate by the truth feature it overlaps most (10 % of the smaller, as the evaluation)."""
    truth = gpd.read_file(truth_path).to_crs(epsg)
    rows = []
    for site, _score in candidates:
        kind, best = "none", 0.0
        for _, t in truth.iterrows():
            inter = site.geometry.intersection(t.geometry).area
            share = inter / max(min(site.geometry.area, t.geometry.area), 1e-9)
            if share >= 0.1 and share > best:
                best, kind = share, str(t["kind"])
                starts = str(t["start_date"])[:10]
                if kind == "mining" and date.fromisoformat(starts) < monitor_start:
                    kind = "old_mining"
        rows.append(LabelledSite(area, feature_vector(site.features), int(kind == "mining"), kind))
    return rows


def fit(rows: list[LabelledSite]) -> SiteModel:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[r.features[name] for name in FEATURES] for r in rows])
    y = np.array([r.label for r in rows])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=C_REGULARISATION, class_weight="balanced", max_iter=1000)
    clf.fit((x - mean) / scale, y)
    return SiteModel(MODEL_VERSION, FEATURES, tuple(map(float, mean)), tuple(map(float, scale)),
                     tuple(map(float, clf.coef_[0])), float(clf.intercept_[0]))


def leave_one_area_out(rows: list[LabelledSite]) -> dict[str, float]:
    """Accuracy, precision and recall at 0.5 of models trained without the area they are tested on."""
    tp = fp = fn = tn = 0
    for area in sorted({r.area for r in rows}):
        train = [r for r in rows if r.area != area]
        if len({r.label for r in train}) < 2:
            continue
        model = fit(train)
        for r in (r for r in rows if r.area == area):
            p = model.probability_of(r.features)
            tp += int(p >= 0.5 and r.label == 1)
            fp += int(p >= 0.5 and r.label == 0)
            fn += int(p < 0.5 and r.label == 1)
            tn += int(p < 0.5 and r.label == 0)
    total = max(tp + fp + fn + tn, 1)
    return {"accuracy": (tp + tn) / total, "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "sites": tp + fp + fn + tn}



#: Seeds the evaluation reports accuracy on (docs/method.md): the sample's default and 7. Never trained on.
EVALUATION_SEEDS: Final[tuple[int, ...]] = (20240607, 7)
#: ``progress(area index, areas, stage)``: which training area is being worked on, and at which stage.
Progress = Callable[[int, int, str], None]


def collect(seeds: tuple[int, ...], work_dir: Path, workers: int = 2, *, preset: str = "small",
            compute: Callable[[Any], Any] | None = None, progress: Progress | None = None) -> list[LabelledSite]:
    """Build each training area, run the pipeline on it, and label its candidate sites.

    ``compute`` runs the pipeline's Dask graphs (default: the active scheduler; a
    job passes its stoppable one); ``progress`` hears about each area and stage.
    """
    from pipelines.mining_change import DetectionRequest, MiningChangePipeline
    from sample_data import PRESETS, build_sample_area

    report = progress or (lambda index, total, stage: None)
    rows: list[LabelledSite] = []
    for index, seed in enumerate(seeds):
        spec = dataclasses.replace(PRESETS[preset].with_seed(seed), name=f"training-{seed}")
        report(index, len(seeds), f"building training area {seed}")
        area = build_sample_area(spec, work_dir / f"area-{seed}", workers=workers, progress=False)
        coll = json.loads((area.out_dir / "catalog" / "sentinel-2-l2a" / "collection.json").read_text())
        w, s, e, n = coll["extent"]["spatial"]["bbox"][0]
        request = DetectionRequest(str(area.catalog_path), (w + 1e-4, s + 1e-4, e - 1e-4, n - 1e-4),
                                   spec.monitor_start, spec.end, spec.start, chunk_px=256)
        pipeline = MiningChangePipeline(work_dir / f"state-{seed}", compute=compute,
                                        progress=lambda stage, done, total, i=index, sd=seed:
                                        report(i, len(seeds), f"area {sd}: {stage}"))
        result = pipeline.run(request)
        rows += label_sites(result.candidates, area.truth_path, result.grid.epsg, spec.monitor_start, f"seed-{seed}")
        log.info("training area done", extra={"seed": seed, "candidates": len(result.candidates)})
    report(len(seeds), len(seeds), "fitting")
    return rows


def write_card(path: Path, model: SiteModel, rows: list[LabelledSite], cv: dict[str, float],
               seeds: tuple[int, ...], model_file: str = MODEL_FILE, preset: str = "small") -> None:
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    weights = "\n".join(f"| `{n}` | {c:+.3f} | {m:.3f} | {s:.3f} |"
                        for n, c, m, s in zip(model.features, model.coef, model.mean, model.scale))
    path.write_text(f"""# Model card: mining site score `{model.version}` (SYNTHETIC training data)

**What it is.** A logistic regression over nine physical features of a
candidate site (see `geo_monitor/site_model.py`). The reported score is the
geometric mean of its probability and the rule score of
`geo_monitor/scoring.py`, so a site needs support from both; a site is
reported at a combined score of 0.5 or more. Stored as JSON in
`{model_file}`: no pickle, every weight readable below.

**Training data: SYNTHETIC only.** {len(rows)} candidate sites found by the
mining-change pipeline on {len(seeds)} sample areas (preset `{preset}`) built by
`sample_data` with seeds {', '.join(map(str, seeds))} (never the seeds used to
report accuracy in docs/method.md: the sample's default 20240607 and 7). Labels
come from the generator's ground truth: 1 for a new mining site, 0 otherwise.
Candidates by what they overlap: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}.
No real imagery was used and **no accuracy on real imagery has been measured**.

**Metrics** (leave one training area out, threshold 0.5 on the model alone):
{_metrics_text(cv)}

**Weights** (on standardised features: `(x - mean) / scale`; intercept {model.intercept:+.3f}):

| feature | weight | mean | scale |
|---|---|---|---|
{weights}

**Limits.** It has only seen this generator's mines and decoys, so it can
only re-weigh evidence the rules already use; with the geometric mean a
generator quirk it has learnt cannot carry a decision alone. Retrain with
`geo-monitor train-score` after changing the features or the generator.

**Version** `{model.version}`, trained with scikit-learn
`LogisticRegression(C={C_REGULARISATION}, class_weight="balanced")`.
""", encoding="utf-8")


def _metrics_text(cv: dict[str, float]) -> str:
    if not cv["sites"]:
        return ("not measured: with fewer than two training areas (or one class only without the left-out area) "
                "there is nothing to leave out. Train on more seeds to measure them.")
    return (f"accuracy {cv['accuracy']:.3f}, precision {cv['precision']:.3f}, recall\n{cv['recall']:.3f} over "
            f"{cv['sites']} sites. Small numbers: read them as a\nsanity check, not a benchmark.")


def train(out_dir: Path, work_dir: Path, seeds: tuple[int, ...] = TRAINING_SEEDS, workers: int = 2, *,
          preset: str = "small", version: str = MODEL_VERSION, model_file: str = MODEL_FILE,
          compute: Callable[[Any], Any] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Train on ``seeds`` and write ``out_dir/model_file`` and its card (``.md``); return where, and the metrics.

    The card is written first and the model last, each through a temporary file
    and a rename: a model file that exists is complete and has its card.
    """
    bad = sorted(set(seeds) & set(EVALUATION_SEEDS))
    if bad:
        raise InvalidInputError(f"seeds {bad} are the evaluation's; training on them would inflate its accuracy")
    rows = collect(seeds, work_dir, workers, preset=preset, compute=compute, progress=progress)
    if len({r.label for r in rows}) < 2:
        # Deterministic for these seeds: a permanent error (a job is not retried), not a crash.
        raise InvalidInputError(f"training areas of seeds {list(seeds)} gave only one class of candidate sites; "
                                "add seeds")
    model = dataclasses.replace(fit(rows), version=version)
    cv = leave_one_area_out(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / model_file
    card_path = out_dir / model_file.replace(".json", ".md")
    card_tmp = card_path.with_name(card_path.name + ".tmp")
    write_card(card_tmp, model, rows, cv, seeds, model_file, preset)
    os.replace(card_tmp, card_path)
    model_tmp = model_path.with_name(model_path.name + ".tmp")
    model_tmp.write_text(json.dumps(model.to_json(), indent=1) + "\n")
    os.replace(model_tmp, model_path)
    # Metrics of a model never tested on an area it was trained on; None when there was nothing to leave out.
    metrics = {name: (cv[name] if cv["sites"] else None) for name in ("accuracy", "precision", "recall")}
    return {"model": str(model_path), "card": str(card_path), "version": model.version, "preset": preset,
            "seeds": list(seeds), "sites": len(rows), "metrics": {**metrics, "evaluated_sites": cv["sites"]}}
