"""The small trained part of the mining score: a logistic model over a site's physical features (pure).

The rules in :mod:`geo_monitor.scoring` carry the physics; this model,
trained on SYNTHETIC sample areas (see models/mining_score_v1.md), only
re-weighs the same few features. It is stored as plain JSON (feature names,
standardisation, coefficients), so applying it needs no pickle and no
scikit-learn at run time, and a reviewer can read every weight.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from geo_monitor.errors import ConfigError
from geo_monitor.sites import SiteFeatures

MODEL_FILE: Final[str] = "mining_score_v1.json"
#: The reported score is the geometric mean of rule score and model probability: a site needs
#: support from both, so neither a generator quirk learnt by the model nor a single rule decides alone.


def feature_vector(f: SiteFeatures) -> dict[str, float]:
    """The model's inputs, each a physical quantity on a scale where linear weights make sense."""
    return {
        "soil_purity": f.bare_share * f.strict_share,
        "log_pond_px": math.log1p(f.pond_px),
        "water_share": f.water_share,
        "log_river_distance_m": math.log10(1.0 + min(f.river_distance_m, 20_000.0)),
        "river_extension_share": f.river_extension_share,
        "log_elongation": math.log(min(max(f.elongation, 1.0), 50.0)),
        "fill": f.fill,
        "growth_months": f.growth_days / 30.0,
        "ndvi_drop": f.ndvi_drop,
    }


FEATURES: Final[tuple[str, ...]] = (
    "soil_purity", "log_pond_px", "water_share", "log_river_distance_m", "river_extension_share",
    "log_elongation", "fill", "growth_months", "ndvi_drop",
)


@dataclass(frozen=True)
class SiteModel:
    version: str
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def probability(self, f: SiteFeatures) -> float:
        return self.probability_of(feature_vector(f))

    def probability_of(self, x: dict[str, float]) -> float:
        z = self.intercept + sum(c * (x[name] - m) / s
                                 for name, m, s, c in zip(self.features, self.mean, self.scale, self.coef))
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "features": list(self.features), "mean": list(self.mean),
                "scale": list(self.scale), "coef": list(self.coef), "intercept": self.intercept}

    @classmethod
    def load(cls, path: Path) -> SiteModel:
        try:
            doc = json.loads(Path(path).read_text())
            model = cls(doc["version"], tuple(doc["features"]), tuple(doc["mean"]), tuple(doc["scale"]),
                        tuple(doc["coef"]), float(doc["intercept"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a usable site model ({exc})") from None
        if model.features != FEATURES:
            raise ConfigError(f"{path}: trained on features {model.features}, this code computes {FEATURES}")
        return model


def load_default(models_dir: Path) -> SiteModel | None:
    """The model in ``models_dir`` if there is one (rules alone otherwise)."""
    path = Path(models_dir) / MODEL_FILE
    return SiteModel.load(path) if path.is_file() else None


def load_configured(models_dir: Path, model_file: Path | None = None) -> SiteModel | None:
    """The model detection uses: ``model_file`` if set (it must exist), else :func:`load_default`.

    A retrain job writes new versions next to, never over, the shipped model;
    detection switches to one only when the operator sets ``model_file``.
    """
    if model_file is None:
        return load_default(models_dir)
    if not Path(model_file).is_file():
        raise ConfigError(f"model_file {model_file} does not exist (setting GEO_MONITOR_MODEL_FILE)")
    return SiteModel.load(Path(model_file))


def combined_score(rule: float, model: SiteModel | None, f: SiteFeatures) -> float:
    if model is None:
        return rule
    return math.sqrt(rule * model.probability(f))
